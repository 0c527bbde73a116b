//! The whole pipeline on loopback, as `make demo` and the end-to-end tests run it: the two demo
//! services (in this process), the real collector-shim binary, and real Envoy with the real
//! `.wasm`, configured from the shipped `envoy/envoy.yaml` with only addresses and paths changed
//! (`aetherflow_harness::envoy_config`, the same derivation the integration tests use).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use aetherflow_harness::envoy::{Envoy, EnvoyOptions};
use aetherflow_harness::envoy_config::{EnvoyConfig, Substitutions};
use aetherflow_harness::form::Form;
use aetherflow_harness::paths;
pub use aetherflow_harness::shim::{free_port, ShimProcess};
use aetherflow_harness::shim::{FreePortLaunch, Stdout};
use serde_yaml::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::otlp::SpanExporter;
use crate::{grpc_service, http_service};

/// Starts the collector-shim binary with `config` (YAML; `receiver.http_listen` is set to a free
/// loopback port) written into `dir`, and waits for `/healthz`. With `inherit_stdout` the
/// console exporter prints to this terminal; otherwise its output goes to `dir/shim.log` with
/// its log. SIGKILLed on drop unless stopped ([`ShimProcess::terminate_async`]).
pub async fn start_shim(
    binary: &Path,
    config: &str,
    dir: &Path,
    inherit_stdout: bool,
) -> Result<ShimProcess, String> {
    let doc: Value = serde_yaml::from_str(config).map_err(|e| format!("shim config: {e}"))?;
    let launch = FreePortLaunch {
        config_name: "collector-shim.yaml".into(),
        stdout: if inherit_stdout {
            Stdout::Inherit
        } else {
            Stdout::Log
        },
        ready_path: "/healthz".into(),
        ..FreePortLaunch::new(binary, dir)
    };
    ShimProcess::start_on_free_port(&launch, |addr| with_http_listen(doc.clone(), addr)).await
}

/// `config` with `receiver.http_listen` set to `addr`.
fn with_http_listen(mut doc: Value, addr: SocketAddr) -> Result<String, String> {
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
    serde_yaml::to_string(&doc).map_err(|e| format!("shim config: {e}"))
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
                let shim = start_shim(
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
            config.update_filter_config(aetherflow_harness::envoy_config::INGRESS, edit)?;
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
            Some(shim) => shim
                .terminate_async(Duration::from_secs(30))
                .await
                .is_some_and(|status| status.success()),
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
