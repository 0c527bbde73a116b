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

aetherflow_tests::each_form! {
async fn span_content_and_response_headers(form) {
    let stack = StackBuilder::new().form(form)
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
        span.attr_str("network.protocol.version"),
        None,
        "opt-in (a property read per request)"
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
    assert_eq!(span.attr_str("envoy.route_name"), None, "opt-in");
    assert_eq!(
        span.attr_str("envoy.response_flags"),
        None,
        "a completed 200 costs no flags read"
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
    // The filter and this crate share the workspace version.
    assert_eq!(span.scope_version, env!("CARGO_PKG_VERSION"));

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
    // (The filter may publish counters on its root tick: wait, do not read once.)
    for name in ["aetherflow_spans_started", "aetherflow_spans_sampled"] {
        let v = stack
            .envoy
            .wait_filter_metric(name, Duration::from_secs(10), |v| v >= 4)
            .await;
        assert!(v.is_ok(), "{name} {v:?}");
    }
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
            .filter_metric_settled("aetherflow_export_requests", Duration::from_millis(500))
            .await
            >= 1
    );
    assert!(
        stack.shim.decode_errors().is_empty(),
        "{:?}",
        stack.shim.decode_errors()
    );
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn sample_ratio_zero_forced_sampling_and_record_only(form) {
    let stack = StackBuilder::new().form(form)
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
        .wait_filter_metric(
            "aetherflow_spans_record_only",
            Duration::from_secs(10),
            |v| v >= 2,
        )
        .await
        .unwrap_or_else(|v| v);
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
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
/// `envoy_attributes` picks which Envoy properties become span attributes (one host call each).
async fn envoy_attributes_choose_the_properties_read(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert(
                "envoy_attributes".into(),
                json!([
                    "envoy.upstream.cluster",
                    "client.address",
                    "network.protocol.version",
                    "envoy.route_name"
                ]),
            );
        })
        .start()
        .await;
    let ex = stack.ingress(ClientRequest::get("/orders/7")).await;
    assert_eq!(ex.response.status, 200);
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.attr_str("envoy.upstream.cluster").as_deref(),
        Some("demo_http")
    );
    assert_eq!(
        span.attr_str("client.address").as_deref(),
        Some("127.0.0.1"),
        "no forwarding header: the peer"
    );
    assert_eq!(
        span.attr_str("network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        span.attr_str("envoy.route_name").as_deref(),
        Some("demo_http_route")
    );
    // The client behind a proxy, from the forwarding headers (RFC 7239 first).
    for (name, value, client) in [
        ("x-forwarded-for", "203.0.113.7, 10.1.1.1", "203.0.113.7"),
        ("forwarded", "for=\"[2001:db8::9]:4711\"", "2001:db8::9"),
    ] {
        let ex = stack
            .ingress(ClientRequest::get("/orders/8").header(name, value))
            .await;
        let span = stack.span_of(&ex).await;
        assert_eq!(span.attr_str("client.address").as_deref(), Some(client), "{name}");
    }
    for left_out in ["envoy.upstream.address", "envoy.response_flags"] {
        assert_eq!(
            span.attr_str(left_out),
            None,
            "{left_out} was not asked for"
        );
    }
    // What headers and callbacks give is kept whatever the list.
    assert_eq!(span.attr_int("http.response.status_code"), Some(200));
    assert!(span.attr_str("envoy.request_id").is_some());
}
}
