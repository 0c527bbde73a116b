//! The per-request context: extract, sample and inject on request headers; status and
//! trace id header on response headers; gRPC status on trailers; message counts from body
//! frame prefixes (never pausing or buffering); the span goes to the root's buffer on log.
//! Any failure to trace skips tracing for the request; traffic always continues.

use crate::host::{self, RequestHeaders};
use crate::metrics;
use crate::root::Shared;
use aetherflow_core::config::EnvoyAttributes;
use aetherflow_core::envoy;
use aetherflow_core::grpc::{self, FrameCounter};
use aetherflow_core::head::{self, Decision};
use aetherflow_core::propagation::baggage::{Baggage, BAGGAGE};
use aetherflow_core::propagation::traceparent::TraceParent;
use aetherflow_core::propagation::{self, Extractor};
use aetherflow_core::semconv::Exchange;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

/// One traced request.
struct Active {
    /// Trace, span, flags, tracestate.
    decision: Decision,
    /// What we learn about the exchange (only filled when the span is recorded).
    ex: Exchange,
    /// Start time, host clock (ns).
    start_ns: u64,
    /// Counts client messages of a gRPC stream.
    req_frames: Option<FrameCounter>,
    /// Counts server messages of a gRPC stream.
    resp_frames: Option<FrameCounter>,
}

/// The HTTP context.
pub struct HttpTrace {
    /// `None` when the plugin has no accepted configuration: pass-through.
    shared: Option<Rc<Shared>>,
    /// `None` when this request is not traced.
    active: Option<Box<Active>>,
}

impl HttpTrace {
    /// A context for one stream.
    pub fn new(shared: Option<Rc<Shared>>) -> HttpTrace {
        HttpTrace {
            shared,
            active: None,
        }
    }

    fn start(&mut self, sh: &Shared) -> Option<Box<Active>> {
        let lines = host::header_lines(MapType::HttpRequestHeaders);
        let m = &sh.pending;
        let extracted = propagation::extract(&lines, &sh.policy.inbound);
        if extracted.invalid_traceparent {
            metrics::bump(&m.invalid_traceparent);
        }
        if extracted.invalid_tracestate {
            metrics::bump(&m.invalid_tracestate);
        }
        let force = !sh.cfg.force_sample_header.is_empty()
            && lines.get(&sh.cfg.force_sample_header).is_some_and(|v| {
                let v = v.trim();
                v == "1" || v.eq_ignore_ascii_case("true")
            });
        let decision = {
            let mut ids = sh.ids.try_borrow_mut().ok()?;
            head::decide(&sh.policy, extracted, force, &mut ids)
        };
        propagation::inject(
            &mut RequestHeaders(&lines),
            &sh.policy.outbound,
            &decision.trace_id,
            &decision.span_id,
            decision.flags,
            &decision.tracestate,
        );
        propagation::remove_stale_legacy(&lines, &mut RequestHeaders(&lines), &sh.policy.outbound);
        let mut ex = Exchange::default();
        if let Some(bag) = Baggage::extract(&lines) {
            if bag.invalid || bag.trimmed {
                metrics::bump(&m.invalid_baggage);
            }
            if bag.trimmed {
                if bag.is_empty() {
                    host::remove_header(MapType::HttpRequestHeaders, BAGGAGE);
                } else {
                    host::set_header(MapType::HttpRequestHeaders, BAGGAGE, &bag.header_value());
                }
            }
            if decision.record {
                for key in &sh.cfg.baggage_to_attributes {
                    if let Some(v) = bag.get(key) {
                        ex.baggage.push((key.clone(), v));
                    }
                }
            }
        }
        metrics::bump(&m.spans_started);
        if decision.sampled {
            metrics::bump(&m.spans_sampled);
        } else if decision.record {
            metrics::bump(&m.spans_record_only);
        }
        let mut req_frames = None;
        if decision.record {
            for name in &sh.cfg.record_request_headers {
                let values = lines.get_all(name);
                if !values.is_empty() {
                    ex.request_headers.push((name.clone(), values.join(",")));
                }
            }
            // Copies only what the span keeps; the first line of a repeated header wins.
            let mut host_header = None;
            for (k, v) in lines.iter() {
                match k {
                    ":method" if ex.method.is_empty() => ex.method = v.to_owned(),
                    ":path" if ex.path.is_empty() => ex.path = v.to_owned(),
                    ":scheme" if ex.scheme.is_empty() => ex.scheme = v.to_owned(),
                    ":authority" if ex.authority.is_empty() => ex.authority = v.to_owned(),
                    "host" => host_header = host_header.or(Some(v)),
                    "user-agent" if ex.user_agent.is_none() => ex.user_agent = Some(v.to_owned()),
                    "content-type" => ex.grpc = ex.grpc || grpc::is_grpc(v),
                    // What Envoy's `request.id` property reads, without a property call.
                    "x-request-id" if ex.envoy.request_id.is_none() => {
                        ex.envoy.request_id = Some(v.to_owned())
                    }
                    _ => {}
                }
            }
            if ex.authority.is_empty() {
                ex.authority = host_header.unwrap_or_default().to_owned();
            }
            // The one allocation a match costs: the template, owned by the span.
            ex.route = sh.routes.find(&ex.path).map(str::to_owned);
            if ex.grpc && sh.cfg.grpc_message_counting {
                req_frames = Some(FrameCounter::new());
            }
        }
        let resp_frames = req_frames.clone();
        Some(Box::new(Active {
            decision,
            ex,
            start_ns: host::now_nanos(),
            req_frames,
            resp_frames,
        }))
    }

    fn grpc_status_from(&mut self, map: MapType) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if !a.decision.record || !a.ex.grpc {
            return;
        }
        if let Some(code) = host::header(map, "grpc-status")
            .as_deref()
            .and_then(grpc::parse_status)
        {
            a.ex.grpc_status = Some(code);
            a.ex.grpc_message = host::header(map, "grpc-message").map(|m| grpc::decode_message(&m));
        }
    }
}

fn count_frames(counter: &mut Option<FrameCounter>, buffer: BufferType, size: usize) {
    if let Some(c) = counter.as_mut() {
        c.feed_with(size, |off, len| host::body_bytes(buffer, off, len));
    }
}

impl Context for HttpTrace {}

impl HttpContext for HttpTrace {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.active.is_some() {
            return Action::Continue;
        }
        if let Some(sh) = self.shared.clone() {
            self.active = self.start(&sh);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if let Some(a) = self.active.as_mut() {
            count_frames(&mut a.req_frames, BufferType::HttpRequestBody, body_size);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(sh), Some(a)) = (self.shared.as_ref(), self.active.as_mut()) else {
            return Action::Continue;
        };
        let map = MapType::HttpResponseHeaders;
        let d = &a.decision;
        if !sh.cfg.trace_id_response_header.is_empty() {
            let mut hex = [0u8; 32];
            d.trace_id.write_hex(&mut hex);
            host::set_header(
                map,
                &sh.cfg.trace_id_response_header,
                core::str::from_utf8(&hex).unwrap_or_default(),
            );
        }
        if sh.cfg.traceresponse_header {
            let tp = TraceParent {
                trace_id: d.trace_id,
                parent_id: d.span_id,
                flags: d.flags,
            };
            let mut buf = [0u8; 55];
            tp.write(&mut buf);
            host::set_header(
                map,
                "traceresponse",
                core::str::from_utf8(&buf).unwrap_or_default(),
            );
        }
        if d.record {
            a.ex.status = host::header(map, ":status").and_then(|s| s.trim().parse().ok());
            for name in &sh.cfg.record_response_headers {
                if let Some(v) = host::header(map, name) {
                    a.ex.response_headers.push((name.clone(), v));
                }
            }
        }
        // Trailers-only gRPC responses carry the status in the headers.
        self.grpc_status_from(map);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if let Some(a) = self.active.as_mut() {
            count_frames(&mut a.resp_frames, BufferType::HttpResponseBody, body_size);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.grpc_status_from(MapType::HttpResponseTrailers);
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(sh), Some(mut a)) = (self.shared.clone(), self.active.take()) else {
            return;
        };
        if !a.decision.record {
            return;
        }
        let end_ns = host::now_nanos();
        let ex = &mut a.ex;
        if ex.status.is_none() {
            // A local reply may bypass our response callbacks; Envoy still knows the code.
            ex.status = host::property_int(b"response\0code")
                .filter(|c| (100..1000).contains(c))
                .map(|c| c as u16);
        }
        // One host call per attribute: `envoy_attributes` leaves out those a deployment
        // does not need.
        let want = sh.cfg.envoy_attributes;
        if want.contains(EnvoyAttributes::PROTOCOL) {
            ex.protocol = host::property_str(b"request\0protocol");
        }
        if want.contains(EnvoyAttributes::CLIENT_ADDRESS) {
            ex.client_address =
                host::property_str(b"source\0address").map(|a| envoy::address_ip(&a).to_owned());
        }
        let e = &mut ex.envoy;
        if want.contains(EnvoyAttributes::ROUTE_NAME) {
            e.route_name = host::property_str(b"xds\0route_name");
        }
        if want.contains(EnvoyAttributes::UPSTREAM_CLUSTER) {
            e.upstream_cluster = host::property_str(b"xds\0cluster_name");
        }
        if want.contains(EnvoyAttributes::UPSTREAM_ADDRESS) {
            e.upstream_address = host::property_str(b"upstream\0address");
        }
        if want.contains(EnvoyAttributes::RESPONSE_FLAGS) {
            e.response_flags = host::property_int(b"response\0flags")
                .and_then(|f| envoy::response_flags(f as u64));
        }
        // Whether the response came from upstream only matters for an error status, or a gRPC
        // response without grpc-status (see `semconv`): skip the property call otherwise.
        let may_be_local = match ex.status {
            Some(s) => s >= 400 || (ex.grpc && ex.grpc_status.is_none()),
            None => false,
        };
        if may_be_local {
            e.from_upstream =
                host::property_str(b"response\0code_details").map(|d| d == "via_upstream");
        }
        ex.request_messages = a.req_frames.as_ref().map(|c| c.messages);
        ex.response_messages = a.resp_frames.as_ref().map(|c| c.messages);
        let ex = std::mem::take(ex);
        let span = a
            .decision
            .to_span(ex, sh.kind, sh.cfg.max_attribute_length, a.start_ns, end_ns);
        sh.push(span);
    }
}
