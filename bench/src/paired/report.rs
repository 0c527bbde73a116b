//! What the paired slices report: one sample per configuration and slice, the rows computed
//! from them (each slice against the baseline's and the OpenTelemetry tracer's beside it, and
//! each A/B half, `native-b` or `filter-b`, against `native` or `filter`), and the printed
//! table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::PairedPlan;
use crate::envoy::Tracer;
use crate::loadgen::Workload;
use crate::stats::Quartiles;

/// One configuration's load in one slice.
#[derive(Clone, Debug, Serialize)]
pub struct SliceSample {
    /// Which configuration.
    pub tracer: Tracer,
    /// Which traffic.
    pub workload: Workload,
    /// Which slice (0-based).
    pub slice: usize,
    /// Envoy CPU time (user + system, all threads) over the load and the settle, per request.
    pub envoy_cpu_us_per_request: f64,
    /// The part of it on Envoy's worker threads (the request path); the rest ran on the
    /// main thread (export) and Envoy's other threads.
    pub worker_cpu_us_per_request: f64,
    /// Requests answered as expected.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
}

/// One configuration's figures for one workload.
#[derive(Clone, Debug, Serialize)]
pub struct PairedRow {
    /// Which configuration.
    pub tracer: Tracer,
    /// Which traffic.
    pub workload: Workload,
    /// Envoy CPU per request.
    pub envoy_cpu_us_per_request: Option<Quartiles>,
    /// Minus the baseline's in the same slice.
    pub added_cpu_us_per_request: Option<Quartiles>,
    /// The part of the addition on the worker threads (request path), per slice.
    pub added_worker_cpu_us_per_request: Option<Quartiles>,
    /// The part of the addition on every other thread (export, stats), per slice.
    pub added_other_cpu_us_per_request: Option<Quartiles>,
    /// Added CPU over the OpenTelemetry tracer's added CPU in the same slice.
    pub added_ratio_to_native_otel: Option<Quartiles>,
    /// A/B halves only (`native-b`, `filter-b`): its CPU per request minus its partner's
    /// (`native`, `filter`) in the same slice,
    /// and in how many slices it was the lower of the two.
    pub minus_partner_us_per_request: Option<Quartiles>,
    /// Slices where the A/B half used less CPU per request than its partner, of those
    /// compared.
    pub lower_than_partner_in: Option<(usize, usize)>,
    /// Requests answered as expected, warm-up included.
    pub requests_ok: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// Spans the configuration should have delivered; None below 100 % head sampling (the
    /// tracers then keep different shares: Envoy's tracer its ratio, the filter every span
    /// with `record_unsampled` on).
    pub spans_expected: Option<u64>,
    /// Spans the sink decoded.
    pub spans_received: u64,
}

/// The whole run, as written to `paired.json`.
#[derive(Clone, Debug, Serialize)]
pub struct PairedReport {
    /// Format tag.
    pub schema: &'static str,
    /// When the run ended.
    pub finished_at: String,
    /// `/proc/loadavg` before and after.
    pub load_average: [String; 2],
    /// How the slices ran.
    pub plan: PairedPlan,
    /// The head-sampling ratio of every tracer.
    pub sample_ratio: f64,
    /// One row per configuration and workload.
    pub rows: Vec<PairedRow>,
    /// Every slice measurement.
    pub samples: Vec<SliceSample>,
}

impl PairedReport {
    /// No request failed and every span expected arrived.
    pub fn sound(&self) -> bool {
        self.rows.iter().all(|r| {
            r.requests_failed == 0 && r.spans_expected.is_none_or(|e| r.spans_received == e)
        })
    }
}

/// The figures of `tracer` from the slices of one workload.
pub(super) fn row(
    tracer: Tracer,
    workload: Workload,
    samples: &[SliceSample],
    (ok, failed): (u64, u64),
    (spans_expected, spans_received): (Option<u64>, u64),
) -> PairedRow {
    let by_slice = |t: Tracer, of: fn(&SliceSample) -> f64| -> BTreeMap<usize, f64> {
        samples
            .iter()
            .filter(|s| s.tracer == t)
            .map(|s| (s.slice, of(s)))
            .collect()
    };
    let total: fn(&SliceSample) -> f64 = |s| s.envoy_cpu_us_per_request;
    let worker: fn(&SliceSample) -> f64 = |s| s.worker_cpu_us_per_request;
    let other: fn(&SliceSample) -> f64 =
        |s| s.envoy_cpu_us_per_request - s.worker_cpu_us_per_request;
    let own = by_slice(tracer, total);
    let base = by_slice(Tracer::Baseline, total);
    let otel = by_slice(Tracer::NativeOtel, total);
    let minus_base = |of: fn(&SliceSample) -> f64| {
        let (own, base) = (by_slice(tracer, of), by_slice(Tracer::Baseline, of));
        let added: BTreeMap<usize, f64> = own
            .iter()
            .filter_map(|(k, v)| Some((*k, v - base.get(k)?)))
            .collect();
        added
    };
    let added = minus_base(total);
    let ratio = added.iter().filter_map(|(k, a)| {
        let o = otel.get(k)? - base.get(k)?;
        (o > 0.0).then(|| a / o)
    });
    let ab: Vec<f64> = match tracer.ab_partner() {
        Some(partner) => {
            let partner = by_slice(partner, total);
            own.iter()
                .filter_map(|(k, v)| Some(v - partner.get(k)?))
                .collect()
        }
        None => Vec::new(),
    };
    PairedRow {
        tracer,
        workload,
        minus_partner_us_per_request: Quartiles::of(ab.iter().copied()),
        lower_than_partner_in: (!ab.is_empty())
            .then(|| (ab.iter().filter(|d| **d < 0.0).count(), ab.len())),
        envoy_cpu_us_per_request: Quartiles::of(own.values().copied()),
        added_cpu_us_per_request: Quartiles::of(added.values().copied()),
        added_worker_cpu_us_per_request: Quartiles::of(minus_base(worker).into_values()),
        added_other_cpu_us_per_request: Quartiles::of(minus_base(other).into_values()),
        added_ratio_to_native_otel: Quartiles::of(ratio),
        requests_ok: ok,
        requests_failed: failed,
        spans_expected,
        spans_received,
    }
}

/// The table printed at the end of a run.
pub fn table(report: &PairedReport) -> String {
    let q = |v: &Option<Quartiles>, digits: usize| match v {
        Some(q) => format!("{:.d$} [{:.d$}, {:.d$}]", q.median, q.q1, q.q3, d = digits),
        None => "-".to_owned(),
    };
    let load = match report.plan.rate {
        Some(r) => format!("at {r:.0} req/s"),
        None => "in a closed loop".to_owned(),
    };
    let mut out = format!(
        "Envoy CPU per request {load}, {} slices per configuration (median [quartiles])\n",
        report.plan.slices
    );
    out.push_str(&format!(
        "{:<14}{:<7}{:>24}{:>24}{:>24}{:>24}{:>24}{:>16}\n",
        "configuration",
        "load",
        "µs/req",
        "added µs/req",
        "added on workers",
        "added elsewhere",
        "added vs native OTel",
        "spans"
    ));
    for r in &report.rows {
        out.push_str(&format!(
            "{:<14}{:<7}{:>24}{:>24}{:>24}{:>24}{:>24}{:>16}\n",
            r.tracer.name(),
            format!("{:?}", r.workload).to_lowercase(),
            q(&r.envoy_cpu_us_per_request, 1),
            q(&r.added_cpu_us_per_request, 1),
            q(&r.added_worker_cpu_us_per_request, 1),
            q(&r.added_other_cpu_us_per_request, 1),
            q(&r.added_ratio_to_native_otel, 2),
            match r.spans_expected {
                Some(e) => format!("{}/{e}", r.spans_received),
                None => format!("{} received", r.spans_received),
            },
        ));
    }
    for r in &report.rows {
        if let (Some(d), Some((lower, of)), Some(partner)) = (
            &r.minus_partner_us_per_request,
            r.lower_than_partner_in,
            r.tracer.ab_partner(),
        ) {
            out.push_str(&format!(
                "A/B {}: {b} minus {a} {} µs/req; {b} lower in {lower} of {of} slices\n",
                format!("{:?}", r.workload).to_lowercase(),
                q(&Some(d.clone()), 1),
                b = r.tracer.name(),
                a = partner.name(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_each_slice_with_its_own_baseline() {
        let s = |tracer, slice, cpu| SliceSample {
            tracer,
            workload: Workload::Http1,
            slice,
            envoy_cpu_us_per_request: cpu,
            worker_cpu_us_per_request: cpu / 2.0,
            ok: 1,
            failed: 0,
        };
        // The machine is twice as slow in slice 1: the ratio is the same in both slices.
        let samples = vec![
            s(Tracer::Baseline, 0, 60.0),
            s(Tracer::NativeOtel, 0, 85.0),
            s(Tracer::Native, 0, 65.0),
            s(Tracer::Baseline, 1, 120.0),
            s(Tracer::NativeOtel, 1, 170.0),
            s(Tracer::Native, 1, 130.0),
        ];
        let mut with_b = samples.clone();
        with_b.push(s(Tracer::NativeB, 0, 62.0));
        with_b.push(s(Tracer::NativeB, 1, 125.0));
        let b = row(
            Tracer::NativeB,
            Workload::Http1,
            &with_b,
            (2, 0),
            (Some(2), 2),
        );
        let ab = b.minus_partner_us_per_request.expect("an A/B row");
        assert_eq!((ab.q1, ab.q3), (-4.5, -3.5));
        assert_eq!(b.lower_than_partner_in, Some((2, 2)));
        let r = row(
            Tracer::Native,
            Workload::Http1,
            &samples,
            (2, 0),
            (Some(2), 2),
        );
        assert!(
            r.minus_partner_us_per_request.is_none(),
            "only an A/B half has an A/B row"
        );
        let ratio = r.added_ratio_to_native_otel.expect("ratio");
        assert!((ratio.median - 0.2).abs() < 1e-9, "{ratio:?}");
        assert!((ratio.q1 - 0.2).abs() < 1e-9 && (ratio.q3 - 0.2).abs() < 1e-9);
        let added = r.added_cpu_us_per_request.expect("added");
        assert_eq!((added.q1, added.q3), (6.25, 8.75));
        // Half of every figure is on the workers in this fixture, so half of the addition too.
        let workers = r.added_worker_cpu_us_per_request.expect("workers");
        let others = r.added_other_cpu_us_per_request.expect("others");
        assert_eq!((workers.q1, workers.q3), (3.125, 4.375));
        assert_eq!((others.q1, others.q3), (3.125, 4.375));
    }
}
