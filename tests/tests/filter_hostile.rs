//! Hostile inputs through the real `.wasm`: huge and garbage headers, binary bytes, invalid UTF-8
//! where HTTP allows it (obs-text), malformed gRPC, huge trailers. Every request gets an answer
//! (Envoy may refuse some with 4xx at the codec), and not one wasm VM failure shows in Envoy's log
//! or stats. A normal request is still traced afterwards.

use std::time::Duration;

use aetherflow_tests::envoy_config::INGRESS;
use aetherflow_tests::grpc;
use aetherflow_tests::http_client::{self, ClientRequest};
use aetherflow_tests::stack::{new_span_id, new_trace_id, StackBuilder, REQUEST_TIMEOUT};
use serde_json::json;

fn raw_get(extra_headers: &[u8]) -> Vec<u8> {
    let mut r = b"GET /hostile HTTP/1.1\r\nhost: h\r\nconnection: close\r\n".to_vec();
    r.extend_from_slice(extra_headers);
    r.extend_from_slice(b"\r\n");
    r
}

aetherflow_tests::each_form! {
async fn hostile_inputs_never_fail_the_vm(form) {
    let stack = StackBuilder::new().form(form)
        .concurrency(2)
        .filter(INGRESS, |c| {
            c.insert(
                "record_request_headers".into(),
                json!(["x-evil", "user-agent"]),
            );
            c.insert("record_response_headers".into(), json!(["x-big"]));
            c.insert("baggage_to_attributes".into(), json!(["k", "b7"]));
            c.insert(
                "outbound_formats".into(),
                json!(["w3c", "b3", "b3single", "jaeger"]),
            );
        })
        .start()
        .await;
    let ingress = stack.envoy.ingress();
    let t = new_trace_id();

    // Raw HTTP/1.1 heads: bytes hyper would refuse to send.
    let obs = b"\x80\xff\xfe\xc3\x28 bytes";
    let raw_cases: Vec<Vec<u8>> = vec![
        raw_get(&[b"traceparent: 00-".as_slice(), obs, b"\r\n"].concat()),
        raw_get(&[b"tracestate: a=".as_slice(), obs, b",b=\xe2\x82\r\n"].concat()),
        raw_get(&[b"baggage: k=".as_slice(), obs, b",\xc3\xa9=v\r\n"].concat()),
        raw_get(
            &[
                b"user-agent: ".as_slice(),
                obs,
                b"\r\nx-evil: ",
                obs,
                b"\r\n",
            ]
            .concat(),
        ),
        raw_get(
            &[
                b"b3: ".as_slice(),
                obs,
                b"\r\nuber-trace-id: ",
                obs,
                b"\r\n",
            ]
            .concat(),
        ),
        raw_get(b"x-b3-traceid: \xff\xff\r\nx-b3-spanid: \xff\r\nx-b3-sampled: \xff\r\n"),
        raw_get(b"traceparent:\r\ntracestate:\r\nbaggage:\r\nb3:\r\nuber-trace-id:\r\n"),
        raw_get(b"x-force-trace: \xff\r\n"),
        b"GET /\xff\xfe?\xc3\x28=\xff HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n".to_vec(),
        b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
        b"FOO /x HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n".to_vec(),
    ];
    for (i, req) in raw_cases.iter().enumerate() {
        let resp = http_client::send_raw(ingress, req, REQUEST_TIMEOUT)
            .await
            .expect("raw send");
        // Obs-text in header values is legal HTTP: Envoy passes those requests (cases 0-7) to
        // the filter and they must succeed; the malformed request lines are Envoy's to refuse.
        if i < 8 {
            assert_eq!(resp.status, Some(200), "raw case {i}: {:?}", resp.text);
        }
        assert!(
            resp.status.is_some() || resp.text.is_empty(),
            "raw case {i}: {:?}",
            resp.text
        );
    }

    // Huge but legal header values (Envoy's default limit is 60 KiB of headers).
    let huge = "x".repeat(50_000);
    let many_members: String = (0..5000)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let many_baggage: String = (0..3000)
        .map(|i| format!("b{i}=v;p={i}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(&str, String)> = vec![
        // Multi-byte UTF-8 that a byte-wise cap at 256 would cut in the middle of a character.
        ("user-agent", format!("a{}", "\u{e9}".repeat(300))),
        ("x-evil", "\u{1f600}".repeat(100)),
        ("traceparent", format!("00-{t}-{}-01-{huge}", new_span_id())),
        (
            "traceparent",
            format!("01-{t}-{}-01-{}", new_span_id(), "-".repeat(40_000)),
        ),
        ("tracestate", many_members.clone()),
        (
            "tracestate",
            format!("{}={}", "k".repeat(25_000), "v".repeat(25_000)),
        ),
        ("baggage", many_baggage),
        ("baggage", format!("k={huge}")),
        ("baggage", "%%%,=,;;;,k=%zz%".into()),
        ("user-agent", huge.clone()),
        ("x-evil", huge.clone()),
        ("b3", format!("{huge}-{huge}")),
        ("uber-trace-id", ":".repeat(30_000)),
        ("x-b3-traceid", "f".repeat(40_000)),
        ("x-force-trace", huge.clone()),
    ];
    for (name, value) in &cases {
        let req = ClientRequest::get("/big").header(name, value);
        let resp = http_client::send(ingress, &req, REQUEST_TIMEOUT).await;
        let status = resp.map(|r| r.status).unwrap_or(0);
        assert!(
            status == 200 || (400..500).contains(&status),
            "{name} ({} bytes): status {status}",
            value.len()
        );
    }
    // A long path and query: url.path/url.query stay within max_attribute_length (checked below).
    let long = format!("/{}?{}", "p".repeat(6000), "q=1&".repeat(1500));
    let resp = http_client::send(ingress, &ClientRequest::get(&long), REQUEST_TIMEOUT).await;
    assert!(resp.is_ok(), "long path: {resp:?}");

    // Many repeated lines of the context headers.
    let mut req = ClientRequest::get("/many");
    // Envoy allows 100 header lines by default: 30 of each stays under it and reaches the filter.
    for i in 0..30 {
        req = req
            .header("traceparent", format!("00-{t}-{:016x}-01", i + 1))
            .header("tracestate", format!("k{i}=v"))
            .header("baggage", format!("b{i}=v"));
    }
    let resp = http_client::send(ingress, &req, REQUEST_TIMEOUT)
        .await
        .expect("repeated headers");
    assert_eq!(resp.status, 200);

    // Malformed gRPC: a frame prefix claiming 4 GiB, a truncated prefix, a path with no method,
    // a huge response trailer, and a grpc content-type over HTTP/1.1.
    let mut lying = vec![0u8, 0xff, 0xff, 0xff, 0xff];
    lying.extend_from_slice(b"short");
    let grpc_cases: Vec<ClientRequest> = vec![
        ClientRequest::grpc("/demo.v1.Echo/Chat", lying.into()),
        ClientRequest::grpc("/demo.v1.Echo/Chat", vec![1u8, 0, 0].into()),
        ClientRequest::grpc("/", grpc::frame(b"x")),
        ClientRequest::grpc("/////", grpc::frame(b"x")),
        ClientRequest::grpc("/demo.v1.Echo/Big", grpc::frame(b"x"))
            .header("x-upstream-trailer-bytes", "50000"),
        ClientRequest::grpc("/demo.v1.Echo/Status", grpc::frame(b"x"))
            .header("x-upstream-grpc-status", "999999"),
        ClientRequest::grpc("/demo.v1.Echo/Status", grpc::frame(b"x"))
            .header("x-upstream-grpc-status", "-1"),
        ClientRequest::grpc("/demo.v1.Echo/Status", grpc::frame(b"x"))
            .header("x-upstream-grpc-mode", "trailers-only")
            .header("x-upstream-grpc-status", "not-a-number"),
        ClientRequest::grpc("/demo.v1.Echo/H1", grpc::frame(b"x"))
            .protocol(http_client::Protocol::Http1),
    ];
    for (i, req) in grpc_cases.iter().enumerate() {
        let resp = http_client::send(ingress, req, REQUEST_TIMEOUT).await;
        assert!(resp.is_ok(), "grpc case {i}: {resp:?}");
    }
    // HTTP response with a huge trailer header and a huge allow-listed response header.
    let req = ClientRequest::get("/trailer")
        .header("te", "trailers")
        .header("x-upstream-trailer-bytes", "50000");
    assert!(http_client::send(ingress, &req, REQUEST_TIMEOUT)
        .await
        .is_ok());

    // Still tracing normally afterwards.
    let ex = stack
        .ingress(ClientRequest::get("/after").header(
            "traceparent",
            format!("00-{}-{}-01", new_trace_id(), new_span_id()),
        ))
        .await;
    stack.span_of(&ex).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        stack.shim.decode_errors().is_empty(),
        "filter sent undecodable OTLP: {:?}",
        stack.shim.decode_errors()
    );
    // Every exported string attribute stays within max_attribute_length (default 256).
    for s in stack.shim.spans() {
        for kv in &s.span.attributes {
            if let Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v)) =
                kv.value.as_ref().and_then(|v| v.value.as_ref())
            {
                assert!(v.len() <= 256, "attribute {} is {} bytes", kv.key, v.len());
            }
        }
    }
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
/// Header maps of every size each way: the filter reads whole maps (the native form into a
/// buffer sized from Envoy's own count, on the stack up to 32 lines, on the heap beyond), so a
/// response with far more lines than its request, and a request with far more lines than its
/// response, must both be read whole and traced.
async fn header_maps_of_every_size_each_way(form) {
    let stack = StackBuilder::new().form(form).start().await;
    for (request_lines, response_lines) in [(0, 80), (80, 0), (31, 33), (90, 90), (0, 0)] {
        let (t, p) = (new_trace_id(), new_span_id());
        let mut req = ClientRequest::get("/many-headers")
            .header("traceparent", format!("00-{t}-{p}-01"))
            .header("x-upstream-header-lines", response_lines.to_string());
        for i in 0..request_lines {
            req = req.header(&format!("x-req-{i}"), format!("value {i}"));
        }
        let ex = stack.ingress(req).await;
        let what = format!("{form}: {request_lines} request lines, {response_lines} response lines");
        assert_eq!(ex.response.status, 200, "{what}");
        assert_eq!(ex.response.header("x-trace-id").as_deref(), Some(t.as_str()), "{what}");
        assert_eq!(
            ex.response.header(&format!("x-fill-{}", response_lines.max(1) - 1)).is_some(),
            response_lines > 0,
            "{what}: every response line reached the client"
        );
        let span = stack.span_of(&ex).await;
        assert_eq!(span.trace_id(), t, "{what}");
    }
    stack.envoy.assert_no_filter_failures().await;
}
}
