//! W3C Trace Context Level 1 `traceparent` rules (issue 2, "Propagation"), one case each, through
//! the real filter in real Envoy. One Envoy serves every case.

use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::stack::{new_span_id, new_trace_id, Exchange, Stack, StackBuilder};

/// The incoming context was continued: same trace id, the proxy span as the new parent, and the
/// exported proxy span has the incoming parent id as its parent.
async fn assert_continued(
    stack: &Stack,
    ex: &Exchange,
    trace_id: &str,
    parent_id: &str,
    flags: u8,
    case: &str,
) {
    let tp = ex.upstream_traceparent();
    assert_eq!(tp.trace_id, trace_id, "{case}: trace must be continued");
    assert_ne!(
        tp.parent_id, parent_id,
        "{case}: upstream parent must be the proxy span, not the caller"
    );
    assert_eq!(tp.flags, flags, "{case}: flags copied unchanged");
    assert_eq!(tp.version, "00", "{case}: re-emitted as version 00");
    let span = stack.span_of(ex).await;
    assert_eq!(
        span.parent_span_id(),
        parent_id,
        "{case}: proxy span's parent is the caller's span"
    );
    assert_eq!(
        ex.response.header("x-trace-id").as_deref(),
        Some(trace_id),
        "{case}: x-trace-id"
    );
}

/// The incoming `traceparent` was rejected: a new trace (random flag set on our id), no caller
/// tracestate, and the proxy span is a root.
async fn assert_new_trace(stack: &Stack, ex: &Exchange, rejected_trace_id: &str, case: &str) {
    let tp = ex.upstream_traceparent();
    assert_ne!(
        tp.trace_id,
        rejected_trace_id.to_ascii_lowercase(),
        "{case}: must start a new trace"
    );
    assert!(
        tp.random(),
        "{case}: our new trace ids carry the Level 2 random flag, got {:02x}",
        tp.flags
    );
    assert!(
        !ex.upstream_tracestate().iter().any(|m| m == "caller=keep"),
        "{case}: tracestate of a rejected traceparent must not be used: {:?}",
        ex.upstream_tracestate()
    );
    let span = stack.span_of(ex).await;
    assert_eq!(span.parent_span_id(), "", "{case}: new trace => root span");
    assert_eq!(
        ex.response.header("x-trace-id").as_deref(),
        Some(tp.trace_id.as_str())
    );
}

fn with_tp(tp: &str) -> ClientRequest {
    ClientRequest::get("/tp")
        .header("traceparent", tp)
        .header("tracestate", "caller=keep")
}

aetherflow_tests::each_form! {
async fn traceparent_rules(form) {
    let stack = StackBuilder::new().form(form).start().await;

    // Valid version 00, sampled; and unsampled (flags copied, parent-based: stays unsampled).
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack.ingress(with_tp(&format!("00-{t}-{p}-01"))).await;
    assert_continued(&stack, &ex, &t, &p, 0x01, "valid 00 sampled").await;
    assert_eq!(
        ex.upstream_tracestate().first().map(String::as_str),
        Some("caller=keep")
    );
    // The span carries the trace's tracestate too (OTLP Span.trace_state): the shim reads `ot` there.
    let span = stack.span_of(&ex).await;
    assert!(
        span.span
            .trace_state
            .split(',')
            .any(|m| m.trim() == "caller=keep"),
        "span trace_state {:?}",
        span.span.trace_state
    );
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack.ingress(with_tp(&format!("00-{t}-{p}-00"))).await;
    assert_continued(&stack, &ex, &t, &p, 0x00, "valid 00 unsampled").await;
    // Random flag from the caller is copied unchanged.
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack.ingress(with_tp(&format!("00-{t}-{p}-03"))).await;
    assert_continued(&stack, &ex, &t, &p, 0x03, "valid 00 sampled+random").await;

    // Future version: parsed by the 00 layout, extra fields allowed, re-emitted as 00.
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack
        .ingress(with_tp(&format!("01-{t}-{p}-01-what-the-future-holds")))
        .await;
    assert_continued(
        &stack,
        &ex,
        &t,
        &p,
        0x01,
        "future version 01 with extra data",
    )
    .await;
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack.ingress(with_tp(&format!("cc-{t}-{p}-01"))).await;
    assert_continued(
        &stack,
        &ex,
        &t,
        &p,
        0x01,
        "future version cc, plain 55 chars",
    )
    .await;

    let invalid_before = stack
        .envoy
        .filter_metric_settled(
            "aetherflow_invalid_traceparent",
            std::time::Duration::from_millis(500),
        )
        .await;
    let mut invalid_cases = 0;
    let cases: Vec<(String, String, &str)> = {
        let mut v = Vec::new();
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((
            format!("00-{}-{p}-01", t.to_ascii_uppercase()),
            t,
            "uppercase trace id",
        ));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((
            format!("00-{t}-{}-01", p.to_ascii_uppercase()),
            t,
            "uppercase parent id",
        ));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((format!("ff-{t}-{p}-01"), t, "version ff"));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((
            format!("00-{t}-{p}-01-extra"),
            t,
            "version 00 longer than 55 chars",
        ));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((format!("00-{}-{p}-01", &t[..31]), t, "short trace id"));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((format!("00-{t}-{p}-1"), t, "short flags"));
        let p = new_span_id();
        v.push((
            format!("00-{}-{p}-01", "0".repeat(32)),
            "0".repeat(32),
            "zero trace id",
        ));
        let t = new_trace_id();
        v.push((format!("00-{t}-{}-01", "0".repeat(16)), t, "zero parent id"));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((format!("00-{t}-{p}-0g"), t, "non-hex flags"));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((
            format!("01-{t}-{p}-01extra"),
            t,
            "future version without '-' before extra data",
        ));
        let (t, p) = (new_trace_id(), new_span_id());
        v.push((format!("00_{t}_{p}_01"), t, "wrong delimiters"));
        v
    };
    for (header, rejected, case) in &cases {
        let ex = stack.ingress(with_tp(header)).await;
        assert_new_trace(&stack, &ex, rejected, case).await;
        invalid_cases += 1;
    }

    // Duplicate traceparent lines (both valid on their own): invalid, new trace, tracestate ignored.
    let (t1, p1, t2, p2) = (new_trace_id(), new_span_id(), new_trace_id(), new_span_id());
    let req = ClientRequest::get("/dup")
        .header("traceparent", format!("00-{t1}-{p1}-01"))
        .header("traceparent", format!("00-{t2}-{p2}-01"))
        .header("tracestate", "caller=keep");
    let ex = stack.ingress(req).await;
    assert_eq!(
        ex.upstream.header_all("traceparent").len(),
        1,
        "exactly one traceparent upstream"
    );
    assert_new_trace(&stack, &ex, &t1, "duplicate traceparent").await;
    assert_ne!(
        ex.upstream_traceparent().trace_id,
        t2,
        "duplicate traceparent: neither line is used"
    );
    invalid_cases += 1;

    let invalid_after = stack
        .envoy
        .wait_filter_metric(
            "aetherflow_invalid_traceparent",
            std::time::Duration::from_secs(5),
            |v| v >= invalid_before + invalid_cases,
        )
        .await;
    assert!(
        invalid_after.is_ok(),
        "aetherflow_invalid_traceparent counted {invalid_after:?}, want +{invalid_cases}"
    );

    // No incoming context at all: a new root trace with the random flag, sampled at ratio 1.0.
    let ex = stack.ingress(ClientRequest::get("/none")).await;
    let tp = ex.upstream_traceparent();
    assert_eq!(
        tp.flags, 0x03,
        "new trace at sample_ratio 1.0: sampled + random"
    );
    let span = stack.span_of(&ex).await;
    assert_eq!(span.parent_span_id(), "");
    assert_eq!(
        span.resource_str("deployment.environment.name"),
        None,
        "deployment_environment defaults to unset"
    );
    stack.envoy.assert_no_filter_failures().await;
}
}

aetherflow_tests::each_form! {
async fn untrusted_incoming_context_starts_a_new_trace_with_a_link(form) {
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("trust_incoming_context".into(), false.into());
        })
        .start()
        .await;
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack.ingress(with_tp(&format!("00-{t}-{p}-01"))).await;
    let tp = ex.upstream_traceparent();
    assert_ne!(tp.trace_id, t, "untrusted context must not be continued");
    let span = stack.span_of(&ex).await;
    assert_eq!(span.parent_span_id(), "");
    let link = span
        .span
        .links
        .first()
        .unwrap_or_else(|| panic!("no span link to the incoming context"));
    assert_eq!(aetherflow_tests::shim::hex(&link.trace_id), t);
    assert_eq!(aetherflow_tests::shim::hex(&link.span_id), p);
    assert!(tp.random(), "our own new trace id");
    assert!(
        !ex.upstream_tracestate().iter().any(|m| m == "caller=keep"),
        "the untrusted caller's tracestate belongs to the trace we did not continue"
    );

    // The same for a B3 caller.
    let (t, s) = (new_trace_id(), new_span_id());
    let req = ClientRequest::get("/b3")
        .header("x-b3-traceid", &t)
        .header("x-b3-spanid", &s)
        .header("x-b3-sampled", "1");
    let ex = stack.ingress(req).await;
    assert_ne!(ex.upstream_traceparent().trace_id, t);
    let span = stack.span_of(&ex).await;
    let link = span.span.links.first().expect("link to the B3 context");
    assert_eq!(aetherflow_tests::shim::hex(&link.trace_id), t);
    assert_eq!(aetherflow_tests::shim::hex(&link.span_id), s);
}
}

aetherflow_tests::each_form! {
async fn untrusted_parent_does_not_decide_sampling(form) {
    // Internet-facing: a caller cannot force us to sample by sending flags 01.
    let stack = StackBuilder::new().form(form)
        .ingress_filter(|c| {
            c.insert("trust_incoming_context".into(), false.into());
            c.insert("sample_ratio".into(), 0.0.into());
        })
        .start()
        .await;
    let (t, p) = (new_trace_id(), new_span_id());
    let ex = stack.ingress(with_tp(&format!("00-{t}-{p}-01"))).await;
    let tp = ex.upstream_traceparent();
    assert_ne!(tp.trace_id, t);
    assert!(
        !tp.sampled(),
        "sample_ratio 0 decides, not the untrusted caller's flag"
    );
}
}
