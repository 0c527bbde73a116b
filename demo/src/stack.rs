//! The whole pipeline on loopback, as `make demo` and the end-to-end tests run it: the two demo
//! services (in this process), the real collector-shim binary, and real Envoy with the real
//! `.wasm`, configured from the shipped `envoy/envoy.yaml` with only addresses and paths changed
//! (`aetherflow_tests::envoy_config`, the same derivation the integration tests use).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aetherflow_tests::envoy::{Envoy, EnvoyOptions};
use aetherflow_tests::envoy_config::{EnvoyConfig, Substitutions};
use aetherflow_tests::form::Form;
use aetherflow_tests::paths;
use serde_yaml::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::otlp::SpanExporter;
use crate::{grpc_service, http_service};

/// A collector-shim child process; SIGKILLed on drop unless [`ShimProcess::stop`] ran.
pub struct ShimProcess {
    child: Option<Child>,
    /// Where its OTLP/HTTP receiver (and `/healthz`, `/metrics`) listens.
    pub addr: SocketAddr,
    /// Its stdout and stderr (the console exporter's trees and its logs, unless inherited).
    pub log_path: PathBuf,
}

/// A loopback address with a port the kernel just handed out (then released, so a child process
/// can bind it; the window for another process to take it is tiny on a test machine).
pub fn free_port() -> Result<SocketAddr, String> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a port: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

impl ShimProcess {
    /// Starts the shim binary with `config` (YAML; `receiver.http_listen` is set to a free
    /// loopback port) written into `dir`, and waits for `/healthz`. With `inherit_stdout` the
    /// console exporter prints to this terminal; otherwise output goes to `dir/shim.log`.
    pub async fn start(
        binary: &Path,
        config: &str,
        dir: &Path,
        inherit_stdout: bool,
    ) -> Result<Self, String> {
        // The port is chosen here and bound by the child a moment later; if another process took
        // it in between, the shim exits at start-up and a fresh port is tried.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::start_once(binary, config, dir, inherit_stdout).await {
                Ok(shim) => return Ok(shim),
                Err(StartError::Exited(e)) => last_error = e,
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(last_error)
    }

    async fn start_once(
        binary: &Path,
        config: &str,
        dir: &Path,
        inherit_stdout: bool,
    ) -> Result<Self, StartError> {
        paths::require(binary, "cargo build -p collector-shim");
        let addr = free_port()?;
        let mut doc: Value =
            serde_yaml::from_str(config).map_err(|e| format!("shim config: {e}"))?;
        let root = doc
            .as_mapping_mut()
            .ok_or("shim config must be a YAML mapping")?;
        let receiver = root
            .entry(Value::from("receiver"))
            .or_insert_with(|| Value::Mapping(Default::default()));
        receiver
            .as_mapping_mut()
            .ok_or("shim config: `receiver` must be a mapping")?
            .insert(Value::from("http_listen"), Value::from(addr.to_string()));
        let config_path = dir.join("collector-shim.yaml");
        std::fs::write(
            &config_path,
            serde_yaml::to_string(&doc).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        let log_path = dir.join("shim.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(binary);
        cmd.arg("--config").arg(&config_path).stdin(Stdio::null());
        if inherit_stdout {
            cmd.stdout(Stdio::inherit()).stderr(log);
        } else {
            cmd.stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
        let mut shim = ShimProcess {
            child: Some(child),
            addr,
            log_path,
        };
        let client = crate::client::DemoClient::new(Duration::from_secs(2));
        let base = format!("http://{addr}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = shim.child.as_mut().map(Child::try_wait) {
                return Err(StartError::Exited(format!(
                    "collector-shim exited during start-up ({status}):\n{}",
                    shim.log()
                )));
            }
            if let Ok(reply) = client.get(&base, "/healthz", &[]).await {
                if reply.status == 200 {
                    return Ok(shim);
                }
            }
            if Instant::now() > deadline {
                return Err(StartError::Fatal(format!(
                    "collector-shim not healthy within 60 s:\n{}",
                    shim.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The OTLP/HTTP traces URL.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// SIGTERM (the shim then takes pending tail decisions, flushes its queues and exits), waiting
    /// up to `grace`; SIGKILL after that. Returns whether it exited cleanly with status 0.
    pub async fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for ShimProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why a start attempt failed: the child exited (perhaps its port was taken: worth a retry), or
/// something no retry fixes.
enum StartError {
    Exited(String),
    Fatal(String),
}

impl From<String> for StartError {
    fn from(e: String) -> Self {
        StartError::Fatal(e)
    }
}

impl From<&str> for StartError {
    fn from(e: &str) -> Self {
        StartError::Fatal(e.to_owned())
    }
}

/// A demo service running in this process.
pub struct Service {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its span exporter (flush it before reading the backends).
    pub exporter: SpanExporter,
    stop: Option<oneshot::Sender<()>>,
}

impl Service {
    async fn start(kind: &str, spans_url: &str, listen: &str) -> Result<Self, String> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("{kind}: binding {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let exporter = SpanExporter::start(spans_url.to_owned(), kind);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        match kind {
            "demo-http" => {
                tokio::spawn(http_service::serve(listener, exporter.clone(), shutdown));
            }
            _ => {
                tokio::spawn(grpc_service::serve(listener, exporter.clone(), shutdown));
            }
        }
        Ok(Service {
            addr,
            exporter,
            stop: Some(stop),
        })
    }

    /// Stops accepting and sends the spans still queued.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.exporter.flush().await;
    }
}

/// An edit of the filter's JSON configuration object.
pub type FilterEdit = Box<dyn FnOnce(&mut serde_json::Map<String, serde_json::Value>) + Send>;

/// What to start.
pub struct StackOptions {
    /// Shim configuration (YAML); `None` runs without a shim: the `trace_shim` cluster then points
    /// at a closed port (the "collector down" case).
    pub shim_config: Option<String>,
    /// Print the shim's console output here instead of its log file.
    pub shim_inherit_stdout: bool,
    /// Edits to the filter's JSON configuration on the ingress listener (tests only; the demo runs
    /// the shipped configuration unchanged).
    pub filter_edit: Option<FilterEdit>,
    /// Address the demo services listen on (`127.0.0.1:0` by default).
    pub service_listen: String,
    /// Envoy worker threads.
    pub envoy_concurrency: usize,
    /// Which form of the filter Envoy loads (`make demo FILTER=native`).
    pub form: Form,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            shim_config: None,
            shim_inherit_stdout: false,
            filter_edit: None,
            service_listen: "127.0.0.1:0".to_owned(),
            envoy_concurrency: 1,
            form: Form::Wasm,
        }
    }
}

/// Everything running.
pub struct Stack {
    /// Scratch directory: configs, logs, the file exporter's output.
    pub dir: tempfile::TempDir,
    /// The demo HTTP service.
    pub http: Service,
    /// The demo gRPC service.
    pub grpc: Service,
    /// The shim, unless started without one.
    pub shim: Option<ShimProcess>,
    /// Real Envoy.
    pub envoy: Envoy,
}

impl Stack {
    /// Starts the services, the shim, then Envoy (which needs the others' addresses).
    /// `progress` is told what is starting.
    pub async fn start(
        opts: StackOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Stack, String> {
        opts.form.require_module();
        let wasm = paths::wasm();
        let dir = tempfile::Builder::new()
            .prefix("aetherflow-demo-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let shim_addr;
        let shim = match &opts.shim_config {
            Some(config) => {
                progress("starting collector-shim");
                let shim = ShimProcess::start(
                    &paths::shim_bin(),
                    config,
                    dir.path(),
                    opts.shim_inherit_stdout,
                )
                .await?;
                shim_addr = shim.addr;
                Some(shim)
            }
            None => {
                shim_addr = free_port()?;
                None
            }
        };
        let spans_url = format!("http://{shim_addr}/v1/traces");
        progress("starting demo-http and demo-grpc");
        let http = Service::start("demo-http", &spans_url, &opts.service_listen).await?;
        let grpc = Service::start("demo-grpc", &spans_url, &opts.service_listen).await?;
        let mut config = EnvoyConfig::shipped()?;
        let subs =
            Substitutions::loopback(&wasm, loopback(http.addr), loopback(grpc.addr), shim_addr);
        config.substitute(&subs)?;
        config.use_form(opts.form)?;
        if let Some(edit) = opts.filter_edit {
            config.update_filter_config(aetherflow_tests::envoy_config::INGRESS, edit)?;
        }
        progress(match opts.form {
            Form::Wasm => {
                "starting Envoy with trace_filter.wasm (V8 compiles the module; this can take a while)"
            }
            Form::Native => "starting Envoy with the native module libaetherflow_trace.so",
        });
        let envoy_opts = EnvoyOptions {
            concurrency: opts.envoy_concurrency,
            form: opts.form,
            ..Default::default()
        };
        let envoy = Envoy::start(&config, &envoy_opts).await?;
        Ok(Stack {
            dir,
            http,
            grpc,
            shim,
            envoy,
        })
    }

    /// Base URL of Envoy's ingress listener.
    pub fn ingress_url(&self) -> String {
        format!("http://{}", self.envoy.ingress())
    }

    /// Base URL of Envoy's egress listener (CLIENT spans).
    pub fn egress_url(&self) -> String {
        format!("http://{}", self.envoy.egress())
    }

    /// Waits until the filter reports `n` spans acknowledged by the shim (bounded by `timeout`).
    pub async fn wait_proxy_spans_exported(&self, n: u64, timeout: Duration) -> Result<u64, u64> {
        self.envoy
            .wait_filter_metric("aetherflow_spans_exported", timeout, |v| v >= n)
            .await
    }

    /// Stops everything: Envoy first (no new spans), then the services (their spans flushed), then
    /// the shim (SIGTERM: it decides pending traces and flushes). Returns whether the shim exited 0.
    pub async fn stop(&mut self) -> bool {
        self.envoy.stop();
        self.http.stop().await;
        self.grpc.stop().await;
        match self.shim.as_mut() {
            Some(shim) => shim.stop(Duration::from_secs(30)).await,
            None => true,
        }
    }
}

/// Envoy reaches in-process services on 127.0.0.1 even when they listen on 0.0.0.0.
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}
