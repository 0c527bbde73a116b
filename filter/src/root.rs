//! The root context: configuration, the per-VM span buffer, and export to the collector.
//!
//! HTTP contexts push finished spans into the buffer owned here (through `Rc<Shared>`);
//! the root ticks every `buffer::MAX_TICK_MS` at most and flushes a partial batch every
//! `flush_interval_ms`; a full batch asks for a 1 ms tick so it leaves at once. Export is
//! by `dispatch_http_call` from the root context (Envoy does not deliver a call's response
//! to an HTTP context that has finished).

use crate::host;
use crate::http::HttpTrace;
use crate::metrics::{self, Metrics};
use crate::shared::{LogLimiter, Shared};
use aetherflow_core::buffer::{self, SpanBuffer};
use aetherflow_core::ids::IdGenerator;
use aetherflow_core::metrics::Metric;
use aetherflow_core::otlp;
use aetherflow_core::stream::Tracer;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MapType};
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
    /// Export requests in flight: token -> number of spans.
    inflight: HashMap<u32, usize>,
    /// Metrics, defined once per VM (kept across reconfiguration).
    metrics: Option<Metrics>,
    /// Request-path counts not yet published (kept across reconfiguration).
    pending: Rc<metrics::Pending>,
    /// Rate limit of export failure warnings.
    export_log: LogLimiter,
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
    fn flush(&mut self, force_partial: bool) {
        let Some(sh) = self.shared.clone() else {
            return;
        };
        // Counts first: a span the collector receives was counted as started.
        sh.pending.publish(&sh.metrics);
        let now = host::now_nanos();
        let cfg = &sh.tracer.cfg;
        let timeout = Duration::from_millis(cfg.collector_timeout_ms);
        if let Ok(buf) = sh.buffer.try_borrow() {
            sh.metrics.set(Metric::BufferedSpans, buf.len() as u64);
        }
        while self.inflight.len() < cfg.max_inflight_dispatches {
            let batch = {
                let Ok(mut buf) = sh.buffer.try_borrow_mut() else {
                    break;
                };
                let Some(batch) = buf.next_batch(now, force_partial) else {
                    break;
                };
                sh.metrics.set(Metric::BufferedSpans, buf.len() as u64);
                batch
            };
            let n = batch.len();
            let Some(encoder) = &self.encoder else { break };
            let body = encoder.encode(&batch);
            drop(batch);
            let headers = vec![
                (":method", "POST"),
                (":path", cfg.collector_path.as_str()),
                (":authority", cfg.collector_authority.as_str()),
                ("content-type", "application/x-protobuf"),
            ];
            sh.metrics.inc(Metric::ExportRequests);
            match hostcalls::dispatch_http_call(
                &cfg.collector_cluster,
                headers,
                Some(&body),
                vec![],
                timeout,
            ) {
                Ok(token) => {
                    self.inflight.insert(token, n);
                }
                Err(status) => {
                    sh.metrics.inc(Metric::ExportFailures);
                    sh.metrics.add(Metric::SpansDroppedExportFailed, n as u64);
                    self.export_log.warn(&format!(
                        "cannot dispatch export to cluster {:?} ({status:?}); {n} spans dropped",
                        cfg.collector_cluster
                    ));
                    break;
                }
            }
        }
    }
}

impl Context for TraceRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let Some(n) = self.inflight.remove(&token_id) else {
            return;
        };
        let Some(sh) = &self.shared else { return };
        let status = host::header(MapType::HttpCallResponseHeaders, ":status");
        match status.as_deref().and_then(|s| s.parse::<u16>().ok()) {
            Some(s) if (200..300).contains(&s) => sh.metrics.add(Metric::SpansExported, n as u64),
            other => {
                sh.metrics.inc(Metric::ExportFailures);
                sh.metrics.add(Metric::SpansDroppedExportFailed, n as u64);
                let why = match other {
                    Some(s) => format!("status {s}"),
                    None => "no response (timeout or connection failure)".to_owned(),
                };
                self.export_log
                    .warn(&format!("export of {n} spans failed: {why}"));
            }
        }
        // A finished call frees a slot: send what is waiting without delaying to the tick.
        self.flush(false);
    }

    fn on_done(&mut self) -> bool {
        // Plugin shutting down: try to send what is buffered.
        self.flush(true);
        true
    }
}

impl RootContext for TraceRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
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
        let _ = hostcalls::set_tick_period(tick);
        true
    }

    fn on_tick(&mut self) {
        if let Some(sh) = &self.shared {
            if sh.early_tick.replace(false) {
                let _ = hostcalls::set_tick_period(sh.tick);
            }
        }
        self.flush(false);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HttpTrace::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
