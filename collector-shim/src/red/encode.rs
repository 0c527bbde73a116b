//! Text exposition of the RED families, in OpenMetrics 1.0 (with exemplars) or the classic
//! Prometheus text format 0.0.4 (without: it has no syntax for them), and the conversion of the
//! rest of the registry's OpenMetrics output to the classic format.
//!
//! Written here rather than through prometheus-client: its exemplars can only be set at the
//! moment a value is observed (`CounterWithExemplar::inc_by`, `HistogramWithExemplars::observe`)
//! and its `Exemplar` has no public constructor for a collector, while ours are attached later,
//! once the export of the span's trace is confirmed.
use std::fmt::Write;
use std::time::UNIX_EPOCH;

use super::table::{Exemplar, Series, Table};

/// Which text format a scrape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`: exemplars, `# UNIT`, `# EOF`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`: what Prometheus asks for when exemplars are off.
    Classic,
}

impl Format {
    /// Content negotiation as Prometheus does it: OpenMetrics only when the `Accept` header
    /// names `application/openmetrics-text` (Prometheus sends it first, with a higher `q`, when
    /// its exemplar storage is on); everything else gets the classic format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let wants_om = accept.is_some_and(|a| {
            a.split(',').any(|part| {
                let mut params = part.split(';');
                let media = params.next().unwrap_or("").trim();
                let q_zero = params.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
            })
        });
        if wants_om {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Escapes a label value (the same rules in both formats: `\\`, `\"`, `\n`).
fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn labels(out: &mut String, names: &[String], s: &Series, overflow: bool, le: Option<f64>) {
    out.push('{');
    for (i, (n, v)) in names.iter().zip(s.labels.iter()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(n);
        out.push_str("=\"");
        escape(out, v);
        out.push('"');
    }
    if overflow {
        out.push_str(",otel_metric_overflow=\"true\"");
    }
    if let Some(le) = le {
        if le.is_infinite() {
            out.push_str(",le=\"+Inf\"");
        } else {
            // `{:?}` keeps a `.0` on whole numbers: OpenMetrics' canonical form of `le`.
            let _ = write!(out, ",le=\"{le:?}\"");
        }
    }
    out.push('}');
}

fn exemplar(out: &mut String, e: &Exemplar) {
    out.push_str(" # {trace_id=\"");
    hex(out, &e.trace_id);
    out.push_str("\",span_id=\"");
    hex(out, &e.span_id);
    let at = e.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let _ = write!(
        out,
        "\"}} {:?} {}.{:03}",
        e.value,
        at.as_secs(),
        at.subsec_millis()
    );
}

fn header(out: &mut String, name: &str, kind: &str, help: &str, unit: Option<&str>, f: Format) {
    // The classic format names a counter family by its sample (`_total`); OpenMetrics without.
    let fam = if f == Format::Classic && kind == "counter" {
        format!("{name}_total")
    } else {
        name.to_string()
    };
    let _ = writeln!(out, "# HELP {fam} {help}");
    let _ = writeln!(out, "# TYPE {fam} {kind}");
    if let (Some(u), Format::OpenMetrics) = (unit, f) {
        let _ = writeln!(out, "# UNIT {fam} {u}");
    }
}

/// Every series with a flag for the overflow one, the overflow last.
fn all(t: &Table) -> impl Iterator<Item = (&Series, bool)> {
    t.series
        .values()
        .map(|s| (s, false))
        .chain(t.overflow.iter().map(|s| (s, true)))
}

/// One labelled counter family: a `_total` sample per series, with the series' exemplar in
/// OpenMetrics.
#[allow(clippy::too_many_arguments)]
fn counter_family(
    out: &mut String,
    t: &Table,
    names: &[String],
    f: Format,
    name: &str,
    help: &str,
    value: impl Fn(&Series) -> u64,
    exemplar_of: impl Fn(&Series) -> Option<&Exemplar>,
) {
    header(out, name, "counter", help, None, f);
    for (s, o) in all(t) {
        let _ = write!(out, "{name}_total");
        labels(out, names, s, o, None);
        let _ = write!(out, " {}", value(s));
        if let (Format::OpenMetrics, Some(e)) = (f, exemplar_of(s)) {
            exemplar(out, e);
        }
        out.push('\n');
    }
}

/// One unlabelled family with a single sample (`sample` is the family name plus its suffix).
fn scalar(out: &mut String, f: Format, name: &str, kind: &str, help: &str, sample: &str, v: u64) {
    header(out, name, kind, help, None, f);
    let _ = writeln!(out, "{sample} {v}");
}

/// Appends the RED families of `t` to `out`; `names` are the label names of a series' values.
pub fn write(out: &mut String, t: &Table, names: &[String], f: Format) {
    let om = f == Format::OpenMetrics;
    counter_family(
        out,
        t,
        names,
        f,
        "shim_red_requests",
        "Spans received (every request, sampled or not), by series",
        |s| s.requests,
        |_| None,
    );
    counter_family(
        out,
        t,
        names,
        f,
        "shim_red_errors",
        "Spans received with status ERROR, by series",
        |s| s.errors,
        |s| s.error_exemplar.as_ref(),
    );
    header(
        out,
        "shim_red_duration_seconds",
        "histogram",
        "Span durations, by series",
        Some("seconds"),
        f,
    );
    for (s, o) in all(t) {
        let mut cumulative = 0;
        for (i, n) in s.buckets.iter().enumerate() {
            cumulative += n;
            let le = t.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            out.push_str("shim_red_duration_seconds_bucket");
            labels(out, names, s, o, Some(le));
            let _ = write!(out, " {cumulative}");
            let ex = s.bucket_exemplars.as_ref().and_then(|e| e.get(i)?.as_ref());
            if let (true, Some(e)) = (om, ex) {
                exemplar(out, e);
            }
            out.push('\n');
        }
        out.push_str("shim_red_duration_seconds_sum");
        labels(out, names, s, o, None);
        let _ = writeln!(out, " {:?}", s.sum);
        out.push_str("shim_red_duration_seconds_count");
        labels(out, names, s, o, None);
        let _ = writeln!(out, " {}", s.requests);
    }
    scalar(
        out,
        f,
        "shim_red_series",
        "gauge",
        "RED series held now (the overflow series not included)",
        "shim_red_series",
        t.series.len() as u64,
    );
    scalar(
        out,
        f,
        "shim_red_overflow_spans",
        "counter",
        "Spans counted into the overflow series because red_metrics.max_series were held",
        "shim_red_overflow_spans_total",
        t.overflow_spans,
    );
    scalar(
        out,
        f,
        "shim_red_series_expired",
        "counter",
        "RED series removed after red_metrics.series_idle_timeout without a span",
        "shim_red_series_expired_total",
        t.expired,
    );
}

/// The registry's OpenMetrics text as classic text: no `# EOF` or `# UNIT`, counter families
/// named by their `_total` sample, no exemplars (the registry's families carry none).
pub fn openmetrics_to_classic(om: &str, out: &mut String) {
    let mut counters: Vec<&str> = Vec::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.push(name);
            }
        }
    }
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        if let Some((prefix, rest)) = meta {
            let name = rest.split(' ').next().unwrap_or("");
            if counters.contains(&name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total");
                out.push_str(&rest[name.len()..]);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_as_prometheus_sends_them() {
        let om = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(om)), Format::OpenMetrics);
        // Exemplar storage off: Prometheus 2.x asks for the classic format first.
        let classic = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(classic)), Format::Classic);
        assert_eq!(Format::from_accept(None), Format::Classic);
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text;q=0")),
            Format::Classic
        );
    }

    #[test]
    fn classic_names_counters_by_their_sample_and_drops_om_only_lines() {
        let om = "# HELP shim_x Things.\n# TYPE shim_x counter\nshim_x_total 3\n# HELP shim_d Time.\n# TYPE shim_d histogram\n# UNIT shim_d seconds\nshim_d_sum 1.0\n# EOF\n";
        let mut out = String::new();
        openmetrics_to_classic(om, &mut out);
        assert_eq!(
            out,
            "# HELP shim_x_total Things.\n# TYPE shim_x_total counter\nshim_x_total 3\n# HELP shim_d Time.\n# TYPE shim_d histogram\nshim_d_sum 1.0\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }
}
