//! The exported span: parent links, attributes per OTel semconv 1.45, resource and scope, status,
//! timing, the trace id response headers, and the head-sampling outcome (ratio 0, forced sampling,
//! record-only spans).

use std::time::Duration;

use aetherflow_tests::envoy_config::EGRESS;
use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::stack::{new_span_id, new_trace_id, StackBuilder};
use serde_json::json;

const STATUS_ERROR: i32 = 2;

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_content_and_response_headers() {
    let stack = StackBuilder::new()
        .ingress_filter(|c| {
            c.insert("record_request_headers".into(), json!(["x-tenant"]));
            c.insert("record_response_headers".into(), json!(["content-type"]));
            c.insert(
                "resource_attributes".into(),
                json!({"k8s.cluster.name": "test"}),
            );
            c.insert("deployment_environment".into(), json!("ci"));
            c.insert("traceresponse_header".into(), json!(true));
            c.insert("max_attribute_length".into(), json!(32));
        })
        .start()
        .await;

    let (t, p) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/orders/42?verbose=1")
        .header("traceparent", format!("00-{t}-{p}-01"))
        .header("user-agent", format!("test-agent/{}", "x".repeat(100)))
        .header("x-tenant", "acme")
        .header("x-upstream-delay-ms", "150");
    let before = unix_nanos();
    let ex = stack.ingress(req).await;
    let after = unix_nanos();
    let tp = ex.upstream_traceparent();
    assert_eq!(ex.response.status, 200);
    // The trace id goes back to the client; traceresponse (W3C draft) names the proxy span.
    assert_eq!(
        ex.response.header("x-trace-id").as_deref(),
        Some(t.as_str())
    );
    let tr = ex
        .response
        .header("traceresponse")
        .expect("traceresponse header enabled");
    assert_eq!(tr, format!("00-{t}-{}-01", tp.parent_id));

    let span = stack.span_of(&ex).await;
    let s = &span.span;
    assert_eq!(span.parent_span_id(), p, "proxy span is the caller's child");
    assert_eq!(
        span.span_id(),
        tp.parent_id,
        "upstream parent == exported proxy span"
    );
    assert_eq!(s.kind, 2, "SERVER");
    assert_eq!(
        s.name, "GET",
        "no route template known: name is the method only, never the path"
    );
    assert_eq!(span.attr_str("http.request.method").as_deref(), Some("GET"));
    assert_eq!(span.attr_str("url.path").as_deref(), Some("/orders/42"));
    assert_eq!(span.attr_str("url.query").as_deref(), Some("verbose=1"));
    assert_eq!(span.attr_str("url.scheme").as_deref(), Some("http"));
    assert_eq!(span.attr_int("http.response.status_code"), Some(200));
    assert_eq!(
        span.attr_str("network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        span.attr_str("server.address").as_deref(),
        Some("127.0.0.1"),
        "from the Host header"
    );
    assert_eq!(
        span.attr_int("server.port"),
        Some(i64::from(stack.envoy.ingress().port()))
    );
    assert_eq!(
        span.attr_str("client.address").as_deref(),
        Some("127.0.0.1")
    );
    let ua = span.attr_str("user_agent.original").expect("user agent");
    assert!(
        ua.len() <= 32 && ua.starts_with("test-agent/"),
        "capped at max_attribute_length: {ua:?}"
    );
    assert_eq!(
        span.attr_str("http.request.header.x-tenant").as_deref(),
        Some("acme")
    );
    assert_eq!(
        span.attr_str("http.response.header.content-type")
            .as_deref(),
        Some("text/plain")
    );
    assert_eq!(
        span.attr_str("http.request.header.user-agent"),
        None,
        "only allow-listed headers"
    );
    assert_eq!(
        span.attr_str("envoy.upstream.cluster").as_deref(),
        Some("demo_http")
    );
    assert_eq!(
        span.attr_str("envoy.route_name").as_deref(),
        Some("demo_http_route")
    );
    assert!(span
        .attr_str("envoy.upstream.address")
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(span
        .attr_str("envoy.request_id")
        .is_some_and(|id| !id.is_empty()));
    assert_ne!(s.status.as_ref().map(|st| st.code), Some(STATUS_ERROR));
    // Timing from the host clock: covers the upstream's 150 ms delay.
    assert!(s.start_time_unix_nano > 0 && s.end_time_unix_nano >= s.start_time_unix_nano);
    let dur = Duration::from_nanos(s.end_time_unix_nano - s.start_time_unix_nano);
    // Wall-clock nanoseconds since the epoch, inside the client's own observation window.
    let slack = 1_000_000_000; // generous for a busy machine
    assert!(
        s.start_time_unix_nano + slack >= before && s.end_time_unix_nano <= after + slack,
        "span [{}, {}] outside the request window [{before}, {after}]",
        s.start_time_unix_nano,
        s.end_time_unix_nano
    );
    assert!(dur <= Duration::from_nanos(after - before) + Duration::from_millis(50));
    assert!(
        dur >= Duration::from_millis(150) && dur < Duration::from_secs(10),
        "duration {dur:?}"
    );
    // Flags: W3C flags in bits 0-7, has-is-remote and is-remote (remote parent) in bits 8-9.
    assert_eq!(s.flags & 0xff, 0x01);
    assert_eq!(s.flags & 0x300, 0x300, "flags {:#x}", s.flags);
    // Resource and scope.
    assert_eq!(
        span.resource_str("service.name").as_deref(),
        Some("envoy-ingress")
    );
    assert_eq!(
        span.resource_str("deployment.environment.name").as_deref(),
        Some("ci")
    );
    assert_eq!(
        span.resource_str("k8s.cluster.name").as_deref(),
        Some("test")
    );
    assert_eq!(span.scope_name, "aetherflow.trace_filter");
    assert!(!span.scope_version.is_empty());

    // Server span: 5xx is an error with error.type, 4xx is not.
    let ex = stack
        .ingress(ClientRequest::get("/fail").header("x-upstream-status", "503"))
        .await;
    assert_eq!(ex.response.status, 503);
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.span.status.as_ref().map(|s| s.code),
        Some(STATUS_ERROR)
    );
    assert_eq!(span.attr_str("error.type").as_deref(), Some("503"));
    assert_eq!(span.attr_int("http.response.status_code"), Some(503));
    let ex = stack
        .ingress(ClientRequest::get("/missing").header("x-upstream-status", "404"))
        .await;
    let span = stack.span_of(&ex).await;
    assert_ne!(
        span.span.status.as_ref().map(|s| s.code),
        Some(STATUS_ERROR),
        "404 is not a server error"
    );
    assert_eq!(span.attr_str("error.type"), None);
    // A method the conventions do not know: _OTHER, the original kept, span name "HTTP".
    let ex = stack
        .ingress(ClientRequest::get("/purge").method("PURGE"))
        .await;
    let span = stack.span_of(&ex).await;
    assert_eq!(span.span.name, "HTTP");
    assert_eq!(
        span.attr_str("http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        span.attr_str("http.request.method_original").as_deref(),
        Some("PURGE")
    );
    // Root span of a new trace: is-remote known and false.
    let ex = stack
        .ingress(ClientRequest::get("/root").method("POST").body("x"))
        .await;
    let span = stack.span_of(&ex).await;
    assert_eq!(span.span.name, "POST");
    assert_eq!(span.attr_str("url.query"), None, "no query => no url.query");
    assert_eq!(
        span.span.flags & 0x300,
        0x100,
        "root span: has-is-remote set, is-remote clear"
    );
    // Metrics count what happened.
    assert!(stack.envoy.filter_metric("aetherflow_spans_started").await >= 4);
    assert!(stack.envoy.filter_metric("aetherflow_spans_sampled").await >= 4);
    let exported = stack
        .envoy
        .wait_filter_metric("aetherflow_spans_exported", Duration::from_secs(10), |v| {
            v >= 4
        })
        .await;
    assert!(exported.is_ok(), "aetherflow_spans_exported {exported:?}");
    assert!(
        stack
            .envoy
            .filter_metric("aetherflow_export_requests")
            .await
            >= 1
    );
    assert!(
        stack.shim.decode_errors().is_empty(),
        "{:?}",
        stack.shim.decode_errors()
    );
    stack.envoy.assert_no_wasm_failures().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_ratio_zero_forced_sampling_and_record_only() {
    let stack = StackBuilder::new()
        .ingress_filter(|c| {
            c.insert("sample_ratio".into(), json!(0.0));
        })
        .filter(EGRESS, |c| {
            c.insert("sample_ratio".into(), json!(0.0));
            c.insert("record_unsampled".into(), json!(false));
            c.insert("flush_interval_ms".into(), json!(200));
            c.insert("trace_id_response_header".into(), json!(""));
        })
        .start()
        .await;

    // Ratio 0: unsampled downstream, but recorded as a record-only span.
    let ex = stack
        .ingress(ClientRequest::get("/unsampled").header("x-upstream-status", "500"))
        .await;
    let tp = ex.upstream_traceparent();
    assert!(!tp.sampled(), "sample_ratio 0: downstream sees sampled = 0");
    assert!(tp.random());
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.trace_flags() & 0x01,
        0,
        "record-only: sampled bit clear"
    );
    assert_eq!(
        span.attr_bool("aetherflow.sampling.record_only"),
        Some(true)
    );
    assert_eq!(
        ex.response.header("x-trace-id").as_deref(),
        Some(tp.trace_id.as_str())
    );

    // Forced sampling header ("1" and "true").
    for value in ["1", "true"] {
        let ex = stack
            .ingress(ClientRequest::get("/forced").header("x-force-trace", value))
            .await;
        let tp = ex.upstream_traceparent();
        assert!(tp.sampled(), "x-force-trace: {value} must sample");
        let span = stack.span_of(&ex).await;
        assert_eq!(span.trace_flags() & 0x01, 1);
        assert_eq!(
            span.attr_bool("aetherflow.sampling.record_only"),
            None,
            "sampled span is not record-only"
        );
    }
    // Other values do not force.
    let ex = stack
        .ingress(ClientRequest::get("/not-forced").header("x-force-trace", "0"))
        .await;
    assert!(!ex.upstream_traceparent().sampled());

    // A sampled parent is honored whatever the ratio (parent-based).
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack
        .ingress(ClientRequest::get("/parent").header("traceparent", format!("00-{t}-{p}-01")))
        .await;
    assert!(ex.upstream_traceparent().sampled());

    // An unsampled parent: downstream stays unsampled, the span is recorded as record-only.
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack
        .ingress(
            ClientRequest::get("/unsampled-parent").header("traceparent", format!("00-{t}-{p}-00")),
        )
        .await;
    assert!(!ex.upstream_traceparent().sampled());
    let span = stack.span_of(&ex).await;
    assert_eq!(span.trace_flags() & 0x01, 0);
    assert_eq!(
        span.attr_bool("aetherflow.sampling.record_only"),
        Some(true)
    );
    // The force header wins over an unsampled parent (debugging a trace someone else started).
    let (t, p) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/forced-parent")
        .header("traceparent", format!("00-{t}-{p}-00"))
        .header("x-force-trace", "1");
    let ex = stack.ingress(req).await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t, "forcing keeps the trace");
    assert!(
        tp.sampled(),
        "x-force-trace: 1 samples even under an unsampled parent"
    );

    let record_only = stack
        .envoy
        .filter_metric("aetherflow_spans_record_only")
        .await;
    assert!(
        record_only >= 2,
        "aetherflow_spans_record_only = {record_only}"
    );

    // record_unsampled false (egress): no span for the unsampled request; the sampled one arrives.
    let egress = stack.envoy.egress();
    let unsampled = stack.exchange(egress, ClientRequest::get("/e1")).await;
    let unsampled_trace = unsampled.upstream_traceparent().trace_id;
    assert_eq!(
        unsampled.response.header("x-trace-id"),
        None,
        "trace_id_response_header \"\" disables it"
    );
    assert!(!unsampled.upstream_traceparent().sampled());
    let forced = stack
        .exchange(
            egress,
            ClientRequest::get("/e2").header("x-force-trace", "1"),
        )
        .await;
    stack.span_of(&forced).await;
    // Same VM, finished earlier: had it been recorded it would have been exported by now; give one
    // more flush interval anyway.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        stack
            .shim
            .spans()
            .iter()
            .all(|s| s.trace_id() != unsampled_trace),
        "record_unsampled=false exported an unsampled span"
    );
    stack.envoy.assert_no_wasm_failures().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_cancellations_and_http2() {
    use aetherflow_tests::http_client::Protocol;
    use tokio::io::AsyncWriteExt;
    let stack = StackBuilder::new().start().await;

    // Upstream resets before answering: Envoy's local 503; the span is an error with a reason.
    let ex = stack
        .ingress(ClientRequest::get("/reset").header("x-upstream-reset", "1"))
        .await;
    assert_eq!(ex.response.status, 503);
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.span.status.as_ref().map(|s| s.code),
        Some(STATUS_ERROR),
        "reset is an error"
    );
    assert!(
        span.attr_str("error.type").is_some_and(|e| !e.is_empty()),
        "error.type names the reason"
    );
    assert!(
        ex.response.header("x-trace-id").is_some(),
        "local replies carry the trace id too"
    );
    let flags = span.attr_str("envoy.response_flags").unwrap_or_default();
    assert!(
        !flags.is_empty() && flags != "-",
        "envoy.response_flags shows the reset: {flags:?}"
    );

    // Plain HTTP/2 downstream (not gRPC).
    let ex = stack
        .ingress(ClientRequest::get("/h2").protocol(Protocol::H2c))
        .await;
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.attr_str("network.protocol.version").as_deref(),
        Some("2")
    );
    assert_eq!(span.span.name, "GET");

    // The client gives up mid-request: the stream still ends (on_log) and its span is exported.
    let (t, p) = (new_trace_id(), new_span_id());
    let mut conn = tokio::net::TcpStream::connect(stack.envoy.ingress())
        .await
        .expect("connect");
    let head = format!("GET /cancel HTTP/1.1\r\nhost: h\r\ntraceparent: 00-{t}-{p}-01\r\nx-upstream-delay-ms: 1500\r\n\r\n");
    conn.write_all(head.as_bytes()).await.expect("write");
    stack
        .upstream
        .wait_request(Duration::from_secs(10), |r| r.path == "/cancel")
        .await
        .expect("upstream saw /cancel");
    drop(conn);
    let span = stack.shim.span_of_trace(&t, Duration::from_secs(15)).await;
    let span = span.unwrap_or_else(|| {
        panic!(
            "no span for a cancelled request\n{}",
            stack.envoy.log_tail(20)
        )
    });
    assert_eq!(span.parent_span_id(), p);
    let started = stack.envoy.filter_metric("aetherflow_spans_started").await;
    let sampled = stack.envoy.filter_metric("aetherflow_spans_sampled").await;
    assert_eq!(started, 3, "three requests, three spans");
    assert_eq!(sampled, 3);
    stack.envoy.assert_no_wasm_failures().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_h2_streams_keep_their_own_context() {
    use aetherflow_tests::http_client::send_h2_multiplexed;
    use aetherflow_tests::stack::REQUEST_TIMEOUT;
    let stack = StackBuilder::new().start().await;
    // 30 interleaved streams on one connection, each with its own parent and its own delay (so
    // their filter callbacks interleave), half gRPC.
    let mut reqs = Vec::new();
    let mut expect = Vec::new();
    for i in 0..30u32 {
        let (t, p) = (new_trace_id(), new_span_id());
        let base = if i % 2 == 0 {
            ClientRequest::grpc(
                "/demo.v1.Echo/Mux",
                aetherflow_tests::grpc::frames(1 + i as usize % 3, 10),
            )
        } else {
            ClientRequest::get(&format!("/mux/{i}"))
        };
        reqs.push(
            base.header("traceparent", format!("00-{t}-{p}-01"))
                .header("x-upstream-delay-ms", ((i * 37) % 200).to_string())
                .header("x-test-id", format!("mux-{i}")),
        );
        expect.push((t, p));
    }
    let results = send_h2_multiplexed(stack.envoy.ingress(), &reqs, REQUEST_TIMEOUT)
        .await
        .expect("h2 connection");
    for (i, (r, (t, p))) in results.iter().zip(&expect).enumerate() {
        let r = r.as_ref().unwrap_or_else(|e| panic!("stream {i}: {e}"));
        assert_eq!(r.status, 200, "stream {i}");
        assert_eq!(
            r.header("x-trace-id").as_deref(),
            Some(t.as_str()),
            "stream {i}: its own trace id"
        );
        let up = stack
            .upstream
            .request_tagged(&format!("mux-{i}"))
            .await
            .expect("upstream saw it");
        let tp = aetherflow_tests::w3c::parse_emitted_traceparent(
            &up.header("traceparent").expect("tp"),
        )
        .expect("valid");
        assert_eq!(
            &tp.trace_id, t,
            "stream {i}: upstream got another stream's context"
        );
        let span = stack
            .shim
            .wait_spans(1, Duration::from_secs(15), |s| s.trace_id() == *t)
            .await
            .unwrap_or_else(|_| panic!("stream {i}: no span"))
            .remove(0);
        assert_eq!(&span.parent_span_id(), p);
        assert_eq!(span.span_id(), tp.parent_id);
        if i % 2 == 0 {
            assert_eq!(
                span.attr_int("aetherflow.grpc.request_messages"),
                Some(1 + i as i64 % 3),
                "stream {i}: message count of another stream?"
            );
        }
    }
    stack.envoy.assert_no_wasm_failures().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_requests_on_one_connection_are_separate_spans() {
    let stack = StackBuilder::new().start().await;
    // Three pipelined requests on one HTTP/1.1 connection, each with its own parent.
    let ids: Vec<(String, String)> = (0..3).map(|_| (new_trace_id(), new_span_id())).collect();
    let mut raw = Vec::new();
    for (i, (t, p)) in ids.iter().enumerate() {
        let close = if i == 2 { "connection: close\r\n" } else { "" };
        raw.extend_from_slice(
            format!("GET /ka/{i} HTTP/1.1\r\nhost: h\r\ntraceparent: 00-{t}-{p}-01\r\nx-test-id: ka-{i}\r\n{close}\r\n")
                .as_bytes(),
        );
    }
    let resp = aetherflow_tests::http_client::send_raw(
        stack.envoy.ingress(),
        &raw,
        Duration::from_secs(15),
    )
    .await
    .expect("pipelined requests");
    assert_eq!(
        resp.text.matches("HTTP/1.1 200").count(),
        3,
        "{}",
        resp.text
    );
    for (i, (t, p)) in ids.iter().enumerate() {
        let up = stack
            .upstream
            .request_tagged(&format!("ka-{i}"))
            .await
            .expect("upstream saw it");
        let tp = aetherflow_tests::w3c::parse_emitted_traceparent(
            &up.header("traceparent").expect("tp"),
        )
        .expect("valid");
        assert_eq!(&tp.trace_id, t, "request {i} got another request's context");
        let span = stack
            .shim
            .wait_spans(1, Duration::from_secs(15), |s| s.trace_id() == *t)
            .await
            .unwrap_or_else(|_| panic!("request {i}: no span"))
            .remove(0);
        assert_eq!(&span.parent_span_id(), p);
        assert_eq!(span.attr_str("url.path"), Some(format!("/ka/{i}")));
        assert!(
            resp.text.contains(&format!("x-trace-id: {t}")),
            "request {i}: trace id header"
        );
    }
}
