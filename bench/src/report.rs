//! Summary of the samples: medians and spreads per configuration, ratios to the baseline and to
//! the native OpenTelemetry tracer, the printed table and the JSON result file.

use serde::Serialize;

use crate::envoy::Tracer;
use crate::harness::{Profile, Sample};
use crate::loadgen::Workload;
use crate::stats::Spread;

/// One configuration under one workload, over all rounds.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Which configuration.
    pub tracer: Tracer,
    /// Which traffic.
    pub workload: Workload,
    /// Whether collector-shim was in the span path.
    pub via_shim: bool,
    /// Envoy CPU µs per request.
    pub envoy_cpu_us_per_request: Option<Spread>,
    /// Envoy CPU µs per request above the baseline's median.
    pub added_cpu_us_per_request: Option<Spread>,
    /// Median Envoy CPU per request / the baseline's.
    pub cpu_ratio_to_baseline: Option<f64>,
    /// Median added CPU / the native OpenTelemetry tracer's added CPU (target for the filter: <= 0.5).
    pub added_cpu_ratio_to_native_otel: Option<f64>,
    /// Shim CPU µs per span.
    pub shim_cpu_us_per_span: Option<Spread>,
    /// Closed-loop requests/s on one Envoy worker.
    pub throughput_rps: Option<Spread>,
    /// Median throughput / the baseline's.
    pub throughput_ratio_to_baseline: Option<f64>,
    /// Fixed-rate p50 latency, µs.
    pub latency_p50_us: Option<Spread>,
    /// Fixed-rate p99 latency, µs.
    pub latency_p99_us: Option<Spread>,
    /// Median p99 minus the baseline's median p99, µs (target for the filter: <= 50).
    pub p99_added_us: Option<f64>,
    /// Envoy RSS after warm-up, MiB (the last round, which runs the soak).
    pub envoy_rss_before_mib: f64,
    /// Envoy RSS after `requests_between_rss` more requests, MiB.
    pub envoy_rss_after_mib: f64,
    /// Requests between the two RSS readings.
    pub requests_between_rss: u64,
    /// Shim RSS after warm-up and at the end, MiB.
    pub shim_rss_mib: Option<(f64, f64)>,
    /// Requests answered correctly, all rounds.
    pub requests_ok: u64,
    /// Requests failed, all rounds.
    pub requests_failed: u64,
    /// Spans expected, all rounds.
    pub spans_expected: u64,
    /// Spans the sink decoded, all rounds.
    pub spans_received: u64,
}

/// The JSON result file.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What this file is.
    pub schema: &'static str,
    /// When the run ended (UTC, RFC 3339).
    pub finished_at: String,
    /// The load profile.
    pub profile: Profile,
    /// `envoy --version`.
    pub envoy_version: String,
    /// Size of the `.wasm` in bytes.
    pub wasm_bytes: Option<u64>,
    /// CPUs online.
    pub cpus: usize,
    /// `/proc/loadavg` when the run started and when it ended: other work on the machine
    /// inflates every configuration alike, but makes spreads wider.
    pub load_average: (String, String),
    /// Sampling ratio of every tracer.
    pub sample_ratio: f64,
    /// Spans per export batch of every tracer.
    pub batch_spans: u32,
    /// Flush interval of every tracer.
    pub flush_interval_ms: u32,
    /// The fixed rate of the latency phase.
    pub rate_rps: Option<f64>,
    /// Per configuration and workload.
    pub rows: Vec<Row>,
    /// Every run.
    pub samples: Vec<Sample>,
}

const MIB: f64 = 1024.0 * 1024.0;

fn median_of(samples: &[&Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<Spread> {
    Spread::of(samples.iter().filter_map(|s| f(s)))
}

/// Rows for every (tracer, workload) present in `samples`, in the order of `Tracer::ALL`.
pub fn summarize(samples: &[Sample]) -> Vec<Row> {
    let mut rows = Vec::new();
    for workload in [Workload::Http1, Workload::Grpc] {
        let of = |t: Tracer| -> Vec<&Sample> {
            samples
                .iter()
                .filter(|s| s.tracer == t && s.workload == workload)
                .collect()
        };
        let base = of(Tracer::Baseline);
        let base_cpu = median_of(&base, |s| Some(s.envoy_cpu_us_per_request)).map(|s| s.median);
        let base_rps = median_of(&base, |s| Some(s.throughput_rps)).map(|s| s.median);
        let base_p99 = median_of(&base, |s| s.latency_p99_us).map(|s| s.median);
        let otel_cpu = median_of(&of(Tracer::NativeOtel), |s| {
            Some(s.envoy_cpu_us_per_request)
        })
        .map(|s| s.median);
        for tracer in Tracer::ALL {
            let mine = of(tracer);
            if mine.is_empty() {
                continue;
            }
            let cpu = median_of(&mine, |s| Some(s.envoy_cpu_us_per_request));
            let added =
                base_cpu.and_then(|b| median_of(&mine, |s| Some(s.envoy_cpu_us_per_request - b)));
            let rps = median_of(&mine, |s| Some(s.throughput_rps));
            let p99 = median_of(&mine, |s| s.latency_p99_us);
            let soak = mine
                .iter()
                .max_by_key(|s| (s.requests_between_rss, s.round))
                .copied();
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                _ => None,
            };
            let added_native = match (cpu.as_ref(), base_cpu, otel_cpu) {
                (Some(c), Some(b), Some(o)) if tracer != Tracer::Baseline && o - b > 0.0 => {
                    Some((c.median - b) / (o - b))
                }
                _ => None,
            };
            rows.push(Row {
                tracer,
                workload,
                via_shim: mine.iter().any(|s| s.via_shim),
                cpu_ratio_to_baseline: ratio(cpu.as_ref().map(|c| c.median), base_cpu),
                added_cpu_ratio_to_native_otel: added_native,
                envoy_cpu_us_per_request: cpu,
                added_cpu_us_per_request: added,
                shim_cpu_us_per_span: median_of(&mine, |s| s.shim_cpu_us_per_span),
                throughput_ratio_to_baseline: ratio(rps.as_ref().map(|r| r.median), base_rps),
                throughput_rps: rps,
                latency_p50_us: median_of(&mine, |s| s.latency_p50_us),
                p99_added_us: p99.as_ref().zip(base_p99).map(|(p, b)| p.median - b),
                latency_p99_us: p99,
                envoy_rss_before_mib: soak.map_or(0.0, |s| s.envoy_rss_before as f64 / MIB),
                envoy_rss_after_mib: soak.map_or(0.0, |s| s.envoy_rss_after as f64 / MIB),
                requests_between_rss: soak.map_or(0, |s| s.requests_between_rss),
                shim_rss_mib: soak.and_then(|s| {
                    Some((
                        s.shim_rss_before? as f64 / MIB,
                        s.shim_rss_after? as f64 / MIB,
                    ))
                }),
                requests_ok: mine.iter().map(|s| s.requests_ok).sum(),
                requests_failed: mine.iter().map(|s| s.requests_failed).sum(),
                spans_expected: mine.iter().map(|s| s.spans_expected).sum(),
                spans_received: mine.iter().map(|s| s.spans_received).sum(),
            });
        }
    }
    rows
}

fn fmt_spread(s: &Option<Spread>, digits: usize) -> String {
    match s {
        Some(s) if s.runs > 1 => format!("{:.*} ±{:.0}%", digits, s.median, s.spread_percent()),
        Some(s) => format!("{:.*}", digits, s.median),
        None => "-".into(),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

/// The table printed at the end of a run (Markdown, so the README can show it as is).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    for workload in [Workload::Http1, Workload::Grpc] {
        let rows: Vec<&Row> = rows.iter().filter(|r| r.workload == workload).collect();
        if rows.is_empty() {
            continue;
        }
        let title = match workload {
            Workload::Http1 => "HTTP/1.1",
            Workload::Grpc => "gRPC (h2c)",
        };
        out += &format!("\n{title}: median ±half-range over the rounds\n\n");
        out += "| configuration | Envoy CPU µs/req | vs baseline | added CPU µs/req | added vs native-otel | shim CPU µs/span | max req/s (1 worker) | vs baseline | p50 µs | p99 µs | p99 added µs | Envoy RSS MiB before→after (requests) | shim RSS MiB | spans received/expected | failed req |\n";
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        for r in rows {
            let name = if r.via_shim {
                format!("{} (+shim)", r.tracer.name())
            } else {
                r.tracer.name().to_owned()
            };
            out += &format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}→{:.1} ({}) | {} | {}/{} | {} |\n",
                fmt_spread(&r.envoy_cpu_us_per_request, 1),
                fmt_ratio(r.cpu_ratio_to_baseline),
                fmt_spread(&r.added_cpu_us_per_request, 1),
                fmt_ratio(r.added_cpu_ratio_to_native_otel),
                fmt_spread(&r.shim_cpu_us_per_span, 2),
                fmt_spread(&r.throughput_rps, 0),
                fmt_ratio(r.throughput_ratio_to_baseline),
                fmt_spread(&r.latency_p50_us, 0),
                fmt_spread(&r.latency_p99_us, 0),
                r.p99_added_us.map_or("-".into(), |v| format!("{v:+.0}")),
                r.envoy_rss_before_mib,
                r.envoy_rss_after_mib,
                r.requests_between_rss,
                r.shim_rss_mib.map_or("-".into(), |(a, b)| format!("{a:.1}→{b:.1}")),
                r.spans_received,
                r.spans_expected,
                r.requests_failed,
            );
        }
    }
    out
}
