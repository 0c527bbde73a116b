//! The per-request context: host glue around the core's [`ActiveStream`]. Request headers
//! go to [`Tracer::start`], response headers and trailers to the stream, body chunks to its
//! message counters (never pausing or buffering), and at `on_log` the finished span goes to
//! the root's buffer. Any failure to trace skips tracing for the request; traffic always
//! continues.

use crate::host::{self, RequestHeaders};
use crate::host::{BufferType, MapType};
use crate::shared::Shared;
use aetherflow_core::propagation::Injector;
use aetherflow_core::stream::{ActiveStream, Direction, HeaderSource, StreamFacts};
use std::rc::Rc;

/// The HTTP context.
pub struct HttpTrace {
    /// `None` when the plugin has no accepted configuration: pass-through.
    shared: Option<Rc<Shared>>,
    /// `None` when this request is not traced.
    active: Option<Box<ActiveStream>>,
}

impl HttpTrace {
    /// A context for one stream.
    pub fn new(shared: Option<Rc<Shared>>) -> HttpTrace {
        HttpTrace {
            shared,
            active: None,
        }
    }

    fn start(&mut self, sh: &Shared) -> Option<Box<ActiveStream>> {
        let lines = host::header_lines(MapType::HttpRequestHeaders);
        let mut ids = sh.ids.try_borrow_mut().ok()?;
        let stream = sh.tracer.start(
            &lines,
            &mut RequestHeaders(&lines),
            &mut ids,
            host::now_nanos,
            |e| sh.pending.count(e),
        );
        Some(Box::new(stream))
    }
}

/// One header map of the response, read a header at a time.
struct Map(MapType);

impl HeaderSource for Map {
    fn header(&self, name: &str) -> Option<String> {
        host::header(self.0, name)
    }
}

/// Sets response headers.
struct ResponseHeaders;

impl Injector for ResponseHeaders {
    fn set(&mut self, name: &str, value: &str) {
        host::set_header(MapType::HttpResponseHeaders, name, value);
    }

    fn remove(&mut self, name: &str) {
        host::remove_header(MapType::HttpResponseHeaders, name);
    }
}

/// Envoy properties, each read through a constant pre-serialized path.
struct Properties;

impl StreamFacts for Properties {
    fn response_code(&mut self) -> Option<i64> {
        host::property_int(b"response\0code")
    }
    fn response_code_details(&mut self) -> Option<String> {
        host::property_str(b"response\0code_details")
    }
    fn response_flags(&mut self) -> Option<u64> {
        host::property_int(b"response\0flags").map(|f| f as u64)
    }
    fn protocol(&mut self) -> Option<String> {
        host::property_str(b"request\0protocol")
    }
    fn source_address(&mut self) -> Option<String> {
        host::property_str(b"source\0address")
    }
    fn route_name(&mut self) -> Option<String> {
        host::property_str(b"xds\0route_name")
    }
    fn upstream_cluster(&mut self) -> Option<String> {
        host::property_str(b"xds\0cluster_name")
    }
    fn upstream_address(&mut self) -> Option<String> {
        host::property_str(b"upstream\0address")
    }
}

/// The test-only build's fault (never in a release): the VM traps, as after a bug.
#[cfg(feature = "test-trap")]
fn test_trap() {
    let marker = host::header_bytes(MapType::HttpRequestHeaders, "x-aetherflow-test-trap");
    if marker.is_some() {
        // With `panic = "abort"` a panic is a trap: the VM is dead, as after a real bug.
        panic!("test-trap: the marker header asks this test build to fail");
    }
}

fn count_frames(a: &mut ActiveStream, dir: Direction, buffer: BufferType, size: usize) {
    if a.counts_frames(dir) {
        a.on_body(dir, size, |off, len| host::buffer_bytes(buffer, off, len));
    }
}

/// The stream's callbacks (routed here by [`crate::dispatch`]); traffic always continues.
impl HttpTrace {
    /// Request headers: extract, sample, inject.
    pub fn on_request_headers(&mut self) {
        #[cfg(feature = "test-trap")]
        test_trap();
        if self.active.is_some() {
            return;
        }
        if let Some(sh) = self.shared.clone() {
            self.active = self.start(&sh);
        }
    }

    /// A request body chunk: gRPC message counting.
    pub fn on_request_body(&mut self, body_size: usize) {
        if let Some(a) = self.active.as_mut() {
            count_frames(
                a,
                Direction::Request,
                BufferType::HttpRequestBody,
                body_size,
            );
        }
    }

    /// Response headers: trace id headers for the client; the status for the span.
    pub fn on_response_headers(&mut self, end_of_stream: bool) {
        if let (Some(sh), Some(a)) = (self.shared.as_ref(), self.active.as_mut()) {
            a.on_response_headers(
                &sh.tracer,
                &Map(MapType::HttpResponseHeaders),
                &mut ResponseHeaders,
            );
            if end_of_stream {
                a.on_response_end();
            }
        }
    }

    /// A response body chunk: gRPC message counting, and the response's end.
    pub fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) {
        if let Some(a) = self.active.as_mut() {
            count_frames(
                a,
                Direction::Response,
                BufferType::HttpResponseBody,
                body_size,
            );
            if end_of_stream {
                a.on_response_end();
            }
        }
    }

    /// Response trailers: the gRPC status.
    pub fn on_response_trailers(&mut self) {
        if let Some(a) = self.active.as_mut() {
            a.on_response_trailers(&Map(MapType::HttpResponseTrailers));
        }
    }

    /// The stream is complete: the span goes to the root's buffer.
    pub fn on_log(&mut self) {
        let (Some(sh), Some(a)) = (self.shared.clone(), self.active.take()) else {
            return;
        };
        if !a.decision.record {
            // Nothing to read or build: not even the clock.
            return;
        }
        if let Some(span) = a.finish(&sh.tracer, &mut Properties, host::now_nanos()) {
            sh.push(span);
        }
    }
}
