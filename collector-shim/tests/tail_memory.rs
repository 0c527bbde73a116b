//! Heap held per span in the tail buffer, counted by a global allocator (deterministic, no
//! timing): the tail window is what the shim's memory grows with under tail sampling (at 50 k
//! spans/s a 2 s window holds 100 000 spans), so its per-span cost is bounded here.
//!
//! The spans are shaped like the filter's: a server span with the 14 HTTP semantic-convention
//! and Envoy attributes the filter records, decoded from OTLP protobuf as the receiver does.
mod pipeline_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use collector_shim::config::TailConfig;
use collector_shim::model::SpanRecord;
use collector_shim::receiver::decode::{into_records, parse, Encoding, ResourceDefaults};
use collector_shim::sampler::tail::{Due, TailBuffer};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use pipeline_support::*;
use prost::Message;
use tokio::time::Instant;

/// Bytes currently allocated by this test binary.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Allocations currently live in this test binary.
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        LIVE_BLOCKS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        LIVE_BLOCKS.fetch_sub(1, Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A filter-shaped span (14 attributes) of trace `t`, span `n`.
fn filter_span(t: u32, n: u64) -> opentelemetry_proto::tonic::trace::v1::Span {
    let s = span(&trace_id(t, u64::from(t)), n, 12);
    let text = |k: &str, v: &str| kv(k, Value::StringValue(v.into()));
    let mut s = s;
    s.trace_state = "ot=th:0".into();
    s.name = "GET /api/items/{id}".into();
    s.attributes = vec![
        text("http.request.method", "GET"),
        text("url.path", &format!("/api/items/{n}")),
        text("url.scheme", "http"),
        text("http.route", "/api/items/{id}"),
        kv("http.response.status_code", Value::IntValue(200)),
        text("server.address", "shop.example.com"),
        kv("server.port", Value::IntValue(8080)),
        text("client.address", "10.1.2.3"),
        text("network.protocol.version", "1.1"),
        text(
            "user_agent.original",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 bench/1.0",
        ),
        text("envoy.route_name", "items_route"),
        text("envoy.upstream.cluster", "items"),
        text("envoy.upstream.address", "10.1.9.9:8080"),
        text("envoy.request_id", "5d4b7b0e-2f3c-4c2a-9d6e-1b2c3d4e5f60"),
    ];
    s
}

/// Traces of 1..=8 spans (mean 4.5), decoded from OTLP protobuf bodies of 512 spans.
fn received(traces: u32) -> Vec<SpanRecord> {
    let mut spans = Vec::new();
    for t in 0..traces {
        for n in 0..=u64::from(t % 8) {
            spans.push(filter_span(t, n));
        }
    }
    let defaults = ResourceDefaults::default();
    let mut out = Vec::with_capacity(spans.len());
    for chunk in spans.chunks(512) {
        let body = request("edge-proxy", chunk.to_vec()).encode_to_vec();
        out.extend(into_records(parse(&body, Encoding::Protobuf).unwrap(), &defaults).spans);
    }
    out
}

fn key(s: &SpanRecord) -> [u8; 16] {
    s.span.trace_id[..].try_into().unwrap()
}

#[test]
fn a_held_span_costs_little_heap_and_comes_back_whole() {
    let traces = 4_000;
    let records = received(traces);
    let n = records.len();
    let expected: Vec<_> = records.iter().map(|r| r.span.clone()).collect();
    let cfg = TailConfig {
        num_traces: 1_000_000,
        max_spans: 10_000_000,
        ..TailConfig::default()
    };
    let mut buffer = TailBuffer::new(cfg);
    let mut evicted: Vec<Due> = Vec::new();
    let now = Instant::now();

    // What the received spans themselves occupy, then what is live once they are all held
    // (the records are moved in; whatever the buffer keeps of them counts).
    let before_records = LIVE.load(Ordering::SeqCst);
    drop(records);
    let baseline = LIVE.load(Ordering::SeqCst);
    let baseline_blocks = LIVE_BLOCKS.load(Ordering::SeqCst);
    let decoded_per_span = (before_records - baseline) as f64 / n as f64;
    let records = received(traces);
    let with_records = LIVE.load(Ordering::SeqCst);
    for r in records {
        let id = key(&r);
        buffer.hold(id, r, now, &mut evicted);
    }
    let held = LIVE.load(Ordering::SeqCst);
    let held_per_span = (held - with_records) as f64 / n as f64 + decoded_per_span;
    // Live allocations once the decoded spans are gone: the buffer's (a list per trace, the
    // arena's chunks) and the shared resources and scopes; none per span, which is what keeps
    // malloc's overhead and its CPU out of the window.
    let blocks_per_span = (LIVE_BLOCKS.load(Ordering::SeqCst) - baseline_blocks) as f64 / n as f64;
    eprintln!(
        "{n} spans: decoded {decoded_per_span:.0} B/span, held in the tail buffer {held_per_span:.0} B/span \
         in {blocks_per_span:.2} allocations/span"
    );
    assert!(evicted.is_empty());
    assert_eq!(buffer.spans_held(), n);

    // Every span comes back as received, in its trace, in arrival order.
    let mut due = Vec::new();
    buffer.take_all(&mut due);
    let back: Vec<_> = due
        .into_iter()
        .flat_map(|d| d.spans)
        .map(|r| r.span)
        .collect();
    assert_eq!(back.len(), expected.len());
    let mut sorted_back = back.clone();
    let mut sorted_expected = expected.clone();
    let order =
        |s: &opentelemetry_proto::tonic::trace::v1::Span| (s.trace_id.clone(), s.span_id.clone());
    sorted_back.sort_by_key(order);
    sorted_expected.sort_by_key(order);
    assert!(sorted_back == sorted_expected);

    assert!(
        blocks_per_span <= 0.5,
        "the buffer keeps {blocks_per_span:.2} allocations per held span"
    );
    assert!(
        held_per_span <= 800.0,
        "a held span costs {held_per_span:.0} B of heap (decoded: {decoded_per_span:.0} B)"
    );
}
