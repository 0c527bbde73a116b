//! `aetherflow-bench paired`: Envoy CPU per request of several configurations running side by
//! side, measured in short slices (a closed loop, or one fixed rate), the configurations taking
//! turns slice by slice, each compared with the baseline of the same slice.
//!
//! Why a second CPU-time method beside the harness's rounds: on these shared 2-core machines
//! the CPU's speed moves by 2 to 3 times over minutes (the same baseline binary took 60 µs per
//! request in one run and 135 to 217 µs in another), so rounds of a minute per configuration
//! compare configurations measured on different machines, in effect. Here all of them run for
//! the whole measurement, and one slice of each (a few thousand requests, about a second)
//! follows the other within seconds, with the CPU read at microsecond resolution. The figures
//! are per-slice differences: added = this configuration's CPU per request minus the
//! baseline's in the same slice, and its ratio to the OpenTelemetry tracer's added CPU in the
//! same slice. Their median and quartiles over the slices are reported; a ratio is
//! called below a target only when its upper quartile is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::envoy::Tracer;
use crate::harness::{start_config, wait_for_spans, Components, Running};
use crate::loadgen::{self, Workload};
use crate::procfs;
use crate::stats::Quartiles;
use crate::upstream::Upstream;

/// How the slices run.
#[derive(Clone, Debug, Serialize)]
pub struct PairedPlan {
    /// Slices per workload (each configuration once per slice).
    pub slices: usize,
    /// Requests per configuration and slice, HTTP/1.1.
    pub requests: u64,
    /// Turns per slice in a closed loop: each configuration's requests of a slice are sent in
    /// this many short turns, round robin, so that every configuration meets the same moments
    /// of the machine's speed (it moves within seconds); the CPU is read once per slice.
    pub turns: u64,
    /// The same for gRPC.
    pub grpc_requests: u64,
    /// Requests per second of a fixed-rate load; None: a closed loop of `lanes` (the CPU at
    /// saturation, where event-loop wake-ups are shared by many requests; at a low fixed rate
    /// each request pays its own, and on these VMs they cost Envoy about 400 µs).
    pub rate: Option<f64>,
    /// Wait after a configuration's load before its CPU is read: longer than the flush
    /// interval, so the slice's spans are exported inside its own window.
    pub settle_ms: u64,
    /// Closed-loop requests per configuration before the first slice.
    pub warmup: u64,
    /// In-flight requests: HTTP/1.1 connections.
    pub lanes: usize,
    /// h2 streams for gRPC.
    pub grpc_lanes: usize,
}

impl PairedPlan {
    /// The `make bench` plan: about 5 minutes per workload with five configurations.
    pub fn full() -> Self {
        Self {
            slices: 20,
            requests: 6_000,
            turns: 20,
            grpc_requests: 4_000,
            rate: None,
            settle_ms: 1_200,
            warmup: 5_000,
            lanes: 16,
            grpc_lanes: 32,
        }
    }

    /// The smoke check: a minute or two.
    pub fn quick() -> Self {
        Self {
            slices: 3,
            requests: 1_000,
            turns: 4,
            grpc_requests: 500,
            rate: None,
            settle_ms: 1_200,
            warmup: 300,
            lanes: 8,
            grpc_lanes: 16,
        }
    }
}

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
    /// `native-b` only: its CPU per request minus `native`'s in the same slice (the A/B),
    /// and in how many slices it was the lower of the two.
    pub minus_native_us_per_request: Option<Quartiles>,
    /// Slices where `native-b` used less CPU per request than `native`, of those compared.
    pub lower_than_native_in: Option<(usize, usize)>,
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

/// The order of slice `slice`: rotated by one each slice, so each configuration runs first
/// in turn. (Each waits out its own export before the next starts: what runs before it leaves
/// nothing behind.)
fn order(n: usize, slice: usize) -> Vec<usize> {
    (0..n).map(|i| (i + slice) % n).collect()
}

/// Runs `plan` for `tracers` (the baseline is added when missing) and `workloads`, with the
/// configurations' scratch files under `work_dir`; `progress` sees every slice sample.
pub async fn run(
    plan: &PairedPlan,
    components: &Components,
    tracers: &[Tracer],
    workloads: &[Workload],
    work_dir: &Path,
    mut progress: impl FnMut(&SliceSample),
) -> Result<PairedReport, String> {
    let before = crate::load_average();
    let mut tracers = tracers.to_vec();
    if !tracers.contains(&Tracer::Baseline) {
        tracers.insert(0, Tracer::Baseline);
    }
    let upstream = Upstream::start()
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for &workload in workloads {
        let mut running = Vec::new();
        for &tracer in &tracers {
            let dir: PathBuf = work_dir.join(format!("paired-{}-{workload:?}", tracer.name()));
            running.push(start_config(components, upstream.addr, tracer, workload, &dir).await?);
        }
        let mut served: Vec<(u64, u64)> = vec![(0, 0); tracers.len()];
        let warmup_lanes = lanes(plan, workload);
        for (i, r) in running.iter().enumerate() {
            let w =
                loadgen::closed_loop(r.envoy.listener, workload, warmup_lanes, plan.warmup).await;
            served[i].0 += w.ok;
            served[i].1 += w.failed;
        }
        let per_slice = match workload {
            Workload::Http1 => plan.requests,
            Workload::Grpc => plan.grpc_requests,
        };
        let mut this_workload = Vec::new();
        let mut lanes_of = Vec::new();
        if plan.rate.is_none() {
            for r in &running {
                lanes_of.push(
                    loadgen::Lanes::open(r.envoy.listener, workload, lanes(plan, workload)).await?,
                );
            }
        }
        for slice in 0..plan.slices {
            let slice_samples = if plan.rate.is_none() {
                interleaved_slice(
                    plan,
                    &running,
                    &mut lanes_of,
                    &tracers,
                    workload,
                    slice,
                    per_slice,
                )
                .await
            } else {
                let mut v = Vec::new();
                for i in order(tracers.len(), slice) {
                    v.push(
                        one_slice(plan, &running[i], tracers[i], workload, slice, per_slice).await,
                    );
                }
                v
            };
            for s in slice_samples {
                let i = tracers.iter().position(|t| *t == s.tracer).unwrap_or(0);
                served[i].0 += s.ok;
                served[i].1 += s.failed;
                progress(&s);
                this_workload.push(s);
            }
        }
        drop(lanes_of);
        for (i, r) in running.iter().enumerate() {
            let expected = (components.sample_ratio >= 1.0)
                .then(|| served[i].0 * tracers[i].spans_per_request());
            // Unknown: wait out the flush deadline and report what arrived.
            let received = wait_for_spans(&r.sink, expected.unwrap_or(u64::MAX)).await;
            rows.push(row(
                tracers[i],
                workload,
                &this_workload,
                served[i],
                (expected, received),
            ));
        }
        samples.extend(this_workload);
        drop(running);
    }
    Ok(PairedReport {
        schema: "aetherflow-bench paired result v1",
        finished_at: crate::now_rfc3339(),
        load_average: [before, crate::load_average()],
        plan: plan.clone(),
        sample_ratio: components.sample_ratio,
        rows,
        samples,
    })
}

fn lanes(plan: &PairedPlan, workload: Workload) -> usize {
    match workload {
        Workload::Http1 => plan.lanes,
        Workload::Grpc => plan.grpc_lanes,
    }
}

/// One closed-loop slice: every configuration's requests in `plan.turns` short turns, round
/// robin (the order rotated each turn), then one settle for all, with each Envoy's CPU read
/// before the first turn and after the settle. An Envoy's background work (its export) is in
/// its own process's time whenever it runs.
async fn interleaved_slice(
    plan: &PairedPlan,
    running: &[Running],
    lanes_of: &mut [loadgen::Lanes],
    tracers: &[Tracer],
    workload: Workload,
    slice: usize,
    requests: u64,
) -> Vec<SliceSample> {
    let n = running.len();
    let turns = plan.turns.clamp(1, requests.max(1));
    let before: Vec<_> = running
        .iter()
        .map(|r| CpuMark::read(r.envoy.pid()))
        .collect();
    let mut served = vec![(0u64, 0u64); n];
    for turn in 0..turns {
        // The last turn takes the remainder.
        let share = if turn + 1 == turns {
            requests - requests / turns * (turns - 1)
        } else {
            requests / turns
        };
        for i in order(n, slice * turns as usize + turn as usize) {
            let load = lanes_of[i].closed_loop(share).await;
            served[i].0 += load.ok;
            served[i].1 += load.failed;
        }
    }
    tokio::time::sleep(Duration::from_millis(plan.settle_ms)).await;
    (0..n)
        .map(|i| {
            let split = before[i].since(running[i].envoy.pid());
            sample(tracers[i], workload, slice, split, served[i])
        })
        .collect()
}

/// An Envoy's CPU at the start of a measurement: by thread role, and the coarse total for
/// when a thread ends between two readings (the fine split is then unusable).
struct CpuMark {
    split: Option<procfs::ThreadCpu>,
    coarse: Duration,
}

impl CpuMark {
    fn read(pid: u32) -> CpuMark {
        CpuMark {
            split: procfs::thread_cpu(pid),
            coarse: procfs::cpu_time(pid).unwrap_or_default(),
        }
    }

    /// The CPU used since this mark; with the coarse fallback nothing is on the workers.
    fn since(&self, pid: u32) -> procfs::ThreadCpu {
        match (self.split, procfs::thread_cpu(pid)) {
            (Some(a), Some(b)) if b.workers >= a.workers && b.others >= a.others => b.since(&a),
            _ => procfs::ThreadCpu {
                workers: Duration::ZERO,
                others: procfs::cpu_time(pid)
                    .unwrap_or_default()
                    .saturating_sub(self.coarse),
            },
        }
    }
}

fn sample(
    tracer: Tracer,
    workload: Workload,
    slice: usize,
    split: procfs::ThreadCpu,
    (ok, failed): (u64, u64),
) -> SliceSample {
    let per_request = |d: Duration| d.as_secs_f64() * 1e6 / ok.max(1) as f64;
    SliceSample {
        tracer,
        workload,
        slice,
        envoy_cpu_us_per_request: per_request(split.workers + split.others),
        worker_cpu_us_per_request: per_request(split.workers),
        ok,
        failed,
    }
}

/// One fixed-rate slice of one configuration, then its settle.
async fn one_slice(
    plan: &PairedPlan,
    r: &Running,
    tracer: Tracer,
    workload: Workload,
    slice: usize,
    requests: u64,
) -> SliceSample {
    let (pid, target, lanes) = (r.envoy.pid(), r.envoy.listener, lanes(plan, workload));
    let mark = CpuMark::read(pid);
    let load = match plan.rate {
        Some(rate) => loadgen::fixed_rate(target, workload, lanes, rate, requests).await,
        None => loadgen::closed_loop(target, workload, lanes, requests).await,
    };
    tokio::time::sleep(Duration::from_millis(plan.settle_ms)).await;
    sample(
        tracer,
        workload,
        slice,
        mark.since(pid),
        (load.ok, load.failed),
    )
}

/// The figures of `tracer` from the slices of one workload.
fn row(
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
    let native = by_slice(Tracer::Native, total);
    let ab: Vec<f64> = if tracer == Tracer::NativeB {
        own.iter()
            .filter_map(|(k, v)| Some(v - native.get(k)?))
            .collect()
    } else {
        Vec::new()
    };
    PairedRow {
        tracer,
        workload,
        minus_native_us_per_request: Quartiles::of(ab.iter().copied()),
        lower_than_native_in: (!ab.is_empty())
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
        if let (Some(d), Some((lower, of))) =
            (&r.minus_native_us_per_request, r.lower_than_native_in)
        {
            out.push_str(&format!(
                "A/B {}: native-b minus native {} µs/req; native-b lower in {lower} of {of} slices\n",
                format!("{:?}", r.workload).to_lowercase(),
                q(&Some(d.clone()), 1),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_runs_once_per_slice_and_leads_in_turn() {
        for slice in 0..6 {
            let mut o = order(4, slice);
            o.sort_unstable();
            assert_eq!(o, vec![0, 1, 2, 3]);
        }
        let firsts: Vec<usize> = (0..4).map(|s| order(4, s)[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3]);
    }

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
        let ab = b.minus_native_us_per_request.expect("an A/B row");
        assert_eq!((ab.q1, ab.q3), (-4.5, -3.5));
        assert_eq!(b.lower_than_native_in, Some((2, 2)));
        let r = row(
            Tracer::Native,
            Workload::Http1,
            &samples,
            (2, 0),
            (Some(2), 2),
        );
        assert!(
            r.minus_native_us_per_request.is_none(),
            "only native-b has an A/B row"
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
