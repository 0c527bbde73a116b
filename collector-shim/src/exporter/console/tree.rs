//! Renders a batch as trace trees: spans grouped by trace id, children indented under their
//! parent in start order. Pure (no I/O) so the layout is unit-tested.
use std::collections::HashMap;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use crate::exporter::attrs::{find, find_string, hex, is_record_only, service_name, valid_id};
use crate::model::SpanRecord;

/// Deepest nesting printed; deeper spans are printed at this depth (bounds the indent).
const MAX_DEPTH: usize = 32;

/// ANSI styling, used only when stdout is a terminal.
#[derive(Clone, Copy)]
pub struct Style {
    /// Emit ANSI escape codes.
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Renders every trace of the batch; traces appear in the order their first span arrived.
pub fn render(batch: &[SpanRecord], style: Style) -> String {
    let mut order: Vec<&[u8]> = Vec::new();
    let mut by_trace: HashMap<&[u8], Vec<&SpanRecord>> = HashMap::new();
    for rec in batch {
        let id = rec.span.trace_id.as_slice();
        by_trace
            .entry(id)
            .or_insert_with(|| {
                order.push(id);
                Vec::new()
            })
            .push(rec);
    }
    let mut out = String::new();
    for id in order {
        if let Some(spans) = by_trace.get(id) {
            render_trace(&mut out, id, spans, style);
        }
    }
    out
}

fn render_trace(out: &mut String, trace_id: &[u8], spans: &[&SpanRecord], style: Style) {
    let start = spans
        .iter()
        .map(|r| r.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|r| r.span.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    let mut services: Vec<String> = spans.iter().map(|r| service_name(&r.resource)).collect();
    services.sort();
    services.dedup();
    let errors = spans.iter().filter(|r| is_error(r)).count();
    let mut header = format!(
        "trace {} · {} span{} · {} · {}",
        hex(trace_id),
        spans.len(),
        if spans.len() == 1 { "" } else { "s" },
        ms(end.saturating_sub(start)),
        services.join(", ")
    );
    if errors > 0 {
        header.push_str(&style.paint("31", &format!(" · {errors} error(s)")));
    }
    let _ = writeln!(out, "{}", style.paint("1", &header));

    // Children of each span id present in this batch, in start order.
    let index: HashMap<&[u8], usize> = spans
        .iter()
        .enumerate()
        .map(|(i, r)| (r.span.span_id.as_slice(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, r) in spans.iter().enumerate() {
        match index.get(r.span.parent_span_id.as_slice()) {
            Some(&p) if p != i && valid_id(&r.span.parent_span_id, 8) => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let by_start = |a: &usize, b: &usize| {
        spans[*a]
            .span
            .start_time_unix_nano
            .cmp(&spans[*b].span.start_time_unix_nano)
    };
    roots.sort_by(by_start);
    for c in &mut children {
        c.sort_by(by_start);
    }
    let mut printed = vec![false; spans.len()];
    let ctx = Ctx {
        spans,
        children: &children,
        start,
        style,
    };
    for (n, &r) in roots.iter().enumerate() {
        ctx.line(out, r, "", n + 1 == roots.len(), 0, &mut printed);
    }
    // Spans in a parent cycle (malformed input) are reachable from no root: print them flat.
    for i in 0..spans.len() {
        if !printed[i] {
            ctx.line(out, i, "", true, 0, &mut printed);
        }
    }
    // A blank line between traces keeps the trees apart in a scrolling terminal.
    out.push('\n');
}

struct Ctx<'a> {
    spans: &'a [&'a SpanRecord],
    children: &'a [Vec<usize>],
    start: u64,
    style: Style,
}

impl Ctx<'_> {
    fn line(
        &self,
        out: &mut String,
        i: usize,
        prefix: &str,
        last: bool,
        depth: usize,
        printed: &mut [bool],
    ) {
        if printed[i] {
            return;
        }
        printed[i] = true;
        let branch = if last { "└─ " } else { "├─ " };
        let _ = writeln!(out, "  {prefix}{branch}{}", self.describe(i));
        let child_prefix = if depth >= MAX_DEPTH {
            prefix.to_string()
        } else {
            format!("{prefix}{}", if last { "   " } else { "│  " })
        };
        let kids = &self.children[i];
        for (n, &c) in kids.iter().enumerate() {
            self.line(
                out,
                c,
                &child_prefix,
                n + 1 == kids.len(),
                depth + 1,
                printed,
            );
        }
    }

    fn describe(&self, i: usize) -> String {
        let rec = self.spans[i];
        let s = &rec.span;
        let style = self.style;
        let mut d = format!(
            "{} [{}] {} {} @+{}",
            style.paint("1", &s.name),
            service_name(&rec.resource),
            kind_label(s.kind),
            ms(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)),
            ms(s.start_time_unix_nano.saturating_sub(self.start)),
        );
        if let Some(code) = find(&s.attributes, "http.response.status_code") {
            let _ = write!(d, " http={}", crate::exporter::attrs::value_to_string(code));
        }
        for key in ["rpc.response.status_code", "rpc.grpc.status_code"] {
            if let Some(code) = find_string(&s.attributes, key) {
                let _ = write!(d, " grpc={code}");
                break;
            }
        }
        for key in ["error.type", "envoy.response_flags"] {
            if let Some(v) = find_string(&s.attributes, key).filter(|v| v != "-" && !v.is_empty()) {
                let _ = write!(d, " {key}={v}");
            }
        }
        if matches!(
            find(&s.attributes, "aetherflow.grpc.status_missing"),
            Some(Value::BoolValue(true))
        ) {
            d.push_str(" grpc-status=missing");
        }
        if is_error(rec) {
            let msg = s
                .status
                .as_ref()
                .map(|st| st.message.as_str())
                .unwrap_or("");
            let text = if msg.is_empty() {
                "ERROR".to_string()
            } else {
                format!("ERROR: {msg}")
            };
            let _ = write!(d, " {}", style.paint("31;1", &text));
        } else if s
            .status
            .as_ref()
            .is_some_and(|st| st.code == StatusCode::Ok as i32)
        {
            d.push_str(" OK");
        }
        if is_record_only(s) {
            let _ = write!(
                d,
                " {}",
                style.paint("33", "[record-only, kept by tail sampling]")
            );
        }
        if valid_id(&s.parent_span_id, 8)
            && !self
                .spans
                .iter()
                .any(|r| r.span.span_id == s.parent_span_id)
        {
            let _ = write!(
                d,
                " {}",
                style.paint(
                    "2",
                    &format!("(parent {} not in batch)", hex(&s.parent_span_id))
                )
            );
        }
        let _ = write!(
            d,
            " {}",
            style.paint("2", &format!("span {}", hex(&s.span_id)))
        );
        d
    }
}

fn is_error(rec: &SpanRecord) -> bool {
    rec.span
        .status
        .as_ref()
        .is_some_and(|st| st.code == StatusCode::Error as i32)
}

fn kind_label(kind: i32) -> &'static str {
    match SpanKind::try_from(kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
        SpanKind::Unspecified => "UNSPECIFIED",
    }
}

/// Nanoseconds as milliseconds with two decimals (`12.35 ms`).
fn ms(nanos: u64) -> String {
    format!("{:.2} ms", nanos as f64 / 1e6)
}
