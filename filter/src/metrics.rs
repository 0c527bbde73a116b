//! The filter's metrics (proxy-wasm metrics ABI; Envoy shows them as `wasmcustom.<name>`).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::cell::Cell;

/// Metric ids; a metric the host refused to define is `None` and silently not counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics {
    /// Requests the filter traced (a decision was made).
    pub spans_started: Option<u32>,
    /// Requests sampled (flag 0x01).
    pub spans_sampled: Option<u32>,
    /// Record-only spans (unsampled, recorded for tail policies).
    pub spans_record_only: Option<u32>,
    /// Spans acknowledged with 2xx by the collector.
    pub spans_exported: Option<u32>,
    /// Spans dropped because the per-VM buffer was full.
    pub spans_dropped_buffer_full: Option<u32>,
    /// Spans lost because their export request failed.
    pub spans_dropped_export_failed: Option<u32>,
    /// Export requests dispatched.
    pub export_requests: Option<u32>,
    /// Export requests that failed (dispatch error, timeout, non-2xx).
    pub export_failures: Option<u32>,
    /// Invalid or repeated `traceparent`.
    pub invalid_traceparent: Option<u32>,
    /// Invalid `tracestate` lists (dropped).
    pub invalid_tracestate: Option<u32>,
    /// Baggage with invalid members, or over the W3C limits (trimmed).
    pub invalid_baggage: Option<u32>,
    /// Spans in the buffer now (gauge).
    pub buffered_spans: Option<u32>,
}

fn define(t: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(t, name).ok()
}

impl Metrics {
    /// Defines every metric (once per VM, in `on_configure`).
    pub fn define() -> Metrics {
        let c = |n| define(MetricType::Counter, n);
        Metrics {
            spans_started: c("aetherflow_spans_started"),
            spans_sampled: c("aetherflow_spans_sampled"),
            spans_record_only: c("aetherflow_spans_record_only"),
            spans_exported: c("aetherflow_spans_exported"),
            spans_dropped_buffer_full: c("aetherflow_spans_dropped_buffer_full"),
            spans_dropped_export_failed: c("aetherflow_spans_dropped_export_failed"),
            export_requests: c("aetherflow_export_requests"),
            export_failures: c("aetherflow_export_failures"),
            invalid_traceparent: c("aetherflow_invalid_traceparent"),
            invalid_tracestate: c("aetherflow_invalid_tracestate"),
            invalid_baggage: c("aetherflow_invalid_baggage"),
            buffered_spans: define(MetricType::Gauge, "aetherflow_buffered_spans"),
        }
    }
}

/// Adds `n` to a counter.
pub fn add(id: Option<u32>, n: u64) {
    if let (Some(id), true) = (id, n > 0) {
        let _ = hostcalls::increment_metric(id, n.min(i64::MAX as u64) as i64);
    }
}

/// Adds one to a counter.
pub fn inc(id: Option<u32>) {
    add(id, 1);
}

/// Sets a gauge.
pub fn set(id: Option<u32>, v: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, v);
    }
}

/// Counts of the request path, kept in the VM and pushed to the host at each root tick
/// (`Pending::publish`): an `increment_metric` host call per request and counter cost about
/// as much as the filter's own work, and a counter read from `/stats` lags by at most one tick
/// (<= 100 ms). The root publishes before it exports, so a span that reached the collector
/// was already counted as started.
#[derive(Debug, Default)]
pub struct Pending {
    /// `aetherflow_spans_started`.
    pub spans_started: Cell<u64>,
    /// `aetherflow_spans_sampled`.
    pub spans_sampled: Cell<u64>,
    /// `aetherflow_spans_record_only`.
    pub spans_record_only: Cell<u64>,
    /// `aetherflow_spans_dropped_buffer_full`.
    pub spans_dropped_buffer_full: Cell<u64>,
    /// `aetherflow_invalid_traceparent`.
    pub invalid_traceparent: Cell<u64>,
    /// `aetherflow_invalid_tracestate`.
    pub invalid_tracestate: Cell<u64>,
    /// `aetherflow_invalid_baggage`.
    pub invalid_baggage: Cell<u64>,
}

/// Adds one to a pending count.
pub fn bump(c: &Cell<u64>) {
    c.set(c.get().saturating_add(1));
}

impl Pending {
    /// Adds every pending count to its host counter (one host call per non-zero count).
    pub fn publish(&self, m: &Metrics) {
        for (c, id) in [
            (&self.spans_started, m.spans_started),
            (&self.spans_sampled, m.spans_sampled),
            (&self.spans_record_only, m.spans_record_only),
            (&self.spans_dropped_buffer_full, m.spans_dropped_buffer_full),
            (&self.invalid_traceparent, m.invalid_traceparent),
            (&self.invalid_tracestate, m.invalid_tracestate),
            (&self.invalid_baggage, m.invalid_baggage),
        ] {
            add(id, c.replace(0));
        }
    }
}
