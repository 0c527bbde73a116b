//! The one Envoy launcher ([`EnvoyProcess`]): the bootstrap written, the process started
//! (optionally under a wrapper such as callgrind), the admin address read back, readiness
//! bounded in time, the bound listeners, the log captured, `/stats` read, and the stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::parse_stats;

/// Where Envoy looks for `lib<name>.so` of a dynamic module.
pub const MODULES_PATH_VAR: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";

/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The directory of the native module (set for every Envoy the harness starts: a Wasm-only
/// configuration ignores it).
pub fn native_module_dir() -> PathBuf {
    let module = crate::paths::native();
    module
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where Envoy's log goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTo {
    /// Stderr straight into a file: every line readable at once (the tests read it as they go).
    Stderr,
    /// Envoy's `--log-path` (flushed every few seconds), stderr discarded: the benchmarks' form.
    LogPath,
}

/// What to do with the process when its handle drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDrop {
    /// SIGKILL (the tests do not depend on a graceful drain).
    Kill,
    /// SIGTERM, at most this long a wait, then SIGKILL.
    Terminate(Duration),
}

/// How to launch Envoy.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The binary; defaults to [`crate::paths::envoy`].
    pub binary: PathBuf,
    /// A command Envoy runs under (e.g. `valgrind --tool=callgrind ...`: the wrapper's process is
    /// Envoy's); empty for none.
    pub wrapper: Vec<String>,
    /// Worker threads (`--concurrency`); each worker runs its own Wasm VM.
    pub concurrency: usize,
    /// Envoy's log level (`-l`).
    pub log_level: String,
    /// Extra `--component-log-level` value, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
    /// Where the log goes.
    pub log_to: LogTo,
    /// How long start-up (V8 compiling the module per worker) may take on a busy machine.
    pub startup_timeout: Duration,
    /// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
    pub modules_dir: PathBuf,
    /// The directory for the configuration and the log; `None`: a temporary one, removed with
    /// the handle.
    pub dir: Option<PathBuf>,
    /// What dropping the handle does.
    pub on_drop: OnDrop,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            binary: crate::paths::envoy(),
            wrapper: Vec::new(),
            concurrency: 1,
            log_level: "info".into(),
            component_log_level: None,
            log_to: LogTo::Stderr,
            startup_timeout: Duration::from_secs(90),
            modules_dir: native_module_dir(),
            dir: None,
            on_drop: OnDrop::Kill,
        }
    }
}

/// The directory an Envoy writes into: the caller's, or a temporary one owned by the handle.
enum WorkDir {
    Given(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    fn path(&self) -> &Path {
        match self {
            WorkDir::Given(p) => p,
            WorkDir::Temp(t) => t.path(),
        }
    }
}

/// A running Envoy process: its admin interface, bound listeners and log.
pub struct EnvoyProcess {
    child: Option<Child>,
    dir: WorkDir,
    log_path: PathBuf,
    admin: SocketAddr,
    listeners: BTreeMap<String, SocketAddr>,
    on_drop: OnDrop,
}

impl EnvoyProcess {
    /// Writes the bootstrap `yaml` and starts Envoy on it, then waits (bounded by
    /// [`Launch::startup_timeout`]) for the admin address, admin `/ready` answering 200 and the
    /// bound listener addresses.
    pub async fn start(yaml: &str, opts: &Launch) -> Result<EnvoyProcess, String> {
        crate::paths::require(&opts.binary, "make tools");
        let dir = match &opts.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("create {}: {e}", dir.display()))?;
                WorkDir::Given(dir.clone())
            }
            None => WorkDir::Temp(
                tempfile::Builder::new()
                    .prefix("aetherflow-envoy-")
                    .tempdir()
                    .map_err(|e| format!("tempdir: {e}"))?,
            ),
        };
        let cfg_path = dir.path().join("envoy.yaml");
        std::fs::write(&cfg_path, yaml)
            .map_err(|e| format!("write {}: {e}", cfg_path.display()))?;
        let admin_file = dir.path().join("admin-address.txt");
        // A directory reused across runs: never read the previous run's address.
        let _ = std::fs::remove_file(&admin_file);
        let log_path = dir.path().join("envoy.log");
        let mut cmd = match opts.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&opts.binary);
                c
            }
            None => Command::new(&opts.binary),
        };
        cmd.arg("-c")
            .arg(&cfg_path)
            .arg("--concurrency")
            .arg(opts.concurrency.to_string())
            // Several Envoys run at once: no shared-memory hot-restart region.
            .arg("--disable-hot-restart")
            .arg("-l")
            .arg(&opts.log_level);
        if let Some(levels) = &opts.component_log_level {
            cmd.arg("--component-log-level").arg(levels);
        }
        match opts.log_to {
            LogTo::Stderr => {
                let file = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
                cmd.stderr(file);
            }
            LogTo::LogPath => {
                cmd.arg("--log-path").arg(&log_path).stderr(Stdio::null());
            }
        }
        let child = cmd
            .arg("--admin-address-path")
            .arg(&admin_file)
            .env(MODULES_PATH_VAR, &opts.modules_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", opts.binary.display()))?;
        let mut envoy = EnvoyProcess {
            child: Some(child),
            dir,
            log_path,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners: BTreeMap::new(),
            on_drop: opts.on_drop,
        };
        let deadline = Instant::now() + opts.startup_timeout;
        loop {
            envoy.check_alive()?;
            if envoy.admin.port() == 0 {
                if let Some(addr) = std::fs::read_to_string(&admin_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    envoy.admin = addr;
                }
            }
            if envoy.admin.port() != 0 && matches!(envoy.admin_get("/ready").await, Ok((200, _))) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Envoy not ready within {} s ({}); log:\n{}",
                    opts.startup_timeout.as_secs(),
                    if envoy.admin.port() == 0 {
                        "no admin address written"
                    } else {
                        "admin /ready not 200"
                    },
                    envoy.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        envoy.listeners = envoy.read_listeners().await?;
        Ok(envoy)
    }

    fn check_alive(&mut self) -> Result<(), String> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "Envoy exited during start-up ({status}); log:\n{}",
                    self.log_tail(40)
                ));
            }
        }
        Ok(())
    }

    async fn read_listeners(&self) -> Result<BTreeMap<String, SocketAddr>, String> {
        let (status, body) = self.admin_get("/listeners?format=json").await?;
        if status != 200 {
            return Err(format!("admin /listeners answered {status}"));
        }
        listeners_from_json(&body)
    }

    /// The admin interface address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The bound listeners by name.
    pub fn listeners(&self) -> &BTreeMap<String, SocketAddr> {
        &self.listeners
    }

    /// The bound address of listener `name`.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.get(name).copied()
    }

    /// The OS process id (the benchmarks read its CPU time and memory); `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Directory holding the written config and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `n` lines of the log, for error and assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The first `n` log lines at error level or above (a healthy run has none).
    pub fn log_errors(&self, n: usize) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("][error]") || l.contains("][critical]"))
            .take(n)
            .map(str::to_owned)
            .collect()
    }

    /// `GET path` on the admin interface: (status, body).
    pub async fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        crate::http::get(self.admin, path, ADMIN_TIMEOUT).await
    }

    /// All counters and gauges from admin `/stats` (histograms are skipped).
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>, String> {
        let (status, body) = self.admin_get("/stats").await?;
        if status != 200 {
            return Err(format!("admin /stats answered {status}"));
        }
        Ok(parse_stats(&body))
    }

    /// Whether the process is still running (not exited and unreaped: a zombie is dead).
    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(crate::process::is_running)
    }

    /// Asks Envoy to shut down cleanly (SIGTERM, as an orchestrator would) and waits up to
    /// `timeout` for it to exit; kills it after that. Returns whether it exited on its own.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        match self.child.take() {
            Some(mut child) => crate::process::terminate(&mut child, timeout).is_some(),
            None => true,
        }
    }

    /// Stops Envoy with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::process::kill(&mut child);
        }
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        match self.on_drop {
            OnDrop::Kill => self.kill(),
            OnDrop::Terminate(grace) => {
                self.terminate(grace);
            }
        }
    }
}

/// The listeners of admin `/listeners?format=json` by name.
pub fn listeners_from_json(body: &str) -> Result<BTreeMap<String, SocketAddr>, String> {
    let json: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for l in json["listener_statuses"].as_array().into_iter().flatten() {
        let sa = &l["local_address"]["socket_address"];
        if let (Some(name), Some(ip), Some(port)) = (
            l["name"].as_str(),
            sa["address"].as_str(),
            sa["port_value"].as_u64(),
        ) {
            let ip = ip
                .parse()
                .map_err(|e| format!("listener address {ip}: {e}"))?;
            let port = u16::try_from(port).map_err(|_| format!("listener port {port}"))?;
            out.insert(name.to_string(), SocketAddr::new(ip, port));
        }
    }
    Ok(out)
}
