//! What the end-to-end tests share: real HTTP receivers standing in for Zipkin and Jaeger, and
//! independent decoders of what they received (Zipkin v2 JSON read here with serde_json; Jaeger
//! Thrift decoded by the Jaeger client's Python types in `jaeger_batches.py`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aetherflow_harness::python;
use aetherflow_tests::paths;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// A backend's view of one span, the same fields from either format.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_id: String,
    /// Service (Zipkin `localEndpoint.serviceName`, Jaeger process `serviceName`).
    pub service: String,
    /// Span / operation name.
    pub name: String,
    /// `SERVER`, `CLIENT`, ... (empty when the format leaves it out: Zipkin omits INTERNAL).
    pub kind: String,
    /// Tags as text.
    pub tags: BTreeMap<String, String>,
}

impl BackendSpan {
    /// A tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// Answers a GET from the bodies received so far: `(path, bodies) -> Some((status, JSON))`, or
/// `None` for 404. Lets a receiver also play a backend's query API.
pub type QueryFn = Arc<dyn Fn(&str, &[(String, Bytes)]) -> Option<(u16, String)> + Send + Sync>;

/// A real HTTP server on 127.0.0.1 that answers 202 to a POST and keeps every request body.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    bodies: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Receiver {
    /// Starts on a kernel-chosen port.
    pub async fn start() -> Receiver {
        Self::start_with(Arc::new(|_: &str, _: &[(String, Bytes)]| None)).await
    }

    /// Starts on a kernel-chosen port; GET requests are answered by `query`.
    pub async fn start_with(query: QueryFn) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let bodies: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
        let store = bodies.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                let query = query.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        let query = query.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            if req.method() == hyper::Method::GET {
                                let seen = store.lock().unwrap_or_else(|p| p.into_inner()).clone();
                                let (status, body) =
                                    query(&path, &seen).unwrap_or((404, String::new()));
                                let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                                *resp.status_mut() = hyper::StatusCode::from_u16(status)
                                    .unwrap_or(hyper::StatusCode::OK);
                                return Ok::<_, Infallible>(resp);
                            }
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            store
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((path, body));
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::ACCEPTED;
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, bodies }
    }

    /// Bodies received on `path`, in arrival order.
    pub fn bodies(&self, path: &str) -> Vec<Bytes> {
        self.bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Zipkin v2 JSON bodies (each a list of spans) -> spans. Panics on a body that is not a JSON list
/// of span objects with the required fields (the v2 API requires `traceId` and `id`).
pub fn zipkin_spans(bodies: &[Bytes]) -> Vec<BackendSpan> {
    let mut out = Vec::new();
    for body in bodies {
        validate_zipkin_body(body);
        let doc: Value = serde_json::from_slice(body).expect("Zipkin body is JSON");
        let list = doc
            .as_array()
            .expect("Zipkin v2 body is a JSON list of spans");
        for s in list {
            let trace_id = s["traceId"].as_str().expect("traceId").to_owned();
            let span_id = s["id"].as_str().expect("id").to_owned();
            assert!(
                trace_id.len() == 32 || trace_id.len() == 16,
                "traceId {trace_id}"
            );
            assert_eq!(span_id.len(), 16, "id {span_id}");
            let tags = s["tags"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                .unwrap_or_default();
            out.push(BackendSpan {
                trace_id,
                span_id,
                parent_id: s["parentId"].as_str().unwrap_or("").to_owned(),
                service: s["localEndpoint"]["serviceName"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                name: s["name"].as_str().unwrap_or("").to_owned(),
                kind: s["kind"].as_str().unwrap_or("").to_owned(),
                tags,
            });
        }
    }
    out
}

/// Validates one Zipkin body against the v2 API's JSON schema with the shim's independent Python
/// checker (`collector-shim/tests/decoders/zipkin_json.py`).
fn validate_zipkin_body(body: &Bytes) {
    let script = python::decoder("zipkin_json.py");
    let out = python::run([script], body, python::DECODER_TIMEOUT)
        .expect("run the Zipkin schema checker");
    assert!(
        out.status.success(),
        "Zipkin body fails the v2 schema: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(body)
    );
}

/// Jaeger Thrift `Batch` bodies -> spans, decoded by the Python Jaeger client types.
pub fn jaeger_spans(bodies: &[Bytes]) -> Vec<BackendSpan> {
    if bodies.is_empty() {
        return Vec::new();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let p = dir.path().join(format!("batch-{i}.thrift"));
            std::fs::write(&p, b).expect("write batch");
            p
        })
        .collect();
    let script = paths::workspace_root().join("tests/tests/e2e_support/jaeger_batches.py");
    let args = std::iter::once(script).chain(files);
    let out = python::run(args, b"", python::DECODER_TIMEOUT).expect("run jaeger decoder");
    assert!(
        out.status.success(),
        "Jaeger Thrift bodies did not decode:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans: Vec<Value> = serde_json::from_slice(&out.stdout).expect("decoder output is JSON");
    spans
        .iter()
        .map(|s| {
            let tags: BTreeMap<String, String> = s["tags"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                .unwrap_or_default();
            let parent = s["parentSpanId"].as_str().unwrap_or("");
            BackendSpan {
                trace_id: s["traceId"].as_str().unwrap_or("").to_owned(),
                span_id: s["spanId"].as_str().unwrap_or("").to_owned(),
                parent_id: if parent.chars().all(|c| c == '0') {
                    String::new()
                } else {
                    parent.to_owned()
                },
                service: s["serviceName"].as_str().unwrap_or("").to_owned(),
                name: s["operationName"].as_str().unwrap_or("").to_owned(),
                kind: tags
                    .get("span.kind")
                    .map(|k| k.to_ascii_uppercase())
                    .unwrap_or_default(),
                tags,
            }
        })
        .collect()
}

/// Spans grouped by trace id.
pub fn by_trace(spans: &[BackendSpan]) -> BTreeMap<String, Vec<BackendSpan>> {
    let mut out: BTreeMap<String, Vec<BackendSpan>> = BTreeMap::new();
    for s in spans {
        out.entry(s.trace_id.clone()).or_default().push(s.clone());
    }
    out
}

/// [`shim_config`] plus an `otlp` exporter to `otlp` (`/v1/traces`).
pub fn shim_config_with_otlp(zipkin: &Receiver, jaeger: &Receiver, otlp: &Receiver) -> String {
    format!(
        "{}  - type: otlp\n    endpoint: \"{}\"\n",
        shim_config(zipkin, jaeger),
        otlp.url("/v1/traces")
    )
}

/// The shim configuration of the end-to-end tests: Zipkin and Jaeger exporters to the receivers,
/// an error and a latency tail policy. The decision window is long on purpose: a proxy span reaches
/// the shim up to a flush interval after the service's spans, and the tests end with SIGTERM,
/// which takes every pending decision at once.
pub fn shim_config(zipkin: &Receiver, jaeger: &Receiver) -> String {
    format!(
        r#"sampling:
  probability: 1.0
  tail:
    decision_wait: 5s
    policies:
      - type: error
      - type: latency
        threshold: 250ms
batch:
  batch_timeout: 200ms
shutdown_timeout: 20s
exporters:
  - type: zipkin
    endpoint: "{}"
  - type: jaeger
    endpoint: "{}"
"#,
        zipkin.url("/api/v2/spans"),
        jaeger.url("/api/traces")
    )
}

/// OTLP/HTTP protobuf bodies -> spans, decoded by the Python `opentelemetry-proto` package through the
/// shim's independent decoder (`collector-shim/tests/decoders/otlp_proto.py`).
pub fn otlp_spans(bodies: &[Bytes]) -> Vec<BackendSpan> {
    let script = python::decoder("otlp_proto.py");
    let mut out = Vec::new();
    for body in bodies {
        let result =
            python::run([&script], body, python::DECODER_TIMEOUT).expect("run the OTLP decoder");
        assert!(
            result.status.success(),
            "OTLP body did not decode: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let doc: Value = serde_json::from_slice(&result.stdout).expect("decoder output is JSON");
        for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|kv| kv["key"] == "service.name")
                .and_then(|kv| kv["value"]["stringValue"].as_str())
                .unwrap_or("")
                .to_owned();
            for span in rs["scopeSpans"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
            {
                let tags = span["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|kv| {
                        let value = kv["value"].as_object()?.values().next().map(text)?;
                        Some((kv["key"].as_str()?.to_owned(), value))
                    })
                    .collect();
                out.push(BackendSpan {
                    trace_id: span["traceId"].as_str().unwrap_or("").to_owned(),
                    span_id: span["spanId"].as_str().unwrap_or("").to_owned(),
                    parent_id: span["parentSpanId"].as_str().unwrap_or("").to_owned(),
                    service: service.clone(),
                    name: span["name"].as_str().unwrap_or("").to_owned(),
                    kind: span["kind"]
                        .as_str()
                        .unwrap_or("")
                        .trim_start_matches("SPAN_KIND_")
                        .to_owned(),
                    tags,
                });
            }
        }
    }
    out
}
