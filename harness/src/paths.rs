//! Where the artifacts the tests run live: each path comes from an environment variable, with a
//! default relative to the workspace root (the directory holding `rust-toolchain.toml`), so a plain
//! `cargo test` works once `make tools` and `make wasm` have run.

use std::path::{Path, PathBuf};

/// The workspace root: the first ancestor of this crate's manifest directory that holds
/// `rust-toolchain.toml`.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("rust-toolchain.toml").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

fn from_env(var: &str, default_relative: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(value) if !value.is_empty() => {
            let path = PathBuf::from(value);
            if path.is_absolute() {
                path
            } else {
                workspace_root().join(path)
            }
        }
        _ => workspace_root().join(default_relative),
    }
}

/// The filter module: `AETHERFLOW_WASM`, default `target/wasm32-wasip1/release/trace_filter.wasm`.
pub fn wasm() -> PathBuf {
    from_env(
        "AETHERFLOW_WASM",
        "target/wasm32-wasip1/release/trace_filter.wasm",
    )
}

/// The test-only Wasm build that traps on a marker header (`make wasm-trap`):
/// `AETHERFLOW_WASM_TRAP`, default `target/trap/wasm32-wasip1/release/trace_filter.wasm`.
pub fn wasm_trap() -> PathBuf {
    from_env(
        "AETHERFLOW_WASM_TRAP",
        "target/trap/wasm32-wasip1/release/trace_filter.wasm",
    )
}

/// The native module: `AETHERFLOW_NATIVE`, default `target/release/libaetherflow_trace.so`
/// (Envoy finds it by name in its directory, `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
pub fn native() -> PathBuf {
    from_env("AETHERFLOW_NATIVE", "target/release/libaetherflow_trace.so")
}

/// The real Envoy binary: `AETHERFLOW_ENVOY`, default `.tools/bin/envoy`.
pub fn envoy() -> PathBuf {
    from_env("AETHERFLOW_ENVOY", ".tools/bin/envoy")
}

/// The virtualenv's Python (OTLP/Thrift/JSON-schema decoders): `AETHERFLOW_PYTHON`, default `.venv/bin/python`.
pub fn python() -> PathBuf {
    from_env("AETHERFLOW_PYTHON", ".venv/bin/python")
}

/// The collector-shim binary: `AETHERFLOW_SHIM_BIN`, default `target/debug/collector-shim`.
pub fn shim_bin() -> PathBuf {
    from_env("AETHERFLOW_SHIM_BIN", "target/debug/collector-shim")
}

/// The shipped Envoy configuration, `envoy/envoy.yaml`.
pub fn shipped_envoy_yaml() -> PathBuf {
    workspace_root().join("envoy/envoy.yaml")
}

/// Panics with a message saying how to produce `path` when it is missing: a missing artifact is a
/// set-up problem and the message should say which command fixes it.
pub fn require(path: &Path, how: &str) {
    assert!(
        path.exists(),
        "{} does not exist; run `{how}` (or point the matching AETHERFLOW_* variable at it)",
        path.display()
    );
}
