//! The root context: configuration, the per-VM span buffer, and export to the collector.
//!
//! HTTP contexts push finished spans into the buffer owned here (through `Rc<Shared>`);
//! the root ticks every `buffer::MAX_TICK_MS` at most and flushes a partial batch every
//! `flush_interval_ms`; a full batch asks for a 1 ms tick so it leaves at once. Export is
//! by `dispatch_http_call` from the root context (Envoy does not deliver a call's response
//! to an HTTP context that has finished). A request that fails retryably waits in a
//! `RetryQueue` and is sent again after a backoff (`aetherflow_core::retry`); when the plugin
//! is torn down (`on_done`) the root sends everything and stays until the answers are in.

use crate::host;
use crate::host::{BufferType, LogLevel, MapType};
use crate::http::HttpTrace;
use crate::metrics::{self, Metrics};
use crate::shared::{LogLimiter, Shared};
use aetherflow_core::buffer::{self, SpanBuffer};
use aetherflow_core::ids::IdGenerator;
use aetherflow_core::metrics::Metric;
use aetherflow_core::otlp;
use aetherflow_core::retry::{self, RetryQueue};
use aetherflow_core::stream::Tracer;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// The root context.
#[derive(Default)]
pub struct TraceRoot {
    /// Set once a configuration was accepted.
    shared: Option<Rc<Shared>>,
    /// Encodes export requests (resource and scope encoded once per configuration).
    encoder: Option<otlp::Encoder>,
    /// Export requests in flight: token -> the request (kept for a retry).
    inflight: HashMap<u32, retry::Request>,
    /// Failed requests waiting for another attempt (`aetherflow_core::retry`).
    retry: RetryQueue,
    /// Metrics, defined once per VM (kept across reconfiguration).
    metrics: Option<Metrics>,
    /// Request-path counts not yet published (kept across reconfiguration).
    pending: Rc<metrics::Pending>,
    /// Rate limit of export failure warnings.
    export_log: LogLimiter,
    /// Envoy called `on_done` (the plugin is being torn down, e.g. its configuration changed):
    /// every flush sends partial batches, and the root tells Envoy it is done (`proxy_done`) once
    /// its last export has been answered.
    closing: bool,
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    if getrandom::fill(&mut s).is_err() {
        // No entropy from the host: fall back to the clock, so ids still differ per VM start.
        let t = host::now_nanos().to_le_bytes();
        s[..8].copy_from_slice(&t);
        host::log(
            LogLevel::Warn,
            "aetherflow: random_get failed; ids seeded from the clock",
        );
    }
    s
}

impl TraceRoot {
    /// Sends what is due: first a failed request whose backoff has passed (any waiting one
    /// when closing); while one waits, no new batch (its spans stay in the buffer); else full
    /// batches, and the partial one when the flush interval has passed or `force_partial`.
    fn flush(&mut self, force_partial: bool) {
        let Some(sh) = self.shared.clone() else {
            return;
        };
        // Counts first: a span the collector receives was counted as started.
        sh.pending.publish(&sh.metrics);
        let now = host::now_nanos();
        let cfg = &sh.tracer.cfg;
        if let Ok(buf) = sh.buffer.try_borrow() {
            sh.metrics.set(Metric::BufferedSpans, buf.len() as u64);
        }
        while self.inflight.len() < cfg.max_inflight_dispatches {
            let due = if self.closing { u64::MAX } else { now };
            let req = match self.retry.due(due) {
                Some(req) => req,
                None if !self.retry.is_empty() => break,
                None => {
                    let Ok(mut buf) = sh.buffer.try_borrow_mut() else {
                        break;
                    };
                    let Some(batch) = buf.next_batch(now, force_partial) else {
                        break;
                    };
                    sh.metrics.set(Metric::BufferedSpans, buf.len() as u64);
                    let Some(encoder) = &self.encoder else { break };
                    retry::Request::new(encoder.encode(&batch), batch.len())
                }
            };
            if !self.send(&sh, req) {
                break;
            }
        }
    }

    /// One attempt of `req`; false when the host refused to dispatch it (then it is dropped).
    fn send(&mut self, sh: &Shared, mut req: retry::Request) -> bool {
        let cfg = &sh.tracer.cfg;
        let headers = [
            (":method", "POST"),
            (":path", cfg.collector_path.as_str()),
            (":authority", cfg.collector_authority.as_str()),
            ("content-type", "application/x-protobuf"),
        ];
        sh.metrics.inc(Metric::ExportRequests);
        req.attempts += 1;
        match host::http_call(
            &cfg.collector_cluster,
            &headers,
            &req.body,
            Duration::from_millis(cfg.collector_timeout_ms),
        ) {
            Ok(token) => {
                self.inflight.insert(token, req);
                true
            }
            Err(status) => {
                let n = req.spans;
                sh.metrics.inc(Metric::ExportFailures);
                sh.metrics.add(Metric::SpansDroppedExportFailed, n as u64);
                self.export_log.warn(&format!(
                    "cannot dispatch export to cluster {:?} (host status {status}); {n} spans dropped",
                    cfg.collector_cluster
                ));
                false
            }
        }
    }

    /// Whether nothing is left to wait for while closing: no export in flight. Spans still
    /// buffered or waiting for a retry then could not be sent (dispatch refused): counted as
    /// dropped.
    fn drained(&mut self) -> bool {
        if !self.inflight.is_empty() {
            return false;
        }
        if let Some(sh) = &self.shared {
            let buffered = sh.buffer.try_borrow().map(|b| b.len()).unwrap_or(0);
            let waiting: usize = self.retry.take_all().iter().map(|r| r.spans).sum();
            let left = buffered + waiting;
            if left > 0 {
                sh.metrics
                    .add(Metric::SpansDroppedExportFailed, left as u64);
                self.export_log.warn(&format!(
                    "plugin torn down with {left} spans that could not be sent; dropped"
                ));
            }
        }
        true
    }
}

/// The root context's callbacks (routed here by [`crate::dispatch`]).
impl TraceRoot {
    /// The response to an export request (or its failure: no response headers).
    pub fn on_http_call_response(&mut self, token_id: u32) {
        let Some(req) = self.inflight.remove(&token_id) else {
            return;
        };
        let Some(sh) = self.shared.clone() else {
            return;
        };
        let status = host::header(MapType::HttpCallResponseHeaders, ":status")
            .and_then(|s| s.parse::<u16>().ok());
        let n = req.spans;
        match status {
            Some(s) if (200..300).contains(&s) => sh.metrics.add(Metric::SpansExported, n as u64),
            other => {
                sh.metrics.inc(Metric::ExportFailures);
                let why = match other {
                    Some(s) => format!("status {s}"),
                    None => "no response (timeout or connection failure)".to_owned(),
                };
                // Closing: no later attempt would be waited for.
                let kept = if self.closing {
                    Err(req)
                } else {
                    self.retry.failed(req, other, host::now_nanos())
                };
                let what = match kept {
                    Ok(()) => "retrying",
                    Err(_) => {
                        sh.metrics.add(Metric::SpansDroppedExportFailed, n as u64);
                        "dropped"
                    }
                };
                self.export_log
                    .warn(&format!("export of {n} spans failed: {why}; {what}"));
            }
        }
        // A finished call frees a slot: send what is waiting without delaying to the tick.
        self.flush(self.closing);
        if self.closing && self.drained() {
            // Envoy keeps a root context that answered `false` to `on_done` until it calls
            // `proxy_done`; it is deleted after this callback returns.
            host::done();
        }
    }

    /// The plugin is being torn down: `true` when the root may go at once.
    pub fn on_done(&mut self) -> bool {
        // The plugin is being torn down (a reload: the old listener's drain has ended; or Envoy
        // exits). Send everything buffered and stay alive until the exports are answered:
        // deleting this context now would cancel them (Envoy cancels a context's calls when it
        // deletes it). Bounded: each export ends within `collector_timeout_ms`.
        self.closing = true;
        self.flush(true);
        self.drained()
    }

    /// The plugin's configuration: `false` refuses it (Envoy then fails the plugin).
    pub fn on_configure(&mut self, size: usize) -> bool {
        let raw = host::buffer_bytes(BufferType::PluginConfiguration, 0, size).unwrap_or_default();
        let tracer = match Tracer::from_json(&raw) {
            Ok(t) => t,
            Err(line) => {
                host::log(LogLevel::Error, &line);
                return false;
            }
        };
        host::log(LogLevel::Info, &tracer.summary());
        let cfg = &tracer.cfg;
        let metrics = *self.metrics.get_or_insert_with(Metrics::define);
        let ids = match &self.shared {
            Some(old) => old.ids.borrow().clone(),
            None => IdGenerator::from_seed(seed()),
        };
        self.encoder = Some(otlp::Encoder::new(&otlp::resource(cfg)));
        if self.retry.is_empty() {
            self.retry = RetryQueue::new(cfg.max_buffered_spans);
        }
        let tick = Duration::from_millis(buffer::tick_ms(cfg.flush_interval_ms));
        let buffer = SpanBuffer::new(
            cfg.max_buffered_spans,
            cfg.max_batch_spans,
            cfg.flush_interval_ms,
            host::now_nanos(),
        );
        self.shared = Some(Rc::new(Shared {
            tracer,
            metrics,
            pending: self.pending.clone(),
            ids: RefCell::new(ids),
            buffer: RefCell::new(buffer),
            drop_log: LogLimiter::default(),
            early_tick: Cell::new(false),
            tick,
        }));
        host::set_tick_period(tick);
        true
    }

    /// The periodic tick: flush what is due.
    pub fn on_tick(&mut self) {
        if let Some(sh) = &self.shared {
            if sh.early_tick.replace(false) {
                host::set_tick_period(sh.tick);
            }
        }
        self.flush(self.closing);
    }

    /// A new HTTP stream of this plugin.
    pub fn new_stream(&self) -> HttpTrace {
        HttpTrace::new(self.shared.clone())
    }
}
