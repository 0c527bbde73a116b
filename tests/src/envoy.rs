//! A real Envoy process for tests, the demo and the benchmarks.
//!
//! Listeners and the admin interface bind port 0 and the real ports are read back (admin address
//! file, admin `/listeners`), so nothing races for a port. The process is killed when the handle
//! drops; its log stays readable until then ([`Envoy::log`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::envoy_config::EnvoyConfig;
use crate::form::Form;

/// Where Envoy looks for `lib<name>.so` of a dynamic module.
pub const MODULES_PATH_VAR: &str = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH";

/// The directory of the native module (set for every Envoy the harness starts: a Wasm-only
/// configuration ignores it).
pub fn native_module_dir() -> PathBuf {
    let module = crate::paths::native();
    module
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
use crate::http_client;

/// How to start Envoy.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// Worker threads (`--concurrency`); each worker runs its own wasm VM.
    pub concurrency: usize,
    /// Envoy's log level (`-l`). `info` shows the filter's info/warn/error lines.
    pub log_level: String,
    /// Extra `--component-log-level` value, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
    /// How long start-up (V8 compiling the module per worker) may take on a busy machine.
    pub startup_timeout: Duration,
    /// The binary; defaults to [`crate::paths::envoy`].
    pub binary: PathBuf,
    /// The filter form the configuration loads (where its metrics and log lines are).
    pub form: Form,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            concurrency: 1,
            log_level: "info".into(),
            component_log_level: None,
            startup_timeout: Duration::from_secs(90),
            binary: crate::paths::envoy(),
            form: Form::Wasm,
        }
    }
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Option<Child>,
    // Holds the config and the logs; removed when the handle drops.
    dir: tempfile::TempDir,
    admin: SocketAddr,
    listeners: BTreeMap<String, SocketAddr>,
    form: Form,
}

impl Envoy {
    /// Writes `config` (already substituted, see [`EnvoyConfig::substitute`]) and starts Envoy with it,
    /// then waits until admin `/ready` answers 200 and reads the bound listener addresses.
    pub async fn start(config: &EnvoyConfig, opts: &EnvoyOptions) -> Result<Envoy, String> {
        crate::paths::require(&opts.binary, "make tools");
        let dir = tempfile::Builder::new()
            .prefix("aetherflow-envoy-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let cfg_path = dir.path().join("envoy.yaml");
        config.write_to(&cfg_path)?;
        let admin_file = dir.path().join("admin-address");
        let stderr =
            std::fs::File::create(dir.path().join("stderr.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&opts.binary);
        cmd.arg("-c")
            .arg(&cfg_path)
            .arg("--concurrency")
            .arg(opts.concurrency.to_string())
            .arg("-l")
            .arg(&opts.log_level)
            .arg("--admin-address-path")
            .arg(&admin_file)
            // Several Envoys run at once in the test suite: no shared-memory hot-restart region.
            .arg("--disable-hot-restart")
            .env(MODULES_PATH_VAR, native_module_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(levels) = &opts.component_log_level {
            cmd.arg("--component-log-level").arg(levels);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", opts.binary.display()))?;
        let mut envoy = Envoy {
            child: Some(child),
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listeners: BTreeMap::new(),
            form: opts.form,
        };
        let deadline = Instant::now() + opts.startup_timeout;
        envoy.admin = loop {
            envoy.check_alive()?;
            if let Ok(text) = std::fs::read_to_string(&admin_file) {
                if let Ok(addr) = text.trim().parse() {
                    break addr;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Envoy wrote no admin address in time; log:\n{}",
                    envoy.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        loop {
            envoy.check_alive()?;
            if let Ok((200, _)) = envoy.admin_get("/ready").await {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("Envoy not ready in time; log:\n{}", envoy.log()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        envoy.listeners = envoy.read_listeners().await?;
        Ok(envoy)
    }

    fn check_alive(&mut self) -> Result<(), String> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "Envoy exited during start-up ({status}); log:\n{}",
                    self.log()
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
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
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
                out.insert(name.to_string(), SocketAddr::new(ip, port as u16));
            }
        }
        Ok(out)
    }

    /// The admin interface address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The bound address of listener `name`. Panics if there is no such listener.
    pub fn listener(&self, name: &str) -> SocketAddr {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener `{name}` (have {:?})", self.listeners.keys()))
    }

    /// The ingress listener (SERVER spans).
    pub fn ingress(&self) -> SocketAddr {
        self.listener(crate::envoy_config::INGRESS)
    }

    /// The egress listener (CLIENT spans).
    pub fn egress(&self) -> SocketAddr {
        self.listener(crate::envoy_config::EGRESS)
    }

    /// The OS process id (benchmarks read its CPU time and memory).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Directory holding the written config and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything Envoy logged so far. Envoy logs to stderr, which goes straight to a file (no
    /// `--log-path`: that file is flushed only every few seconds).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The last `n` lines of the log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `GET path` on the admin interface: (status, body).
    pub async fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        let resp = http_client::get(self.admin, path, Duration::from_secs(10)).await?;
        Ok((
            resp.status,
            String::from_utf8_lossy(&resp.body).into_owned(),
        ))
    }

    /// All counters and gauges from admin `/stats` (histograms are skipped).
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>, String> {
        let (status, body) = self.admin_get("/stats").await?;
        if status != 200 {
            return Err(format!("admin /stats answered {status}"));
        }
        Ok(parse_stats(&body))
    }

    /// One stat's value; 0 when Envoy does not list it (a counter never incremented may be absent).
    pub async fn stat(&self, name: &str) -> u64 {
        self.stats()
            .await
            .ok()
            .and_then(|s| s.get(name).copied())
            .unwrap_or(0)
    }

    /// The filter form this Envoy runs.
    pub fn form(&self) -> Form {
        self.form
    }

    /// A filter metric: `wasmcustom.<name>` or `dynamicmodulescustom.<name>` by form.
    pub async fn filter_metric(&self, name: &str) -> u64 {
        self.stat(&format!("{}{name}", self.form.metric_prefix()))
            .await
    }

    /// A filter metric once it has stopped moving: the filter may publish its counters from the
    /// root tick rather than per request, so a value read right after traffic can lag. Returns
    /// when two reads `settle` apart agree (bounded: at most 10 s).
    pub async fn filter_metric_settled(&self, name: &str, settle: Duration) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.filter_metric(name).await;
        loop {
            tokio::time::sleep(settle).await;
            let now = self.filter_metric(name).await;
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// Polls the filter metric `name` until `pred` holds; returns the last value on timeout as Err.
    pub async fn wait_filter_metric(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(u64) -> bool,
    ) -> Result<u64, u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.filter_metric(name).await;
            if pred(v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(v);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Evidence of a filter failure. Wasm: non-zero `wasm.*` failure stats and log lines showing a
    /// panic, a trap or a failed VM (the filter's own log lines count only when they panic).
    /// Native: the process died (a fault in a native module is a proxy outage), a fault the
    /// module caught (`aetherflow_internal_errors`, its log line), or a panic message.
    pub async fn filter_failures(&self) -> Vec<String> {
        if self.form == Form::Native {
            return self.native_failures().await;
        }
        let mut found = Vec::new();
        if let Ok(stats) = self.stats().await {
            for (name, value) in stats {
                let lower = name.to_ascii_lowercase();
                let failure_stat = lower.starts_with("wasm")
                    && !lower.starts_with("wasmcustom.")
                    && (lower.contains("fail")
                        || lower.contains("crash")
                        || lower.contains("error"));
                if failure_stat && value > 0 {
                    found.push(format!("stat {name} = {value}"));
                }
            }
        }
        found.extend(wasm_failure_lines(&self.log()));
        found
    }

    /// Whether the process is still running (not exited and unreaped: a zombie is dead).
    pub fn is_running(&self) -> bool {
        let Some(pid) = self.pid() else { return false };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state is the field after the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        }
    }

    async fn native_failures(&self) -> Vec<String> {
        let mut found = Vec::new();
        if !self.is_running() {
            found.push("Envoy is no longer running (a crash in the native module?)".to_string());
        }
        let faults = self.filter_metric("aetherflow_internal_errors").await;
        if faults > 0 {
            found.push(format!("aetherflow_internal_errors = {faults}"));
        }
        found.extend(
            self.log()
                .lines()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    l.contains("panicked") || l.contains("internal fault")
                })
                .map(str::to_string),
        );
        found
    }

    /// Asserts [`Envoy::filter_failures`] is empty, printing the log tail otherwise.
    pub async fn assert_no_filter_failures(&self) {
        let failures = self.filter_failures().await;
        assert!(
            failures.is_empty(),
            "{} filter failures: {failures:#?}\nlog tail:\n{}",
            self.form,
            self.log_tail(60)
        );
    }

    /// Asks Envoy to shut down cleanly (SIGTERM, as an orchestrator would) and waits up to
    /// `timeout` for it to exit; kills it after that. Returns whether it exited on its own.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops Envoy (SIGKILL: the tests do not depend on a graceful drain) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Log lines that show a wasm VM failure (panic, trap, failed VM or plugin).
pub fn wasm_failure_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| {
            let l = line.to_ascii_lowercase();
            if l.contains("panic") {
                return true;
            }
            let own_log_line = l.contains("wasm log");
            let wasm_related = l.contains("wasm") || l.contains("proxy_on_");
            wasm_related
                && !own_log_line
                && (l.contains("failed")
                    || l.contains("runtimeerror")
                    || l.contains("unreachable")
                    || l.contains("crash"))
        })
        .map(str::to_string)
        .collect()
}

/// Parses admin `/stats` text (`name: value` lines); non-integer values (histograms) are skipped.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(": ")?;
            Some((name.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Outcome of `envoy --mode validate`.
#[derive(Debug)]
pub struct Validation {
    /// Envoy accepted the configuration (exit status 0 and its "OK" line).
    pub accepted: bool,
    /// Everything Envoy printed.
    pub output: String,
}

/// Runs `envoy --mode validate` on `config`: loads the `.wasm` and runs the filter's `on_configure`.
/// Bounded: an Envoy that has not finished within 120 s is killed and reported as an error.
pub fn validate(config: &EnvoyConfig, binary: &Path) -> Result<Validation, String> {
    crate::paths::require(binary, "make tools");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("envoy.yaml");
    config.write_to(&path)?;
    let out_path = dir.path().join("output.log");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(binary)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .arg("-l")
        .arg("info")
        .arg("--disable-hot-restart")
        .env(MODULES_PATH_VAR, native_module_dir())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "envoy --mode validate did not finish in 120 s ({})",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let accepted = status.success() && output.contains("OK");
    Ok(Validation { accepted, output })
}
