//! The request path as both adapters run it, against in-memory headers and facts.

use super::*;
use crate::headers::HeaderLines;
use crate::span::Value;
use std::collections::BTreeMap;

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn tracer(json: &str) -> Tracer {
    Tracer::new(Config::from_json(json.as_bytes()).expect("valid config"))
}

/// Header writes, as the host would apply them.
#[derive(Default)]
struct Writes(BTreeMap<String, Option<String>>);

impl Injector for Writes {
    fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), Some(value.to_owned()));
    }
    fn remove(&mut self, name: &str) {
        self.0.insert(name.to_owned(), None);
    }
}

struct Map(Vec<(&'static str, &'static str)>);

impl HeaderSource for Map {
    fn header(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// Facts with a log of which were read.
#[derive(Default)]
struct Facts {
    code: Option<i64>,
    details: Option<&'static str>,
    read: Vec<&'static str>,
}

impl StreamFacts for Facts {
    fn response_code(&mut self) -> Option<i64> {
        self.read.push("code");
        self.code
    }
    fn response_code_details(&mut self) -> Option<String> {
        self.read.push("details");
        self.details.map(str::to_owned)
    }
    fn response_flags(&mut self) -> Option<u64> {
        self.read.push("flags");
        Some(0x20)
    }
    fn protocol(&mut self) -> Option<String> {
        self.read.push("protocol");
        Some("HTTP/1.1".into())
    }
    fn source_address(&mut self) -> Option<String> {
        self.read.push("source");
        Some("10.0.0.7:5555".into())
    }
    fn route_name(&mut self) -> Option<String> {
        self.read.push("route");
        Some("r1".into())
    }
    fn upstream_cluster(&mut self) -> Option<String> {
        self.read.push("cluster");
        Some("c1".into())
    }
    fn upstream_address(&mut self) -> Option<String> {
        self.read.push("upstream");
        Some("127.0.0.1:8080".into())
    }
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes.iter().find(|a| a.key == key).map(|a| &a.value)
}

fn request(extra: &[(&'static str, &'static str)]) -> HeaderLines {
    let mut lines = vec![
        (":method", "GET"),
        (":path", "/api/orders/7?x=1"),
        (":scheme", "http"),
        (":authority", "shop:8080"),
        ("user-agent", "curl/8"),
        ("x-request-id", "rid-1"),
    ];
    lines.extend_from_slice(extra);
    HeaderLines::from_pairs(lines)
}

#[test]
fn a_request_continues_the_trace_and_the_span_carries_every_attribute() {
    let t =
        tracer(r#"{"http_routes":["/api/orders/{id}"],"record_request_headers":["user-agent"]}"#);
    let tp = format!("00-{TID}-00f067aa0ba902b7-01");
    let lines = request(&[("traceparent", Box::leak(tp.into_boxed_str()))]);
    let mut w = Writes::default();
    let mut events = Vec::new();
    let mut ids = IdGenerator::from_u64(3);
    let mut a = t.start(&lines, &mut w, &mut ids, || 100, |e| events.push(e));
    assert_eq!(events, [Event::SpanStarted, Event::SpanSampled]);
    let sent = w.0["traceparent"].clone().expect("traceparent set");
    assert!(sent.starts_with(&format!("00-{TID}-")) && sent.ends_with("-01"));
    assert_eq!(
        w.0.get("tracestate"),
        Some(&None),
        "empty tracestate removed"
    );

    let mut rw = Writes::default();
    a.on_response_headers(&t, &Map(vec![(":status", "503")]), &mut rw);
    assert_eq!(rw.0["x-trace-id"].as_deref(), Some(TID));

    let mut facts = Facts {
        details: Some("upstream_reset_before_response_started"),
        ..Facts::default()
    };
    let s = a.finish(&t, &mut facts, 200).expect("sampled span");
    assert_eq!(
        facts.read,
        ["source", "cluster", "upstream", "flags", "details"],
        "status known from the headers: no response.code read; the default attributes; \
         5xx: flags and details read"
    );
    assert_eq!(s.trace_id.to_hex(), TID);
    assert_eq!((s.start_unix_nano, s.end_unix_nano), (100, 200));
    assert_eq!(s.name, "GET /api/orders/{id}");
    assert_eq!(
        attr(&s, "http.route"),
        Some(&Value::Str("/api/orders/{id}".into()))
    );
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&Value::Int(503))
    );
    assert_eq!(
        attr(&s, "client.address"),
        Some(&Value::Str("10.0.0.7".into()))
    );
    assert_eq!(
        attr(&s, "envoy.response_flags"),
        Some(&Value::Str("UF".into()))
    );
    assert_eq!(
        attr(&s, "envoy.request_id"),
        Some(&Value::Str("rid-1".into()))
    );
    assert_eq!(
        attr(&s, "http.request.header.user-agent"),
        Some(&Value::Str("curl/8".into()))
    );
}

#[test]
fn facts_are_read_only_when_the_span_needs_them() {
    let t = tracer(r#"{"envoy_attributes":[]}"#);
    let mut ids = IdGenerator::from_u64(1);
    let a = t.start(
        &request(&[]),
        &mut Writes::default(),
        &mut ids,
        || 1,
        |_| {},
    );
    let mut facts = Facts {
        code: Some(200),
        ..Facts::default()
    };
    let s = a.finish(&t, &mut facts, 2).expect("span");
    assert_eq!(
        facts.read,
        ["code"],
        "a local reply's status comes from response.code"
    );
    assert_eq!(
        attr(&s, "http.response.status_code"),
        Some(&Value::Int(200))
    );

    // A 200 seen in the headers needs no read at all.
    let mut a = t.start(
        &request(&[]),
        &mut Writes::default(),
        &mut ids,
        || 1,
        |_| {},
    );
    a.on_response_headers(&t, &Map(vec![(":status", "200")]), &mut Writes::default());
    let mut facts = Facts::default();
    a.finish(&t, &mut facts, 2).expect("span");
    assert!(facts.read.is_empty(), "{:?}", facts.read);
}

#[test]
fn a_request_that_succeeded_costs_no_flags_read_and_forwarding_headers_name_the_client() {
    let t = tracer("{}");
    let mut ids = IdGenerator::from_u64(1);
    let finish = |a: ActiveStream| {
        let mut facts = Facts::default();
        let s = a.finish(&t, &mut facts, 2).expect("span");
        (s, facts.read)
    };

    // Completed 200 behind a proxy: only the upstream is read.
    let lines = request(&[("x-forwarded-for", "203.0.113.9, 10.0.0.1")]);
    let mut a = t.start(&lines, &mut Writes::default(), &mut ids, || 1, |_| {});
    a.on_response_headers(&t, &Map(vec![(":status", "200")]), &mut Writes::default());
    a.on_response_end();
    let (s, read) = finish(a);
    assert_eq!(read, ["cluster", "upstream"]);
    assert_eq!(
        attr(&s, "client.address"),
        Some(&Value::Str("203.0.113.9".into())),
        "the client behind the proxies"
    );
    assert_eq!(attr(&s, "envoy.response_flags"), None);

    // `Forwarded` wins over X-Forwarded-For; an unusable value falls back to the peer.
    let lines = request(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=\"[2001:db8::7]:4711\";proto=https"),
    ]);
    let a = t.start(&lines, &mut Writes::default(), &mut ids, || 1, |_| {});
    let (s, _) = finish(a);
    assert_eq!(
        attr(&s, "client.address"),
        Some(&Value::Str("2001:db8::7".into()))
    );
    let lines = request(&[("x-forwarded-for", "unknown")]);
    let a = t.start(&lines, &mut Writes::default(), &mut ids, || 1, |_| {});
    let (s, read) = finish(a);
    assert!(read.contains(&"source"), "{read:?}");
    assert_eq!(
        attr(&s, "client.address"),
        Some(&Value::Str("10.0.0.7".into()))
    );

    // A 200 cut short (no end of stream) reads the flags: they say what cut it.
    let mut a = t.start(
        &request(&[]),
        &mut Writes::default(),
        &mut ids,
        || 1,
        |_| {},
    );
    a.on_response_headers(&t, &Map(vec![(":status", "200")]), &mut Writes::default());
    let (s, read) = finish(a);
    assert!(read.contains(&"flags"), "{read:?}");
    assert_eq!(
        attr(&s, "envoy.response_flags"),
        Some(&Value::Str("UF".into()))
    );

    // A completed gRPC call with a failed status reads them too; one that succeeded does not.
    for (code, flags_read) in [("14", true), ("0", false)] {
        let lines = request(&[("content-type", "application/grpc")]);
        let mut a = t.start(&lines, &mut Writes::default(), &mut ids, || 1, |_| {});
        a.on_response_headers(&t, &Map(vec![(":status", "200")]), &mut Writes::default());
        a.on_response_trailers(&Map(vec![("grpc-status", code)]));
        let (_, read) = finish(a);
        assert_eq!(
            read.contains(&"flags"),
            flags_read,
            "grpc-status {code}: {read:?}"
        );
    }

    // Opt-in attributes are read when asked for.
    let all = tracer(r#"{"envoy_attributes":["network.protocol.version","envoy.route_name"]}"#);
    let a = all.start(
        &request(&[]),
        &mut Writes::default(),
        &mut ids,
        || 1,
        |_| {},
    );
    let mut facts = Facts::default();
    let s = a.finish(&all, &mut facts, 2).expect("span");
    assert_eq!(facts.read, ["code", "protocol", "route"]);
    assert_eq!(
        attr(&s, "network.protocol.version"),
        Some(&Value::Str("1.1".into()))
    );
}

#[test]
fn unrecorded_requests_inject_but_read_nothing() {
    let t = tracer(r#"{"sample_ratio":0.0,"record_unsampled":false}"#);
    let mut ids = IdGenerator::from_u64(1);
    let mut w = Writes::default();
    let mut events = Vec::new();
    let mut a = t.start(&request(&[]), &mut w, &mut ids, || 1, |e| events.push(e));
    assert_eq!(events, [Event::SpanStarted]);
    assert!(w.0["traceparent"]
        .as_deref()
        .is_some_and(|v| v.ends_with("-02")));
    a.on_response_headers(&t, &Map(vec![(":status", "200")]), &mut Writes::default());
    let mut facts = Facts::default();
    assert!(a.finish(&t, &mut facts, 2).is_none());
    assert!(facts.read.is_empty());
}

#[test]
fn force_header_bad_context_and_baggage_are_counted_and_handled() {
    let t = tracer(r#"{"sample_ratio":0.0,"baggage_to_attributes":["tenant"]}"#);
    let mut ids = IdGenerator::from_u64(1);
    let mut w = Writes::default();
    let mut events = Vec::new();
    let lines = request(&[
        ("traceparent", "00-zz-00f067aa0ba902b7-01"),
        ("x-force-trace", " TRUE "),
        ("baggage", "tenant=acme,bad member"),
        ("x-b3-traceid", TID),
    ]);
    let a = t.start(&lines, &mut w, &mut ids, || 1, |e| events.push(e));
    assert_eq!(
        events,
        [
            Event::InvalidTraceparent,
            Event::InvalidBaggage,
            Event::SpanStarted,
            Event::SpanSampled
        ]
    );
    assert!(a.decision.sampled, "forced");
    assert_eq!(w.0.get("x-b3-traceid"), Some(&None), "stale B3 removed");
    let s = a.finish(&t, &mut Facts::default(), 2).expect("span");
    assert_eq!(attr(&s, "baggage.tenant"), Some(&Value::Str("acme".into())));
}

#[test]
fn grpc_status_from_trailers_or_trailers_only_headers_and_message_counts() {
    let t = tracer("{}");
    let mut ids = IdGenerator::from_u64(1);
    let lines = HeaderLines::from_pairs([
        (":method", "POST"),
        (":path", "/demo.Echo/Say"),
        ("content-type", "application/grpc"),
    ]);
    let mut a = t.start(&lines, &mut Writes::default(), &mut ids, || 1, |_| {});
    assert!(a.counts_frames(Direction::Request) && a.counts_frames(Direction::Response));
    let two_messages = [0u8, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0];
    a.on_body(Direction::Request, two_messages.len(), |o, l| {
        two_messages.get(o..o + l).map(<[u8]>::to_vec)
    });
    a.on_response_headers(&t, &Map(vec![(":status", "200")]), &mut Writes::default());
    a.on_response_trailers(&Map(vec![
        ("grpc-status", "14"),
        ("grpc-message", "down%20now"),
    ]));
    let s = a.finish(&t, &mut Facts::default(), 2).expect("span");
    assert_eq!(
        attr(&s, "rpc.response.status_code"),
        Some(&Value::Str("UNAVAILABLE".into()))
    );
    assert_eq!(
        attr(&s, "aetherflow.grpc.request_messages"),
        Some(&Value::Int(2))
    );
    assert_eq!(
        attr(&s, "aetherflow.grpc.response_messages"),
        Some(&Value::Int(0))
    );

    let mut a = t.start(&lines, &mut Writes::default(), &mut ids, || 1, |_| {});
    a.on_response_headers(
        &t,
        &Map(vec![(":status", "200"), ("grpc-status", "5")]),
        &mut Writes::default(),
    );
    let s = a.finish(&t, &mut Facts::default(), 2).expect("span");
    assert_eq!(
        attr(&s, "rpc.response.status_code"),
        Some(&Value::Str("NOT_FOUND".into()))
    );
}
