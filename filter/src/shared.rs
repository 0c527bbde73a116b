//! State shared by the root context and its HTTP contexts (one VM is single-threaded): the
//! prepared configuration, the span buffer, metric ids and pending counts.

use crate::host;
use crate::host::LogLevel;
use crate::metrics::{self, Metrics};
use aetherflow_core::buffer::{Pushed, SpanBuffer};
use aetherflow_core::ids::IdGenerator;
use aetherflow_core::metrics::Metric;
use aetherflow_core::span::Span;
use aetherflow_core::stream::Tracer;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// Rate limit of a recurring warning (the core's lock-free limiter on the host clock).
#[derive(Default)]
pub struct LogLimiter(aetherflow_core::log_limit::LogLimiter);

impl LogLimiter {
    /// Logs `msg` unless a line was logged less than a period ago.
    pub fn warn(&self, msg: &str) {
        if let Some(n) = self.0.allow(host::now_nanos()) {
            host::log(
                LogLevel::Warn,
                &aetherflow_core::log_limit::LogLimiter::line(msg, n),
            );
        }
    }
}

/// State shared by the root and its HTTP contexts (one VM is single-threaded).
pub struct Shared {
    /// The configuration, prepared for the request path.
    pub tracer: Tracer,
    /// Metric ids.
    pub metrics: Metrics,
    /// Request-path counts not yet pushed to the host (published at each root tick; one per
    /// VM, kept across reconfiguration, so a request started before it still counts).
    pub pending: Rc<metrics::Pending>,
    /// Id generator, seeded once per VM.
    pub ids: RefCell<IdGenerator>,
    /// Finished spans waiting for export.
    pub buffer: RefCell<SpanBuffer>,
    /// Rate limit of the "buffer full" warning.
    pub drop_log: LogLimiter,
    /// A full batch asked the root for an early tick (cleared by the root's tick).
    pub early_tick: Cell<bool>,
    /// The root's regular tick period.
    pub tick: Duration,
}

impl Shared {
    /// Buffers a finished span, or drops and counts it when the buffer is full.
    pub fn push(&self, span: Span) {
        let Ok(mut buf) = self.buffer.try_borrow_mut() else {
            return;
        };
        match buf.push(span) {
            Pushed::Dropped => {
                drop(buf);
                self.pending.bump(Metric::SpansDroppedBufferFull);
                self.drop_log
                    .warn("span buffer full, dropping spans (collector slow or unreachable?)");
            }
            Pushed::Buffered { full_batch } => {
                // The gauge is refreshed by the root at each tick (one host call less per
                // request); it can lag by at most one tick.
                if full_batch && !self.early_tick.get() {
                    // Envoy applies a tick period set from an HTTP context to its root
                    // context: a full batch leaves at the next millisecond, not the next tick.
                    self.early_tick.set(true);
                    host::set_tick_period(Duration::from_millis(1));
                }
            }
        }
    }
}
