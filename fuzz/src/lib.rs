//! Fuzz target bodies for every parser that takes untrusted bytes, one plain function per
//! target, so the same code runs under libFuzzer (`cargo-fuzz/fuzz_targets/*.rs`, nightly,
//! `make fuzz`) and over the committed seed corpora on stable (`tests/corpus.rs`, `make test`).
//!
//! Each function asserts properties, not only the absence of a panic: round trips
//! (parse, serialize, parse again: equal) where the API has a serializer, and the invariants
//! the specifications promise (a parsed `traceparent` re-serializes to 55 lowercase
//! characters, a `tracestate` we send fits 512 bytes, ...). A failed assertion is a crash
//! libFuzzer reports and minimizes.
//!
//! # Input shapes
//! - Header-valued targets read the input as header lines, `name: value` per line
//!   ([`header_lines`]), so a seed is a readable text file and repeated lines can be tested.
//! - Byte-valued targets (the host's header-pairs buffer, gRPC frames, OTLP protobuf) take the
//!   bytes as they are.
//!
//! # Layout
//! - [`TARGETS`]: every target by name (the corpus directory `corpus/<name>/` and the
//!   `cargo-fuzz` binary of the same name).
//! - [`json_text`]: a JSON writer for the core's [`aetherflow_core::json::Json`] and the
//!   filter's [`Config`] (the round trip of the configuration target).
#![forbid(unsafe_code)]

use aetherflow_core::config::{Config, EnvoyAttributes, InboundName, OutboundName, SpanKindConfig};
use aetherflow_core::grpc::FrameCounter;
use aetherflow_core::headers::HeaderLines;
use aetherflow_core::json::{self, Json};
use aetherflow_core::propagation::baggage::{self, Baggage};
use aetherflow_core::propagation::traceparent::{TraceParent, KNOWN_FLAGS, LEN};
use aetherflow_core::propagation::tracestate::{self, TraceState};
use aetherflow_core::propagation::{b3, jaeger, Extractor, RemoteContext};
use aetherflow_core::route::RouteTable;
use collector_shim::config::load as shim_config;
use collector_shim::receiver::decode::{self, Encoding, ResourceDefaults};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::collections::HashMap;

/// A fuzz target: its name and body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by the name of its corpus directory and its `cargo-fuzz` binary.
pub const TARGETS: &[Target] = &[
    ("header_pairs", header_pairs),
    ("traceparent", traceparent),
    ("tracestate", tracestate),
    ("baggage", baggage),
    ("b3", b3_headers),
    ("jaeger", jaeger_header),
    ("filter_config", filter_config),
    ("route_templates", route_templates),
    ("grpc_frames", grpc_frames),
    ("otlp_protobuf", otlp_protobuf),
    ("otlp_json", otlp_json),
    ("shim_config_yaml", shim_config_yaml),
    ("shim_config_toml", shim_config_toml),
    ("storage_segment", storage_segment),
];

/// Input as header lines: each `\n`-separated line is `name: value` (name lowercased, value
/// without the one optional space after the colon, as a host hands it over); a line without
/// `:` is skipped. Invalid UTF-8 is read lossily (hosts hand the filter strings).
pub fn header_lines(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(data)
        .split('\n')
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            let v = v.strip_prefix(' ').unwrap_or(v);
            Some((k.to_ascii_lowercase(), v.to_owned()))
        })
        .collect()
}

/// The host's header-pairs buffer (`proxy_get_header_map_pairs`), read in place by
/// [`HeaderLines::parse`]. Properties: never panics; no more lines than the buffer can hold
/// (10 bytes each); serializing what was read and parsing it again gives the same lines;
/// a name lookup agrees with iteration.
pub fn header_pairs(data: &[u8]) {
    let lines = HeaderLines::parse(data);
    assert!(
        lines.len() <= data.len() / 10,
        "more lines than bytes allow"
    );
    let pairs: Vec<(&str, &str)> = lines.iter().collect();
    assert_eq!(pairs.len(), lines.len());
    let again = HeaderLines::parse(&lines.serialize());
    let pairs_again: Vec<(&str, &str)> = again.iter().collect();
    assert_eq!(pairs, pairs_again, "serialize then parse changed the lines");
    // A well-formed buffer round-trips byte for byte.
    assert_eq!(again.serialize(), lines.serialize());
    if let Some((name, _)) = pairs.first() {
        let want: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(lines.get_all(name), want);
        assert!(lines.contains(name));
    }
}

/// `traceparent`. Properties of a value that parses: its re-serialization is version `00`,
/// exactly 55 characters of lowercase hex and dashes, with reserved flag bits cleared; it
/// parses back to the same ids; a version-00 input equals it but for the flag bits; the
/// input (trimmed) was at least 55 characters, not version `ff`, with non-zero ids.
pub fn traceparent(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(tp) = TraceParent::parse(value) else {
        return;
    };
    assert!(tp.trace_id.is_valid() && tp.parent_id.is_valid());
    let out = tp.format();
    assert_eq!(out.len(), LEN);
    for (i, c) in out.bytes().enumerate() {
        if matches!(i, 2 | 35 | 52) {
            assert_eq!(c, b'-', "{out}");
        } else {
            assert!(c.is_ascii_digit() || (b'a'..=b'f').contains(&c), "{out}");
        }
    }
    assert!(out.starts_with("00-"));
    let back = TraceParent::parse(&out).expect("our own traceparent must parse");
    assert_eq!(back.trace_id, tp.trace_id);
    assert_eq!(back.parent_id, tp.parent_id);
    assert_eq!(back.flags, tp.flags & KNOWN_FLAGS);
    assert_eq!(back.format(), out);
    let trimmed = value.trim_matches(|c| c == ' ' || c == '\t');
    assert!(trimmed.len() >= LEN && !trimmed.starts_with("ff"));
    if trimmed.starts_with("00") {
        assert_eq!(trimmed.len(), LEN);
        assert_eq!(&trimmed[3..53], &out[3..53], "ids must be kept as received");
    }
}

/// `tracestate` header lines (every line named `tracestate`). Properties: the lines are one
/// list (extracting them equals parsing them joined with `,`); a parsed list has at most 32
/// members with unique, valid keys and valid values; the value we send is at most 512 bytes,
/// parses, keeps members in order (a subsequence), and is the whole list when that fits;
/// updating a member keeps the list valid with that member first.
pub fn tracestate(data: &[u8]) {
    let lines: Vec<(String, String)> = header_lines(data)
        .into_iter()
        .map(|(_, v)| (tracestate::TRACESTATE.to_owned(), v))
        .collect();
    let extracted = TraceState::extract(&lines);
    let joined: Vec<&str> = lines.iter().map(|(_, v)| v.as_str()).collect();
    match (&extracted, TraceState::parse(&joined.join(","))) {
        (Ok(None), _) => assert!(lines.is_empty()),
        (Ok(Some(a)), Ok(b)) => assert_eq!(a, &b, "lines and the joined list differ"),
        (Err(a), Err(b)) => assert_eq!(a, &b),
        (a, b) => panic!("lines gave {a:?}, the joined list {b:?}"),
    }
    let Ok(Some(mut ts)) = extracted else {
        return;
    };
    let members: Vec<(String, String)> = ts
        .members()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(members.len() <= tracestate::MAX_MEMBERS);
    for (i, (k, v)) in members.iter().enumerate() {
        assert!(tracestate::is_valid_key(k) && tracestate::is_valid_value(v));
        assert!(
            members[..i].iter().all(|(seen, _)| seen != k),
            "duplicate {k}"
        );
    }
    let out = ts.header_value();
    assert!(out.len() <= tracestate::MAX_LEN, "{} bytes sent", out.len());
    let sent = TraceState::parse(&out).expect("the value we send must parse");
    let mut rest = members.iter();
    for (k, v) in sent.members() {
        assert!(
            rest.any(|(rk, rv)| rk == k && rv == v),
            "member {k} reordered or changed"
        );
    }
    let whole: usize = members
        .iter()
        .map(|(k, v)| k.len() + 1 + v.len())
        .sum::<usize>()
        + members.len().saturating_sub(1);
    if whole <= tracestate::MAX_LEN {
        assert_eq!(sent, ts, "a list that fits must be sent whole");
    }
    assert!(ts.set_front("ot", "th:8"));
    assert_eq!(ts.members().next(), Some(("ot", "th:8")));
    assert!(ts.members().count() <= tracestate::MAX_MEMBERS);
    assert!(TraceState::parse(
        &ts.members()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    )
    .is_ok());
}

/// `baggage` header lines. Properties: at most 64 members and 8192 bytes are kept; the value
/// sent parses back to the same members, within the limits (nothing more to trim), with the
/// same validity; a lookup by any member's key never panics and decodes to UTF-8 or nothing.
pub fn baggage(data: &[u8]) {
    let lines: Vec<(String, String)> = header_lines(data)
        .into_iter()
        .map(|(_, v)| (baggage::BAGGAGE.to_owned(), v))
        .collect();
    let Some(bag) = Baggage::extract(&lines) else {
        assert!(lines.is_empty());
        return;
    };
    assert!(bag.len() <= baggage::MAX_MEMBERS);
    let out = bag.header_value();
    assert!(out.len() <= baggage::MAX_BYTES, "{} bytes sent", out.len());
    let again = Baggage::extract(&vec![(baggage::BAGGAGE.to_owned(), out.clone())])
        .expect("one line was given");
    assert!(!again.trimmed, "the value we send must fit the limits");
    assert_eq!(again.header_value(), out);
    assert_eq!(again.len(), bag.len());
    assert_eq!(again.invalid, bag.invalid);
    if !bag.invalid {
        for member in out.split(',').filter(|m| !m.is_empty()) {
            let (k, v) = baggage::parse_member(member).expect("a valid member");
            let _ = bag.get(k);
            let _ = baggage::percent_decode(v);
        }
    }
}

fn assert_valid(ctx: &RemoteContext) {
    assert!(ctx.trace_id.is_valid() && ctx.span_id.is_valid());
}

/// B3 single (`b3`) and multi (`x-b3-*`) headers. Properties: a context read is valid and,
/// written back in either form, reads back as the same ids and sampling decision (a deferred
/// decision is written as not sampled); a `b3` value of our own is
/// `{32 hex}-{16 hex}-{0|1}`.
pub fn b3_headers(data: &[u8]) {
    let lines = header_lines(data);
    let _ = b3::sampling_only(&lines);
    let _ = aetherflow_core::propagation::extract(
        &lines,
        &[aetherflow_core::propagation::InboundFormat::B3],
    );
    let Some(ctx) = b3::extract(&lines) else {
        return;
    };
    assert_valid(&ctx);
    let sampled = ctx.sampled == Some(true);
    let mut multi: HashMap<String, String> = HashMap::new();
    b3::inject_multi(&mut multi, &ctx.trace_id, &ctx.span_id, sampled);
    let back = b3::extract_multi(&multi).expect("our own x-b3-* headers must read back");
    assert_eq!((back.trace_id, back.span_id), (ctx.trace_id, ctx.span_id));
    assert_eq!(back.sampled, Some(sampled));
    let mut single: HashMap<String, String> = HashMap::new();
    b3::inject_single(&mut single, &ctx.trace_id, &ctx.span_id, sampled);
    let value = single.get(b3::B3).expect("b3 written");
    assert_eq!(value.len(), 32 + 1 + 16 + 2, "{value}");
    let back = b3::extract_single(&single).expect("our own b3 must read back");
    assert_eq!((back.trace_id, back.span_id), (ctx.trace_id, ctx.span_id));
    assert_eq!(back.sampled, Some(sampled));
}

/// Jaeger `uber-trace-id`. Properties: a context read is valid and, written back, reads back
/// as the same ids and sampling decision; our own value is `{32 hex}:{16 hex}:0:{0|1}`.
pub fn jaeger_header(data: &[u8]) {
    let lines = header_lines(data);
    let Some(ctx) = jaeger::extract(&lines) else {
        return;
    };
    assert_valid(&ctx);
    let sampled = ctx.sampled == Some(true);
    let mut out: HashMap<String, String> = HashMap::new();
    jaeger::inject(&mut out, &ctx.trace_id, &ctx.span_id, sampled);
    let value = out
        .get(jaeger::UBER_TRACE_ID)
        .expect("uber-trace-id written");
    assert_eq!(value.len(), 32 + 1 + 16 + 3 + 1, "{value}");
    let back = jaeger::extract(&out).expect("our own uber-trace-id must read back");
    assert_eq!((back.trace_id, back.span_id), (ctx.trace_id, ctx.span_id));
    assert_eq!(back.sampled, Some(sampled));
}

/// The filter's JSON configuration. Properties: the core's JSON reader round-trips (parse,
/// write, parse: equal); every number in the document reads as `f64` exactly as `str::parse`
/// reads it, bit for bit (the core's own decimal reader, `decimal::parse`); a configuration
/// that is accepted has compilable routes and, written back as JSON, is accepted again as the
/// same configuration.
pub fn filter_config(data: &[u8]) {
    if let Ok(doc) = json::parse(data) {
        let text = json_text::value(&doc);
        let again = json::parse(text.as_bytes()).expect("our own JSON must parse");
        assert_eq!(again, doc, "JSON round trip of {text}");
        numbers_read_exactly(&doc);
    }
    let Ok(cfg) = Config::from_json(data) else {
        return;
    };
    assert!(cfg.routes().is_ok());
    let _ = (cfg.threshold(), cfg.inbound(), cfg.outbound());
    let text = json_text::config(&cfg);
    let again = Config::from_json(text.as_bytes())
        .unwrap_or_else(|e| panic!("our own configuration {text} is refused: {e}"));
    assert_eq!(again, cfg, "configuration round trip of {text}");
}

/// Every number in a JSON value reads as `str::parse::<f64>` reads it, bit for bit.
fn numbers_read_exactly(v: &Json) {
    match v {
        Json::Number(t) => {
            let want: f64 = t.parse().expect("a JSON number is a Rust float literal");
            let got = v.as_f64().map(f64::to_bits);
            assert_eq!(got, Some(want.to_bits()), "{t} read as {:?}", v.as_f64());
        }
        Json::Array(items) => items.iter().for_each(numbers_read_exactly),
        Json::Object(members) => members.iter().for_each(|(_, m)| numbers_read_exactly(m)),
        Json::Null | Json::Bool(_) | Json::String(_) => {}
    }
}

/// Route templates: every line but the last is a template, the last is a request path.
/// Properties: an invalid table names a template that exists; a match is one of the
/// templates; a query or fragment never changes the match; for each template, a path made
/// from it (parameters filled in) matches it or an earlier template.
pub fn route_templates(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let path = lines.pop().unwrap_or_default();
    let table = match RouteTable::compile(&lines) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.index < lines.len().max(1) || e.index == aetherflow_core::route::MAX_ROUTES);
            assert!(!e.reason.is_empty());
            return;
        }
    };
    let found = table.find(&path);
    if let Some(t) = found {
        assert!(lines.iter().any(|l| l == t));
    }
    let bare = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    assert_eq!(table.find(&format!("{bare}?q=/x#f")), found);
    for (i, t) in lines.iter().enumerate() {
        let concrete: Vec<String> = t
            .split('/')
            .map(|seg| {
                if seg.starts_with("{*") {
                    "rest/of/it".to_owned()
                } else if seg.starts_with('{') {
                    "v".to_owned()
                } else {
                    seg.to_owned()
                }
            })
            .collect();
        let concrete = concrete.join("/");
        let hit = table
            .find(&concrete)
            .unwrap_or_else(|| panic!("{concrete} made from {t} matches nothing"));
        let at = lines.iter().position(|l| l == hit).unwrap_or(usize::MAX);
        assert!(at <= i, "{concrete} matched {hit}, after {t}");
    }
}

/// gRPC length-prefixed messages counted from body chunks. Properties: the count equals a
/// direct walk of the frames; it does not depend on how the body is cut into chunks (cuts
/// taken from the input) nor on whether chunks are in memory or read piecewise; a failed
/// read stops counting.
pub fn grpc_frames(data: &[u8]) {
    // Reference: a message per complete 5-byte prefix, its payload skipped by length.
    let mut expected = 0u64;
    let mut at = 0usize;
    while at + 5 <= data.len() {
        expected += 1;
        let len = u32::from_be_bytes([data[at + 1], data[at + 2], data[at + 3], data[at + 4]]);
        at = at.saturating_add(5).saturating_add(len as usize);
    }
    let mut whole = FrameCounter::new();
    whole.feed(data);
    assert_eq!(whole.messages, expected);
    assert!(!whole.lost);
    // Chunk lengths from the input's own bytes (1..=16), so the fuzzer explores the cuts.
    let mut cut = FrameCounter::new();
    let mut piecewise = FrameCounter::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (usize::from(data[i % data.len()] % 16) + 1).min(rest.len());
        let (chunk, after) = rest.split_at(n);
        cut.feed(chunk);
        piecewise.feed_with(chunk.len(), |off, len| {
            chunk.get(off..off + len).map(<[u8]>::to_vec)
        });
        rest = after;
        i += 1;
    }
    assert_eq!(cut.messages, expected);
    assert_eq!(piecewise.messages, expected);
    assert!(!piecewise.lost);
    let mut failing = FrameCounter::new();
    failing.feed_with(data.len(), |_, _| None);
    assert_eq!(failing.lost, !data.is_empty());
    assert_eq!(failing.messages, 0);
}

/// The shim's OTLP protobuf intake. Properties: a request that decodes re-encodes to bytes
/// that decode to the same request (compared as encodings, so NaN doubles compare); every
/// span is either accepted with valid ids or rejected and counted; gzip inflation never
/// returns more than its limit.
pub fn otlp_protobuf(data: &[u8]) {
    gunzip_bounded(data);
    let Ok(req) = decode::parse(data, Encoding::Protobuf) else {
        return;
    };
    let bytes = req.encode_to_vec();
    let again = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("our own encoding");
    assert_eq!(again.encode_to_vec(), bytes, "protobuf round trip");
    check_records(req);
}

/// A durable queue segment file as the shim reads it at start-up (`storage::record`).
/// Properties: reading never panics and always moves forward; the scan's counts are the walk's;
/// the valid records, framed again into a fresh segment, read back as the same payloads with
/// no damage reported.
pub fn storage_segment(data: &[u8]) {
    use collector_shim::storage::record::{self, Parsed, SEGMENT_HEADER, SEGMENT_MAGIC};
    let Some(scan) = record::scan(data, 0) else {
        assert!(!data.starts_with(SEGMENT_MAGIC), "our header refused");
        return;
    };
    let mut at = SEGMENT_HEADER as usize;
    let (mut payloads, mut corrupt, mut truncated) = (Vec::new(), 0u64, false);
    loop {
        match record::parse(data, at) {
            Parsed::Record { payload, next } => {
                assert!(next > at && next <= data.len(), "a record moves forward");
                payloads.push(data[payload].to_vec());
                at = next;
            }
            Parsed::Corrupt { resume } => {
                assert!(resume > at && resume <= data.len(), "resync moves forward");
                corrupt += 1;
                at = resume;
            }
            Parsed::Truncated => {
                truncated = true;
                break;
            }
            Parsed::End => break,
        }
    }
    let with_count = payloads
        .iter()
        .filter(|p| record::split_payload(p).is_some())
        .count() as u64;
    assert_eq!(
        (scan.records, scan.corrupt, scan.truncated, scan.bad_payload),
        (
            with_count,
            corrupt,
            truncated,
            payloads.len() as u64 - with_count
        ),
        "scan agrees with the walk"
    );
    let mut rebuilt = SEGMENT_MAGIC.to_vec();
    for p in &payloads {
        rebuilt.extend(record::frame(p));
    }
    let again = record::scan(&rebuilt, 0).expect("our own segment");
    assert_eq!(
        (again.records, again.corrupt, again.truncated),
        (scan.records, 0, false),
        "valid records re-framed read back clean"
    );
}

/// The shim's OTLP/JSON intake. Properties: a request that parses, written back as OTLP/JSON
/// by the same model, parses to the same request (compared as protobuf encodings); records
/// as for protobuf.
pub fn otlp_json(data: &[u8]) {
    let Ok(req) = decode::parse(data, Encoding::Json) else {
        return;
    };
    let bytes = req.encode_to_vec();
    // The JSON writer refuses what JSON cannot hold (non-finite doubles); only what it writes
    // must read back the same.
    if let Ok(text) = serde_json::to_vec(&req) {
        let again = decode::parse(&text, Encoding::Json).unwrap_or_else(|e| {
            panic!(
                "our own OTLP/JSON is refused: {e:?}: {}",
                String::from_utf8_lossy(&text)
            )
        });
        assert_eq!(again.encode_to_vec(), bytes, "OTLP/JSON round trip");
    }
    check_records(req);
}

fn check_records(req: ExportTraceServiceRequest) {
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    let defaults = ResourceDefaults {
        attributes: vec![("service.name".into(), "fuzz".into())],
    };
    let acc = decode::into_records(req, &defaults);
    assert_eq!(acc.spans.len() as u64 + acc.rejected, total as u64);
    assert_eq!(acc.reason.is_some(), acc.rejected > 0);
    for r in &acc.spans {
        assert_eq!(r.span.trace_id.len(), 16);
        assert_eq!(r.span.span_id.len(), 8);
        assert!(r
            .resource
            .attributes
            .iter()
            .any(|kv| kv.key == "service.name"));
    }
}

fn gunzip_bounded(data: &[u8]) {
    const LIMIT: usize = 64 * 1024;
    if let Ok(out) = decode::gunzip(data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
}

/// The shim's YAML configuration file (YAML also reads JSON).
pub fn shim_config_yaml(data: &[u8]) {
    shim_config_file(data, false);
}

/// The shim's TOML configuration file.
pub fn shim_config_toml(data: &[u8]) {
    shim_config_file(data, true);
}

/// Properties: never panics; an error names a key; a configuration that loads is valid and
/// finishing it again (as embedders do) changes nothing that matters: it stays valid.
fn shim_config_file(data: &[u8], toml: bool) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match shim_config::parse_str(text, toml) {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let Ok(done) = shim_config::finish(cfg) else {
        return;
    };
    assert!(shim_config::validate(&done).is_ok());
    let exporters = done.exporters.len();
    let again = shim_config::finish(done).expect("a finished configuration finishes again");
    assert_eq!(again.exporters.len(), exporters);
}

/// A JSON writer for the round trips: the core's [`Json`] values and the filter's [`Config`].
pub mod json_text {
    use super::*;

    /// A JSON string literal.
    pub fn string(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// A value, numbers written as they were read.
    pub fn value(v: &Json) -> String {
        match v {
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Number(t) => t.clone(),
            Json::String(s) => string(s),
            Json::Array(items) => {
                format!(
                    "[{}]",
                    items.iter().map(value).collect::<Vec<_>>().join(",")
                )
            }
            Json::Object(members) => format!(
                "{{{}}}",
                members
                    .iter()
                    .map(|(k, v)| format!("{}:{}", string(k), value(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    fn strings(v: &[String]) -> String {
        format!(
            "[{}]",
            v.iter().map(|s| string(s)).collect::<Vec<_>>().join(",")
        )
    }

    /// Every key of a configuration, in the filter's JSON form.
    pub fn config(c: &Config) -> String {
        let inbound: Vec<String> = c
            .inbound_formats
            .iter()
            .map(|f| match f {
                InboundName::W3c => "w3c",
                InboundName::B3 => "b3",
                InboundName::Jaeger => "jaeger",
            })
            .map(str::to_owned)
            .collect();
        let outbound: Vec<String> = c
            .outbound_formats
            .iter()
            .map(|f| match f {
                OutboundName::W3c => "w3c",
                OutboundName::B3 => "b3",
                OutboundName::B3single => "b3single",
                OutboundName::Jaeger => "jaeger",
            })
            .map(str::to_owned)
            .collect();
        let attributes: Vec<String> = EnvoyAttributes::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let one = [
                    EnvoyAttributes::CLIENT_ADDRESS,
                    EnvoyAttributes::PROTOCOL,
                    EnvoyAttributes::ROUTE_NAME,
                    EnvoyAttributes::UPSTREAM_CLUSTER,
                    EnvoyAttributes::UPSTREAM_ADDRESS,
                    EnvoyAttributes::RESPONSE_FLAGS,
                ][*i];
                c.envoy_attributes.contains(one)
            })
            .map(|(_, n)| (*n).to_owned())
            .collect();
        let resource = format!(
            "{{{}}}",
            c.resource_attributes
                .iter()
                .map(|(k, v)| format!("{}:{}", string(k), string(v)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let span_kind = match c.span_kind {
            SpanKindConfig::Server => "server",
            SpanKindConfig::Client => "client",
        };
        let members = [
            ("service_name", string(&c.service_name)),
            ("deployment_environment", string(&c.deployment_environment)),
            ("collector_cluster", string(&c.collector_cluster)),
            ("collector_authority", string(&c.collector_authority)),
            ("collector_path", string(&c.collector_path)),
            ("collector_timeout_ms", c.collector_timeout_ms.to_string()),
            ("flush_interval_ms", c.flush_interval_ms.to_string()),
            ("max_batch_spans", c.max_batch_spans.to_string()),
            ("max_buffered_spans", c.max_buffered_spans.to_string()),
            (
                "max_inflight_dispatches",
                c.max_inflight_dispatches.to_string(),
            ),
            // Display of an f64 is the shortest text that reads back as the same value.
            ("sample_ratio", c.sample_ratio.to_string()),
            ("record_unsampled", c.record_unsampled.to_string()),
            ("force_sample_header", string(&c.force_sample_header)),
            (
                "trust_incoming_context",
                c.trust_incoming_context.to_string(),
            ),
            ("inbound_formats", strings(&inbound)),
            ("outbound_formats", strings(&outbound)),
            (
                "trace_id_response_header",
                string(&c.trace_id_response_header),
            ),
            ("traceresponse_header", c.traceresponse_header.to_string()),
            ("span_kind", string(span_kind)),
            ("record_request_headers", strings(&c.record_request_headers)),
            (
                "record_response_headers",
                strings(&c.record_response_headers),
            ),
            ("baggage_to_attributes", strings(&c.baggage_to_attributes)),
            ("resource_attributes", resource),
            ("grpc_message_counting", c.grpc_message_counting.to_string()),
            ("max_attribute_length", c.max_attribute_length.to_string()),
            ("http_routes", strings(&c.http_routes)),
            ("envoy_attributes", strings(&attributes)),
        ];
        format!(
            "{{{}}}",
            members
                .iter()
                .map(|(k, v)| format!("{}:{v}", string(k)))
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}
