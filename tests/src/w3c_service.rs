//! The product as the W3C Trace Context test suite (`w3c/trace-context`, `test/`) expects a
//! "service under test": a caller reaches an application through Envoy's ingress listener (the
//! filter makes the SERVER span), the application calls out through the egress listener (the
//! filter makes the CLIENT span) and the call lands on the caller's callback server.
//!
//! ```text
//! harness ──> ingress (filter, SERVER) ──> CallbackService ──> egress (filter, CLIENT) ──> harness callbacks
//! ```
//!
//! [`CallbackService`] plays an application that is not instrumented itself, deployed the way the
//! docs tell users to deploy one behind the filter: it copies the context headers it received
//! (`traceparent`, `tracestate`, `baggage`, every line) onto its outbound calls, and sends those
//! calls through the egress listener. It speaks the suite's protocol: the request body is a JSON
//! array of `{"url": ..., "arguments": ...}`; for each element it POSTs `arguments` (as JSON) to
//! `url` and answers 200 with the list of statuses. `x-test-id` is copied too, so our own tests can
//! find the calls at a recording server.
//!
//! Everything binds 127.0.0.1 on kernel-chosen ports; every outbound call has a deadline, and a
//! request may ask for at most [`MAX_CALLS`] calls.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::serve::accept_loop;

use crate::envoy::{Envoy, EnvoyOptions};
use crate::envoy_config::{EnvoyConfig, Substitutions, EGRESS, INGRESS};
use crate::form::Form;
use crate::http_client::{self, ClientRequest};
use crate::shim::FakeShim;

/// Header lines the service copies from its inbound request onto each outbound call.
pub const PROPAGATED: [&str; 4] = ["traceparent", "tracestate", "baggage", "x-test-id"];
/// Most calls one request may ask for.
pub const MAX_CALLS: usize = 64;
/// Deadline of one outbound call (the suite's own per-test timeout is 5 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The cluster the egress listener routes to: the callback server.
pub const CALLBACKS_CLUSTER: &str = "w3c_callbacks";

/// The application between the two listeners; stops when dropped.
pub struct CallbackService {
    addr: SocketAddr,
    egress: Arc<OnceLock<SocketAddr>>,
    task: JoinHandle<()>,
}

impl CallbackService {
    /// Starts on 127.0.0.1 (kernel-chosen port). Outbound calls wait for [`CallbackService::set_egress`].
    pub async fn start() -> CallbackService {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the callback service on 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let egress: Arc<OnceLock<SocketAddr>> = Arc::default();
        let shared = egress.clone();
        let task = tokio::spawn(accept_loop(listener, true, move || {
            let egress = shared.clone();
            hyper::service::service_fn(move |req| handle(req, egress.clone()))
        }));
        CallbackService { addr, egress, task }
    }

    /// Where it listens (the ingress listener's upstream).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The egress listener every outbound call goes through.
    pub fn set_egress(&self, egress: SocketAddr) {
        let _ = self.egress.set(egress);
    }
}

impl Drop for CallbackService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `http://host:port/path` -> (`host:port`, `/path`). Only plain HTTP URLs: the callbacks are on
/// loopback.
pub fn split_url(url: &str) -> Option<(&str, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return None;
    }
    Some((authority, path))
}

async fn handle(
    req: hyper::Request<Incoming>,
    egress: Arc<OnceLock<SocketAddr>>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(CALL_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return Ok(reply(400, json!({"error": "request body not received"}))),
    };
    let actions = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Null) => Vec::new(),
        Ok(one @ Value::Object(_)) => vec![one],
        _ => return Ok(reply(400, json!({"error": "body is not a JSON array"}))),
    };
    if actions.len() > MAX_CALLS {
        return Ok(reply(400, json!({"error": "too many calls"})));
    }
    let Some(egress) = egress.get().copied() else {
        return Ok(reply(
            503,
            json!({"error": "egress listener not known yet"}),
        ));
    };
    let mut propagated: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, value) in parts.headers.iter() {
        if PROPAGATED.contains(&name.as_str()) {
            propagated.push((name.as_str().to_string(), value.as_bytes().to_vec()));
        }
    }
    let mut results = Vec::new();
    for action in actions {
        let url = action.get("url").and_then(Value::as_str).unwrap_or("");
        let Some((authority, path)) = split_url(url) else {
            results.push(json!({"url": url, "error": "not an http:// URL"}));
            continue;
        };
        let arguments = match action.get("arguments") {
            Some(Value::Null) | None => json!([]),
            Some(a) => a.clone(),
        };
        let mut call = ClientRequest::get(&path)
            .method("POST")
            .header("host", authority)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(arguments.to_string());
        for (name, value) in &propagated {
            call = call.header(name, value);
        }
        match http_client::send(egress, &call, CALL_TIMEOUT).await {
            Ok(r) => results.push(json!({"url": url, "status": r.status})),
            Err(e) => results.push(json!({"url": url, "error": e})),
        }
    }
    Ok(reply(200, Value::Array(results)))
}

fn reply(status: u16, body: Value) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Envoy (shipped configuration, both listeners) + the callback service + a fake shim.
/// Drop order stops Envoy first.
pub struct W3cStack {
    /// The proxy: ingress in front of the service, egress in front of the callbacks.
    pub envoy: Envoy,
    /// The application between the listeners.
    pub service: CallbackService,
    /// Receives both filters' spans.
    pub shim: FakeShim,
}

impl W3cStack {
    /// Starts the stack with the filter in `form`; the egress listener routes every call to
    /// `callbacks` (the suite's harness, or a recording server). Both filters flush every 200 ms;
    /// otherwise the shipped configuration runs unchanged.
    pub async fn start(form: Form, callbacks: SocketAddr) -> W3cStack {
        form.require_module();
        let service = CallbackService::start().await;
        let shim = FakeShim::start().await;
        let mut cfg = EnvoyConfig::shipped().expect("envoy/envoy.yaml parses");
        cfg.substitute(&Substitutions::loopback(
            &crate::paths::wasm(),
            service.addr(),
            service.addr(),
            shim.addr(),
        ))
        .expect("substitute addresses");
        for listener in [INGRESS, EGRESS] {
            cfg.update_filter_config(listener, |c| {
                c.insert("flush_interval_ms".into(), json!(200));
            })
            .expect("filter config");
        }
        route_egress_to(&mut cfg, callbacks).expect("egress route");
        cfg.use_form(form).expect("filter form");
        let opts = EnvoyOptions {
            form,
            ..EnvoyOptions::default()
        };
        let envoy = Envoy::start(&cfg, &opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        service.set_egress(envoy.egress());
        W3cStack {
            envoy,
            service,
            shim,
        }
    }

    /// The URL the suite's harness is given as its service endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}/test", self.envoy.ingress())
    }
}

/// Adds the [`CALLBACKS_CLUSTER`] (a copy of `demo_http` pointed at `callbacks`) and routes the
/// egress listener to it.
pub fn route_egress_to(cfg: &mut EnvoyConfig, callbacks: SocketAddr) -> Result<(), String> {
    use serde_yaml::Value as Y;
    let doc = cfg.doc_mut();
    let clusters = doc["static_resources"]["clusters"]
        .as_sequence_mut()
        .ok_or("no clusters")?;
    let mut cluster = clusters
        .iter()
        .find(|c| c["name"].as_str() == Some(crate::envoy_config::DEMO_HTTP))
        .cloned()
        .ok_or("no demo_http cluster to copy")?;
    cluster["name"] = Y::String(CALLBACKS_CLUSTER.into());
    cluster["load_assignment"] = serde_yaml::from_str(&format!(
        "{{ cluster_name: {CALLBACKS_CLUSTER}, endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: '{}', port_value: {} }} }} }} }} ] }} ] }}",
        callbacks.ip(),
        callbacks.port()
    ))
    .map_err(|e| e.to_string())?;
    clusters.push(cluster);
    let listeners = doc["static_resources"]["listeners"]
        .as_sequence_mut()
        .ok_or("no listeners")?;
    let egress = listeners
        .iter_mut()
        .find(|l| l["name"].as_str() == Some(EGRESS))
        .ok_or("no egress listener")?;
    let mut routed = 0;
    for chain in egress["filter_chains"]
        .as_sequence_mut()
        .into_iter()
        .flatten()
    {
        for f in chain["filters"].as_sequence_mut().into_iter().flatten() {
            let vhosts = &mut f["typed_config"]["route_config"]["virtual_hosts"];
            for vh in vhosts.as_sequence_mut().into_iter().flatten() {
                for r in vh["routes"].as_sequence_mut().into_iter().flatten() {
                    r["route"]["cluster"] = Y::String(CALLBACKS_CLUSTER.into());
                    routed += 1;
                }
            }
        }
    }
    if routed == 0 {
        return Err("the egress listener has no route".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:7777/abc.0"),
            Some(("127.0.0.1:7777", "/abc.0".to_string()))
        );
        assert_eq!(split_url("http://h:1"), Some(("h:1", "/".to_string())));
        assert_eq!(split_url("https://h/x"), None);
        assert_eq!(split_url("http:///x"), None);
    }

    #[test]
    fn egress_goes_to_the_callbacks() {
        let mut cfg = EnvoyConfig::shipped().expect("shipped config parses");
        route_egress_to(&mut cfg, SocketAddr::from(([127, 0, 0, 1], 7))).expect("route");
        assert!(cfg.cluster_names().contains(&CALLBACKS_CLUSTER.to_string()));
        let yaml = cfg.to_yaml();
        assert!(yaml.contains("cluster: w3c_callbacks"));
        assert!(yaml.contains("cluster: demo_http"), "ingress unchanged");
    }
}
