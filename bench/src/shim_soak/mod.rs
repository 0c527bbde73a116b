//! The shim soak (`aetherflow-bench shim-soak`, run by `make bench`): the release
//! collector-shim with tail sampling on, fed OTLP/HTTP protobuf at a steady span rate, its
//! memory read from `/proc` every 250 ms. It answers the shim issue's target "RSS <= 100 MB
//! while holding 50 k spans/s with tail sampling on" with a measurement, not a timed test.
//!
//! The decision window is sized to hold every trace for its whole `decision_wait` at the
//! offered rate (`num_traces`, `max_spans` with 50 % headroom), so the figure is the memory of
//! a window that really holds 50 k spans/s, not of one that evicts early (early evictions
//! are reported; they should be 0).
//!
//! "Held" means: the shim accepted (its own `shim_spans_received_total`) at least 97 % of the
//! target rate over the run, refused nothing, and the sink received every span the shim
//! exported.
//!
//! # Layout
//! - [`plan`]: the rate, the traces' shape, the decision window and the shim configuration;
//! - this module: the run (shim and sink started, load driven, memory sampled, metrics read);
//! - [`report`]: the figures and their table.

mod plan;
mod report;

pub use plan::SoakPlan;
pub use report::{table, Decision, SoakReport};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aetherflow_harness::prometheus::{self, Samples};

use crate::otlp_load::{self, SendCounters};
use crate::procfs;
use crate::shim::Shim;
use crate::sink::Sink;

/// The memory target of the shim's issue: 100 MB (decimal), in MiB.
pub const RSS_TARGET_MIB: f64 = 100e6 / (1024.0 * 1024.0);
/// How often RSS is read.
pub const RSS_EVERY: Duration = Duration::from_millis(250);
/// Share of the target rate the shim must accept for the rate to count as held.
pub const HELD_SHARE: f64 = 0.97;

/// Sum of every series of metric `name`.
fn total(m: &Samples, name: &str) -> u64 {
    m.total(name) as u64
}

/// Sums of metric `name` per value of `by`.
fn by_label(m: &Samples, name: &str, by: &str) -> BTreeMap<String, u64> {
    m.by_label(name, by)
        .into_iter()
        .map(|(k, v)| (k, v as u64))
        .collect()
}

async fn scrape(addr: SocketAddr) -> Result<Samples, String> {
    aetherflow_harness::http::get_ok(addr, "/metrics", Duration::from_secs(5))
        .await
        .map(|t| Samples::parse(&t))
        .map_err(|e| format!("shim /metrics: {e}"))
}

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: Option<u64>) -> f64 {
    bytes.unwrap_or(0) as f64 / MIB
}

/// Runs the soak: starts the shim and a sink, drives the load, waits for every decision and
/// export, and collects the figures.
pub async fn run(plan: SoakPlan, shim_bin: &Path, work_dir: &Path) -> Result<SoakReport, String> {
    let load_at_start = crate::load_average();
    let sink = Sink::start().await.map_err(|e| format!("sink: {e}"))?;
    let sink_addr = sink.addr;
    let shim = Shim::start_with(shim_bin, work_dir, |listen| {
        plan.config_yaml(listen, sink_addr)
    })
    .await?;
    let pid = shim.pid();
    let before = scrape(shim.addr).await?;
    let rss_start = procfs::rss_bytes(pid);
    let cpu_start = procfs::cpu_time(pid).unwrap_or_default();

    let counters = Arc::new(SendCounters::default());
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(plan.duration_s);
    let load = tokio::spawn(otlp_load::drive(
        shim.addr,
        plan.spans_per_second,
        plan.batch_spans,
        plan.connections,
        until,
        counters.clone(),
    ));
    let mut rss_samples = Vec::new();
    let (mut traces_max, mut spans_max) = (0, 0);
    let mut ticks = tokio::time::interval(RSS_EVERY);
    let mut n = 0u64;
    while !load.is_finished() {
        ticks.tick().await;
        let Some(rss) = procfs::rss_bytes(pid) else {
            return Err("collector-shim exited during the soak".into());
        };
        rss_samples.push((started.elapsed().as_secs_f64(), rss as f64 / MIB));
        n += 1;
        if n.is_multiple_of(4) {
            if let Ok(m) = scrape(shim.addr).await {
                traces_max = traces_max.max(total(&m, "shim_tail_traces_held"));
                spans_max = spans_max.max(total(&m, "shim_tail_spans_held"));
            }
        }
    }
    let mix = load.await.map_err(|e| format!("load task: {e}"))?;
    let load_seconds = started.elapsed().as_secs_f64();
    let after_load = scrape(shim.addr).await?;

    // Every trace still held is decided within one window; then the last batch leaves within
    // its batch timeout. Wait until nothing is held or queued and the sink has it all.
    let drain_deadline = Instant::now() + Duration::from_millis(plan.decision_wait_ms + 15_000);
    let mut last = after_load.clone();
    while Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = scrape(shim.addr).await?;
        let idle = total(&last, "shim_tail_spans_held") == 0
            && total(&last, "shim_queue_length") == 0
            && total(&last, "shim_ingest_queue_spans") == 0;
        if idle
            && sink.counters.zipkin_spans.load(Ordering::Relaxed)
                >= total(&last, "shim_spans_exported_total")
        {
            break;
        }
    }
    let cpu = procfs::cpu_time(pid)
        .unwrap_or_default()
        .saturating_sub(cpu_start);
    let hwm = procfs::hwm_bytes(pid);
    let rss_end = procfs::rss_bytes(pid);
    drop(shim);

    let received = |m: &Samples| total(m, "shim_spans_received_total");
    let accepted = received(&after_load).saturating_sub(received(&before));
    let refused = by_label(&after_load, "shim_requests_refused_total", "reason");
    let client_refused =
        counters.refused_503.load(Ordering::Relaxed) + counters.refused_429.load(Ordering::Relaxed);
    let client_errors = counters.errors.load(Ordering::Relaxed);
    let accepted_rate = accepted as f64 / plan.duration_s;
    let rate_held = accepted_rate >= HELD_SHARE * plan.spans_per_second
        && refused.values().all(|n| *n == 0)
        && client_refused == 0
        && client_errors == 0;
    // The window is full after one decision_wait; give it another and a second to settle.
    let settle = 2.0 * plan.decision_wait_ms as f64 / 1000.0 + 1.0;
    let steady_from = if settle < load_seconds * 0.8 {
        settle
    } else {
        load_seconds / 2.0
    };
    let mut steady: Vec<f64> = rss_samples
        .iter()
        .filter(|(t, _)| *t >= steady_from)
        .map(|(_, r)| *r)
        .collect();
    steady.sort_by(f64::total_cmp);
    let rss_steady = steady.get(steady.len() / 2).copied().unwrap_or(0.0);
    let sampled_peak = rss_samples.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    let rss_peak = mib(hwm).max(sampled_peak);

    let mut decisions = Vec::new();
    for (s, v) in &last.0 {
        if s.starts_with("shim_spans_sampled_total{") {
            decisions.push(Decision {
                policy: prometheus::label(s, "policy").unwrap_or("").to_owned(),
                decision: prometheus::label(s, "decision").unwrap_or("").to_owned(),
                spans: *v as u64,
            });
        }
    }
    decisions.sort_by(|a, b| (&a.decision, &a.policy).cmp(&(&b.decision, &b.policy)));
    let kept_spans = decisions
        .iter()
        .filter(|d| d.decision == "in")
        .map(|d| d.spans)
        .sum();
    Ok(SoakReport {
        schema: "aetherflow-bench shim soak result v1",
        finished_at: crate::now_rfc3339(),
        shim_bin: shim_bin.to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average: (load_at_start, crate::load_average()),
        window_traces: plan.num_traces(),
        window_spans: plan.max_spans(),
        load_seconds,
        mix,
        offered_spans_per_second: counters.requests.load(Ordering::Relaxed) as f64
            * plan.batch_spans as f64
            / plan.duration_s,
        accepted_spans: accepted,
        accepted_spans_per_second: accepted_rate,
        refused_requests: refused,
        client_refused,
        client_errors,
        late_sends: counters.late_ticks.load(Ordering::Relaxed),
        rate_held,
        rss_start_mib: mib(rss_start),
        rss_peak_mib: rss_peak,
        rss_steady_mib: rss_steady,
        rss_end_mib: mib(rss_end),
        rss_samples,
        tail_traces_held_max: traces_max,
        tail_spans_held_max: spans_max,
        shim_cpu_us_per_span: if accepted > 0 {
            cpu.as_secs_f64() * 1e6 / accepted as f64
        } else {
            0.0
        },
        shim_cpu_cores: cpu.as_secs_f64() / load_seconds,
        decisions,
        kept_spans,
        early_evictions: total(&last, "shim_tail_early_evictions_total"),
        dropped: by_label(&last, "shim_spans_dropped_total", "reason"),
        exported_spans: total(&last, "shim_spans_exported_total"),
        sink_spans: sink.counters.zipkin_spans.load(Ordering::Relaxed),
        rss_target_mib: RSS_TARGET_MIB,
        rss_within_target: rss_peak <= RSS_TARGET_MIB,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP shim_spans_received_total Spans.\n\
shim_spans_received_total{transport=\"http_protobuf\"} 1000\n\
shim_spans_received_total{transport=\"grpc\"} 24\n\
shim_spans_sampled_total{policy=\"error\",decision=\"in\"} 7\n\
shim_requests_refused_total{reason=\"queue_full\"} 2\n\
shim_tail_spans_held 33\n\
shim_tail_spans_held_other 5\n";

    #[test]
    fn metrics_are_summed_by_name_and_grouped_by_label() {
        let m = Samples::parse(TEXT);
        assert_eq!(total(&m, "shim_spans_received_total"), 1024);
        assert_eq!(total(&m, "shim_tail_spans_held"), 33);
        assert_eq!(
            by_label(&m, "shim_requests_refused_total", "reason").get("queue_full"),
            Some(&2)
        );
        assert_eq!(
            prometheus::label(
                "shim_spans_sampled_total{policy=\"error\",decision=\"in\"}",
                "decision"
            ),
            Some("in")
        );
    }
}
