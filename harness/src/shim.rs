//! The real `collector-shim` binary as a child process, for the demo, the benchmarks, the
//! end-to-end tests and the shim's own tests.
//!
//! Two ways to know it is up:
//! - [`ShimProcess::start_on_free_port`]: the harness picks a free loopback port, renders the
//!   configuration for it, and polls an HTTP path (`/healthz`, `/readyz`); the log goes to a file.
//! - [`ShimProcess::start_logged`]: the configuration binds port 0 and the shim's ready line
//!   (`listen=... grpc_listen=...`) names the bound addresses; stderr is read a line at a time.
//!
//! Stopping is [`ShimProcess::terminate`] (SIGTERM: it takes pending tail decisions, flushes its
//! queues and exits), [`ShimProcess::kill`] (SIGKILL), or dropping the handle ([`OnDrop`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::envoy::OnDrop;

/// How many times [`ShimProcess::start_on_free_port`] tries a fresh port when the shim exits at
/// start-up (another process may have taken the port between choosing and binding it).
const PORT_ATTEMPTS: usize = 3;

/// A loopback address with a port the kernel just handed out (then released, so a child process
/// can bind it; the window for another process to take it is tiny on a test machine).
pub fn free_port() -> Result<SocketAddr, String> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a port: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

/// Where the shim's stdout (the console exporter's output) goes; stderr (its log) always goes to
/// the log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdout {
    /// Discarded.
    Null,
    /// Into the log file with stderr.
    Log,
    /// This process's stdout (the demo prints the console exporter's trees).
    Inherit,
}

/// How to start the shim on a free port.
#[derive(Clone, Debug)]
pub struct FreePortLaunch {
    /// The binary.
    pub binary: PathBuf,
    /// The directory of the configuration file and the log (`shim.log`).
    pub dir: PathBuf,
    /// The configuration's file name in `dir`.
    pub config_name: String,
    /// Where stdout goes.
    pub stdout: Stdout,
    /// The path polled until it answers 200 (`/healthz`, or `/readyz` once it takes traffic).
    pub ready_path: String,
    /// How long start-up may take.
    pub ready_within: Duration,
    /// What dropping the handle does.
    pub on_drop: OnDrop,
}

impl FreePortLaunch {
    /// Defaults: `dir/shim.yaml`, stdout discarded, `/readyz` within 60 s, SIGKILL on drop.
    pub fn new(binary: &Path, dir: &Path) -> Self {
        FreePortLaunch {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            config_name: "shim.yaml".into(),
            stdout: Stdout::Null,
            ready_path: "/readyz".into(),
            ready_within: Duration::from_secs(60),
            on_drop: OnDrop::Kill,
        }
    }

    /// Where the configuration is written.
    fn config_path(&self) -> PathBuf {
        self.dir.join(&self.config_name)
    }

    /// Where the shim's stderr goes.
    fn log_path(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
}

/// Where the log is.
enum Log {
    File(PathBuf),
    /// Lines read from stderr so far, and the thread reading them (it ends when the pipe
    /// closes: once the process has exited, the log is complete after joining it).
    Lines(Arc<Mutex<Vec<String>>>, Mutex<Option<JoinHandle<()>>>),
}

/// A running collector-shim.
pub struct ShimProcess {
    child: Option<Child>,
    /// Its OTLP/HTTP receiver (also `/healthz`, `/readyz`, `/metrics`).
    pub addr: SocketAddr,
    /// Its OTLP/gRPC receiver, when the ready line names one.
    pub grpc: Option<SocketAddr>,
    log: Log,
    on_drop: OnDrop,
    /// How it was launched, for [`ShimProcess::restart`] (free-port launches only).
    launch: Option<FreePortLaunch>,
}

/// Why a start attempt failed: the child exited (perhaps its port was taken: worth a retry), or
/// something no retry fixes.
enum Attempt {
    Exited(String),
    Fatal(String),
}

impl ShimProcess {
    /// Starts the shim with the configuration `config(listen address)` renders, written into
    /// `launch.dir`, and waits (bounded) until `launch.ready_path` answers 200. A shim that
    /// exits at start-up is retried on a fresh port (at most 3 attempts).
    pub async fn start_on_free_port(
        launch: &FreePortLaunch,
        config: impl Fn(SocketAddr) -> Result<String, String>,
    ) -> Result<ShimProcess, String> {
        crate::paths::require(&launch.binary, "cargo build -p collector-shim");
        std::fs::create_dir_all(&launch.dir)
            .map_err(|e| format!("create {}: {e}", launch.dir.display()))?;
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::attempt(launch, &config).await {
                Ok(shim) => return Ok(shim),
                Err(Attempt::Exited(e)) => last_error = e,
                Err(Attempt::Fatal(e)) => return Err(e),
            }
        }
        Err(last_error)
    }

    async fn attempt(
        launch: &FreePortLaunch,
        config: &impl Fn(SocketAddr) -> Result<String, String>,
    ) -> Result<ShimProcess, Attempt> {
        let addr = free_port().map_err(Attempt::Fatal)?;
        std::fs::write(launch.config_path(), config(addr).map_err(Attempt::Fatal)?)
            .map_err(|e| Attempt::Fatal(format!("write shim config: {e}")))?;
        let log = std::fs::File::create(launch.log_path())
            .map_err(|e| Attempt::Fatal(format!("shim log: {e}")))?;
        let mut shim = ShimProcess {
            child: Some(spawn(launch, log).map_err(Attempt::Fatal)?),
            addr,
            grpc: None,
            log: Log::File(launch.log_path()),
            on_drop: launch.on_drop,
            launch: Some(launch.clone()),
        };
        shim.wait_ready(launch).await?;
        Ok(shim)
    }

    /// Waits, bounded by `launch.ready_within`, until `launch.ready_path` answers 200.
    async fn wait_ready(&mut self, launch: &FreePortLaunch) -> Result<(), Attempt> {
        let deadline = Instant::now() + launch.ready_within;
        loop {
            if let Some(status) = self.try_exit() {
                return Err(Attempt::Exited(format!(
                    "collector-shim exited during start-up ({status}):\n{}",
                    self.log()
                )));
            }
            let probe =
                crate::http::get(self.addr, &launch.ready_path, Duration::from_secs(2)).await;
            if matches!(probe, Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Attempt::Fatal(format!(
                    "collector-shim not ready within {} s:\n{}",
                    launch.ready_within.as_secs(),
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the shim with `signal` (SIGTERM: it flushes and exits; SIGKILL: a crash), waits at
    /// most `exit_within` for the exit (then SIGKILL), and starts it again with the same
    /// configuration on the same address, its log appended to, ready within the launch's
    /// bound. Returns how long its receiver was down. Only for a shim started on a free port.
    pub async fn restart(
        &mut self,
        signal: crate::process::Signal,
        exit_within: Duration,
    ) -> Result<Duration, String> {
        let launch = self
            .launch
            .clone()
            .ok_or("restart: only a shim started by start_on_free_port can be restarted")?;
        let down_at = Instant::now();
        if let Some(mut child) = self.child.take() {
            crate::process::signal(&mut child, signal)?;
            let deadline = Instant::now() + exit_within;
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() > deadline {
                    crate::process::kill(&mut child);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.log_path())
            .map_err(|e| format!("shim log: {e}"))?;
        self.child = Some(spawn(&launch, log)?);
        self.wait_ready(&launch).await.map_err(|e| match e {
            Attempt::Exited(e) | Attempt::Fatal(e) => e,
        })?;
        Ok(down_at.elapsed())
    }

    /// Starts `binary --config <config> --log-level info` (the configuration binds its own
    /// ports, port 0 included) and waits, bounded (60 s without a line), for the ready line that
    /// names the bound addresses. Blocking: call it from `spawn_blocking` in async code.
    /// SIGKILL on drop.
    pub fn start_logged(binary: &Path, config: &Path) -> Result<ShimProcess, String> {
        let mut child = std::process::Command::new(binary)
            .arg("--config")
            .arg(config)
            .arg("--log-level")
            .arg("info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (rx, reader) = match child.stderr.take() {
            Some(stderr) => {
                let (rx, handle) = read_lines(stderr, lines.clone());
                (Some(rx), Some(handle))
            }
            None => (None, None),
        };
        // Killed on drop from here on, also when it never gets ready.
        let mut shim = ShimProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc: None,
            log: Log::Lines(lines, Mutex::new(reader)),
            on_drop: OnDrop::Kill,
            launch: None,
        };
        let Some(rx) = rx else {
            return Err("no stderr pipe".into());
        };
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
            if let Some((addr, grpc)) = ready_line(&line) {
                shim.addr = addr;
                shim.grpc = grpc;
                return Ok(shim);
            }
        }
        Err(format!(
            "no ready line from collector-shim in:\n{}",
            shim.log()
        ))
    }

    /// Everything it logged so far (once it has been stopped: everything it logged).
    pub fn log(&self) -> String {
        match &self.log {
            Log::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
            Log::Lines(lines, reader) => {
                if self.child.is_none() {
                    // Stopped and reaped: the pipe is closed, the reader ends after the last line.
                    if let Some(handle) = reader.lock().ok().and_then(|mut r| r.take()) {
                        let _ = handle.join();
                    }
                }
                lines.lock().map(|l| l.join("\n")).unwrap_or_default()
            }
        }
    }

    /// The OTLP/HTTP traces URL.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// The process id (for `/proc` readings); `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status if it has exited (it is reaped then).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, a wait of at most `grace`, then SIGKILL: the exit status when it exited on its
    /// own. Blocking.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        crate::process::terminate(&mut child, grace)
    }

    /// [`ShimProcess::terminate`] without blocking the async runtime's thread.
    pub async fn terminate_async(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        crate::process::terminate_async(&mut child, grace).await
    }

    /// SIGKILL (a crash, as far as the shim can tell) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::process::kill(&mut child);
        }
    }
}

impl Drop for ShimProcess {
    fn drop(&mut self) {
        match self.on_drop {
            OnDrop::Kill => self.kill(),
            OnDrop::Terminate(grace) => {
                self.terminate(grace);
            }
        }
    }
}

/// Starts `launch.binary --config <config>`, its stderr (and stdout when asked) to `log`.
fn spawn(launch: &FreePortLaunch, log: std::fs::File) -> Result<Child, String> {
    let mut cmd = std::process::Command::new(&launch.binary);
    cmd.arg("--config")
        .arg(launch.config_path())
        .stdin(Stdio::null());
    match launch.stdout {
        Stdout::Null => cmd.stdout(Stdio::null()),
        Stdout::Inherit => cmd.stdout(Stdio::inherit()),
        Stdout::Log => cmd.stdout(log.try_clone().map_err(|e| format!("shim log: {e}"))?),
    };
    cmd.stderr(log)
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", launch.binary.display()))
}

/// Reads `stderr` a line at a time on a thread: each line kept in `lines` and sent on the
/// returned channel.
fn read_lines(
    stderr: impl std::io::Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> (Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let handle = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut kept) = lines.lock() {
                kept.push(line.clone());
            }
            let _ = tx.send(line);
        }
    });
    (rx, handle)
}

/// The addresses in the shim's ready line (`... listen=127.0.0.1:4318 grpc_listen=...`).
fn ready_line(line: &str) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let word = |key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|w| w.trim_matches('"'))
            .and_then(|w| w.parse().ok())
    };
    let addr = word("listen=")?;
    Some((addr, word("grpc_listen=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_names_both_receivers() {
        let line = "INFO collector_shim: ready listen=127.0.0.1:4318 grpc_listen=127.0.0.1:4317";
        let (http, grpc) = ready_line(line).unwrap();
        assert_eq!(http.port(), 4318);
        assert_eq!(grpc.map(|g| g.port()), Some(4317));
        assert_eq!(ready_line("INFO starting").map(|r| r.0), None);
    }
}
