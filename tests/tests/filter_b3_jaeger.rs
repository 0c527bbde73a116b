//! Inbound B3 (multi and single header) and Jaeger fallbacks, outbound formats, and the egress
//! listener's CLIENT spans.

use aetherflow_tests::envoy_config::EGRESS;
use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::stack::{new_span_id, new_trace_id, StackBuilder};
use serde_json::json;

aetherflow_tests::each_form! {
async fn inbound_fallbacks_and_outbound_formats(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("outbound_formats".into(), json!(["w3c", "b3", "jaeger"]));
        })
        .filter(EGRESS, |c| {
            c.insert("outbound_formats".into(), json!(["w3c", "b3single"]));
            c.insert("inbound_formats".into(), json!(["w3c"]));
            c.insert("flush_interval_ms".into(), json!(200));
        })
        .start()
        .await;

    // B3 multi-header with a 64-bit trace id: left-padded to 128 bits.
    let (t64, s) = (new_span_id(), new_span_id());
    let req = ClientRequest::get("/b3")
        .header("x-b3-traceid", &t64)
        .header("x-b3-spanid", &s)
        .header("x-b3-sampled", "1");
    let ex = stack.ingress(req).await;
    let tp = ex.upstream_traceparent();
    let padded = format!("{}{t64}", "0".repeat(16));
    assert_eq!(tp.trace_id, padded, "B3 64-bit trace id padded");
    assert!(tp.sampled());
    assert!(
        !tp.random(),
        "a B3 trace id is not ours: no Level 2 random flag claimed for it"
    );
    let span = stack.span_of(&ex).await;
    assert_eq!(span.parent_span_id(), s);
    // Outbound B3 and Jaeger describe the same proxy span.
    assert_eq!(
        ex.upstream.header("x-b3-traceid").as_deref(),
        Some(padded.as_str())
    );
    assert_eq!(
        ex.upstream.header("x-b3-spanid").as_deref(),
        Some(tp.parent_id.as_str())
    );
    assert_eq!(ex.upstream.header("x-b3-sampled").as_deref(), Some("1"));
    let uber = ex
        .upstream
        .header("uber-trace-id")
        .expect("uber-trace-id upstream");
    let parts: Vec<&str> = uber.split(':').collect();
    assert_eq!(parts.len(), 4, "{uber}");
    assert_eq!(
        parts[0].trim_start_matches('0'),
        padded.trim_start_matches('0'),
        "{uber}"
    );
    assert_eq!(
        parts[1].trim_start_matches('0'),
        tp.parent_id.trim_start_matches('0'),
        "{uber}"
    );
    assert_eq!(
        u8::from_str_radix(parts[3], 16).map(|f| f & 1),
        Ok(1),
        "{uber}"
    );

    // B3 multi with a 128-bit id, unsampled.
    let (t, s) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/b3")
        .header("x-b3-traceid", &t)
        .header("x-b3-spanid", &s)
        .header("x-b3-sampled", "0");
    let ex = stack.ingress(req).await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t);
    assert!(!tp.sampled(), "B3 sampled=0 honored");
    assert_eq!(ex.upstream.header("x-b3-sampled").as_deref(), Some("0"));

    // B3 single header.
    let (t, s) = (new_trace_id(), new_span_id());
    let ex = stack
        .ingress(ClientRequest::get("/b3s").header("b3", format!("{t}-{s}-1")))
        .await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t);
    assert!(tp.sampled());
    assert_eq!(stack.span_of(&ex).await.parent_span_id(), s);
    // B3 single with a 64-bit trace id and the debug flag (debug implies sampled).
    let (t64, s) = (new_span_id(), new_span_id());
    let ex = stack
        .ingress(ClientRequest::get("/b3s").header("b3", format!("{t64}-{s}-d")))
        .await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, format!("{}{t64}", "0".repeat(16)));
    assert!(tp.sampled());

    // Jaeger, 64-bit trace id written without leading zeros.
    let s = new_span_id();
    let ex = stack
        .ingress(ClientRequest::get("/j").header("uber-trace-id", format!("abc123:{s}:0:1")))
        .await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, format!("{:0>32}", "abc123"));
    assert!(tp.sampled());
    assert!(
        !tp.random(),
        "a Jaeger trace id is not ours: no random flag"
    );
    assert_eq!(stack.span_of(&ex).await.parent_span_id(), s);
    // Jaeger 128-bit, unsampled.
    let (t, s) = (new_trace_id(), new_span_id());
    let ex = stack
        .ingress(ClientRequest::get("/j").header("uber-trace-id", format!("{t}:{s}:0:0")))
        .await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t);
    assert!(!tp.sampled());

    // A valid traceparent wins over B3 and Jaeger.
    let (t, p) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/both")
        .header("traceparent", format!("00-{t}-{p}-01"))
        .header("x-b3-traceid", new_trace_id())
        .header("x-b3-spanid", new_span_id())
        .header(
            "uber-trace-id",
            format!("{}:{}:0:1", new_trace_id(), new_span_id()),
        );
    let ex = stack.ingress(req).await;
    assert_eq!(ex.upstream_traceparent().trace_id, t);
    // An invalid traceparent falls back to B3.
    let (t, s) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/fallback")
        .header("traceparent", "00-zz-garbage-01")
        .header("x-b3-traceid", &t)
        .header("x-b3-spanid", &s)
        .header("x-b3-sampled", "1");
    let ex = stack.ingress(req).await;
    assert_eq!(
        ex.upstream_traceparent().trace_id,
        t,
        "no valid traceparent: B3 fallback"
    );

    // B3 debug flag without a sampling header: debug implies accept.
    let (t, s) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/b3d")
        .header("x-b3-traceid", &t)
        .header("x-b3-spanid", &s)
        .header("x-b3-flags", "1");
    let ex = stack.ingress(req).await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t);
    assert!(tp.sampled(), "x-b3-flags: 1 (debug) implies sampled");
    // B3 single with the optional parent span id field.
    let (t, s, parent) = (new_trace_id(), new_span_id(), new_span_id());
    let ex = stack
        .ingress(ClientRequest::get("/b3p").header("b3", format!("{t}-{s}-1-{parent}")))
        .await;
    assert_eq!(ex.upstream_traceparent().trace_id, t);
    assert_eq!(
        stack.span_of(&ex).await.parent_span_id(),
        s,
        "parent is the B3 span id, not its parent"
    );
    // Both B3 and Jaeger, no traceparent: inbound_formats order puts B3 first.
    let (tb, tj) = (new_trace_id(), new_trace_id());
    let req = ClientRequest::get("/order")
        .header("uber-trace-id", format!("{tj}:{}:0:1", new_span_id()))
        .header("x-b3-traceid", &tb)
        .header("x-b3-spanid", new_span_id())
        .header("x-b3-sampled", "1");
    let ex = stack.ingress(req).await;
    assert_eq!(ex.upstream_traceparent().trace_id, tb, "b3 before jaeger");

    // Garbage B3/Jaeger: a new trace, nothing crashes.
    for (name, value) in [
        ("b3", "not-valid"),
        ("uber-trace-id", "x:y:z:w"),
        ("x-b3-traceid", "00"),
    ] {
        let ex = stack
            .ingress(ClientRequest::get("/g").header(name, value))
            .await;
        assert!(
            ex.upstream_traceparent().random(),
            "{name}: {value}: new trace expected"
        );
    }

    // inbound_formats ["w3c"] (egress): B3 and Jaeger are not read.
    let t = new_trace_id();
    let req = ClientRequest::get("/w3c-only")
        .header("x-b3-traceid", &t)
        .header("x-b3-spanid", new_span_id())
        .header("x-b3-sampled", "1")
        .header("uber-trace-id", format!("{t}:{}:0:1", new_span_id()));
    let ex = stack.exchange(stack.envoy.egress(), req).await;
    assert_ne!(
        ex.upstream_traceparent().trace_id,
        t,
        "inbound_formats without b3/jaeger"
    );

    // Egress listener: CLIENT span, W3C + B3 single outbound.
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack
        .exchange(
            stack.envoy.egress(),
            ClientRequest::get("/out").header("traceparent", format!("00-{t}-{p}-01")),
        )
        .await;
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, t);
    let b3 = ex.upstream.header("b3").expect("b3 single header upstream");
    assert!(
        b3.starts_with(&format!("{t}-{}", tp.parent_id)),
        "b3 {b3} vs traceparent {tp:?}"
    );
    assert!(
        ex.upstream.header("x-b3-traceid").is_none(),
        "egress asked for b3single only"
    );
    let span = stack.span_of(&ex).await;
    assert_eq!(span.span.kind, 3, "egress span kind CLIENT");
    assert_eq!(
        span.resource_str("service.name").as_deref(),
        Some("envoy-egress")
    );
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
/// B3's sampling-only form (`b3: 0`, or `x-b3-sampled: 0` without ids) is the caller's explicit
/// "do not sample" (openzipkin/b3-propagation: "When it is 0, do not [report]"). The proxy starts
/// the trace but must honor that decision instead of sampling it again at `sample_ratio` 1.0.
async fn b3_deny_without_ids_is_honored(form) {
    let stack = StackBuilder::new().form(form).start().await;
    for (name, value) in [("b3", "0"), ("x-b3-sampled", "0")] {
        let ex = stack
            .ingress(ClientRequest::get("/deny").header(name, value))
            .await;
        let tp = ex.upstream_traceparent();
        assert!(
            !tp.sampled(),
            "{name}: {value} must not be sampled, upstream got {tp:?}"
        );
    }
}
}
