//! The filter's metrics, named once for every adapter. Envoy shows them with the adapter's
//! prefix: `wasmcustom.<name>` for the Wasm form, `dynamicmodulescustom.<name>` for the
//! native one (see each adapter's docs).

use crate::stream::Event;

/// Counter or gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// Set to the current value.
    Gauge,
}

/// Every metric of the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Requests the filter traced (a decision was made).
    SpansStarted,
    /// Requests sampled (flag 0x01).
    SpansSampled,
    /// Record-only spans (unsampled, recorded for tail policies).
    SpansRecordOnly,
    /// Spans acknowledged with 2xx by the collector.
    SpansExported,
    /// Spans dropped because the span buffer was full.
    SpansDroppedBufferFull,
    /// Spans lost because their export request failed.
    SpansDroppedExportFailed,
    /// Export requests sent.
    ExportRequests,
    /// Export requests that failed (dispatch error, timeout, non-2xx).
    ExportFailures,
    /// Invalid or repeated `traceparent`.
    InvalidTraceparent,
    /// Invalid `tracestate` lists (dropped), or lists that repeated a key (repaired).
    InvalidTracestate,
    /// Baggage with invalid members, or over the W3C limits (trimmed).
    InvalidBaggage,
    /// Spans in the buffer now.
    BufferedSpans,
    /// Faults caught in the filter itself (native form: a panic caught at a hook); the
    /// request continued untraced.
    InternalErrors,
}

impl Metric {
    /// Every metric, in a fixed order (adapters index their ids by [`Metric::index`]).
    pub const ALL: [Metric; 13] = [
        Metric::SpansStarted,
        Metric::SpansSampled,
        Metric::SpansRecordOnly,
        Metric::SpansExported,
        Metric::SpansDroppedBufferFull,
        Metric::SpansDroppedExportFailed,
        Metric::ExportRequests,
        Metric::ExportFailures,
        Metric::InvalidTraceparent,
        Metric::InvalidTracestate,
        Metric::InvalidBaggage,
        Metric::BufferedSpans,
        Metric::InternalErrors,
    ];

    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::SpansStarted => "aetherflow_spans_started",
            Metric::SpansSampled => "aetherflow_spans_sampled",
            Metric::SpansRecordOnly => "aetherflow_spans_record_only",
            Metric::SpansExported => "aetherflow_spans_exported",
            Metric::SpansDroppedBufferFull => "aetherflow_spans_dropped_buffer_full",
            Metric::SpansDroppedExportFailed => "aetherflow_spans_dropped_export_failed",
            Metric::ExportRequests => "aetherflow_export_requests",
            Metric::ExportFailures => "aetherflow_export_failures",
            Metric::InvalidTraceparent => "aetherflow_invalid_traceparent",
            Metric::InvalidTracestate => "aetherflow_invalid_tracestate",
            Metric::InvalidBaggage => "aetherflow_invalid_baggage",
            Metric::BufferedSpans => "aetherflow_buffered_spans",
            Metric::InternalErrors => "aetherflow_internal_errors",
        }
    }

    /// Counter or gauge.
    pub fn kind(self) -> Kind {
        match self {
            Metric::BufferedSpans => Kind::Gauge,
            _ => Kind::Counter,
        }
    }

    /// Position in [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Event {
    /// The counter an event adds one to.
    pub fn metric(self) -> Metric {
        match self {
            Event::SpanStarted => Metric::SpansStarted,
            Event::SpanSampled => Metric::SpansSampled,
            Event::SpanRecordOnly => Metric::SpansRecordOnly,
            Event::InvalidTraceparent => Metric::InvalidTraceparent,
            Event::InvalidTracestate => Metric::InvalidTracestate,
            Event::InvalidBaggage => Metric::InvalidBaggage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert!(m.name().starts_with("aetherflow_"));
        }
        let mut names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
    }
}
