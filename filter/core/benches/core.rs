//! Criterion micro-benchmarks of the filter's per-request work, run natively (`make bench`).
//!
//! Inside Envoy the same code runs as wasm under V8, so absolute figures differ; these show
//! where the per-request time goes and catch regressions. Every group reports elements/s, so
//! "spans/s on one core" is read off directly.

use std::hint::black_box;

use aetherflow_core::config::Config;
use aetherflow_core::head::{decide, Policy};
use aetherflow_core::ids::IdGenerator;
use aetherflow_core::otlp;
use aetherflow_core::propagation::traceparent::TraceParent;
use aetherflow_core::propagation::{self, Extracted, InboundFormat};
use aetherflow_core::semconv::{EnvoyFacts, Exchange};
use aetherflow_core::span::{Span, SpanKind};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
const TRACESTATE: &str = "ot=th:8;rv:a3ce929d0e0e47,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

/// Request headers as Envoy hands them to the filter (lowercase names).
fn headers(with_parent: bool) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = [
        (":method", "GET"),
        (":path", "/api/items/42?verbose=1"),
        (":scheme", "http"),
        (":authority", "shop.example.com:8080"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("x-request-id", "5d4b7b0e-2f3c-4c2a-9d6e-1b2c3d4e5f60"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if with_parent {
        h.push(("traceparent".into(), TRACEPARENT.into()));
        h.push(("tracestate".into(), TRACESTATE.into()));
    }
    h
}

/// What the adapter gathers about a typical proxied request by the end of the stream.
fn exchange() -> Exchange {
    Exchange {
        method: "GET".into(),
        path: "/api/items/42?verbose=1".into(),
        scheme: "http".into(),
        authority: "shop.example.com:8080".into(),
        protocol: Some("HTTP/1.1".into()),
        user_agent: Some("curl/8.5.0".into()),
        client_address: Some("10.1.2.3".into()),
        route: None,
        status: Some(200),
        envoy: EnvoyFacts {
            route_name: Some("items_route".into()),
            upstream_cluster: Some("items".into()),
            upstream_address: Some("10.1.9.9:8080".into()),
            response_flags: Some("-".into()),
            request_id: Some("5d4b7b0e-2f3c-4c2a-9d6e-1b2c3d4e5f60".into()),
            from_upstream: Some(true),
        },
        ..Default::default()
    }
}

/// The filter builds its `Exchange` from the request's headers (one copy of each kept value)
/// and moves it into the span: the clone here stands for that copy.
fn finished_span(policy: &Policy, ids: &mut IdGenerator, ex: &Exchange) -> Span {
    let extracted = propagation::extract(&headers(true), &policy.inbound);
    decide(policy, extracted, false, ids).to_span(ex.clone(), SpanKind::Server, 256, 1_000, 51_000)
}

fn benches(c: &mut Criterion) {
    let cfg = Config::default();
    let policy = Policy::from_config(&cfg);
    let resource = otlp::resource(&cfg);
    let ex = exchange();
    let with_parent = headers(true);
    let without_parent = headers(false);
    let formats = [InboundFormat::W3c, InboundFormat::B3, InboundFormat::Jaeger];

    let mut g = c.benchmark_group("filter_core");
    g.throughput(Throughput::Elements(1));
    g.bench_function("traceparent_parse", |b| {
        b.iter(|| TraceParent::parse(black_box(TRACEPARENT)))
    });
    g.bench_function("extract_w3c_with_tracestate", |b| {
        b.iter(|| propagation::extract(black_box(&with_parent), &formats))
    });
    g.bench_function("extract_no_context_all_formats", |b| {
        b.iter(|| propagation::extract(black_box(&without_parent), &formats))
    });
    let mut ids = IdGenerator::from_u64(42);
    g.bench_function("sampling_decision_new_trace", |b| {
        b.iter(|| decide(&policy, Extracted::default(), false, &mut ids))
    });
    let extracted = propagation::extract(&with_parent, &formats);
    g.bench_function("sampling_decision_continue_trace", |b| {
        b.iter_batched(
            || extracted.clone(),
            |e| decide(&policy, e, false, &mut ids),
            BatchSize::SmallInput,
        )
    });
    let decision = decide(&policy, extracted.clone(), false, &mut ids);
    g.bench_function("span_build", |b| {
        b.iter_batched(
            || ex.clone(),
            |ex| decision.to_span(black_box(ex), SpanKind::Server, 256, 1_000, 51_000),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("request_path_extract_decide_build", |b| {
        b.iter(|| finished_span(&policy, &mut ids, black_box(&ex)))
    });
    g.finish();

    // OTLP encoding per span, in the batch size the filter flushes by default (256), with the
    // encoder the filter keeps (resource and scope encoded once).
    let encoder = otlp::Encoder::new(&resource);
    let batch: Vec<Span> = (0..256)
        .map(|_| finished_span(&policy, &mut ids, &ex))
        .collect();
    let mut g = c.benchmark_group("filter_core_otlp");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("otlp_encode_batch_256", |b| {
        b.iter(|| encoder.encode(black_box(&batch)))
    });
    g.bench_function("span_build_and_otlp_encode_batch_256", |b| {
        b.iter(|| {
            let spans: Vec<Span> = (0..256)
                .map(|_| decision.to_span(ex.clone(), SpanKind::Server, 256, 1_000, 51_000))
                .collect();
            encoder.encode(&spans)
        })
    });
    g.finish();
}

criterion_group! {
    name = core;
    // Short runs: `make bench` must stay within its time budget on 2 shared cores.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(core);
