//! W3C Trace Context Level 2 and W3C Baggage, end to end through the product as deployed: a
//! caller -> ingress listener (filter, SERVER span) -> an uninstrumented application that copies
//! the context headers onto its outbound call -> egress listener (filter, CLIENT span) -> the
//! callee (a recording server). The same path the official suite takes (`make test-w3c`), with
//! cases written from the specification text:
//!
//! - Trace Context Level 2, editor's draft at w3c/trace-context `acab820` (2026-06-29): the
//!   `traceparent` field values (version, trace-id, parent-id, trace-flags with the
//!   random-trace-id flag) and their versioning, the `tracestate` field values (combining header
//!   fields, key and value grammar, 32 members, duplicates, limits), the allowed mutations and the
//!   processing model.
//! - W3C Baggage, editor's draft at w3c/baggage `9af80f4` (2025-06-18), "Limits": every member
//!   must be propagated while the combined baggage has at most 64 members and 8192 bytes; no
//!   partial member; there is no per-member limit any more.

use std::time::Duration;

use aetherflow_tests::http_client::{self, ClientRequest};
use aetherflow_tests::stack::{unique_tag, REQUEST_TIMEOUT, SPAN_WAIT};
use aetherflow_tests::w3c::{parse_emitted_traceparent, tracestate_members, Traceparent};
use aetherflow_tests::w3c_service::W3cStack;
use aetherflow_tests::{RecordedRequest, UpstreamServer};

const T: &str = "12345678901234567890123456789012";
const P: &str = "1234567890123456";

/// The stack and the callee the egress listener routes to.
struct Path2 {
    stack: W3cStack,
    callee: UpstreamServer,
}

impl Path2 {
    async fn start(form: aetherflow_tests::Form) -> Path2 {
        let callee = UpstreamServer::start().await;
        let stack = W3cStack::start(form, callee.addr()).await;
        Path2 { stack, callee }
    }

    /// One request with `headers` to the ingress listener, asking the application for `n`
    /// outbound calls; returns the calls as the callee received them, in order.
    async fn call_n(&self, headers: &[(&str, &str)], n: usize) -> Vec<RecordedRequest> {
        let tag = unique_tag("w3c");
        let callee = self.callee.addr();
        let body: Vec<serde_json::Value> = (0..n)
            .map(|i| serde_json::json!({"url": format!("http://{callee}/{tag}.{i}"), "arguments": []}))
            .collect();
        let mut req = ClientRequest::get("/test")
            .method("POST")
            .header("content-type", "application/json")
            .header("x-test-id", &tag)
            .body(serde_json::Value::Array(body).to_string());
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = http_client::send(self.stack.envoy.ingress(), &req, REQUEST_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.stack.envoy.log_tail(20)));
        assert_eq!(
            resp.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&resp.body)
        );
        let mut out = Vec::new();
        for i in 0..n {
            let path = format!("/{tag}.{i}");
            let got = self
                .callee
                .wait_request(Duration::from_secs(10), |r| r.path == path)
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "the callee never got {path} (service said {})",
                        String::from_utf8_lossy(&resp.body)
                    )
                });
            out.push(got);
        }
        out
    }

    async fn call(&self, headers: &[(&str, &str)]) -> RecordedRequest {
        self.call_n(headers, 1).await.remove(0)
    }
}

/// The one `traceparent` line the callee got, parsed strictly as version 00.
fn traceparent(r: &RecordedRequest) -> Traceparent {
    let lines = r.header_all("traceparent");
    assert_eq!(lines.len(), 1, "exactly one traceparent line: {lines:?}");
    parse_emitted_traceparent(&lines[0]).unwrap_or_else(|e| panic!("{e}"))
}

/// The callee's `tracestate` members (all lines combined), without our own `ot` member.
fn tracestate(r: &RecordedRequest) -> Vec<String> {
    tracestate_members(&r.header_all("tracestate").join(","))
        .into_iter()
        .filter(|m| !m.starts_with("ot="))
        .collect()
}

fn tp(version: &str, flags: &str) -> String {
    format!("{version}-{T}-{P}-{flags}")
}

/// `traceparent` values the spec makes invalid: the trace restarts (a new trace id).
#[rustfmt::skip]
fn restarting() -> Vec<(String, &'static str)> {
    vec![
        (format!("{}.", tp("00", "01")),                   "version 00 is exactly 55 characters (trailing '.')"),
        (format!("{}-what-the-future", tp("00", "01")),    "version 00 carries no extra fields"),
        (format!("{}-", tp("00", "01")),                   "version 00 with a trailing dash"),
        (format!("cc-{T}-{P}-01.what-the-future"),          "a future version's flags must end the value or be followed by '-'"),
        (tp("ff", "01"),                                   "version ff is forbidden"),
        (tp(".0", "01"),                                   "version is not two hex digits"),
        (tp("0", "01"),                                    "version of one digit"),
        (tp("000", "01"),                                  "version of three digits"),
        (tp("0A", "01"),                                   "version in uppercase hex"),
        (format!("00-{}-{P}-01", "0".repeat(32)),           "all-zero trace-id"),
        (format!("00-{}-{P}-01", &T[..31]),                 "trace-id of 31 digits"),
        (format!("00-{T}3-{P}-01"),                         "trace-id of 33 digits"),
        (format!("00-.{}-{P}-01", &T[1..]),                 "trace-id with a non-hex character"),
        (format!("00-{}-{P}-01", T.replace('1', "A")),      "trace-id in uppercase hex"),
        (format!("00-{T}-{}-01", "0".repeat(16)),           "all-zero parent-id"),
        (format!("00-{T}-{}-01", &P[..15]),                 "parent-id of 15 digits"),
        (format!("00-{T}-{P}7-01"),                         "parent-id of 17 digits"),
        (format!("00-{T}-{}.-01", &P[..15]),                "parent-id with a non-hex character"),
        (tp("00", "1"),                                    "trace-flags of one digit"),
        (tp("00", "001"),                                  "trace-flags of three digits"),
        (tp("00", ".0"),                                   "trace-flags with a non-hex character"),
        (tp("00", "0F"),                                   "trace-flags in uppercase hex"),
        (format!("cc-{T}-{P}"),                             "a future version shorter than 55 characters"),
    ]
}

aetherflow_tests::each_form! {
async fn traceparent_version_ids_and_restarts(form) {
    let p = Path2::start(form).await;

    // A valid parent is continued: same trace-id, a new parent-id (the egress span's), version 00.
    let got = traceparent(&p.call(&[("traceparent", &tp("00", "01"))]).await);
    assert_eq!(got.trace_id, T);
    assert_ne!(got.parent_id, P);
    assert!(got.sampled());

    // Optional whitespace around the value is not part of it.
    for v in [format!(" {}", tp("00", "01")), format!("{}\t", tp("00", "01")), format!("\t {} \t", tp("00", "01"))] {
        assert_eq!(traceparent(&p.call(&[("traceparent", &v)]).await).trace_id, T, "{v:?}");
    }

    // Higher versions are parsed by the version-00 layout, with or without more fields, and
    // re-emitted as version 00.
    for v in [tp("cc", "01"), format!("{}-what-the-future-will-be-like", tp("cc", "01")), tp("01", "00"), format!("{}-", tp("fe", "01"))] {
        let got = traceparent(&p.call(&[("traceparent", &v)]).await);
        assert_eq!((got.version.as_str(), got.trace_id.as_str()), ("00", T), "{v}");
        assert_ne!(got.parent_id, P, "{v}");
    }

    // Invalid values restart the trace.
    for (v, why) in restarting() {
        let got = traceparent(&p.call(&[("traceparent", &v), ("tracestate", "foo=1")]).await.clone());
        assert_ne!(got.trace_id, T, "{why}: {v:?}");
        assert_ne!(got.trace_id, "0".repeat(32), "{why}");
        assert!(got.random(), "{why}: a trace we start has a random trace-id and says so");
    }

    // Two traceparent header fields: neither is trusted.
    let other = format!("00-{}1-{P}-01", &T[..31]);
    let r = p
        .call(&[("traceparent", &other), ("traceparent", &tp("00", "01"))])
        .await;
    let got = traceparent(&r);
    assert!(got.trace_id != T && got.trace_id != other[3..35], "{got:?}");

    // Invalid traceparent: its tracestate must not be parsed, so it is not propagated.
    let r = p.call(&[("traceparent", &tp("ff", "01")), ("tracestate", "foo=1,bar=2")]).await;
    assert_eq!(tracestate(&r), Vec::<String>::new());

    // No traceparent: a new trace; a lone tracestate is discarded.
    let a = p.call(&[("tracestate", "foo=1")]).await;
    let b = p.call(&[]).await;
    assert_ne!(traceparent(&a).trace_id, traceparent(&b).trace_id);
    assert!(traceparent(&a).random() && traceparent(&b).random());
    assert_eq!(tracestate(&a), Vec::<String>::new());
}
}

aetherflow_tests::each_form! {
async fn trace_flags_and_the_random_flag(form) {
    let p = Path2::start(form).await;
    // (incoming flags, outgoing flags): sampled follows the caller (ratio 1.0 never overrides
    // a caller's decision), random is copied both ways while the trace-id is kept, and the
    // reserved bits are written as zero.
    #[rustfmt::skip]
    let cases = [
        ("00", 0x00, "neither: random must stay unset"),
        ("01", 0x01, "sampled; random must stay unset"),
        ("02", 0x02, "random set: kept, also unsampled"),
        ("03", 0x03, "both"),
        ("09", 0x01, "reserved bit 0x08 zeroed"),
        ("fe", 0x02, "reserved bits zeroed, random kept"),
        ("ff", 0x03, "every bit: only the two defined ones leave"),
    ];
    for (flags, want, why) in cases {
        let got = traceparent(&p.call(&[("traceparent", &tp("00", flags))]).await);
        assert_eq!(got.trace_id, T, "{why}");
        assert_eq!(got.flags, want, "{flags}: {why}");
    }
    // A higher version's flags: the flags this version defines are read, the rest written as 0.
    let got = traceparent(&p.call(&[("traceparent", &format!("{}-x", tp("cc", "ff")))]).await);
    assert_eq!((got.trace_id.as_str(), got.flags), (T, 0x03));
}
}

aetherflow_tests::each_form! {
async fn each_outbound_call_gets_its_own_parent_id(form) {
    let p = Path2::start(form).await;
    for headers in [vec![("traceparent", tp("00", "01"))], vec![], vec![("traceparent", format!("00-{}-{P}-01", "0".repeat(32)))]] {
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let calls = p.call_n(&hdrs, 3).await;
        let tps: Vec<Traceparent> = calls.iter().map(traceparent).collect();
        let traces: std::collections::BTreeSet<_> = tps.iter().map(|t| t.trace_id.clone()).collect();
        let parents: std::collections::BTreeSet<_> = tps.iter().map(|t| t.parent_id.clone()).collect();
        assert_eq!(traces.len(), 1, "one trace for one incoming request: {tps:?}");
        assert_eq!(parents.len(), 3, "a CLIENT span per call: {tps:?}");
        let kept = headers.first().is_some_and(|(_, v)| v.contains(T));
        assert_eq!(traces.contains(T), kept, "{headers:?}");
        assert!(!traces.contains(&"0".repeat(32)));
    }
}
}

aetherflow_tests::each_form! {
async fn spans_chain_caller_server_client_callee(form) {
    let p = Path2::start(form).await;
    let r = p.call(&[("traceparent", &tp("00", "01")), ("tracestate", "congo=t61rcWkgMzE")]).await;
    let out = traceparent(&r);
    // The callee's parent is the egress CLIENT span; its parent is the ingress SERVER span, whose
    // parent is the caller's P. All in trace T, and both spans carry the tracestate.
    let client = p
        .stack
        .shim
        .wait_spans(1, SPAN_WAIT, |s| s.trace_id() == T && s.span_id() == out.parent_id)
        .await
        .unwrap_or_else(|s| panic!("no CLIENT span {}: {s:?}", out.parent_id))
        .remove(0);
    let server = p
        .stack
        .shim
        .wait_spans(1, SPAN_WAIT, |s| s.trace_id() == T && s.span_id() == client.parent_span_id())
        .await
        .unwrap_or_else(|s| panic!("no SERVER span {}: {s:?}", client.parent_span_id()))
        .remove(0);
    assert_eq!(server.parent_span_id(), P);
    assert_eq!(client.span.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(server.span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(client.span.trace_state, "congo=t61rcWkgMzE");
    assert_eq!(server.span.trace_state, "congo=t61rcWkgMzE");
    assert_eq!(tracestate(&r), ["congo=t61rcWkgMzE"]);
}
}

/// (tracestate header fields with a valid traceparent, the members the callee must get).
#[rustfmt::skip]
fn tracestate_cases() -> Vec<(Vec<String>, Vec<String>, &'static str)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let key256 = "z".repeat(256);
    let tenant_key = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let long_system = format!("t@{}", "v".repeat(15));
    let value: String = (0x20u8..=0x7e).filter(|c| *c != b',' && *c != b'=').map(char::from).collect();
    let all_key_chars = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/";
    let m32: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
    let m33: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    vec![
        (s(&["foo=1,bar=2"]),                          s(&["foo=1", "bar=2"]),                 "inherited in order"),
        (s(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]), s(&["foo=1", "bar=2", "rojo=1", "congo=2", "baz=3"]), "header fields combined in order"),
        (s(&["foo=1 \t , \t bar=2,\t baz=3"]),         s(&["foo=1", "bar=2", "baz=3"]),        "OWS around members"),
        (s(&["foo=1", ""]),                            s(&["foo=1"]),                          "an empty header field"),
        (s(&[""]),                                     s(&[]),                                 "only an empty field: nothing sent"),
        (s(&["foo=1,,bar=2, ,"]),                      s(&["foo=1", "bar=2"]),                 "empty and whitespace-only members"),
        (s(&["foo= 1"]),                               s(&["foo= 1"]),                         "leading spaces are part of the value"),
        (s(&["foo=1 "]),                               s(&["foo=1"]),                          "trailing spaces are OWS"),
        (s(&["foo=1,foo=2"]),                          s(&["foo=1"]),                          "a duplicate key: the later one is discarded"),
        (s(&["foo=1,bar=2", "foo=1"]),                 s(&["foo=1", "bar=2"]),                 "a duplicate across fields"),
        (s(&["0foo=1"]),                               s(&["0foo=1"]),                         "a key may start with a digit"),
        (s(&["foo@=1,bar=2"]),                         s(&["foo@=1", "bar=2"]),                "'@' anywhere but first"),
        (s(&["foo@@bar=1,foo@bar@baz=2"]),             s(&["foo@@bar=1", "foo@bar@baz=2"]),    "several '@'"),
        (vec![format!("{long_system}=1")],             vec![format!("{long_system}=1")],       "no 14-character limit after '@' any more"),
        (vec![format!("{tenant_key}=1")],              vec![format!("{tenant_key}=1")],        "256-character key with '@'"),
        (vec!["foo=1".into(), format!("{key256}=1")],  vec!["foo=1".into(), format!("{key256}=1")], "256-character key"),
        (vec![format!("{all_key_chars}={value}")],     vec![format!("{all_key_chars}={value}")], "every key and value character"),
        (vec![m32[..10].join(","), m32[10..].join(",")], m32.clone(),                          "32 members"),
        (s(&["@foo=1,bar=2"]),                         s(&[]),                                 "a key must not start with '@'"),
        (s(&["foo =1"]),                               s(&[]),                                 "a space inside the member"),
        (s(&["FOO=1"]),                                s(&[]),                                 "uppercase key"),
        (s(&["foo.bar=1"]),                            s(&[]),                                 "'.' in a key"),
        (s(&["_foo=1"]),                               s(&[]),                                 "a key must start with a letter or digit"),
        (vec!["foo=1".into(), format!("{}=1", "z".repeat(257))], s(&[]),                      "257-character key"),
        (s(&["foo=bar=baz"]),                          s(&[]),                                 "'=' in a value"),
        (s(&["foo=,bar=3"]),                           s(&[]),                                 "empty value"),
        (vec![format!("foo={}", "v".repeat(257))],     s(&[]),                                 "257-character value"),
        (s(&["foo"]),                                  s(&[]),                                 "a member without '='"),
        (vec![m33[..30].join(","), m33[30..].join(",")], s(&[]),                               "33 members"),
    ]
}

aetherflow_tests::each_form! {
async fn tracestate_parsing_and_limits(form) {
    let p = Path2::start(form).await;
    let parent = tp("00", "00");
    for (lines, want, why) in tracestate_cases() {
        let mut headers = vec![("traceparent", parent.as_str())];
        headers.extend(lines.iter().map(|l| ("tracestate", l.as_str())));
        let r = p.call(&headers).await;
        assert_eq!(traceparent(&r).trace_id, T, "{why}: tracestate never affects traceparent");
        assert_eq!(tracestate(&r), want, "{why}");
        assert!(
            r.header_all("tracestate").iter().all(|l| !l.is_empty()),
            "{why}: an empty tracestate is not sent"
        );
    }

    // Size: at least 512 characters propagate; beyond, whole entries go, those over 128
    // characters first, then from the right.
    let long = format!("long={}", "l".repeat(200));
    let mut members: Vec<String> = (0..20).map(|i| format!("key{i:02}={}", "v".repeat(20))).collect();
    members.insert(3, long.clone());
    let r = p.call(&[("traceparent", &parent), ("tracestate", &members.join(","))]).await;
    let got = tracestate(&r);
    assert!(!got.contains(&long), "the entry over 128 characters goes first");
    members.remove(3);
    // 20 entries of 26 characters and 19 commas are 539 > 512: from the right, one goes;
    // 19 entries and 18 commas are exactly 512, which is kept.
    assert_eq!(got, members[..19], "{got:?}");
}
}

/// (baggage header fields, what the callee must get combined), through both hops.
fn baggage_cases() -> Vec<(Vec<String>, String, &'static str)> {
    let n = |count: usize| (0..count).map(|i| format!("k{i}=v{i}")).collect::<Vec<_>>();
    let m64 = n(64);
    let m65 = n(65);
    let big = format!("big={}", "b".repeat(6000));
    // 8192 bytes exactly: 8 members of 1023 bytes and 7 commas = 8191, plus one byte more in the last.
    let mut exact: Vec<String> = (0..8)
        .map(|i| format!("k{i}={}", "x".repeat(1020)))
        .collect();
    exact[7].push('x');
    let exact_len = exact.join(",").len();
    assert_eq!(exact_len, 8192);
    let mut over = exact.clone();
    over.push("z=1".into());
    vec![
        (
            vec![
                "userId=alice,serverNode=DF%2028".into(),
                "isProduction=false".into(),
            ],
            "userId=alice,serverNode=DF%2028,isProduction=false".into(),
            "fields kept, members unchanged",
        ),
        (
            vec!["key1=value1;property1;property2, key2 = value2".into()],
            "key1=value1;property1;property2,key2 = value2".into(),
            "properties and OWS inside members kept",
        ),
        (
            vec![m64[..40].join(","), m64[40..].join(",")],
            m64.join(","),
            "64 members over two fields",
        ),
        (
            vec![m65.join(",")],
            m65[..64].join(","),
            "65 members: a whole member goes",
        ),
        (
            vec![big.clone()],
            big,
            "one member of 6000 bytes: no per-member limit",
        ),
        (vec![exact.join(",")], exact.join(","), "8192 bytes"),
        (
            vec![over.join(",")],
            exact.join(","),
            "over 8192 bytes: whole members only",
        ),
    ]
}

aetherflow_tests::each_form! {
async fn baggage_limits_of_the_current_spec(form) {
    let p = Path2::start(form).await;
    for (lines, want, why) in baggage_cases() {
        let mut headers = vec![];
        headers.extend(lines.iter().map(|l| ("baggage", l.as_str())));
        let r = p.call(&headers).await;
        let got: Vec<String> = r
            .header_all("baggage")
            .iter()
            .flat_map(|l| l.split(',').map(|m| m.trim_matches([' ', '\t']).to_string()))
            .filter(|m| !m.is_empty())
            .collect();
        assert_eq!(got.join(","), want, "{why}");
    }
}
}
