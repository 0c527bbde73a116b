//! The demo services on their own (no Envoy): they continue the caller's W3C context the way the
//! end-to-end traces rely on, speak real gRPC framing and status, and export OTLP/HTTP protobuf that
//! a real receiver decodes with the upstream OTLP message types.

mod e2e_support;

use std::time::Duration;

use aetherflow_demo::client::DemoClient;
use aetherflow_demo::grpc::{self, HelloReply, HelloRequest, StreamRequest};
use aetherflow_demo::grpc_service::{self, FAIL_MESSAGE};
use aetherflow_demo::http_service;
use aetherflow_demo::otlp::SpanExporter;
use e2e_support::Receiver;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use prost::Message;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

struct Running {
    base: String,
    exporter: SpanExporter,
    receiver: Receiver,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(kind: &str) -> Running {
    let receiver = Receiver::start().await;
    let exporter = SpanExporter::start(receiver.url("/v1/traces"), kind);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    if kind == "demo-http" {
        tokio::spawn(http_service::serve(listener, exporter.clone(), shutdown));
    } else {
        tokio::spawn(grpc_service::serve(listener, exporter.clone(), shutdown));
    }
    Running {
        base,
        exporter,
        receiver,
        _stop: stop,
    }
}

impl Running {
    /// Every span exported so far, with the resource's service.name checked on the way.
    async fn spans(&self, service: &str) -> Vec<Span> {
        self.exporter.flush().await;
        let mut out = Vec::new();
        for body in self.receiver.bodies("/v1/traces") {
            let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            for rs in req.resource_spans {
                let name = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| kv.value.as_ref()?.value.clone());
                assert_eq!(name, Some(Any::StringValue(service.to_owned())));
                out.extend(rs.scope_spans.into_iter().flat_map(|ss| ss.spans));
            }
        }
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn str_attr(span: &Span, key: &str) -> Option<String> {
    match attr(span, key) {
        Some(Any::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn server(spans: &[Span]) -> &Span {
    spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a SERVER span")
}

#[tokio::test]
async fn http_service_continues_the_callers_context() {
    let svc = start("demo-http").await;
    let client = DemoClient::new(Duration::from_secs(30));
    let tp = format!("00-{TRACE}-{PARENT}-03");
    let reply = client
        .get(
            &svc.base,
            "/api/orders",
            &[
                ("traceparent", &tp),
                ("tracestate", "ot=th:8"),
                ("tracestate", "vendor=x"),
            ],
        )
        .await
        .expect("response");
    assert_eq!(reply.status, 200);
    let spans = svc.spans("demo-http").await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let s = server(&spans);
    assert_eq!(
        (hex(&s.trace_id), hex(&s.parent_span_id)),
        (TRACE.to_owned(), PARENT.to_owned())
    );
    assert_eq!(s.name, "GET /api/orders");
    assert_eq!(
        s.trace_state, "ot=th:8,vendor=x",
        "every tracestate line, in order"
    );
    assert_eq!(
        s.flags, 0x303,
        "W3C flags + has-is-remote + is-remote (the proxy is another process)"
    );
    assert_eq!(str_attr(s, "http.route").as_deref(), Some("/api/orders"));
    assert_eq!(
        attr(s, "http.response.status_code"),
        Some(Any::IntValue(200))
    );
    assert_eq!(attr(s, "aetherflow.sampling.record_only"), None);
    let child = spans
        .iter()
        .find(|c| c.kind == SpanKind::Internal as i32)
        .expect("INTERNAL child");
    assert_eq!(child.parent_span_id, s.span_id);
    assert_eq!(child.trace_id, s.trace_id);
    assert_eq!(child.flags, 0x103, "local parent");
    assert!(
        s.start_time_unix_nano <= child.start_time_unix_nano
            && child.end_time_unix_nano <= s.end_time_unix_nano
    );
}

#[tokio::test]
async fn http_500_and_unsampled_parents() {
    let svc = start("demo-http").await;
    let client = DemoClient::new(Duration::from_secs(30));
    let tp = format!("00-{TRACE}-{PARENT}-00");
    let reply = client
        .get(&svc.base, "/api/fail", &[("traceparent", &tp)])
        .await
        .expect("response");
    assert_eq!(reply.status, 500);
    let spans = svc.spans("demo-http").await;
    let s = server(&spans);
    assert_eq!(
        s.status.as_ref().map(|st| st.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(str_attr(s, "error.type").as_deref(), Some("500"));
    for span in &spans {
        // Unsampled parent: recorded only, marked so the shim keeps it only with a tail policy.
        assert_eq!(span.flags & 1, 0);
        assert_eq!(
            attr(span, "aetherflow.sampling.record_only"),
            Some(Any::BoolValue(true))
        );
    }
}

#[tokio::test]
async fn invalid_or_repeated_traceparent_starts_a_new_trace() {
    let svc = start("demo-http").await;
    let client = DemoClient::new(Duration::from_secs(30));
    let upper = format!("00-{}-{PARENT}-01", TRACE.to_ascii_uppercase());
    let valid = format!("00-{TRACE}-{PARENT}-01");
    client
        .get(&svc.base, "/api/orders/1", &[("traceparent", &upper)])
        .await
        .expect("response");
    client
        .get(
            &svc.base,
            "/api/orders/2",
            &[("traceparent", &valid), ("traceparent", &valid)],
        )
        .await
        .expect("response");
    let spans = svc.spans("demo-http").await;
    assert_eq!(spans.len(), 2);
    for s in &spans {
        assert_ne!(hex(&s.trace_id), TRACE, "{}", s.name);
        assert!(s.parent_span_id.is_empty(), "a root span");
        assert!(s.trace_state.is_empty());
        assert_eq!(
            s.name, "GET /api/orders/{id}",
            "the route template, never the raw path"
        );
    }
}

#[tokio::test]
async fn grpc_service_unary_streaming_and_failure() {
    let svc = start("demo-grpc").await;
    let client = DemoClient::new(Duration::from_secs(30));
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let headers = [("traceparent", tp.as_str())];

    let unary = client
        .grpc(
            &svc.base,
            grpc::SAY_HELLO,
            &HelloRequest { name: "ann".into() },
            &headers,
        )
        .await
        .expect("unary");
    assert_eq!((unary.status, unary.grpc_status()), (200, Some(0)));
    assert!(
        unary.trailers.is_some(),
        "status travels in trailers after the message"
    );
    let msgs = unary.grpc_messages().expect("framed");
    assert_eq!(
        HelloReply::decode(msgs[0].clone()).expect("reply").message,
        "Hello, ann!"
    );

    let stream = client
        .grpc(
            &svc.base,
            grpc::STREAM_GREETINGS,
            &StreamRequest {
                name: "ann".into(),
                count: 4,
            },
            &headers,
        )
        .await
        .expect("stream");
    assert_eq!(stream.grpc_status(), Some(0));
    assert_eq!(stream.grpc_messages().expect("framed").len(), 4);

    let fail = client
        .grpc(&svc.base, grpc::FAIL, &HelloRequest::default(), &headers)
        .await
        .expect("fail");
    assert_eq!(fail.status, 200);
    assert!(
        fail.trailers.is_none() && fail.headers.contains_key("grpc-status"),
        "trailers-only response"
    );
    assert_eq!(
        (fail.grpc_status(), fail.grpc_message().as_deref()),
        (Some(13), Some(FAIL_MESSAGE))
    );

    let unknown = client
        .grpc(&svc.base, "Nope", &HelloRequest::default(), &headers)
        .await
        .expect("unknown");
    assert_eq!(unknown.grpc_status(), Some(12));

    let spans = svc.spans("demo-grpc").await;
    let by_method = |m: &str| {
        spans
            .iter()
            .find(|s| s.kind == SpanKind::Server as i32 && s.name == format!("demo.v1.Greeter/{m}"))
            .unwrap_or_else(|| panic!("span for {m}: {spans:#?}"))
    };
    for (method, code) in [
        ("SayHello", "OK"),
        ("StreamGreetings", "OK"),
        ("Fail", "INTERNAL"),
        ("Nope", "UNIMPLEMENTED"),
    ] {
        let s = by_method(method);
        assert_eq!(hex(&s.parent_span_id), PARENT);
        assert_eq!(str_attr(s, "rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(
            str_attr(s, "rpc.method"),
            Some(format!("demo.v1.Greeter/{method}"))
        );
        assert_eq!(
            str_attr(s, "rpc.response.status_code").as_deref(),
            Some(code),
            "{method}"
        );
    }
    let failed = by_method("Fail").status.clone().expect("status");
    assert_eq!(
        (failed.code, failed.message.as_str()),
        (StatusCode::Error as i32, FAIL_MESSAGE)
    );
    let stream_span = by_method("StreamGreetings");
    assert_eq!(
        attr(stream_span, "aetherflow.demo.messages_sent"),
        Some(Any::IntValue(4))
    );
    assert!(
        stream_span.end_time_unix_nano - stream_span.start_time_unix_nano >= 60_000_000,
        "the span covers the whole stream (3 gaps of 20 ms)"
    );
}
