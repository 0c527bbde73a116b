//! One HTTP stream: host glue around the core's [`ActiveStream`], on the stream's worker
//! thread. Request headers are read in place (no copy of the map) and the core's writes are
//! applied once that view is gone; response headers are read one at a time; body chunks are
//! read only for gRPC message counting; Envoy's attributes are read at the end, only those
//! the span needs.

use crate::abi::{self, FilterEnvoyPtr, HeaderType};
use crate::host::{with_received_body, Attributes, Deferred, HeaderView, Op, Reader, Writer};
use crate::plugin::{now_ns, Plugin};
use aetherflow_core::ids::IdGenerator;
use aetherflow_core::metrics::Metric;
use aetherflow_core::propagation::{Extractor, Injector};
use aetherflow_core::stream::{ActiveStream, Direction};
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    /// Ids come from a generator per worker thread, seeded once from the OS: no lock, no
    /// shared state between workers.
    static IDS: RefCell<Option<IdGenerator>> = const { RefCell::new(None) };
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    if getrandom::fill(&mut s).is_err() {
        // No entropy: the clock and the thread's stack address still make ids differ per
        // thread and start.
        s[..8].copy_from_slice(&now_ns().to_le_bytes());
        let here = &s as *const _ as usize as u64;
        s[8..16].copy_from_slice(&here.to_le_bytes());
    }
    s
}

/// Header writes planned against the map as received: a header the map does not carry is
/// added (Envoy's set first searches the map to remove it) and never removed
/// (the core removes `tracestate` whenever it has none to send). Measured with callgrind, a
/// set costs Envoy about 2 600 instructions; this saves one or two per request.
struct Planned<'a, 'v> {
    lines: &'a HeaderView<'v>,
    writes: &'a mut Deferred,
}

impl Injector for Planned<'_, '_> {
    fn set(&mut self, name: &str, value: &str) {
        let op = if self.lines.get(name).is_some() {
            Op::Set
        } else {
            Op::Add
        };
        self.writes.push(op, name, value);
    }

    fn remove(&mut self, name: &str) {
        if self.lines.get(name).is_some() {
            self.writes.push(Op::Remove, name, "");
        }
    }
}

/// The module's state for one stream.
pub struct Filter {
    /// `None` for a stream whose configuration failed: pass-through.
    plugin: Option<Arc<Plugin>>,
    /// `None` when this request is not traced (yet, or any more).
    active: Option<ActiveStream>,
}

impl Filter {
    /// A stream of `plugin`'s configuration.
    pub fn new(plugin: Option<Arc<Plugin>>) -> Filter {
        Filter {
            plugin,
            active: None,
        }
    }

    /// The plugin, for fault accounting.
    pub fn plugin(&self) -> Option<&Plugin> {
        self.plugin.as_deref()
    }

    /// Stops tracing this stream (after a fault).
    pub fn abandon(&mut self) {
        self.active = None;
    }

    /// Request headers: extract, sample, inject.
    pub fn on_request_headers(&mut self, filter: FilterEnvoyPtr) {
        let Some(p) = self.plugin.as_deref() else {
            return;
        };
        if self.active.is_some() {
            return;
        }
        let mut writes = Deferred::default();
        let active = IDS.with(|ids| {
            let mut ids = ids.try_borrow_mut().ok()?;
            let ids = ids.get_or_insert_with(|| IdGenerator::from_seed(seed()));
            // SAFETY: `filter` is this hook's pointer; the view is dropped at the end of this
            // closure, before any write to the request headers.
            let lines = unsafe { HeaderView::read(filter, HeaderType::RequestHeader) };
            let mut out = Planned {
                lines: &lines,
                writes: &mut writes,
            };
            Some(p.tracer.start(&lines, &mut out, ids, now_ns, |e| {
                p.metrics.add_from_stream(filter, e.metric(), 1)
            }))
        });
        writes.apply(&mut Writer {
            filter,
            map: HeaderType::RequestHeader,
        });
        self.active = active;
    }

    /// A body chunk: counts gRPC messages when the span wants them.
    pub fn on_body(&mut self, filter: FilterEnvoyPtr, dir: Direction) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if !a.counts_frames(dir) {
            return;
        }
        let body = match dir {
            Direction::Request => abi::BodyType::ReceivedRequestBody,
            Direction::Response => abi::BodyType::ReceivedResponseBody,
        };
        // SAFETY: this is the body hook of `filter`; the slices are used within it.
        unsafe { with_received_body(filter, body, |slices| a.on_body_slices(dir, slices)) };
    }

    /// Response headers: trace id headers for the client; status for the span. The map is read
    /// once (one view instead of three or four single reads), the writes applied after.
    pub fn on_response_headers(&mut self, filter: FilterEnvoyPtr) {
        let (Some(p), Some(a)) = (self.plugin.as_deref(), self.active.as_mut()) else {
            return;
        };
        let mut writes = Deferred::default();
        {
            // SAFETY: this hook's pointer; the view is dropped before the writes.
            let view = unsafe { HeaderView::read(filter, HeaderType::ResponseHeader) };
            let mut out = Planned {
                lines: &view,
                writes: &mut writes,
            };
            a.on_response_headers(&p.tracer, &view, &mut out);
        }
        writes.apply(&mut Writer {
            filter,
            map: HeaderType::ResponseHeader,
        });
    }

    /// The response's last frame passed (no reset cut it short).
    pub fn on_response_end(&mut self) {
        if let Some(a) = self.active.as_mut() {
            a.on_response_end();
        }
    }

    /// Response trailers: the gRPC status (one or two single reads: cheaper here than a view
    /// of the map, measured with callgrind).
    pub fn on_response_trailers(&mut self, filter: FilterEnvoyPtr) {
        if let Some(a) = self.active.as_mut() {
            a.on_response_trailers(&Reader {
                filter,
                map: HeaderType::ResponseTrailer,
            });
        }
    }

    /// The stream is complete: the span goes to the buffer.
    pub fn on_stream_complete(&mut self, filter: FilterEnvoyPtr) {
        let (Some(p), Some(a)) = (self.plugin.as_deref(), self.active.take()) else {
            return;
        };
        if !a.decision.record {
            return;
        }
        let end = now_ns();
        if let Some(span) = a.finish(&p.tracer, &mut Attributes(filter), end) {
            p.push(filter, span);
        }
    }

    /// Counts a fault caught at a hook of this stream.
    pub fn count_fault(&self, filter: FilterEnvoyPtr) {
        if let Some(p) = self.plugin.as_deref() {
            p.metrics.add_from_stream(filter, Metric::InternalErrors, 1);
        }
    }
}
