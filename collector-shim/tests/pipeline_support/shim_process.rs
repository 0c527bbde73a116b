//! The real `collector-shim` binary as a child process: started on a config file, ready once
//! its log names the bound address, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// A running shim binary.
pub struct ShimProcess {
    pub child: Child,
    /// OTLP/HTTP (and admin) address.
    pub addr: String,
    /// OTLP/gRPC address, when the config enables it.
    pub grpc: Option<String>,
    /// Its stderr, a line at a time.
    pub log: Receiver<String>,
    /// What was read while waiting for the ready line.
    pub startup_log: String,
}

impl ShimProcess {
    /// Starts the binary with `--config <config>` at log level info and waits, bounded
    /// (60 s without a line), for the ready line (port 0 is resolved there).
    pub fn start(config: &Path) -> ShimProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_collector-shim"))
            .arg("--config")
            .arg(config)
            .arg("--log-level")
            .arg("info")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Killed on drop from here on, also when it never gets ready.
        let mut shim = ShimProcess {
            child,
            addr: String::new(),
            grpc: None,
            log: rx,
            startup_log: String::new(),
        };
        while let Ok(line) = shim.log.recv_timeout(Duration::from_secs(60)) {
            shim.startup_log.push_str(&line);
            shim.startup_log.push('\n');
            if let Some(rest) = line.split("listen=").nth(1) {
                shim.addr = rest.split_whitespace().next().unwrap_or("").to_string();
                if let Some(g) = line.split("grpc_listen=").nth(1) {
                    shim.grpc = g.split_whitespace().next().map(str::to_string);
                }
                return shim;
            }
        }
        panic!("no ready line in:\n{}", shim.startup_log);
    }

    /// Its log lines not read yet (for failure messages).
    pub fn log(&self) -> String {
        self.log.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ShimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
