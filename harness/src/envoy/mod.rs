//! Real Envoy processes: one launcher ([`EnvoyProcess`]) for the tests, the demo and the
//! benchmarks, and the tests' and demo's view of it ([`Envoy`]: the filter's form, its metrics
//! and failures).
//!
//! Listeners and the admin interface bind port 0 and the real ports are read back (admin address
//! file, admin `/listeners`), so nothing races for a port. Start-up is bounded; the log is
//! captured to a file and stays readable while the handle lives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::envoy_config::EnvoyConfig;
use crate::form::Form;

mod launch;

pub use launch::{
    listeners_from_json, native_module_dir, EnvoyProcess, Launch, LogTo, OnDrop, MODULES_PATH_VAR,
};

/// How to start Envoy for a test or the demo.
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

/// A running Envoy on a configuration derived from the shipped one, with the filter in one form;
/// killed on drop.
pub struct Envoy {
    process: EnvoyProcess,
    form: Form,
}

impl Envoy {
    /// Writes `config` (already substituted, see [`EnvoyConfig::substitute`]) and starts Envoy with it,
    /// then waits until admin `/ready` answers 200 and reads the bound listener addresses.
    pub async fn start(config: &EnvoyConfig, opts: &EnvoyOptions) -> Result<Envoy, String> {
        let launch = Launch {
            binary: opts.binary.clone(),
            concurrency: opts.concurrency,
            log_level: opts.log_level.clone(),
            component_log_level: opts.component_log_level.clone(),
            startup_timeout: opts.startup_timeout,
            ..Launch::default()
        };
        let process = EnvoyProcess::start(&config.to_yaml(), &launch).await?;
        Ok(Envoy {
            process,
            form: opts.form,
        })
    }

    /// The process underneath.
    pub fn process(&self) -> &EnvoyProcess {
        &self.process
    }

    /// The admin interface address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.process.admin_addr()
    }

    /// The bound address of listener `name`. Panics if there is no such listener.
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.process.listener(name).unwrap_or_else(|| {
            panic!(
                "no listener `{name}` (have {:?})",
                self.process.listeners().keys()
            )
        })
    }

    /// The ingress listener (SERVER spans).
    pub fn ingress(&self) -> SocketAddr {
        self.listener(crate::envoy_config::INGRESS)
    }

    /// The egress listener (CLIENT spans).
    pub fn egress(&self) -> SocketAddr {
        self.listener(crate::envoy_config::EGRESS)
    }

    /// The OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Directory holding the written config and the logs.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// Everything Envoy logged so far. Envoy logs to stderr, which goes straight to a file (no
    /// `--log-path`: that file is flushed only every few seconds).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The last `n` lines of the log, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// `GET path` on the admin interface: (status, body).
    pub async fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        self.process.admin_get(path).await
    }

    /// All counters and gauges from admin `/stats` (histograms are skipped).
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>, String> {
        self.process.stats().await
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
        self.process.is_running()
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
        self.process.terminate(timeout)
    }

    /// Stops Envoy (SIGKILL: the tests do not depend on a graceful drain) and waits for it.
    pub fn stop(&mut self) {
        self.process.kill();
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
    let Some(status) = crate::process::wait_for_exit(&mut child, Duration::from_secs(120)) else {
        crate::process::kill(&mut child);
        return Err(format!(
            "envoy --mode validate did not finish in 120 s ({})",
            path.display()
        ));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let accepted = status.success() && output.contains("OK");
    Ok(Validation { accepted, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_read_from_admin_json() {
        let json = r#"{"listener_statuses":[{"name":"ingress","local_address":{"socket_address":{"address":"127.0.0.1","port_value":40123}}}]}"#;
        let listeners = listeners_from_json(json).unwrap();
        assert_eq!(
            listeners.get("ingress"),
            Some(&"127.0.0.1:40123".parse().unwrap())
        );
        assert!(listeners_from_json("{}").unwrap().is_empty());
        assert!(listeners_from_json("not json").is_err());
    }

    #[test]
    fn stats_lines_are_parsed_and_histograms_skipped() {
        let stats = parse_stats("a.b: 3\nwasmcustom.x: 12\nh: P0(nan,1) P25(nan,2)\n");
        assert_eq!(stats.get("a.b"), Some(&3));
        assert_eq!(stats.get("wasmcustom.x"), Some(&12));
        assert!(!stats.contains_key("h"));
    }
}
