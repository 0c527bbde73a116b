//! The real `collector-shim` binary of this package as a child process, through the shared
//! harness (`aetherflow_harness::shim`): started on a config file, ready once its log names the
//! bound addresses, killed on drop ([`ShimProcess::terminate`] for SIGTERM,
//! [`ShimProcess::kill`] for SIGKILL).

use std::path::Path;

pub use aetherflow_harness::shim::ShimProcess;

/// Starts this package's binary with `--config <config>` at log level info and waits, bounded
/// (60 s without a line), for its ready line. Blocking.
pub fn start(config: &Path) -> ShimProcess {
    ShimProcess::start_logged(Path::new(env!("CARGO_BIN_EXE_collector-shim")), config)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`start`] off the async runtime's threads.
pub async fn start_async(config: &Path) -> ShimProcess {
    let config = config.to_path_buf();
    tokio::task::spawn_blocking(move || start(&config))
        .await
        .expect("start task")
}
