//! The traffic `make demo` sends through Envoy, and what each request must leave behind in the
//! exported traces. The end-to-end tests check the same expectations against Zipkin and Jaeger.

use std::collections::BTreeMap;

use crate::client::{DemoClient, Reply};
use crate::grpc::{self, HelloRequest, StreamRequest};
use crate::trace_context::{
    hex, new_span_id, new_trace_id, TraceParent, FLAG_RANDOM, FLAG_SAMPLED,
};
use crate::trace_view::SpanView;

/// One request of the demo.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short label (`http-ok`, ...).
    pub label: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// The context the client sends, if any (so its trace id is known in advance).
    pub client_parent: Option<TraceParent>,
    /// Whether its trace must reach the backend.
    pub expect_kept: bool,
    /// Services whose spans the trace must hold besides the proxy's.
    pub upstream_service: &'static str,
    /// Spans expected in the kept trace (proxy + service spans).
    pub expect_spans: usize,
    /// Kind of the proxy's span: SERVER on the ingress listener, CLIENT on the egress one.
    pub proxy_kind: &'static str,
    request: Request,
}

#[derive(Debug, Clone)]
enum Request {
    Get(&'static str, Vec<(&'static str, &'static str)>),
    /// A GET sent out through the egress listener (an application calling another service).
    EgressGet(&'static str),
    Grpc(&'static str),
}

fn client_context(sampled: bool) -> TraceParent {
    TraceParent {
        trace_id: new_trace_id(),
        parent_id: new_span_id(),
        flags: FLAG_RANDOM | if sampled { FLAG_SAMPLED } else { 0 },
    }
}

/// The demo's traffic: HTTP ok, HTTP 500, gRPC unary, streaming and error, a forced sample, an
/// unsampled failure a tail policy keeps, a call out through the egress listener, and an unsampled
/// success nothing keeps.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            label: "http-ok",
            about: "GET /api/orders carrying the client's own traceparent (sampled): the trace continues it",
            client_parent: Some(client_context(true)),
            expect_kept: true,
            upstream_service: "demo-http",
            expect_spans: 3,
            proxy_kind: "SERVER",
            request: Request::Get("/api/orders", vec![]),
        },
        Scenario {
            label: "http-500",
            about: "GET /api/fail: the service answers 500, both SERVER spans are errors",
            client_parent: None,
            expect_kept: true,
            upstream_service: "demo-http",
            expect_spans: 3,
            proxy_kind: "SERVER",
            request: Request::Get("/api/fail", vec![]),
        },
        Scenario {
            label: "grpc-unary",
            about: "demo.v1.Greeter/SayHello over h2c: grpc-status OK from the trailers",
            client_parent: None,
            expect_kept: true,
            upstream_service: "demo-grpc",
            expect_spans: 2,
            proxy_kind: "SERVER",
            request: Request::Grpc(grpc::SAY_HELLO),
        },
        Scenario {
            label: "grpc-stream",
            about: "demo.v1.Greeter/StreamGreetings: 5 messages, one span covering the whole stream",
            client_parent: None,
            expect_kept: true,
            upstream_service: "demo-grpc",
            expect_spans: 2,
            proxy_kind: "SERVER",
            request: Request::Grpc(grpc::STREAM_GREETINGS),
        },
        Scenario {
            label: "grpc-error",
            about: "demo.v1.Greeter/Fail: trailers-only INTERNAL with a grpc-message",
            client_parent: None,
            expect_kept: true,
            upstream_service: "demo-grpc",
            expect_spans: 3,
            proxy_kind: "SERVER",
            request: Request::Grpc(grpc::FAIL),
        },
        Scenario {
            label: "forced",
            about: "unsampled client context + x-force-trace: 1: sampled anyway (debugging)",
            client_parent: Some(client_context(false)),
            expect_kept: true,
            upstream_service: "demo-http",
            expect_spans: 2,
            proxy_kind: "SERVER",
            request: Request::Get("/api/orders/42", vec![("x-force-trace", "1")]),
        },
        Scenario {
            label: "tail-kept",
            about: "unsampled client context, GET /api/fail: record-only spans kept by the shim's error policy",
            client_parent: Some(client_context(false)),
            expect_kept: true,
            upstream_service: "demo-http",
            expect_spans: 3,
            proxy_kind: "SERVER",
            request: Request::Get("/api/fail", vec![]),
        },
        Scenario {
            label: "egress",
            about: "GET /api/orders/3 sent out through Envoy's egress listener: a CLIENT span is the service span's parent",
            client_parent: Some(client_context(true)),
            expect_kept: true,
            upstream_service: "demo-http",
            expect_spans: 2,
            proxy_kind: "CLIENT",
            request: Request::EgressGet("/api/orders/3"),
        },
        Scenario {
            label: "unsampled",
            about: "unsampled client context, GET /api/orders/7 succeeds: no policy keeps it, nothing exported",
            client_parent: Some(client_context(false)),
            expect_kept: false,
            upstream_service: "demo-http",
            expect_spans: 0,
            proxy_kind: "SERVER",
            request: Request::Get("/api/orders/7", vec![]),
        },
    ]
}

/// What one scenario got back.
#[derive(Debug)]
pub struct Sent {
    /// The scenario.
    pub scenario: Scenario,
    /// The response, or why there was none.
    pub reply: Result<Reply, String>,
}

impl Sent {
    /// The trace id this request belongs to: the client's own, else the `x-trace-id` header.
    pub fn trace_id(&self) -> Option<String> {
        match &self.scenario.client_parent {
            Some(p) => Some(hex(&p.trace_id)),
            None => self.returned_trace_id(),
        }
    }

    /// The trace id Envoy returned in `x-trace-id`.
    pub fn returned_trace_id(&self) -> Option<String> {
        self.reply
            .as_ref()
            .ok()
            .and_then(|r| r.header("x-trace-id"))
            .map(str::to_owned)
    }

    /// One line: status (HTTP and gRPC) and the returned trace id.
    pub fn summary(&self) -> String {
        match &self.reply {
            Ok(r) => {
                let mut s = format!("HTTP {}", r.status);
                if let Some(code) = r.grpc_status() {
                    s.push_str(&format!(", grpc-status {code} ({})", grpc::code_name(code)));
                }
                if let Some(m) = r.grpc_message() {
                    s.push_str(&format!(", grpc-message \"{m}\""));
                }
                if let Ok(n) = r.grpc_messages().map(|m| m.len()) {
                    if r.grpc_status().is_some() {
                        s.push_str(&format!(", {n} message(s)"));
                    }
                }
                s.push_str(&format!(
                    ", x-trace-id {}",
                    r.header("x-trace-id").unwrap_or("(none)")
                ));
                s
            }
            Err(e) => format!("request failed: {e}"),
        }
    }
}

/// Sends one scenario's request through Envoy: `ingress` and `egress` are the base URLs of its
/// two listeners.
pub async fn send(client: &DemoClient, ingress: &str, egress: &str, scenario: Scenario) -> Sent {
    let base = ingress;
    let parent = scenario.client_parent.map(|p| p.header_value());
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(p) = parent.as_deref() {
        headers.push(("traceparent", p));
    }
    let reply = match &scenario.request {
        Request::Get(path, extra) => {
            headers.extend(extra.iter().copied());
            client.get(base, path, &headers).await
        }
        Request::EgressGet(path) => client.get(egress, path, &headers).await,
        Request::Grpc(method) => {
            let name = "AetherFlow".to_owned();
            match *method {
                grpc::STREAM_GREETINGS => {
                    client
                        .grpc(base, method, &StreamRequest { name, count: 5 }, &headers)
                        .await
                }
                _ => {
                    client
                        .grpc(base, method, &HelloRequest { name }, &headers)
                        .await
                }
            }
        }
    };
    Sent { scenario, reply }
}

/// Checks one scenario against the exported spans of all traces; each entry is (passed, what).
pub fn check(sent: &Sent, traces: &BTreeMap<String, Vec<SpanView>>) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let Some(trace_id) = sent.trace_id() else {
        out.push((
            false,
            "no trace id: the response had no x-trace-id header".to_owned(),
        ));
        return out;
    };
    if let Some(returned) = sent.returned_trace_id() {
        out.push((
            returned == trace_id,
            format!("x-trace-id returned to the client ({returned})"),
        ));
    }
    let spans = traces.get(&trace_id).map(Vec::as_slice).unwrap_or(&[]);
    if !sent.scenario.expect_kept {
        out.push((
            spans.is_empty(),
            format!("not exported ({} spans found)", spans.len()),
        ));
        return out;
    }
    out.push((
        spans.len() >= sent.scenario.expect_spans,
        format!(
            "{} of {} expected spans exported",
            spans.len(),
            sent.scenario.expect_spans
        ),
    ));
    let service = sent.scenario.upstream_service;
    let proxy = spans
        .iter()
        .find(|s| !s.service.starts_with("demo-") && s.kind == sent.scenario.proxy_kind);
    let upstream = spans
        .iter()
        .find(|s| s.service == service && s.kind == "SERVER");
    match (proxy, upstream) {
        (Some(proxy), Some(upstream)) => {
            out.push((
                upstream.parent_span_id == proxy.span_id,
                format!(
                    "{service} SERVER span is a child of the proxy span {}",
                    &proxy.span_id[..8]
                ),
            ));
            if let Some(client) = &sent.scenario.client_parent {
                out.push((
                    proxy.parent_span_id == hex(&client.parent_id),
                    "proxy span continues the client's traceparent".to_owned(),
                ));
            }
        }
        _ => out.push((
            false,
            format!(
                "a proxy {} span and a {service} SERVER span exported",
                sent.scenario.proxy_kind
            ),
        )),
    }
    out
}
