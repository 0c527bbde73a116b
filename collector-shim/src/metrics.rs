//! Self-telemetry: every counter the shim exposes on `/metrics` (Prometheus text format).
//!
//! One `Metrics` value is built per run and shared by every stage; each stage bumps the
//! families it owns. Names are listed in `docs/shim.md`.
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::exporter::ExporterTelemetry;
use crate::red::{Format, RedMetrics};

/// Label set carrying only a reason (`refused`, `dropped` without an exporter).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why the request or span was refused or dropped.
    pub reason: String,
}

/// Label set for per-exporter series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterLabel {
    /// The exporter's name (`zipkin`, `otlp`, ...; `#2` appended for a second of a kind).
    pub exporter: String,
}

/// Label set for drops, which happen both before and after the fan-out to exporters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// Why the spans were dropped (`queue_full`, `export_failed`, `shutdown_timeout`, ...).
    pub reason: String,
    /// The exporter whose queue or backend dropped them; empty before the fan-out.
    pub exporter: String,
}

/// Label set for sampling decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SampleLabel {
    /// The policy that decided (`probability`, `record_only`, `error`, `latency`, ...).
    pub policy: String,
    /// `in` (kept) or `out` (dropped by sampling, which is not a fault).
    pub decision: String,
}

/// Label set for the receiving transport.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    /// `http_protobuf`, `http_json` or `grpc`.
    pub transport: String,
}

/// Label set for export errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportErrorLabel {
    /// The exporter that failed.
    pub exporter: String,
    /// `retryable`, `throttled`, `non_retryable` or `timeout` (the last attempt's class).
    pub kind: String,
}

/// Reasons a receiver refuses a request (`shim_requests_refused_total{reason}`).
pub const REFUSAL_REASONS: &[&str] = &[
    "unsupported_media_type",
    "body_too_large",
    "body_read_error",
    "body_read_timeout",
    "unsupported_encoding",
    "malformed",
    "queue_full",
    "too_many_spans",
    "shutting_down",
    "not_durable",
];

/// Classes of failed export calls (`shim_export_errors_total{exporter,kind}`).
pub const EXPORT_ERROR_KINDS: &[&str] = &["retryable", "throttled", "non_retryable", "timeout"];

/// Reasons spans are dropped after the fan-out (`shim_spans_dropped_total{reason,exporter}`).
pub const EXPORTER_DROP_REASONS: &[&str] = &[
    "queue_full",
    "export_failed",
    "shutdown_timeout",
    "exporter_stopped",
];

fn export_latency_histogram() -> Histogram {
    // 1 ms .. ~16 s: a loopback backend answers in ms, a struggling one near the export timeout.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

/// Every metric family of the shim, cheap to clone (all handles are `Arc`s inside).
#[derive(Clone)]
pub struct Metrics {
    /// Where the families are registered; encoded by `/metrics`.
    registry: Arc<Registry>,
    /// Spans accepted by a receiver, by transport.
    pub spans_received: Family<TransportLabel, Counter>,
    /// Requests refused by a receiver (4xx/5xx), by reason.
    pub requests_refused: Family<ReasonLabel, Counter>,
    /// Spans refused by a receiver (in refused requests or rejected in a partial success).
    pub spans_refused: Family<ReasonLabel, Counter>,
    /// Sampling decisions in spans, by policy and decision.
    pub spans_sampled: Family<SampleLabel, Counter>,
    /// Spans in each exporter's queue right now.
    pub queue_length: Family<ExporterLabel, Gauge>,
    /// Spans accepted by each backend.
    pub spans_exported: Family<ExporterLabel, Counter>,
    /// Failed export calls (after the exporter's own retries), by exporter and class.
    pub export_errors: Family<ExportErrorLabel, Counter>,
    /// Retries counted by the exporters themselves (`ExporterTelemetry::retries`).
    pub export_retries: Family<ExporterLabel, Counter>,
    /// Failed attempts counted by the exporters themselves (`ExporterTelemetry::failed_attempts`).
    pub export_failed_attempts: Family<ExporterLabel, Counter>,
    /// Spans a backend accepted the request for but rejected (OTLP partial success).
    pub export_rejected_spans: Family<ExporterLabel, Counter>,
    /// Spans an exporter dropped itself (e.g. the file exporter at its size cap).
    pub exporter_dropped_spans: Family<ExporterLabel, Counter>,
    /// Spans lost after being accepted, by reason and exporter.
    pub spans_dropped: Family<DropLabel, Counter>,
    /// Time an export call took, by exporter (seconds).
    pub export_duration: Family<ExporterLabel, Histogram>,
    /// The probability the consistent sampler applies now (static or dynamic).
    pub sampling_probability: Gauge<f64, AtomicU64>,
    /// Traces the tail sampler holds waiting for their decision.
    pub tail_traces_held: Gauge,
    /// Spans the tail sampler holds waiting for their decision.
    pub tail_spans_held: Gauge,
    /// Traces decided before their window ended because the buffer was full.
    pub tail_early_evictions: Counter,
    /// Spans waiting between the receivers and the sampler.
    pub ingest_queue_spans: Gauge,
    /// HTTP connections open on the receiver and admin listeners.
    pub connections_open: Gauge,
    /// HTTP connections closed at once because `receiver.max_connections` were open.
    pub connections_refused: Counter,
    /// Failed `accept` calls on the receiver and admin listeners (out of file descriptors and
    /// the like; the listener waits 50 ms and goes on).
    pub accept_errors: Counter,
    /// 1 while `/readyz` answers 200, 0 before start-up ends and while shutting down (a
    /// separate admin listener keeps serving `/metrics` then, so alerts can see it).
    pub ready: Gauge,
    /// The RED stage, once the pipeline has built it (its families are encoded with the rest).
    red: Arc<OnceLock<RedMetrics>>,
    /// The durable queue's families (`shim_storage_*`).
    pub storage: crate::storage::StorageMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Build and register every family.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("shim");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            spans_received: Family::default(),
            requests_refused: Family::default(),
            spans_refused: Family::default(),
            spans_sampled: Family::default(),
            queue_length: Family::default(),
            spans_exported: Family::default(),
            export_errors: Family::default(),
            export_retries: Family::default(),
            export_failed_attempts: Family::default(),
            export_rejected_spans: Family::default(),
            exporter_dropped_spans: Family::default(),
            spans_dropped: Family::default(),
            export_duration: Family::new_with_constructor(export_latency_histogram),
            sampling_probability: Gauge::default(),
            tail_traces_held: Gauge::default(),
            tail_spans_held: Gauge::default(),
            tail_early_evictions: Counter::default(),
            ingest_queue_spans: Gauge::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            accept_errors: Counter::default(),
            ready: Gauge::default(),
            red: Arc::default(),
            storage: crate::storage::StorageMetrics::default(),
        };
        r.register(
            "spans_received",
            "Spans accepted by a receiver",
            m.spans_received.clone(),
        );
        r.register(
            "requests_refused",
            "Requests refused by a receiver, by reason",
            m.requests_refused.clone(),
        );
        r.register(
            "spans_refused",
            "Spans refused by a receiver, by reason",
            m.spans_refused.clone(),
        );
        r.register(
            "spans_sampled",
            "Sampling decisions in spans, by policy and decision (in/out)",
            m.spans_sampled.clone(),
        );
        r.register(
            "queue_length",
            "Spans waiting in each exporter's queue",
            m.queue_length.clone(),
        );
        r.register(
            "spans_exported",
            "Spans accepted by each backend",
            m.spans_exported.clone(),
        );
        r.register(
            "export_errors",
            "Export calls that failed after the exporter's retries",
            m.export_errors.clone(),
        );
        r.register(
            "export_retries",
            "Export attempts after the first one",
            m.export_retries.clone(),
        );
        r.register(
            "export_failed_attempts",
            "Export attempts that failed, retried or not",
            m.export_failed_attempts.clone(),
        );
        r.register(
            "export_rejected_spans",
            "Spans a backend rejected inside an accepted request (partial success)",
            m.export_rejected_spans.clone(),
        );
        r.register(
            "exporter_dropped_spans",
            "Spans an exporter dropped itself (e.g. file size cap)",
            m.exporter_dropped_spans.clone(),
        );
        r.register(
            "spans_dropped",
            "Accepted spans lost, by reason and exporter",
            m.spans_dropped.clone(),
        );
        r.register_with_unit(
            "export_duration",
            "Duration of one export call",
            prometheus_client::registry::Unit::Seconds,
            m.export_duration.clone(),
        );
        r.register(
            "sampling_probability",
            "Probability the consistent sampler applies now",
            m.sampling_probability.clone(),
        );
        r.register(
            "tail_traces_held",
            "Traces held by the tail sampler awaiting a decision",
            m.tail_traces_held.clone(),
        );
        r.register(
            "tail_spans_held",
            "Spans held by the tail sampler awaiting a decision",
            m.tail_spans_held.clone(),
        );
        r.register(
            "tail_early_evictions",
            "Traces decided before their decision window ended (buffer full)",
            m.tail_early_evictions.clone(),
        );
        r.register(
            "ingest_queue_spans",
            "Spans waiting between the receivers and the sampler",
            m.ingest_queue_spans.clone(),
        );
        r.register(
            "connections_open",
            "HTTP connections open on the receiver and admin listeners",
            m.connections_open.clone(),
        );
        r.register(
            "connections_refused",
            "HTTP connections closed at once because receiver.max_connections were open",
            m.connections_refused.clone(),
        );
        r.register(
            "accept_errors",
            "Failed accept calls on the receiver and admin listeners (such as out of file descriptors)",
            m.accept_errors.clone(),
        );
        r.register(
            "ready",
            "1 while the shim takes spans (/readyz 200), 0 while starting or shutting down",
            m.ready.clone(),
        );
        m.storage.register(&mut r);
        // Every refusal reason exists from the start at 0, so alerts can be written on it.
        for reason in REFUSAL_REASONS {
            let l = ReasonLabel {
                reason: reason.to_string(),
            };
            drop(m.requests_refused.get_or_create(&l));
            drop(m.spans_refused.get_or_create(&l));
        }
        drop(m.spans_refused.get_or_create(&ReasonLabel {
            reason: "invalid_span".into(),
        }));
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// OpenMetrics text of every family (RED exemplars included).
    pub fn encode(&self) -> String {
        self.encode_as(Format::OpenMetrics)
    }

    /// Every family in the format a scrape negotiated.
    pub fn encode_as(&self, format: Format) -> String {
        let mut om = String::new();
        // Encoding into a String cannot fail except on a formatter error, which `String` never raises.
        let _ = prometheus_client::encoding::text::encode(&mut om, &self.registry);
        let mut out = match format {
            Format::OpenMetrics => {
                // The RED families go before the closing `# EOF`.
                let end = om.strip_suffix("# EOF\n").map_or(om.len(), str::len);
                om.truncate(end);
                om
            }
            Format::Classic => {
                let mut out = String::with_capacity(om.len());
                crate::red::encode::openmetrics_to_classic(&om, &mut out);
                out
            }
        };
        if let Some(red) = self.red.get() {
            red.write(&mut out, format);
        }
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }

    /// Makes `red`'s families part of this registry's exposition (once per run).
    pub fn attach_red(&self, red: RedMetrics) {
        let _ = self.red.set(red);
    }

    /// The RED stage attached to this registry, if any.
    pub fn red(&self) -> Option<&RedMetrics> {
        self.red.get()
    }

    /// The counters an exporter updates itself, bound to this exporter's label. Called once
    /// per exporter at start-up; its labelled series (errors by kind, drops by reason) are
    /// created here at 0 so they are exported before the first failure.
    pub fn exporter_telemetry(&self, exporter: &str) -> ExporterTelemetry {
        let l = ExporterLabel {
            exporter: exporter.to_string(),
        };
        for kind in EXPORT_ERROR_KINDS {
            drop(self.export_errors.get_or_create(&ExportErrorLabel {
                exporter: exporter.to_string(),
                kind: kind.to_string(),
            }));
        }
        for reason in EXPORTER_DROP_REASONS {
            drop(self.spans_dropped.get_or_create(&DropLabel {
                reason: reason.to_string(),
                exporter: exporter.to_string(),
            }));
        }
        drop(self.spans_exported.get_or_create(&l));
        drop(self.queue_length.get_or_create(&l));
        ExporterTelemetry {
            retries: self.export_retries.get_or_create(&l).clone(),
            failed_attempts: self.export_failed_attempts.get_or_create(&l).clone(),
            rejected_spans: self.export_rejected_spans.get_or_create(&l).clone(),
            dropped_spans: self.exporter_dropped_spans.get_or_create(&l).clone(),
        }
    }

    /// Count `n` spans dropped for `reason` (exporter "" when before the fan-out).
    pub fn dropped(&self, reason: &str, exporter: &str, n: u64) {
        self.drop_counter(reason, exporter).inc_by(n);
    }

    /// The series `shim_spans_dropped_total{reason, exporter}`, for a caller that counts on it
    /// often (a handle shares the series).
    pub fn drop_counter(&self, reason: &str, exporter: &str) -> Counter {
        self.spans_dropped
            .get_or_create(&DropLabel {
                reason: reason.to_string(),
                exporter: exporter.to_string(),
            })
            .clone()
    }

    /// The series `shim_export_errors_total{exporter, kind}`.
    pub fn export_errors_of(&self, exporter: &str, kind: &str) -> Counter {
        self.export_errors
            .get_or_create(&ExportErrorLabel {
                exporter: exporter.to_string(),
                kind: kind.to_string(),
            })
            .clone()
    }

    /// Count one refused request and its spans (`spans` may be 0 when unknown).
    pub fn refused(&self, reason: &str, spans: u64) {
        let l = ReasonLabel {
            reason: reason.to_string(),
        };
        self.requests_refused.get_or_create(&l).inc();
        if spans > 0 {
            self.spans_refused.get_or_create(&l).inc_by(spans);
        }
    }

    /// Count a sampling decision covering `n` spans.
    pub fn sampled(&self, policy: &str, kept: bool, n: u64) {
        if n == 0 {
            return;
        }
        self.spans_sampled
            .get_or_create(&SampleLabel {
                policy: policy.to_string(),
                decision: if kept { "in" } else { "out" }.to_string(),
            })
            .inc_by(n);
    }

    /// Read a counter value (tests and the shutdown summary).
    pub fn dropped_total(&self, reason: &str, exporter: &str) -> u64 {
        self.drop_counter(reason, exporter).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_counters_show_under_the_exporter_label() {
        let m = Metrics::new();
        let t = m.exporter_telemetry("zipkin");
        t.retries.inc_by(3);
        m.dropped("queue_full", "zipkin", 2);
        m.sampling_probability.set(0.25);
        let text = m.encode();
        assert!(
            text.contains("shim_export_retries_total{exporter=\"zipkin\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("shim_spans_dropped_total{reason=\"queue_full\",exporter=\"zipkin\"} 2"),
            "{text}"
        );
        assert!(text.contains("shim_sampling_probability 0.25"), "{text}");
    }

    #[test]
    fn labelled_series_exist_at_zero_from_the_start() {
        let m = Metrics::new();
        m.exporter_telemetry("otlp");
        let text = m.encode();
        for line in [
            "shim_export_errors_total{exporter=\"otlp\",kind=\"non_retryable\"} 0",
            "shim_export_errors_total{exporter=\"otlp\",kind=\"timeout\"} 0",
            "shim_spans_dropped_total{reason=\"export_failed\",exporter=\"otlp\"} 0",
            "shim_requests_refused_total{reason=\"queue_full\"} 0",
            "shim_spans_refused_total{reason=\"malformed\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }
}
