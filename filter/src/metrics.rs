//! The filter's metrics through the proxy-wasm metrics ABI (Envoy shows them as
//! `wasmcustom.<name>`); the names and kinds are the core's [`Metric`] list, shared with the
//! native form.

use crate::host;
use crate::host::MetricType;
use aetherflow_core::metrics::{Kind, Metric};
use aetherflow_core::stream::Event;
use std::cell::Cell;

/// Metric ids by [`Metric::index`]; a metric the host refused to define is `None` and not
/// counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics([Option<u32>; Metric::ALL.len()]);

impl Metrics {
    /// Defines every metric (once per VM, in `on_configure`).
    pub fn define() -> Metrics {
        let mut ids = [None; Metric::ALL.len()];
        for m in Metric::ALL {
            let t = match m.kind() {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            ids[m.index()] = host::define_metric(t, m.name());
        }
        Metrics(ids)
    }

    /// Adds `n` to a counter.
    pub fn add(&self, m: Metric, n: u64) {
        if let (Some(id), true) = (self.0[m.index()], n > 0) {
            host::increment_metric(id, n.min(i64::MAX as u64) as i64);
        }
    }

    /// Adds one to a counter.
    pub fn inc(&self, m: Metric) {
        self.add(m, 1);
    }

    /// Sets a gauge.
    pub fn set(&self, m: Metric, v: u64) {
        if let Some(id) = self.0[m.index()] {
            host::record_metric(id, v);
        }
    }
}

/// Counts of the request path, kept in the VM and pushed to the host at each root tick
/// (`Pending::publish`): an `increment_metric` host call per request and counter cost about
/// as much as the filter's own work, and a counter read from `/stats` lags by at most one tick
/// (<= 100 ms). The root publishes before it exports, so a span that reached the collector
/// was already counted as started.
#[derive(Debug, Default)]
pub struct Pending([Cell<u64>; Metric::ALL.len()]);

impl Pending {
    /// Adds one to the pending count of `m`.
    pub fn bump(&self, m: Metric) {
        let c = &self.0[m.index()];
        c.set(c.get().saturating_add(1));
    }

    /// Counts a request-path event.
    pub fn count(&self, e: Event) {
        self.bump(e.metric());
    }

    /// Adds every pending count to its host counter (one host call per non-zero count).
    pub fn publish(&self, m: &Metrics) {
        for metric in Metric::ALL {
            m.add(metric, self.0[metric.index()].replace(0));
        }
    }
}
