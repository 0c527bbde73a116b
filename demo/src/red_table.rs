//! The RED table `make demo` prints after the trace trees: per route (the shim's `span_name`),
//! requests, errors and an upper bound of the p99 duration from the shim's OpenMetrics text, with
//! one exemplar trace id each (an error's when the route has one, else the slowest bucket's).
use std::collections::BTreeMap;
use std::fmt::Write;

/// One route's figures.
#[derive(Debug, Default, PartialEq)]
pub struct Route {
    /// Spans counted (every request, sampled or not).
    pub requests: f64,
    /// Spans with status ERROR.
    pub errors: f64,
    /// Cumulative bucket counts by upper bound, summed over the route's status codes.
    pub buckets: Vec<(f64, f64)>,
    /// (is an error exemplar, bucket bound, trace id): the best one seen.
    pub exemplar: Option<(bool, f64, String)>,
}

/// `name{labels} value [# {exemplar labels} value ts]` split into its parts.
fn split(line: &str) -> Option<(&str, &str, f64, Option<&str>)> {
    let (sample, exemplar) = match line.split_once(" # ") {
        Some((s, e)) => (s, Some(e)),
        None => (line, None),
    };
    let open = sample.find('{')?;
    let close = sample.rfind('}')?;
    let value = sample[close + 1..].trim().parse().ok()?;
    Some((&sample[..open], &sample[open + 1..close], value, exemplar))
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// Routes of the shim's server spans, keyed by `service span_name`.
pub fn parse(openmetrics: &str) -> BTreeMap<String, Route> {
    let mut routes: BTreeMap<String, Route> = BTreeMap::new();
    for line in openmetrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value, exemplar)) = split(line) else {
            continue;
        };
        if !name.starts_with("shim_red_") || label(labels, "span_kind") != Some("SPAN_KIND_SERVER")
        {
            continue;
        }
        let key = format!(
            "{} {}",
            label(labels, "service_name").unwrap_or(""),
            label(labels, "span_name").unwrap_or("")
        );
        let r = routes.entry(key).or_default();
        let trace = exemplar
            .and_then(|e| label(e, "trace_id"))
            .map(str::to_owned);
        match name {
            "shim_red_requests_total" => r.requests += value,
            "shim_red_errors_total" => {
                r.errors += value;
                if let Some(t) = trace {
                    r.exemplar = Some((true, f64::INFINITY, t));
                }
            }
            "shim_red_duration_seconds_bucket" => {
                let le = match label(labels, "le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().unwrap_or(f64::NAN),
                    None => continue,
                };
                match r.buckets.iter_mut().find(|(b, _)| *b == le) {
                    Some((_, n)) => *n += value,
                    None => r.buckets.push((le, value)),
                }
                if let Some(t) = trace {
                    let better = match &r.exemplar {
                        None => true,
                        Some((is_error, bound, _)) => !is_error && le > *bound,
                    };
                    if better {
                        r.exemplar = Some((false, le, t));
                    }
                }
            }
            _ => {}
        }
    }
    for r in routes.values_mut() {
        r.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    routes
}

impl Route {
    /// The upper bound of the bucket holding the 99th percentile.
    pub fn p99_bound(&self) -> Option<f64> {
        let total = self.buckets.last()?.1;
        let rank = total * 0.99;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= rank && total > 0.0)
            .map(|(b, _)| *b)
    }
}

fn duration(s: f64) -> String {
    if s.is_infinite() {
        "> last bucket".to_owned()
    } else if s < 1.0 {
        format!("≤ {} ms", (s * 1000.0).round())
    } else {
        format!("≤ {s} s")
    }
}

/// The table as text, one line per route.
pub fn render(routes: &BTreeMap<String, Route>) -> String {
    let width = routes
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<width$}  {:>8}  {:>6}  {:>12}  exemplar trace (exported)",
        "route", "requests", "errors", "p99"
    );
    for (name, r) in routes {
        let _ = writeln!(
            out,
            "  {:<width$}  {:>8}  {:>6}  {:>12}  {}",
            name,
            r.requests,
            r.errors,
            r.p99_bound().map(duration).unwrap_or_default(),
            r.exemplar
                .as_ref()
                .map(|(_, _, t)| t.as_str())
                .unwrap_or("– (no trace of it kept)")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_counts_p99_and_an_exemplar() {
        let text = r#"# TYPE shim_red_requests counter
shim_red_requests_total{service_name="envoy",span_name="GET /api/fail",span_kind="SPAN_KIND_SERVER",status_code="5xx"} 2
shim_red_requests_total{service_name="envoy",span_name="GET /api/orders",span_kind="SPAN_KIND_SERVER",status_code="2xx"} 3
shim_red_requests_total{service_name="demo-http",span_name="GET /api/orders",span_kind="SPAN_KIND_CLIENT",status_code="2xx"} 3
shim_red_errors_total{service_name="envoy",span_name="GET /api/fail",span_kind="SPAN_KIND_SERVER",status_code="5xx"} 2 # {trace_id="aa",span_id="01"} 1.0 1.0
shim_red_duration_seconds_bucket{service_name="envoy",span_name="GET /api/orders",span_kind="SPAN_KIND_SERVER",status_code="2xx",le="0.005"} 1 # {trace_id="bb",span_id="02"} 0.001 1.0
shim_red_duration_seconds_bucket{service_name="envoy",span_name="GET /api/orders",span_kind="SPAN_KIND_SERVER",status_code="2xx",le="0.25"} 3 # {trace_id="cc",span_id="03"} 0.2 1.0
shim_red_duration_seconds_bucket{service_name="envoy",span_name="GET /api/orders",span_kind="SPAN_KIND_SERVER",status_code="2xx",le="+Inf"} 3
# EOF"#;
        let routes = parse(text);
        assert_eq!(routes.len(), 2, "client spans are left out: {routes:?}");
        let fail = &routes["envoy GET /api/fail"];
        assert_eq!((fail.requests, fail.errors), (2.0, 2.0));
        assert_eq!(fail.exemplar.as_ref().unwrap().2, "aa");
        let orders = &routes["envoy GET /api/orders"];
        assert_eq!(orders.p99_bound(), Some(0.25));
        assert_eq!(
            orders.exemplar.as_ref().unwrap().2,
            "cc",
            "the slowest bucket's"
        );
        let table = render(&routes);
        assert!(
            table.contains("envoy GET /api/orders") && table.contains("≤ 250 ms"),
            "{table}"
        );
    }
}
