//! Streams and connections: upstream resets and client cancellations, plain HTTP/2, many
//! multiplexed h2 streams and pipelined HTTP/1.1 requests, each keeping its own context and span.

use std::time::Duration;

use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::stack::{new_span_id, new_trace_id, StackBuilder};

const STATUS_ERROR: i32 = 2;

aetherflow_tests::each_form! {
async fn resets_cancellations_and_http2(form) {
    use aetherflow_tests::http_client::Protocol;
    use tokio::io::AsyncWriteExt;
    // Every Envoy attribute, `network.protocol.version` among them (opt-in).
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert(
                "envoy_attributes".into(),
                serde_json::json!(aetherflow_core::config::EnvoyAttributes::NAMES),
            );
        })
        .start()
        .await;

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
    let flags = span.attr_str("envoy.response_flags").unwrap_or_default();
    assert!(
        flags.split(',').any(|f| f == "DC"),
        "a request the client cut short reads the flags: {flags:?}"
    );
    let settle = Duration::from_millis(500);
    let started = stack
        .envoy
        .filter_metric_settled("aetherflow_spans_started", settle)
        .await;
    let sampled = stack
        .envoy
        .filter_metric_settled("aetherflow_spans_sampled", settle)
        .await;
    assert_eq!(started, 3, "three requests, three spans");
    assert_eq!(sampled, 3);
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn multiplexed_h2_streams_keep_their_own_context(form) {
    use aetherflow_tests::http_client::send_h2_multiplexed;
    use aetherflow_tests::stack::REQUEST_TIMEOUT;
    let stack = StackBuilder::new().form(form).start().await;
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
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn keep_alive_requests_on_one_connection_are_separate_spans(form) {
    let stack = StackBuilder::new().form(form).start().await;
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
}

aetherflow_tests::each_form! {
async fn retried_upstream_attempts_share_the_proxy_span_as_parent(form) {
    // Give the HTTP route a retry policy: Envoy re-sends the request after a 503.
    let stack = StackBuilder::new().form(form)
        .config(|cfg| {
            let listeners = cfg.doc_mut()["static_resources"]["listeners"]
                .as_sequence_mut()
                .ok_or("listeners")?;
            let ingress = listeners
                .iter_mut()
                .find(|l| l["name"].as_str() == Some("ingress"))
                .ok_or("ingress")?;
            let routes = ingress["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
                ["virtual_hosts"][0]["routes"]
                .as_sequence_mut()
                .ok_or("routes")?;
            let http = routes
                .iter_mut()
                .find(|r| r["name"].as_str() == Some("demo_http_route"))
                .ok_or("demo_http_route")?;
            http["route"]["retry_policy"] = serde_yaml::from_str("{retry_on: 5xx, num_retries: 2}")
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .start()
        .await;
    let (t, p) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/retry")
        .header("traceparent", format!("00-{t}-{p}-01"))
        .header("x-upstream-status", "503")
        .header("x-test-id", "retry-1");
    let resp = aetherflow_tests::http_client::send(
        stack.envoy.ingress(),
        &req,
        aetherflow_tests::stack::REQUEST_TIMEOUT,
    )
    .await
    .expect("request");
    assert_eq!(resp.status, 503);
    let attempts: Vec<_> = stack
        .upstream
        .requests()
        .into_iter()
        .filter(|r| r.header("x-test-id").as_deref() == Some("retry-1"))
        .collect();
    assert_eq!(attempts.len(), 3, "one try and two retries");
    let span = stack
        .shim
        .span_of_trace(&t, Duration::from_secs(15))
        .await
        .expect("span");
    for (i, a) in attempts.iter().enumerate() {
        let tp =
            aetherflow_tests::w3c::parse_emitted_traceparent(&a.header("traceparent").expect("tp"))
                .expect("valid");
        assert_eq!(tp.trace_id, t, "attempt {i}");
        assert_eq!(
            tp.parent_id,
            span.span_id(),
            "attempt {i}: parent is the proxy span"
        );
    }
    assert_eq!(span.attr_int("http.response.status_code"), Some(503));
    assert_eq!(
        stack
            .shim
            .spans()
            .iter()
            .filter(|s| s.trace_id() == t)
            .count(),
        1,
        "one proxy span for the retried request"
    );
}
}
