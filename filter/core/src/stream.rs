//! One traced HTTP stream, host-independent: what every adapter of the filter (proxy-wasm,
//! Envoy dynamic module) does at each point of a stream. An adapter only moves data: it
//! hands in the request header lines, applies the header writes asked of it through
//! [`Injector`], answers the [`StreamFacts`] it is asked at the end, and counts the
//! [`Event`]s. Every decision (what to extract, sample, inject, read, record) is made here,
//! so both forms of the filter behave the same by construction.

use crate::config::{Config, EnvoyAttributes, SpanKindConfig};
use crate::envoy;
use crate::forwarded;
use crate::grpc::{self, FrameCounter};
use crate::head::{self, Decision, Policy};
use crate::ids::IdGenerator;
use crate::propagation::baggage::{Baggage, BAGGAGE};
use crate::propagation::traceparent::{self, TraceParent};
use crate::propagation::{self, Extractor, Injector};
use crate::route::RouteTable;
use crate::semconv::Exchange;
use crate::span::{Span, SpanKind};

/// Request-path events; each adapter counts them in its own metrics (see [`crate::metrics`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A decision was made for a request.
    SpanStarted,
    /// The request was sampled.
    SpanSampled,
    /// The request gets a record-only span.
    SpanRecordOnly,
    /// `traceparent` was invalid or repeated.
    InvalidTraceparent,
    /// `tracestate` was invalid (dropped).
    InvalidTracestate,
    /// Baggage had invalid members or was over the limits (trimmed).
    InvalidBaggage,
}

/// Request header lines as received: every line in order, repeated names kept. Names are
/// lowercase (Envoy lowercases them).
pub trait RequestLines: Extractor {
    /// Every `(name, value)` line, in order.
    fn lines(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl RequestLines for crate::headers::HeaderLines {
    fn lines(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
    }
}

/// Read access to one header map of the response (headers or trailers).
pub trait HeaderSource {
    /// The first value of header `name` (lowercase).
    fn header(&self, name: &str) -> Option<String>;
}

/// What Envoy knows about a stream at its end. Each method is one host read; the tracer
/// asks only for what the span needs on this stream (`envoy_attributes`, error paths).
pub trait StreamFacts {
    /// `response.code`.
    fn response_code(&mut self) -> Option<i64>;
    /// `response.code_details`.
    fn response_code_details(&mut self) -> Option<String>;
    /// `response.flags` (bit vector).
    fn response_flags(&mut self) -> Option<u64>;
    /// `request.protocol` (`HTTP/1.1`, `HTTP/2`, ...).
    fn protocol(&mut self) -> Option<String>;
    /// `source.address` (`ip:port`).
    fn source_address(&mut self) -> Option<String>;
    /// `xds.route_name`.
    fn route_name(&mut self) -> Option<String>;
    /// `xds.cluster_name`.
    fn upstream_cluster(&mut self) -> Option<String>;
    /// `upstream.address`.
    fn upstream_address(&mut self) -> Option<String>;
}

/// Which way a body chunk travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
}

/// One configuration of the filter, prepared for the request path.
#[derive(Debug)]
pub struct Tracer {
    /// The accepted configuration.
    pub cfg: Config,
    /// The sampling policy built from it.
    pub policy: Policy,
    /// Span kind.
    pub kind: SpanKind,
    /// `http_routes`, compiled.
    pub routes: RouteTable,
}

impl Tracer {
    /// Prepares a configuration already accepted by [`Config::from_json`].
    pub fn new(cfg: Config) -> Tracer {
        Tracer {
            policy: Policy::from_config(&cfg),
            // Validated by from_json, so this cannot fail; no routes is the safe fallback.
            routes: cfg.routes().unwrap_or_default(),
            kind: match cfg.span_kind {
                SpanKindConfig::Server => SpanKind::Server,
                SpanKindConfig::Client => SpanKind::Client,
            },
            cfg,
        }
    }

    /// Parses and prepares a configuration; the error is the line both adapters log before
    /// refusing it (it names the key and the reason).
    pub fn from_json(raw: &[u8]) -> Result<Tracer, String> {
        Config::from_json(raw)
            .map(Tracer::new)
            .map_err(|e| format!("aetherflow trace filter: {e}"))
    }

    /// The line both adapters log when a configuration is accepted. (No float formatting:
    /// it would add ~15 KB to the Wasm module; the threshold says the ratio.)
    pub fn summary(&self) -> String {
        format!(
            "aetherflow trace filter: configured: service {:?}, sampling threshold th:{}, {} spans, collector cluster {:?}",
            self.cfg.service_name,
            self.policy.threshold.to_th().unwrap_or_else(|| "never".into()),
            match self.kind {
                SpanKind::Server => "server",
                SpanKind::Client => "client",
            },
            self.cfg.collector_cluster,
        )
    }

    /// Request headers: extract, decide, inject (and trim baggage), and gather what the span
    /// records from the request. `now` reads the span's start (ns since the Unix epoch); it is
    /// called only when the request records a span (a clock read is a host call).
    pub fn start<H: RequestLines + ?Sized>(
        &self,
        lines: &H,
        out: &mut dyn Injector,
        ids: &mut IdGenerator,
        now: impl FnOnce() -> u64,
        mut count: impl FnMut(Event),
    ) -> ActiveStream {
        let cfg = &self.cfg;
        let extracted = propagation::extract(lines, &self.policy.inbound);
        if extracted.invalid_traceparent {
            count(Event::InvalidTraceparent);
        }
        if extracted.invalid_tracestate {
            count(Event::InvalidTracestate);
        }
        let force = !cfg.force_sample_header.is_empty()
            && lines.get(&cfg.force_sample_header).is_some_and(|v| {
                let v = v.trim();
                v == "1" || v.eq_ignore_ascii_case("true")
            });
        let decision = head::decide(&self.policy, extracted, force, ids);
        propagation::inject(
            out,
            &self.policy.outbound,
            &decision.trace_id,
            &decision.span_id,
            decision.flags,
            &decision.tracestate,
        );
        propagation::remove_stale_legacy(lines, out, &self.policy.outbound);
        let mut ex = Exchange::default();
        if let Some(bag) = Baggage::extract(lines) {
            if bag.invalid || bag.trimmed {
                count(Event::InvalidBaggage);
            }
            if bag.trimmed {
                if bag.is_empty() {
                    out.remove(BAGGAGE);
                } else {
                    out.set(BAGGAGE, &bag.header_value());
                }
            }
            if decision.record {
                for key in &cfg.baggage_to_attributes {
                    if let Some(v) = bag.get(key) {
                        ex.baggage.push((key.clone(), v));
                    }
                }
            }
        }
        count(Event::SpanStarted);
        if decision.sampled {
            count(Event::SpanSampled);
        } else if decision.record {
            count(Event::SpanRecordOnly);
        }
        let mut req_frames = None;
        if decision.record {
            self.read_request(lines, &mut ex);
            if ex.grpc && cfg.grpc_message_counting {
                req_frames = Some(FrameCounter::new());
            }
        }
        let resp_frames = req_frames.clone();
        let start_ns = if decision.record { now() } else { 0 };
        ActiveStream {
            decision,
            ex,
            start_ns,
            req_frames,
            resp_frames,
            response_ended: false,
        }
    }

    /// Copies only what the span keeps from the request; the first line of a repeated header
    /// wins.
    fn read_request<H: RequestLines + ?Sized>(&self, lines: &H, ex: &mut Exchange) {
        for name in &self.cfg.record_request_headers {
            let values = lines.get_all(name);
            if !values.is_empty() {
                ex.request_headers.push((name.clone(), values.join(",")));
            }
        }
        let mut host_header = None;
        let (mut fwd, mut xff) = (None, None);
        for (k, v) in lines.lines() {
            match k {
                ":method" if ex.method.is_empty() => ex.method = v.to_owned(),
                ":path" if ex.path.is_empty() => ex.path = v.to_owned(),
                ":scheme" if ex.scheme.is_empty() => ex.scheme = v.to_owned(),
                ":authority" if ex.authority.is_empty() => ex.authority = v.to_owned(),
                "host" => host_header = host_header.or(Some(v)),
                "user-agent" if ex.user_agent.is_none() => ex.user_agent = Some(v.to_owned()),
                "content-type" => ex.grpc = ex.grpc || grpc::is_grpc(v),
                // What Envoy's `request.id` property reads, without a host read.
                "x-request-id" if ex.envoy.request_id.is_none() => {
                    ex.envoy.request_id = Some(v.to_owned())
                }
                forwarded::FORWARDED => fwd = fwd.or(Some(v)),
                forwarded::X_FORWARDED_FOR => xff = xff.or(Some(v)),
                _ => {}
            }
        }
        if self
            .cfg
            .envoy_attributes
            .contains(EnvoyAttributes::CLIENT_ADDRESS)
        {
            // The client behind the proxies, as the conventions ask, and no host read; a
            // request without a usable header falls back to the peer at the end.
            ex.client_address = fwd
                .and_then(forwarded::from_forwarded)
                .or_else(|| xff.and_then(forwarded::from_x_forwarded_for));
        }
        if ex.authority.is_empty() {
            ex.authority = host_header.unwrap_or_default().to_owned();
        }
        // The one allocation a match costs: the template, owned by the span.
        ex.route = self.routes.find(&ex.path).map(str::to_owned);
    }
}

/// A traced stream between its request headers and its end.
#[derive(Debug)]
pub struct ActiveStream {
    /// Trace, span, flags, tracestate.
    pub decision: Decision,
    /// What we learn about the exchange (only filled when the span is recorded).
    ex: Exchange,
    /// Start time (ns since the Unix epoch).
    start_ns: u64,
    /// Counts client messages of a gRPC stream.
    req_frames: Option<FrameCounter>,
    /// Counts server messages of a gRPC stream.
    resp_frames: Option<FrameCounter>,
    /// The response reached its end (`end_of_stream` or trailers): no reset cut it short.
    response_ended: bool,
}

impl ActiveStream {
    /// Response headers: the trace id headers for the client, and the status (or a
    /// trailers-only gRPC status) for the span.
    pub fn on_response_headers(
        &mut self,
        t: &Tracer,
        headers: &impl HeaderSource,
        out: &mut dyn Injector,
    ) {
        let d = &self.decision;
        if !t.cfg.trace_id_response_header.is_empty() {
            let mut hex = [0u8; 32];
            d.trace_id.write_hex(&mut hex);
            out.set(
                &t.cfg.trace_id_response_header,
                core::str::from_utf8(&hex).unwrap_or_default(),
            );
        }
        if t.cfg.traceresponse_header {
            let tp = TraceParent {
                trace_id: d.trace_id,
                parent_id: d.span_id,
                flags: d.flags,
            };
            let mut buf = [0u8; traceparent::LEN];
            tp.write(&mut buf);
            out.set(
                "traceresponse",
                core::str::from_utf8(&buf).unwrap_or_default(),
            );
        }
        if d.record {
            self.ex.status = headers
                .header(":status")
                .and_then(|s| s.trim().parse().ok());
            for name in &t.cfg.record_response_headers {
                if let Some(v) = headers.header(name) {
                    self.ex.response_headers.push((name.clone(), v));
                }
            }
        }
        // Trailers-only gRPC responses carry the status in the headers.
        self.grpc_status_from(headers);
    }

    /// Response trailers: the gRPC status (trailers end the response).
    pub fn on_response_trailers(&mut self, trailers: &impl HeaderSource) {
        self.response_ended = true;
        self.grpc_status_from(trailers);
    }

    /// The response's last frame passed (response headers or a body chunk with
    /// `end_of_stream`). Adapters call it so that a response that completed normally costs no
    /// `response.flags` read (see [`ActiveStream::finish`]).
    pub fn on_response_end(&mut self) {
        self.response_ended = true;
    }

    fn grpc_status_from(&mut self, h: &impl HeaderSource) {
        if !self.decision.record || !self.ex.grpc {
            return;
        }
        if let Some(code) = h
            .header("grpc-status")
            .as_deref()
            .and_then(grpc::parse_status)
        {
            self.ex.grpc_status = Some(code);
            self.ex.grpc_message = h.header("grpc-message").map(|m| grpc::decode_message(&m));
        }
    }

    /// Whether body chunks in `dir` need reading (gRPC message counting). Adapters skip the
    /// body read entirely otherwise.
    pub fn counts_frames(&self, dir: Direction) -> bool {
        match dir {
            Direction::Request => self.req_frames.is_some(),
            Direction::Response => self.resp_frames.is_some(),
        }
    }

    /// A body chunk of `len` bytes; `read(offset, len)` fetches bytes of it (only message
    /// prefixes are read).
    pub fn on_body(
        &mut self,
        dir: Direction,
        len: usize,
        read: impl FnMut(usize, usize) -> Option<Vec<u8>>,
    ) {
        let counter = match dir {
            Direction::Request => self.req_frames.as_mut(),
            Direction::Response => self.resp_frames.as_mut(),
        };
        if let Some(c) = counter {
            c.feed_with(len, read);
        }
    }

    /// A body chunk held in memory as consecutive slices (the native form reads Envoy's
    /// buffer in place).
    pub fn on_body_slices<'s>(
        &mut self,
        dir: Direction,
        slices: impl IntoIterator<Item = &'s [u8]>,
    ) {
        let counter = match dir {
            Direction::Request => self.req_frames.as_mut(),
            Direction::Response => self.resp_frames.as_mut(),
        };
        if let Some(c) = counter {
            for s in slices {
                c.feed(s);
            }
        }
    }

    /// The end of the stream: the finished span, or `None` when this request records none.
    /// Envoy facts are read here, lazily and only those the span needs.
    pub fn finish(self, t: &Tracer, facts: &mut impl StreamFacts, end_ns: u64) -> Option<Span> {
        let ActiveStream {
            decision,
            mut ex,
            start_ns,
            req_frames,
            resp_frames,
            response_ended,
        } = self;
        if !decision.record {
            return None;
        }
        if ex.status.is_none() {
            // A local reply may bypass the response callbacks; Envoy still knows the code.
            ex.status = facts
                .response_code()
                .filter(|c| (100..1000).contains(c))
                .map(|c| c as u16);
        }
        let want = t.cfg.envoy_attributes;
        if want.contains(EnvoyAttributes::PROTOCOL) {
            ex.protocol = facts.protocol();
        }
        if want.contains(EnvoyAttributes::CLIENT_ADDRESS) && ex.client_address.is_none() {
            ex.client_address = facts
                .source_address()
                .map(|a| envoy::address_ip(&a).to_owned());
        }
        let e = &mut ex.envoy;
        if want.contains(EnvoyAttributes::ROUTE_NAME) {
            e.route_name = facts.route_name();
        }
        if want.contains(EnvoyAttributes::UPSTREAM_CLUSTER) {
            e.upstream_cluster = facts.upstream_cluster();
        }
        if want.contains(EnvoyAttributes::UPSTREAM_ADDRESS) {
            e.upstream_address = facts.upstream_address();
        }
        // Envoy's flags name what went wrong (no upstream, reset, timeout, overflow, rate
        // limit...). A response that ended normally with a success status carries none worth a
        // host read, so the read is kept for a missing or error status, a failed gRPC status,
        // or a response that never reached its end.
        let succeeded = response_ended
            && ex.status.is_some_and(|s| s < 400)
            && (!ex.grpc || ex.grpc_status == Some(0));
        if want.contains(EnvoyAttributes::RESPONSE_FLAGS) && !succeeded {
            e.response_flags = facts.response_flags().and_then(envoy::response_flags);
        }
        // Whether the response came from upstream only matters for an error status, or a gRPC
        // response without grpc-status (see `semconv`): skip the read otherwise.
        let may_be_local = match ex.status {
            Some(s) => s >= 400 || (ex.grpc && ex.grpc_status.is_none()),
            None => false,
        };
        if may_be_local {
            e.from_upstream = facts.response_code_details().map(|d| d == "via_upstream");
        }
        ex.request_messages = req_frames.as_ref().map(|c| c.messages);
        ex.response_messages = resp_frames.as_ref().map(|c| c.messages);
        Some(decision.to_span(ex, t.kind, t.cfg.max_attribute_length, start_ns, end_ns))
    }
}

#[cfg(test)]
mod tests;
