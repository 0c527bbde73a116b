//! End to end on loopback: a client -> real Envoy with the real `trace_filter.wasm` -> the demo
//! HTTP and gRPC services (which continue the trace and export their own spans), every span through
//! the real collector-shim binary -> real HTTP receivers standing in for Zipkin and Jaeger, whose
//! bodies are decoded independently (serde_json for Zipkin v2, the Jaeger client's Thrift types).

mod e2e_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aetherflow_demo::client::DemoClient;
use aetherflow_demo::grpc_service::FAIL_MESSAGE;
use aetherflow_demo::scenarios::{self, Sent};
use aetherflow_demo::stack::{Stack, StackOptions};
use aetherflow_demo::trace_context::hex;
use e2e_support::{
    by_trace, jaeger_spans, otlp_spans, shim_config, shim_config_with_otlp, zipkin_spans,
    BackendSpan, Receiver,
};

/// Sends every demo scenario through Envoy.
async fn send_all(stack: &Stack) -> BTreeMap<&'static str, Sent> {
    let client = DemoClient::new(Duration::from_secs(60));
    let base = stack.ingress_url();
    let egress = stack.egress_url();
    let mut out = BTreeMap::new();
    for scenario in scenarios::all() {
        let sent = scenarios::send(&client, &base, &egress, scenario).await;
        out.insert(sent.scenario.label, sent);
    }
    out
}

/// Every request got the answer its upstream gives: tracing changes nothing for the client.
fn assert_answers(sent: &BTreeMap<&'static str, Sent>) {
    let reply = |label: &str| {
        sent[label]
            .reply
            .as_ref()
            .unwrap_or_else(|e| panic!("{label}: no response: {e}"))
    };
    for (label, status) in [
        ("http-ok", 200),
        ("http-500", 500),
        ("forced", 200),
        ("tail-kept", 500),
        ("egress", 200),
        ("unsampled", 200),
    ] {
        assert_eq!(reply(label).status, status, "{label}");
    }
    let unary = reply("grpc-unary");
    assert_eq!(
        (unary.status, unary.grpc_status()),
        (200, Some(0)),
        "grpc-unary"
    );
    assert_eq!(unary.grpc_messages().map(|m| m.len()), Ok(1));
    let stream = reply("grpc-stream");
    assert_eq!(
        (stream.status, stream.grpc_status()),
        (200, Some(0)),
        "grpc-stream"
    );
    assert_eq!(stream.grpc_messages().map(|m| m.len()), Ok(5));
    let fail = reply("grpc-error");
    assert_eq!(fail.grpc_status(), Some(13), "grpc-error");
    assert_eq!(fail.grpc_message().as_deref(), Some(FAIL_MESSAGE));
}

fn proxy_span<'a>(spans: &'a [BackendSpan], what: &str) -> &'a BackendSpan {
    spans
        .iter()
        .find(|s| !s.service.starts_with("demo-"))
        .unwrap_or_else(|| panic!("{what}: no proxy span in {spans:#?}"))
}

fn service_span<'a>(spans: &'a [BackendSpan], service: &str, what: &str) -> &'a BackendSpan {
    spans
        .iter()
        .find(|s| s.service == service && s.kind == "SERVER")
        .unwrap_or_else(|| panic!("{what}: no {service} SERVER span in {spans:#?}"))
}

/// The checks every backend must pass, whichever format it speaks.
fn assert_traces(
    backend: &str,
    traces: &BTreeMap<String, Vec<BackendSpan>>,
    sent: &BTreeMap<&'static str, Sent>,
) {
    for (label, s) in sent {
        let what = format!("{backend}/{label}");
        let trace_id = s
            .trace_id()
            .unwrap_or_else(|| panic!("{what}: no trace id"));
        // The trace id returned to the client is the trace's (and the client's own when it sent one).
        assert_eq!(
            s.returned_trace_id().as_deref(),
            Some(trace_id.as_str()),
            "{what}: x-trace-id"
        );
        let spans = traces.get(&trace_id).map(Vec::as_slice).unwrap_or(&[]);
        if !s.scenario.expect_kept {
            assert!(
                spans.is_empty(),
                "{what}: an unsampled successful request was exported: {spans:#?}"
            );
            continue;
        }
        assert!(
            spans.len() >= s.scenario.expect_spans,
            "{what}: {} of {} spans: {spans:#?}",
            spans.len(),
            s.scenario.expect_spans
        );
        let proxy = proxy_span(spans, &what);
        let upstream = service_span(spans, s.scenario.upstream_service, &what);
        assert_eq!(
            proxy.kind, s.scenario.proxy_kind,
            "{what}: SERVER on the ingress listener, CLIENT on the egress one"
        );
        let expected_service = if s.scenario.proxy_kind == "CLIENT" {
            "envoy-egress"
        } else {
            "envoy-ingress"
        };
        assert_eq!(
            proxy.service, expected_service,
            "{what}: service.name from the listener's filter config"
        );
        assert_eq!(
            upstream.parent_id, proxy.span_id,
            "{what}: the service span is a child of the proxy span"
        );
        if s.scenario.proxy_kind == "SERVER" {
            // The shipped ingress config knows the demo's route templates, so proxy and service
            // name the operation alike ("GET /api/orders/{id}", "demo.v1.Greeter/SayHello").
            assert_eq!(
                proxy.name, upstream.name,
                "{what}: proxy and service span names agree"
            );
        }
        match &s.scenario.client_parent {
            Some(client) => assert_eq!(
                proxy.parent_id,
                hex(&client.parent_id),
                "{what}: the client's context is continued"
            ),
            None => assert!(
                proxy.parent_id.is_empty(),
                "{what}: a new trace starts at the proxy"
            ),
        }
        for child in spans
            .iter()
            .filter(|sp| sp.service == upstream.service && sp.span_id != upstream.span_id)
        {
            assert_eq!(
                child.parent_id, upstream.span_id,
                "{what}: INTERNAL spans hang under the service span"
            );
        }
    }

    // gRPC: status codes (and the failure's message) on the proxy and the service spans.
    let spans_of = |label: &str| &traces[&sent[label].trace_id().expect("trace id")];
    let unary = spans_of("grpc-unary");
    assert_eq!(
        proxy_span(unary, "unary").tag("rpc.response.status_code"),
        Some("OK"),
        "{backend}: {unary:#?}"
    );
    assert_eq!(
        proxy_span(unary, "unary").tag("rpc.method"),
        Some("demo.v1.Greeter/SayHello")
    );
    let stream = spans_of("grpc-stream");
    assert_eq!(
        proxy_span(stream, "stream").tag("aetherflow.grpc.response_messages"),
        Some("5"),
        "{backend}: {stream:#?}"
    );
    let failed = spans_of("grpc-error");
    let proxy = proxy_span(failed, "grpc-error");
    assert_eq!(
        proxy.tag("rpc.response.status_code"),
        Some("INTERNAL"),
        "{backend}: {failed:#?}"
    );
    assert!(
        proxy.tag("error").is_some(),
        "{backend}: the INTERNAL proxy span is an error: {proxy:#?}"
    );
    let service = service_span(failed, "demo-grpc", "grpc-error");
    assert!(
        service.tags.values().any(|v| v.contains(FAIL_MESSAGE)),
        "{backend}: the grpc-message is recorded on the service span: {service:#?}"
    );
    assert!(
        failed.iter().any(|sp| !sp.service.starts_with("demo-")
            && sp.tags.values().any(|v| v.contains(FAIL_MESSAGE)))
            || proxy.tag("error").is_some(),
        "{backend}: the proxy span records the failure"
    );

    // HTTP 500: both SERVER spans are errors.
    let http500 = spans_of("http-500");
    assert_eq!(
        proxy_span(http500, "500").tag("http.response.status_code"),
        Some("500")
    );
    assert!(
        proxy_span(http500, "500").tag("error").is_some(),
        "{backend}: proxy span of a 500 is an error"
    );
    assert!(
        service_span(http500, "demo-http", "500")
            .tag("error")
            .is_some(),
        "{backend}: service span of a 500 is an error"
    );

    // The unsampled failure was recorded only (not sampled) and kept by the shim's error policy.
    let kept = spans_of("tail-kept");
    assert_eq!(
        proxy_span(kept, "tail-kept").tag("aetherflow.sampling.record_only"),
        Some("true"),
        "{backend}: {kept:#?}"
    );
    // The forced request was sampled at the proxy although the client's context was unsampled.
    let forced = spans_of("forced");
    assert_ne!(
        proxy_span(forced, "forced").tag("aetherflow.sampling.record_only"),
        Some("true"),
        "{backend}: {forced:#?}"
    );
}

fn id_triples(
    traces: &BTreeMap<String, Vec<BackendSpan>>,
    wanted: &BTreeSet<String>,
) -> BTreeSet<(String, String, String)> {
    traces
        .iter()
        .filter(|(t, _)| wanted.contains(*t))
        .flat_map(|(_, spans)| {
            spans
                .iter()
                .map(|s| (s.trace_id.clone(), s.span_id.clone(), s.parent_id.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_traces_reach_zipkin_and_jaeger() {
    let zipkin = Receiver::start().await;
    let jaeger = Receiver::start().await;
    let otlp = Receiver::start().await;
    let opts = StackOptions {
        shim_config: Some(shim_config_with_otlp(&zipkin, &jaeger, &otlp)),
        ..Default::default()
    };
    let mut stack = Stack::start(opts, &mut |_| {}).await.expect("stack starts");
    let sent = send_all(&stack).await;
    assert_answers(&sent);
    let proxy_spans = sent.len() as u64;
    if let Err(n) = stack
        .wait_proxy_spans_exported(proxy_spans, Duration::from_secs(60))
        .await
    {
        panic!(
            "the shim acknowledged {n} of {proxy_spans} proxy spans; Envoy log:\n{}",
            stack.envoy.log_tail(40)
        );
    }
    stack.envoy.assert_no_filter_failures().await;
    let shim_log = stack.shim.as_ref().map(|s| s.log()).unwrap_or_default();
    // Clean shutdown: the shim decides the traces still waiting and flushes every queue.
    assert!(
        stack.stop().await,
        "collector-shim exits 0 on SIGTERM; its log:\n{shim_log}"
    );

    let zipkin_traces = by_trace(&zipkin_spans(&zipkin.bodies("/api/v2/spans")));
    let jaeger_traces = by_trace(&jaeger_spans(&jaeger.bodies("/api/traces")));
    assert_traces("zipkin", &zipkin_traces, &sent);
    assert_traces("jaeger", &jaeger_traces, &sent);

    // The same spans, with the same ids and parent links, in both backends.
    let wanted: BTreeSet<String> = sent.values().filter_map(Sent::trace_id).collect();
    assert_eq!(
        id_triples(&zipkin_traces, &wanted),
        id_triples(&jaeger_traces, &wanted),
        "ids identical in both exports"
    );
    // The generic OTLP exporter (Tempo, a collector tier, Jaeger >= 1.35) carries the same spans.
    let otlp_traces = by_trace(&otlp_spans(&otlp.bodies("/v1/traces")));
    assert_eq!(
        id_triples(&zipkin_traces, &wanted),
        id_triples(&otlp_traces, &wanted),
        "ids identical in the OTLP export"
    );
    for spans in wanted.iter().filter_map(|t| otlp_traces.get(t)) {
        let proxy = proxy_span(spans, "otlp");
        assert!(
            proxy.kind == "SERVER" || proxy.kind == "CLIENT",
            "otlp: proxy span kind {}",
            proxy.kind
        );
        assert!(
            proxy.service.starts_with("envoy-"),
            "otlp: proxy service {}",
            proxy.service
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_when_the_collector_is_down() {
    // No shim at all: the trace_shim cluster points at a closed port.
    let mut stack = Stack::start(StackOptions::default(), &mut |_| {})
        .await
        .expect("stack starts");
    let sent = send_all(&stack).await;
    assert_answers(&sent);
    for s in sent.values() {
        assert!(
            s.returned_trace_id().is_some(),
            "{}: x-trace-id even with the collector down",
            s.scenario.label
        );
    }
    // The filter noticed and counted the failed exports instead of retrying forever or blocking.
    let failures = stack
        .envoy
        .wait_filter_metric("aetherflow_export_failures", Duration::from_secs(60), |v| {
            v > 0
        })
        .await;
    assert!(
        failures.is_ok(),
        "export failures counted; Envoy log:\n{}",
        stack.envoy.log_tail(40)
    );
    // And traffic keeps flowing afterwards.
    let again = send_all(&stack).await;
    assert_answers(&again);
    stack.envoy.assert_no_filter_failures().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_sampling_off_forced_requests_and_tail_policies_decide() {
    let zipkin = Receiver::start().await;
    let jaeger = Receiver::start().await;
    // Head sampling off at the proxy (a test-only change of the shipped filter JSON): only the force
    // header samples; everything else is record-only and lives or dies by the shim's tail policies.
    let opts = StackOptions {
        shim_config: Some(shim_config(&zipkin, &jaeger)),
        filter_edit: Some(Box::new(
            |c: &mut serde_json::Map<String, serde_json::Value>| {
                c.insert("sample_ratio".into(), serde_json::json!(0.0));
            },
        )),
        ..Default::default()
    };
    let mut stack = Stack::start(opts, &mut |_| {}).await.expect("stack starts");
    let client = DemoClient::new(Duration::from_secs(60));
    let base = stack.ingress_url();
    let mut ids = BTreeMap::new();
    for (label, path, headers) in [
        ("plain", "/api/orders", vec![]),
        ("forced", "/api/orders", vec![("x-force-trace", "1")]),
        ("failed", "/api/fail", vec![]),
        ("slow", "/api/slow?ms=400", vec![]),
    ] {
        let reply = client
            .get(&base, path, &headers)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let id = reply
            .header("x-trace-id")
            .unwrap_or_else(|| panic!("{label}: x-trace-id"))
            .to_owned();
        ids.insert(label, id);
    }
    if let Err(n) = stack
        .wait_proxy_spans_exported(4, Duration::from_secs(60))
        .await
    {
        panic!(
            "the shim acknowledged {n} of 4 proxy spans; Envoy log:\n{}",
            stack.envoy.log_tail(40)
        );
    }
    assert!(stack.stop().await, "collector-shim exits 0 on SIGTERM");

    for (backend, traces) in [
        (
            "zipkin",
            by_trace(&zipkin_spans(&zipkin.bodies("/api/v2/spans"))),
        ),
        (
            "jaeger",
            by_trace(&jaeger_spans(&jaeger.bodies("/api/traces"))),
        ),
    ] {
        let spans = |label: &str| traces.get(&ids[label]).cloned().unwrap_or_default();
        assert!(
            spans("plain").is_empty(),
            "{backend}: an unsampled fast success is dropped: {:#?}",
            spans("plain")
        );
        let forced = spans("forced");
        assert_eq!(
            forced.len(),
            3,
            "{backend}: forced trace complete (proxy, service, query): {forced:#?}"
        );
        assert!(
            forced
                .iter()
                .all(|s| s.tag("aetherflow.sampling.record_only").is_none()),
            "{backend}: forced = sampled, downstream too"
        );
        let failed = spans("failed");
        assert_eq!(
            failed.len(),
            3,
            "{backend}: the failed request is kept whole by the error policy: {failed:#?}"
        );
        assert_eq!(
            proxy_span(&failed, "failed").tag("aetherflow.sampling.record_only"),
            Some("true")
        );
        let slow = spans("slow");
        assert_eq!(
            slow.len(),
            2,
            "{backend}: the slow request is kept by the latency policy: {slow:#?}"
        );
        assert_eq!(
            proxy_span(&slow, "slow").tag("aetherflow.sampling.record_only"),
            Some("true")
        );
    }
}
