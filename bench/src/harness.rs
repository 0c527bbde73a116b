//! The side-by-side run: every configuration in turn, several interleaved rounds, the same load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::envoy::{Builds, Envoy, Setup, Tracer};
use crate::loadgen::{self, Workload};
use crate::procfs;
use crate::shim::Shim;
use crate::sink::Sink;
use crate::stats::quantile;
use crate::upstream::Upstream;

/// How much load each phase sends. `quick` is the smoke check `make test` runs; `full` is `make bench`.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    /// "quick" or "full".
    pub name: &'static str,
    /// Interleaved rounds over all configurations (medians and spreads are over these).
    pub rounds: usize,
    /// Closed-loop requests before any measurement (connections, VM, pools warm up).
    pub warmup: u64,
    /// Closed-loop requests of the CPU and throughput measurement.
    pub measure: u64,
    /// Seconds of the fixed-rate latency phase.
    pub latency_seconds: f64,
    /// Fixed rate in requests/s, the same for every configuration; None = half the lowest
    /// saturation throughput measured in round 1, which then runs no latency phase (the rate
    /// must be below every configuration's saturation for the latencies to mean anything).
    pub rate: Option<f64>,
    /// Requests between the two RSS readings in the last round for the baseline and the filter
    /// (1 M in full mode: the filter's memory target is "flat over 1 M requests").
    pub soak: u64,
    /// The same for the native tracers, which are slower on one worker (the full mode would
    /// not fit its time budget with 1 M requests through native Zipkin).
    pub soak_native: u64,
    /// Closed-loop gRPC requests per configuration and round.
    pub grpc_measure: u64,
    /// In-flight requests of the closed loop (HTTP/1.1 connections).
    pub lanes: usize,
    /// In-flight requests of the gRPC closed loop (h2 streams, 8 per connection).
    pub grpc_lanes: usize,
    /// Connections of the fixed-rate phase.
    pub rate_lanes: usize,
}

impl Profile {
    /// `make bench`: about 10 minutes on 2 cores.
    pub fn full() -> Self {
        Self {
            name: "full",
            rounds: 3,
            warmup: 5_000,
            measure: 50_000,
            latency_seconds: 5.0,
            rate: None,
            soak: 1_000_000,
            soak_native: 150_000,
            grpc_measure: 20_000,
            lanes: 16,
            grpc_lanes: 32,
            rate_lanes: 16,
        }
    }

    /// `BENCH_QUICK=1`: well under 2 minutes, even in a debug build on a busy machine.
    pub fn quick() -> Self {
        Self {
            name: "quick",
            rounds: 1,
            warmup: 300,
            measure: 3_000,
            latency_seconds: 1.0,
            rate: Some(500.0),
            soak: 0,
            soak_native: 0,
            grpc_measure: 1_000,
            lanes: 8,
            grpc_lanes: 16,
            rate_lanes: 8,
        }
    }
}

/// Where the harness finds the real components.
#[derive(Clone, Debug, Serialize)]
pub struct Components {
    /// The real Envoy binary.
    pub envoy: PathBuf,
    /// `trace_filter.wasm`.
    pub wasm: PathBuf,
    /// The no-op module (`aetherflow_wasm_floor.wasm`).
    pub wasm_floor: PathBuf,
    /// The directory of the native modules (`libaetherflow_trace.so`, the native floor).
    pub native_dir: PathBuf,
    /// The head-sampling ratio of every tracer (`BENCH_SAMPLE_RATIO`; [`SAMPLE_RATIO`] by
    /// default).
    pub sample_ratio: f64,
    /// The directory of the `native-b` build (`AETHERFLOW_NATIVE_B`'s, same file name).
    pub native_b_dir: PathBuf,
    /// The `filter-b` module (`AETHERFLOW_WASM_B`; `wasm` by default).
    pub wasm_b: PathBuf,
    /// The A/B halves' (`native-b`, `filter-b`) filter configuration keys:
    /// `filter_overrides` with `BENCH_FILTER_CONFIG_B` merged over them.
    pub b_overrides: serde_json::Map<String, serde_json::Value>,
    /// The collector-shim binary; None sends OTLP straight to the sink.
    pub shim: Option<PathBuf>,
    /// Scratch directory for configs and logs.
    pub work_dir: PathBuf,
    /// Filter configuration keys merged over the harness's (`BENCH_FILTER_CONFIG`).
    pub filter_overrides: serde_json::Map<String, serde_json::Value>,
    /// The `wasm-floor` module's configuration (`BENCH_FLOOR_CONFIG`).
    pub floor_overrides: serde_json::Map<String, serde_json::Value>,
    /// CPUs Envoy is pinned to (`BENCH_ENVOY_CPUS`, a `taskset` list; empty: not pinned).
    pub envoy_cpus: String,
}

/// One configuration in one round.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Which configuration.
    pub tracer: Tracer,
    /// Which traffic.
    pub workload: Workload,
    /// Which round (0-based).
    pub round: usize,
    /// Whether collector-shim was in the span path.
    pub via_shim: bool,
    /// Envoy CPU time (user+sys, all threads) per request over the closed-loop measurement.
    pub envoy_cpu_us_per_request: f64,
    /// Shim CPU time per span received over the same window.
    pub shim_cpu_us_per_span: Option<f64>,
    /// Closed-loop requests/s with one Envoy worker.
    pub throughput_rps: f64,
    /// Fixed-rate latency percentiles (HTTP/1.1 only).
    pub latency_p50_us: Option<f64>,
    /// 99th percentile.
    pub latency_p99_us: Option<f64>,
    /// 99.9th percentile.
    pub latency_p999_us: Option<f64>,
    /// The fixed rate used (requests/s).
    pub rate_rps: Option<f64>,
    /// Envoy RSS after warm-up.
    pub envoy_rss_before: u64,
    /// Envoy RSS after `requests_between_rss` more requests.
    pub envoy_rss_after: u64,
    /// Shim RSS after warm-up.
    pub shim_rss_before: Option<u64>,
    /// Shim RSS at the end.
    pub shim_rss_after: Option<u64>,
    /// Requests between the two RSS readings.
    pub requests_between_rss: u64,
    /// Requests answered correctly over Envoy's whole life.
    pub requests_ok: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Spans the configuration should deliver (requests x spans per request x sampling ratio).
    pub spans_expected: u64,
    /// Spans the sink decoded.
    pub spans_received: u64,
    /// Tracer counters from Envoy's `/stats` (wasmcustom.*, dynamicmodulescustom.*, tracing.*, trace cluster requests).
    pub envoy_stats: BTreeMap<String, u64>,
    /// Error lines from Envoy's log.
    pub envoy_log_errors: Vec<String>,
}

/// Runs the profile over `tracers` and `workloads`, calling `progress` after each sample.
pub struct Harness {
    profile: Profile,
    components: Components,
    upstream: Upstream,
    /// Fixed rate for the latency phase, once known.
    rate: Option<f64>,
}

/// Sampling ratio of every tracer: all requests traced, the most work and an exact span count.
pub const SAMPLE_RATIO: f64 = 1.0;
/// Spans per export batch for every tracer (the filter's default `max_batch_spans`).
pub const BATCH_SPANS: u32 = 256;
/// Flush interval of every tracer (the filter's default `flush_interval_ms`).
pub const FLUSH_INTERVAL_MS: u32 = 1000;

impl Harness {
    /// Starts the shared upstream.
    pub async fn new(profile: Profile, components: Components) -> Result<Self, String> {
        let upstream = Upstream::start()
            .await
            .map_err(|e| format!("upstream: {e}"))?;
        let rate = profile.rate;
        Ok(Self {
            profile,
            components,
            upstream,
            rate,
        })
    }

    /// The fixed rate used for latency (known after the first round).
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// All rounds. Round r starts at configuration r (mod n), so no configuration always runs
    /// first or last.
    pub async fn run(
        &mut self,
        tracers: &[Tracer],
        workloads: &[Workload],
        mut progress: impl FnMut(&Sample),
    ) -> Result<Vec<Sample>, String> {
        let mut samples = Vec::new();
        let n = tracers.len();
        for round in 0..self.profile.rounds {
            for i in 0..n {
                let tracer = tracers[(i + round) % n];
                for &workload in workloads {
                    let sample = self.run_one(tracer, workload, round).await?;
                    progress(&sample);
                    samples.push(sample);
                }
            }
            if self.rate.is_none() {
                let slowest = samples
                    .iter()
                    .filter(|s| s.workload == Workload::Http1)
                    .map(|s| s.throughput_rps)
                    .fold(f64::INFINITY, f64::min);
                if slowest.is_finite() {
                    self.rate = Some((slowest * 0.5).round().max(50.0));
                }
            }
        }
        Ok(samples)
    }

    async fn run_one(
        &mut self,
        tracer: Tracer,
        workload: Workload,
        round: usize,
    ) -> Result<Sample, String> {
        let p = self.profile.clone();
        let label = format!("{}-{:?}-r{round}", tracer.name(), workload).to_lowercase();
        let dir = self.components.work_dir.join(&label);
        let Running { sink, shim, envoy } =
            start_config(&self.components, self.upstream.addr, tracer, workload, &dir).await?;
        let target = envoy.listener;
        let shim_pid = shim.as_ref().map(Shim::pid);
        let (lanes, measure) = match workload {
            Workload::Http1 => (p.lanes, p.measure),
            Workload::Grpc => (p.grpc_lanes, p.grpc_measure),
        };

        let mut phases = Vec::new();
        phases.push(loadgen::closed_loop(target, workload, lanes, p.warmup).await);
        let envoy_rss_before = procfs::rss_bytes(envoy.pid()).unwrap_or(0);
        let shim_rss_before = shim_pid.and_then(procfs::rss_bytes);

        // CPU and throughput: a fixed request count, closed loop.
        let envoy_cpu0 = procfs::cpu_time(envoy.pid()).unwrap_or_default();
        let shim_cpu0 = shim_pid.and_then(procfs::cpu_time);
        let saturation = loadgen::closed_loop(target, workload, lanes, measure).await;
        let envoy_cpu = procfs::cpu_time(envoy.pid())
            .unwrap_or_default()
            .saturating_sub(envoy_cpu0);
        let shim_cpu = shim_pid
            .and_then(procfs::cpu_time)
            .zip(shim_cpu0)
            .map(|(now, then)| now.saturating_sub(then));
        let measured_ok = saturation.ok.max(1) as f64;
        let envoy_cpu_us_per_request = envoy_cpu.as_secs_f64() * 1e6 / measured_ok;
        let throughput_rps = saturation.ok as f64 / saturation.elapsed.as_secs_f64().max(1e-9);
        phases.push(saturation);

        // Latency at a fixed rate below saturation (HTTP/1.1 only).
        let mut latency = (None, None, None, None);
        if workload == Workload::Http1 {
            if let Some(rate) = self.rate {
                let total = (rate * p.latency_seconds).round() as u64;
                let mut fixed =
                    loadgen::fixed_rate(target, workload, p.rate_lanes, rate, total).await;
                fixed.latencies_ns.sort_unstable();
                let us = |q| quantile(&fixed.latencies_ns, q).map(|ns| ns as f64 / 1e3);
                latency = (us(0.5), us(0.99), us(0.999), Some(rate));
                phases.push(fixed);
            }
        }

        // Memory: the last round runs on until `soak` requests separate the two RSS readings.
        let served_since_rss: u64 = phases[1..].iter().map(|r| r.ok + r.failed).sum();
        let soak = match tracer {
            Tracer::Baseline
            | Tracer::Filter
            | Tracer::FilterB
            | Tracer::Native
            | Tracer::NativeB => p.soak,
            Tracer::WasmFloor | Tracer::NativeFloor | Tracer::NativeOtel | Tracer::NativeZipkin => {
                p.soak_native
            }
        };
        if round + 1 == p.rounds && workload == Workload::Http1 && soak > served_since_rss {
            phases
                .push(loadgen::closed_loop(target, workload, lanes, soak - served_since_rss).await);
        }
        let requests_between_rss: u64 = phases[1..].iter().map(|r| r.ok + r.failed).sum();
        let envoy_rss_after = procfs::rss_bytes(envoy.pid()).unwrap_or(0);
        let shim_rss_after = shim_pid.and_then(procfs::rss_bytes);

        let requests_ok: u64 = phases.iter().map(|r| r.ok).sum();
        let requests_failed: u64 = phases.iter().map(|r| r.failed).sum();
        let first_error = phases.iter().find_map(|r| r.first_error.clone());
        let spans_expected =
            (requests_ok as f64 * tracer.spans_per_request() as f64 * SAMPLE_RATIO).round() as u64;
        let spans_received = wait_for_spans(&sink, spans_expected).await;
        let envoy_stats = envoy
            .stats(&[
                "wasmcustom.",
                "dynamicmodulescustom.",
                "tracing.",
                "cluster.trace_shim.upstream_rq_",
                "cluster.zipkin_sink.upstream_rq_",
            ])
            .await
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        let envoy_log_errors = envoy.log_errors();
        drop(envoy);
        drop(shim);

        Ok(Sample {
            tracer,
            workload,
            round,
            via_shim: shim_pid.is_some(),
            envoy_cpu_us_per_request,
            shim_cpu_us_per_span: shim_cpu.map(|c| c.as_secs_f64() * 1e6 / measured_ok),
            throughput_rps,
            latency_p50_us: latency.0,
            latency_p99_us: latency.1,
            latency_p999_us: latency.2,
            rate_rps: latency.3,
            envoy_rss_before,
            envoy_rss_after,
            shim_rss_before,
            shim_rss_after,
            requests_between_rss,
            requests_ok,
            requests_failed,
            first_error,
            spans_expected,
            spans_received,
            envoy_stats,
            envoy_log_errors,
        })
    }
}

/// One configuration up and ready: its Envoy, and the shim and sink its spans go to.
pub struct Running {
    /// Counts the spans that arrive (through the shim, or straight from Envoy).
    pub sink: Sink,
    /// The collector in the span path (configurations that send OTLP, when a shim is set).
    pub shim: Option<Shim>,
    /// Envoy with the configuration's tracer.
    pub envoy: Envoy,
}

/// Starts `tracer`'s Envoy for `workload` (with its sink, and its shim when the configuration
/// sends OTLP and `components` names one), every tracer at the same ratio, batch and interval.
pub async fn start_config(
    components: &Components,
    upstream: std::net::SocketAddr,
    tracer: Tracer,
    workload: Workload,
    dir: &std::path::Path,
) -> Result<Running, String> {
    let sink = Sink::start().await.map_err(|e| format!("sink: {e}"))?;
    let uses_otlp = tracer.exports_otlp();
    // The native A/B build lives in its own directory under the same file name.
    let builds = tracer.builds(
        Builds {
            native_dir: &components.native_dir,
            wasm: &components.wasm,
            overrides: &components.filter_overrides,
        },
        Builds {
            native_dir: &components.native_b_dir,
            wasm: &components.wasm_b,
            overrides: &components.b_overrides,
        },
    );
    let shim = match (&components.shim, uses_otlp) {
        (Some(bin), true) => Some(Shim::start(bin, sink.addr, &dir.join("shim")).await?),
        _ => None,
    };
    let setup = Setup {
        tracer,
        workload,
        upstream,
        otlp: shim.as_ref().map_or(sink.addr, |s| s.addr),
        zipkin: sink.addr,
        sample_ratio: components.sample_ratio,
        batch_spans: BATCH_SPANS,
        flush_interval_ms: FLUSH_INTERVAL_MS,
        wasm: builds.wasm,
        wasm_floor: &components.wasm_floor,
        native_dir: builds.native_dir,
        floor_overrides: &components.floor_overrides,
        filter_overrides: builds.overrides,
    };
    // Pinning puts Envoy's main thread and worker on the same CPUs (an experiment knob: what
    // crossing between cores costs a configuration that hands data from one to the other).
    let wrapper: Vec<String> = if components.envoy_cpus.is_empty() {
        Vec::new()
    } else {
        vec!["taskset".into(), "-c".into(), components.envoy_cpus.clone()]
    };
    let envoy = Envoy::start_with(
        &components.envoy,
        &setup.render(),
        dir,
        builds.native_dir,
        &wrapper,
        Duration::from_secs(60),
    )
    .await?;
    Ok(Running { sink, shim, envoy })
}

/// Waits, bounded, until the sink has `expected` spans: every tracer flushes at least once per
/// flush interval, the shim within its batch timeout. Returns what arrived.
pub async fn wait_for_spans(sink: &Sink, expected: u64) -> u64 {
    let deadline =
        Instant::now() + Duration::from_millis(u64::from(FLUSH_INTERVAL_MS) * 3 + 10_000);
    loop {
        let received = sink.counters.spans();
        if received >= expected || Instant::now() > deadline {
            // Settle briefly: anything beyond the expected count would show duplicates.
            if expected > 0 && received >= expected {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            return sink.counters.spans();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
