//! The fault soak (`aetherflow-bench fault-soak`, run by `make bench`): steady traffic through
//! Envoy, the filter and collector-shim (durable queue on) for `FAULT_SOAK_SECONDS` (default
//! 600) while, in every cycle of `FAULT_SOAK_CYCLE_SECONDS` (default 60):
//!
//! | at | fault |
//! |---|---|
//! | 1/6 | the backend stops (the port refuses connections) |
//! | 2/6 | the shim is killed (SIGKILL) and started again, the backend still down |
//! | 3/6 | the backend comes back |
//! | 4/6 | the shim is stopped (SIGTERM) and started again |
//! | 5/6 | the filter's configuration is reloaded through the LDS file (`lds.rs`) |
//!
//! Each request carries its own trace id; a request Envoy answered 200 is a span sent. After
//! the traffic stops the soak waits (bounded) until the backend has every sent trace id, then
//! reports sent, received, lost and duplicated spans, and the RSS of Envoy and of the shim
//! every second (the shim's across its restarts). Written to `fault_soak.json`.

mod backend;
pub mod cli;
mod lds;
mod traffic;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::envoy::{Envoy, Setup, Tracer};
use crate::loadgen::Workload;
use crate::procfs;
use crate::shim::{config_yaml, otlp_to, Shim};
use crate::upstream::Upstream;
use backend::Backend;

/// Envoy's `--drain-time-s` in the soak: how long a reloaded listener drains.
pub const DRAIN_TIME_S: u64 = 5;
/// The filter's flush interval (as shipped).
pub const FLUSH_INTERVAL_MS: u32 = 1000;
/// How long the soak waits after the traffic for the last spans.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(90);

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// How long the traffic lasts.
    pub duration_s: u64,
    /// The fault cycle.
    pub cycle_s: u64,
    /// Requests per second.
    pub rate: f64,
    /// Keep-alive connections.
    pub lanes: usize,
    /// `wasm` or `native`.
    pub form: String,
}

/// One reading of memory.
#[derive(Clone, Debug, Serialize)]
pub struct RssPoint {
    /// Seconds since the traffic started.
    pub t_s: f64,
    /// Envoy's RSS, MiB.
    pub envoy_mib: f64,
    /// The shim's RSS, MiB (the process running at that moment; 0 while restarting).
    pub shim_mib: f64,
}

/// One fault and what it took.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Seconds since the traffic started.
    pub t_s: f64,
    /// What happened.
    pub what: String,
    /// For a shim restart: how long its receiver was unavailable, ms.
    pub down_ms: Option<f64>,
}

/// The result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Result format.
    pub schema: &'static str,
    /// When the run finished.
    pub finished_at: String,
    /// What ran.
    pub plan: Plan,
    /// Envoy `--version`.
    pub envoy_version: String,
    /// Load average at the start and at the end.
    pub load_average: (String, String),
    /// Requests answered 200: spans sent.
    pub spans_sent: u64,
    /// Distinct sent trace ids the backend received.
    pub spans_received: u64,
    /// Sent but never received.
    pub spans_lost: u64,
    /// Receptions beyond the first of a trace id (at-least-once delivery).
    pub duplicates: u64,
    /// Received trace ids the soak never counted as sent (a request whose answer was lost).
    pub received_not_sent: u64,
    /// Requests answered with another status.
    pub requests_bad_status: u64,
    /// Requests with no answer.
    pub requests_failed: u64,
    /// Seconds from the end of the traffic until the last span arrived (or the limit).
    pub settle_s: f64,
    /// The faults, in order.
    pub events: Vec<Event>,
    /// Envoy's filter counters at the end (`aetherflow_*`).
    pub filter_metrics: HashMap<String, u64>,
    /// RSS every second.
    pub rss: Vec<RssPoint>,
    /// Median RSS of the first and the last tenth of the run, MiB: Envoy.
    pub envoy_rss_first_last_mib: (f64, f64),
    /// The same for the shim.
    pub shim_rss_first_last_mib: (f64, f64),
}

impl Report {
    /// Nothing lost and no request failed.
    pub fn sound(&self) -> bool {
        self.spans_lost == 0 && self.requests_bad_status == 0
    }
}

/// The components.
pub struct Components {
    /// The Envoy binary.
    pub envoy: PathBuf,
    /// The Wasm module.
    pub wasm: PathBuf,
    /// The directory of the native module.
    pub native_dir: PathBuf,
    /// The collector-shim binary.
    pub shim: PathBuf,
}

fn mib(bytes: Option<u64>) -> f64 {
    bytes.map_or(0.0, |b| b as f64 / (1024.0 * 1024.0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| *x > 0.0);
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The Envoy bootstrap with the filter configured for reload number `generation`.
fn bootstrap(
    c: &Components,
    form: Tracer,
    upstream: &Upstream,
    shim: &Shim,
    generation: u32,
) -> String {
    let mut overrides = serde_json::Map::new();
    overrides.insert(
        "service_name".into(),
        serde_json::json!(format!("fault-soak-{generation}")),
    );
    Setup {
        tracer: form,
        workload: Workload::Http1,
        upstream: upstream.addr,
        otlp: shim.addr,
        zipkin: shim.addr,
        sample_ratio: 1.0,
        batch_spans: 256,
        flush_interval_ms: FLUSH_INTERVAL_MS,
        wasm: &c.wasm,
        wasm_floor: &c.wasm,
        native_dir: &c.native_dir,
        floor_overrides: &serde_json::Map::new(),
        filter_overrides: &overrides,
    }
    .render()
}

/// Runs the soak in `dir`.
pub async fn run(plan: Plan, c: &Components, dir: &Path) -> Result<Report, String> {
    let form = if plan.form == "native" {
        Tracer::Native
    } else {
        Tracer::Filter
    };
    let load_at_start = crate::load_average();
    let upstream = Upstream::start()
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    let mut backend = Backend::start().await?;
    // On one address for its whole life (Envoy's `trace_shim` cluster points there), with the
    // durable queue on, exporting OTLP to the flapping backend.
    let queue = dir.join("shim").join("queue");
    let mut shim = Shim::start_with(&c.shim, &dir.join("shim"), |addr| {
        config_yaml(addr, &otlp_to(backend.addr), Some(&queue))
    })
    .await?;
    let lds_path = dir.join("lds").join("lds.yaml");
    std::fs::create_dir_all(dir.join("lds")).map_err(|e| e.to_string())?;
    let (boot, lds) = lds::split(&bootstrap(c, form, &upstream, &shim, 0), &lds_path)?;
    lds::replace(&lds_path, &lds)?;
    // The wrapper's process is Envoy's (exec); it adds the drain time the launcher does not set.
    let wrapper = [
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        format!("exec \"$0\" --drain-time-s {DRAIN_TIME_S} \"$@\""),
    ];
    let envoy = Envoy::start_with(
        &c.envoy,
        &boot,
        &dir.join("envoy"),
        &c.native_dir,
        &wrapper,
        Duration::from_secs(90),
    )
    .await?;
    let envoy_version = std::process::Command::new(&c.envoy)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(traffic::Sent::default());
    let lanes = traffic::start(
        envoy.listener,
        plan.rate,
        plan.lanes,
        Arc::clone(&stop),
        Arc::clone(&sent),
    );
    let started = Instant::now();
    let total = Duration::from_secs(plan.duration_s);
    let cycle = Duration::from_secs(plan.cycle_s.max(6));
    let mut events = Vec::new();
    let mut rss = Vec::new();
    let mut generation = 0u32;
    let mut next_step = 1u32;
    let mut next_rss = Duration::ZERO;
    let step = cycle / 6;
    while started.elapsed() < total {
        let now = started.elapsed();
        if now >= next_rss {
            rss.push(RssPoint {
                t_s: now.as_secs_f64(),
                envoy_mib: mib(procfs::rss_bytes(envoy.pid())),
                shim_mib: mib(procfs::rss_bytes(shim.pid())),
            });
            next_rss += Duration::from_secs(1);
        }
        if now >= step * next_step {
            let t_s = now.as_secs_f64();
            let (what, down_ms) = match next_step % 6 {
                1 => {
                    backend.stop().await;
                    ("backend stopped".to_owned(), None)
                }
                2 => {
                    let d = shim
                        .restart(aetherflow_harness::process::Signal::KILL)
                        .await?;
                    ("shim SIGKILL, restarted".to_owned(), Some(d))
                }
                3 => {
                    backend.restart().await?;
                    ("backend started".to_owned(), None)
                }
                4 => {
                    let d = shim
                        .restart(aetherflow_harness::process::Signal::TERM)
                        .await?;
                    ("shim SIGTERM, restarted".to_owned(), Some(d))
                }
                5 => {
                    generation += 1;
                    let lds = lds::listeners_of(
                        &bootstrap(c, form, &upstream, &shim, generation),
                        &lds_path,
                    )?;
                    lds::replace(&lds_path, &lds)?;
                    (
                        format!("filter configuration reloaded (generation {generation})"),
                        None,
                    )
                }
                _ => (String::new(), None),
            };
            next_step += 1;
            if !what.is_empty() {
                eprintln!(
                    "bench: fault soak [{t_s:>5.0}s] {what}{}  (sent {})",
                    down_ms.map_or(String::new(), |d: Duration| format!(
                        ", receiver down {:.0} ms",
                        d.as_secs_f64() * 1000.0
                    )),
                    sent.ok()
                );
                events.push(Event {
                    t_s,
                    what,
                    down_ms: down_ms.map(|d| d.as_secs_f64() * 1000.0),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in lanes {
        let _ = l.await;
    }
    backend.restart().await?;
    let sent_ids = sent
        .ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let traffic_end = Instant::now();
    loop {
        let got = backend.record.snapshot();
        let missing = sent_ids.iter().filter(|id| !got.contains_key(*id)).count();
        if missing == 0 || traffic_end.elapsed() > SETTLE_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settle_s = traffic_end.elapsed().as_secs_f64();
    // A little longer, so late duplicates are counted too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = backend.record.snapshot();
    let received = sent_ids.iter().filter(|id| got.contains_key(*id)).count() as u64;
    let duplicates = got.values().map(|n| u64::from(n.saturating_sub(1))).sum();
    let received_not_sent = got.keys().filter(|id| !sent_ids.contains(*id)).count() as u64;
    let stats = aetherflow_harness::http::get_ok(
        envoy.admin,
        "/stats?filter=aetherflow",
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_default();
    let filter_metrics = stats
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            let name = k.rsplit('.').next()?.to_owned();
            Some((name, v.trim().parse().ok()?))
        })
        .collect();
    let tenth = (rss.len() / 10).max(1);
    let first = &rss[..tenth.min(rss.len())];
    let last = &rss[rss.len().saturating_sub(tenth)..];
    let pick = |pts: &[RssPoint], f: fn(&RssPoint) -> f64| median(pts.iter().map(f).collect());
    let spans_sent = sent_ids.len() as u64;
    drop(envoy);
    drop(shim);
    Ok(Report {
        schema: "aetherflow-bench fault soak v1",
        finished_at: crate::now_rfc3339(),
        envoy_version,
        load_average: (load_at_start, crate::load_average()),
        spans_sent,
        spans_received: received,
        spans_lost: spans_sent - received,
        duplicates,
        received_not_sent,
        requests_bad_status: sent.bad_status.load(Ordering::Relaxed),
        requests_failed: sent.errors.load(Ordering::Relaxed),
        settle_s,
        events,
        filter_metrics,
        envoy_rss_first_last_mib: (pick(first, |p| p.envoy_mib), pick(last, |p| p.envoy_mib)),
        shim_rss_first_last_mib: (pick(first, |p| p.shim_mib), pick(last, |p| p.shim_mib)),
        rss,
        plan,
    })
}

/// The summary table.
pub fn table(r: &Report) -> String {
    let pct = |n: u64| {
        if r.spans_sent == 0 {
            0.0
        } else {
            n as f64 * 100.0 / r.spans_sent as f64
        }
    };
    format!(
        "fault soak ({} form, {} s, {:.0} req/s, {} faults)\n\
         | spans sent | received | lost | duplicates | failed requests | Envoy RSS MiB first → last | shim RSS MiB first → last |\n\
         |---|---|---|---|---|---|---|\n\
         | {} | {} | {} ({:.3} %) | {} ({:.3} %) | {} | {:.1} → {:.1} | {:.1} → {:.1} |",
        r.plan.form,
        r.plan.duration_s,
        r.plan.rate,
        r.events.len(),
        r.spans_sent,
        r.spans_received,
        r.spans_lost,
        pct(r.spans_lost),
        r.duplicates,
        pct(r.duplicates),
        r.requests_bad_status + r.requests_failed,
        r.envoy_rss_first_last_mib.0,
        r.envoy_rss_first_last_mib.1,
        r.shim_rss_first_last_mib.0,
        r.shim_rss_first_last_mib.1,
    )
}
