//! Reading a Prometheus (or OpenMetrics) text exposition: the samples as `(series, value)`, with
//! the series written as exposed (`name{label="value",...}`). Comments, timestamps and exemplars
//! are skipped; a line that does not parse is passed over.

use std::collections::BTreeMap;

/// The samples of one exposition, in the order exposed.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<(String, f64)>);

impl Samples {
    /// Parses `text`.
    pub fn parse(text: &str) -> Samples {
        Samples(text.lines().filter_map(sample).collect())
    }

    /// The value of the series written exactly `series` (e.g. `shim_spans_exported_total{exporter="otlp"}`),
    /// 0 when absent.
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .iter()
            .find(|(s, _)| s == series)
            .map_or(0.0, |(_, v)| *v)
    }

    /// The sum of every series of metric `name` (all label sets).
    pub fn total(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(s, _)| metric_name(s) == name)
            .map(|(_, v)| *v)
            .sum()
    }

    /// The sums of metric `name` per value of label `by` (series without the label are left out).
    pub fn by_label(&self, name: &str, by: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (s, v) in &self.0 {
            if metric_name(s) == name {
                if let Some(l) = label(s, by) {
                    *out.entry(l.to_owned()).or_insert(0.0) += *v;
                }
            }
        }
        out
    }
}

/// The value of series `series` in `text`, 0 when absent (the one-off form of [`Samples::value`]).
pub fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(sample)
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| v)
}

/// The metric name of a series (`name` of `name{...}`).
pub fn metric_name(series: &str) -> &str {
    series.split_once('{').map_or(series, |(name, _)| name)
}

/// The value of label `label` in a series like `name{a="x",b="y"}`.
pub fn label<'a>(series: &'a str, label: &str) -> Option<&'a str> {
    let inner = series.split_once('{')?.1.strip_suffix('}')?;
    inner.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == label).then(|| v.trim().trim_matches('"'))
    })
}

/// One sample line: the series (up to the closing brace of its labels, or the first blank) and
/// the value that follows.
fn sample(line: &str) -> Option<(String, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = match line.find('{') {
        Some(open) if line[..open].find(char::is_whitespace).is_none() => {
            open + closing_brace(&line[open..])? + 1
        }
        _ => line.find(char::is_whitespace)?,
    };
    let (series, rest) = line.split_at(end);
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((series.to_owned(), value))
}

/// The offset of the `}` closing the label set that `labels` starts with (quotes respected).
fn closing_brace(labels: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP shim_spans_exported_total Spans.\n\
        # TYPE shim_spans_exported_total counter\n\
        shim_spans_exported_total{exporter=\"otlp\"} 300\n\
        shim_spans_exported_total{exporter=\"zipkin\"} 12\n\
        shim_decisions_total{decision=\"keep\",policy=\"a b}\"} 7 # {trace_id=\"ab\"} 1.0\n\
        shim_queue_length 4 1700000000\n\
        broken_line\n";

    #[test]
    fn series_values_totals_and_labels() {
        let s = Samples::parse(TEXT);
        assert_eq!(
            s.value("shim_spans_exported_total{exporter=\"otlp\"}"),
            300.0
        );
        assert_eq!(s.value("shim_queue_length"), 4.0);
        assert_eq!(s.value("missing"), 0.0);
        assert_eq!(s.total("shim_spans_exported_total"), 312.0);
        assert_eq!(s.total("shim_decisions_total"), 7.0);
        let by = s.by_label("shim_spans_exported_total", "exporter");
        assert_eq!(by.get("zipkin"), Some(&12.0));
        assert_eq!(
            value(TEXT, "shim_spans_exported_total{exporter=\"zipkin\"}"),
            12.0
        );
        assert_eq!(s.0.len(), 4, "comments and the broken line are skipped");
    }
}
