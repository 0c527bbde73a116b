//! What the soak found: the figures (RSS, CPU per span, decisions, losses) and their printed
//! table with the verdict lines.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::SoakPlan;
use crate::otlp_load::Mix;

/// Spans sampled by one policy with one decision.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// Policy label (`error`, `latency`, `baseline`, `probability`, ...).
    pub policy: String,
    /// `in` or `out`.
    pub decision: String,
    /// Spans.
    pub spans: u64,
}

/// The result file `shim_soak.json`.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// What this file is.
    pub schema: &'static str,
    /// When the run ended (UTC, RFC 3339).
    pub finished_at: String,
    /// What ran.
    pub plan: SoakPlan,
    /// The shim binary measured.
    pub shim_bin: PathBuf,
    /// CPUs online.
    pub cpus: usize,
    /// `/proc/loadavg` at the start and the end.
    pub load_average: (String, String),
    /// `sampling.tail.num_traces` / `max_spans` used.
    pub window_traces: u64,
    /// See `window_traces`.
    pub window_spans: u64,
    /// Wall time of the load.
    pub load_seconds: f64,
    /// What the generators produced (spans, traces, error and slow traces).
    pub mix: Mix,
    /// Spans sent in requests (answered or not) per second of load.
    pub offered_spans_per_second: f64,
    /// Spans the shim counted as received (`shim_spans_received_total`).
    pub accepted_spans: u64,
    /// `accepted_spans` per second of load.
    pub accepted_spans_per_second: f64,
    /// Requests the shim refused, by reason (`shim_requests_refused_total`).
    pub refused_requests: BTreeMap<String, u64>,
    /// Requests answered 503/429 as the client saw them, and other failures.
    pub client_refused: u64,
    /// Transport errors and other statuses.
    pub client_errors: u64,
    /// Sends that started more than one period late (the generator fell behind).
    pub late_sends: u64,
    /// Accepted >= 97 % of the target rate, nothing refused, nothing failed.
    pub rate_held: bool,
    /// RSS before the load, MiB.
    pub rss_start_mib: f64,
    /// Peak RSS (`VmHWM`, the kernel's high-water mark over the whole life), MiB.
    pub rss_peak_mib: f64,
    /// Median RSS once the window is full (from 2 windows + 1 s into the load), MiB.
    pub rss_steady_mib: f64,
    /// RSS after the last decision and export, MiB.
    pub rss_end_mib: f64,
    /// (seconds since the load started, RSS MiB) every 250 ms.
    pub rss_samples: Vec<(f64, f64)>,
    /// Highest `shim_tail_traces_held` seen (read each second).
    pub tail_traces_held_max: u64,
    /// Highest `shim_tail_spans_held` seen.
    pub tail_spans_held_max: u64,
    /// Shim CPU (user + system, all threads) from the start of the load to the last export,
    /// per accepted span, µs.
    pub shim_cpu_us_per_span: f64,
    /// The same as a share of one core over the load.
    pub shim_cpu_cores: f64,
    /// `shim_spans_sampled_total` by policy and decision.
    pub decisions: Vec<Decision>,
    /// Spans kept (every `decision="in"`).
    pub kept_spans: u64,
    /// `shim_tail_early_evictions_total` (traces decided before their window ended).
    pub early_evictions: u64,
    /// `shim_spans_dropped_total` by reason.
    pub dropped: BTreeMap<String, u64>,
    /// `shim_spans_exported_total`.
    pub exported_spans: u64,
    /// Zipkin spans the sink decoded.
    pub sink_spans: u64,
    /// The target.
    pub rss_target_mib: f64,
    /// Peak RSS <= the target.
    pub rss_within_target: bool,
}

impl SoakReport {
    /// The run is sound: the rate was held and nothing was lost on the way to the sink (the
    /// RSS verdict is a figure against a target, reported apart).
    pub fn sound(&self) -> bool {
        self.rate_held && self.sink_spans == self.exported_spans
    }
}

/// The printed table (Markdown) and the verdict lines.
pub fn table(r: &SoakReport) -> String {
    let p = &r.plan;
    let mut out = format!(
        "\nshim soak ({}): tail sampling (error, latency >= {} ms, rate_limit {} spans/s, then p = {}), decision_wait {} ms, window {} traces / {} spans, {} spans per request over {} connections\n\n",
        p.profile, p.latency_threshold_ms, p.rate_limit_spans_per_second, p.probability,
        p.decision_wait_ms, r.window_traces, r.window_spans, p.batch_spans, p.connections
    );
    out += "| target spans/s | offered spans/s | accepted spans/s | refused req | load s | RSS MiB start | steady | peak (VmHWM) | end | tail traces/spans held (max) | shim CPU µs/span | shim cores | kept spans | early evictions | exported / sink |\n";
    out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    out += &format!(
        "| {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} / {} | {:.2} | {:.2} | {} | {} | {} / {} |\n",
        p.spans_per_second,
        r.offered_spans_per_second,
        r.accepted_spans_per_second,
        r.refused_requests.values().sum::<u64>() + r.client_errors,
        r.load_seconds,
        r.rss_start_mib,
        r.rss_steady_mib,
        r.rss_peak_mib,
        r.rss_end_mib,
        r.tail_traces_held_max,
        r.tail_spans_held_max,
        r.shim_cpu_us_per_span,
        r.shim_cpu_cores,
        r.kept_spans,
        r.early_evictions,
        r.exported_spans,
        r.sink_spans,
    );
    out += "\nsampling decisions (spans): ";
    out += &r
        .decisions
        .iter()
        .filter(|d| d.spans > 0)
        .map(|d| format!("{} {} {}", d.policy, d.decision, d.spans))
        .collect::<Vec<_>>()
        .join(", ");
    let dropped: Vec<String> = r
        .dropped
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    out += &format!(
        "\ndropped (spans): {}\n",
        if dropped.is_empty() {
            "none".to_owned()
        } else {
            dropped.join(", ")
        }
    );
    out += &format!(
        "\nverdict: rate {} ({:.0} of {:.0} spans/s accepted, {} refused); peak RSS {:.1} MiB {} the 100 MB ({:.1} MiB) target; {}\n",
        if r.rate_held { "held" } else { "NOT held" },
        r.accepted_spans_per_second,
        p.spans_per_second,
        r.refused_requests.values().sum::<u64>(),
        r.rss_peak_mib,
        if r.rss_within_target { "within" } else { "ABOVE" },
        r.rss_target_mib,
        if r.sink_spans == r.exported_spans {
            "every exported span reached the sink".to_owned()
        } else {
            format!("sink got {} of {} exported spans", r.sink_spans, r.exported_spans)
        },
    );
    out
}
