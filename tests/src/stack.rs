//! The usual test set-up in one call: an upstream, a fake shim and Envoy running the shipped
//! configuration pointed at them (both demo clusters go to the one upstream, which speaks HTTP/1.1
//! and h2c).

use std::time::Duration;

use crate::envoy::{Envoy, EnvoyOptions};
use crate::envoy_config::{EnvoyConfig, Substitutions, INGRESS};
use crate::form::Form;
use crate::shim::FakeShim;
use crate::upstream::UpstreamServer;

/// Upstream + fake shim + Envoy. Drop order stops Envoy first.
pub struct Stack {
    /// The proxy.
    pub envoy: Envoy,
    /// Answers both `demo_http` and `demo_grpc`.
    pub upstream: UpstreamServer,
    /// Receives the filter's exports (`trace_shim`).
    pub shim: FakeShim,
}

/// One deferred change to the configuration.
type ConfigEdit = Box<dyn FnOnce(&mut EnvoyConfig) -> Result<(), String> + Send>;

/// Builds a [`Stack`].
#[derive(Default)]
pub struct StackBuilder {
    config_edits: Vec<ConfigEdit>,
    options: EnvoyOptions,
    form: Option<Form>,
}

impl StackBuilder {
    /// Shipped config, one worker, the filter's flush interval shortened to 200 ms so tests see spans soon.
    pub fn new() -> Self {
        Self::default().ingress_filter(|c| {
            c.insert("flush_interval_ms".into(), serde_json::json!(200));
        })
    }

    /// Edits the ingress filter's JSON object.
    pub fn ingress_filter(
        self,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) + Send + 'static,
    ) -> Self {
        self.filter(INGRESS, edit)
    }

    /// Edits the filter JSON object on `listener`.
    pub fn filter(
        mut self,
        listener: &'static str,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) + Send + 'static,
    ) -> Self {
        self.config_edits.push(Box::new(move |cfg| {
            cfg.update_filter_config(listener, edit)
        }));
        self
    }

    /// Any other change to the configuration.
    pub fn config(
        mut self,
        edit: impl FnOnce(&mut EnvoyConfig) -> Result<(), String> + Send + 'static,
    ) -> Self {
        self.config_edits.push(Box::new(edit));
        self
    }

    /// The filter form Envoy loads (default: Wasm, as shipped).
    pub fn form(mut self, form: Form) -> Self {
        self.form = Some(form);
        self
    }

    /// Envoy worker count.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.options.concurrency = n;
        self
    }

    /// Envoy process options.
    pub fn options(mut self, options: EnvoyOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts the upstream, the shim and Envoy (with the module of the chosen form).
    pub async fn start(mut self) -> Stack {
        let form = self.form.unwrap_or(Form::Wasm);
        form.require_module();
        let wasm = crate::paths::wasm();
        let upstream = UpstreamServer::start().await;
        let shim = FakeShim::start().await;
        let mut cfg = EnvoyConfig::shipped().expect("envoy/envoy.yaml parses");
        cfg.substitute(&Substitutions::loopback(
            &wasm,
            upstream.addr(),
            upstream.addr(),
            shim.addr(),
        ))
        .expect("substitute addresses");
        cfg.use_form(form).expect("filter form");
        self.options.form = form;
        for edit in self.config_edits {
            edit(&mut cfg).expect("config edit");
        }
        let envoy = Envoy::start(&cfg, &self.options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Stack {
            envoy,
            upstream,
            shim,
        }
    }
}

/// A fresh tag for `x-test-id`, unique within the process.
pub fn unique_tag(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A random-looking, valid (non-zero) 128-bit trace id in lowercase hex; distinct per call.
pub fn new_trace_id() -> String {
    format!("{:016x}{:016x}", next_random() | 1, next_random())
}

/// A valid (non-zero) 64-bit span id in lowercase hex.
pub fn new_span_id() -> String {
    format!("{:016x}", next_random() | 1)
}

fn next_random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let _ = STATE.compare_exchange(
        0,
        seed ^ 0x9e37_79b9_7f4a_7c15,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    // splitmix64 over a shared counter: distinct values without a rand dependency.
    let mut z = STATE
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How long tests wait for a span to reach the shim (flush interval + busy machine).
pub const SPAN_WAIT: Duration = Duration::from_secs(15);
/// How long one request through Envoy may take on a busy machine.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One request through Envoy: what the client got back and what the upstream received.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The `x-test-id` tag that links the two.
    pub tag: String,
    /// The client's response.
    pub response: crate::http_client::ClientResponse,
    /// The request as the upstream saw it (after the filter).
    pub upstream: crate::upstream::RecordedRequest,
}

impl Exchange {
    /// The upstream request's `traceparent`, parsed strictly (panics with context if absent/invalid).
    pub fn upstream_traceparent(&self) -> crate::w3c::Traceparent {
        let lines = self.upstream.header_all("traceparent");
        assert_eq!(
            lines.len(),
            1,
            "upstream must get exactly one traceparent, got {lines:?}"
        );
        crate::w3c::parse_emitted_traceparent(&lines[0]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The upstream request's combined `tracestate` members.
    pub fn upstream_tracestate(&self) -> Vec<String> {
        crate::w3c::tracestate_members(&self.upstream.header_all("tracestate").join(","))
    }
}

impl Stack {
    /// Sends `req` (tagged with a fresh `x-test-id`) to `addr` and returns the exchange once the
    /// upstream has recorded the request. Panics on transport errors or if the upstream never saw it.
    pub async fn exchange(
        &self,
        addr: std::net::SocketAddr,
        req: crate::http_client::ClientRequest,
    ) -> Exchange {
        let tag = unique_tag("x");
        let req = req.header("x-test-id", &tag);
        let response = crate::http_client::send(addr, &req, REQUEST_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e}\nenvoy log tail:\n{}", self.envoy.log_tail(30)));
        let upstream =
            self.upstream.request_tagged(&tag).await.unwrap_or_else(|| {
                panic!("upstream never saw {tag} (response {})", response.status)
            });
        Exchange {
            tag,
            response,
            upstream,
        }
    }

    /// [`Stack::exchange`] on the ingress listener.
    pub async fn ingress(&self, req: crate::http_client::ClientRequest) -> Exchange {
        self.exchange(self.envoy.ingress(), req).await
    }

    /// The exported proxy span of `ex`: same trace id as the upstream traceparent and span id equal
    /// to its parent id (the proxy span is the upstream's parent).
    pub async fn span_of(&self, ex: &Exchange) -> crate::shim::ReceivedSpan {
        let tp = ex.upstream_traceparent();
        let found = self
            .shim
            .wait_spans(1, SPAN_WAIT, |s| {
                s.trace_id() == tp.trace_id && s.span_id() == tp.parent_id
            })
            .await;
        match found {
            Ok(mut spans) => spans.remove(0),
            Err(_) => panic!(
                "no span {}/{} at the shim; it has {} spans: {:?}\nenvoy log tail:\n{}",
                tp.trace_id,
                tp.parent_id,
                self.shim.spans().len(),
                self.shim
                    .spans()
                    .iter()
                    .map(|s| (s.trace_id(), s.span_id()))
                    .collect::<Vec<_>>(),
                self.envoy.log_tail(30)
            ),
        }
    }
}
