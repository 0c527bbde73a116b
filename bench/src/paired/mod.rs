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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::envoy::Tracer;
use crate::harness::{start_config, wait_for_spans, Components, Running};
use crate::loadgen::{self, Workload};
use crate::procfs;
use crate::upstream::Upstream;

mod report;
use report::row;
pub use report::{table, PairedReport, PairedRow, SliceSample};

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
}
