//! One accepted configuration of the native filter, shared by Envoy's main thread and its
//! workers: the core's [`Tracer`], the metric ids, and the span buffer with its export.
//!
//! Export runs on the main thread, off the request path: workers push finished spans into
//! the bounded buffer; a full batch asks the main thread for a flush through Envoy's config
//! scheduler, and a small ticker thread asks for one every tick so partial batches leave
//! after `flush_interval_ms`. The main thread encodes OTLP and sends it with Envoy's own
//! HTTP client (a config-level callout to `collector_cluster`), exactly the request the
//! Wasm form dispatches. Chosen over a thread with its own connection because it reuses the
//! cluster the user configured (TLS, endpoints, timeouts, health) and keeps every byte on
//! Envoy's event loop; the cost per span is the same encoding either way.

use crate::abi::{self, ConfigEnvoyPtr, ConfigSchedulerPtr, FilterEnvoyPtr, ModuleBuffer};
use crate::exports::Exports;
use crate::handoff;
use crate::host;
use aetherflow_core::buffer::{self, Pushed, SpanBuffer};
use aetherflow_core::log_limit::LogLimiter;
use aetherflow_core::metrics::{Kind, Metric};
use aetherflow_core::otlp;
use aetherflow_core::otlp::EncodedSpan;
use aetherflow_core::retry::{self, RetryQueue};
use aetherflow_core::span::Span;
use aetherflow_core::stream::Tracer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Scheduler event: a full batch is waiting.
pub const EVENT_FULL_BATCH: u64 = 1;
/// Scheduler event: the ticker's periodic flush check.
pub const EVENT_TICK: u64 = 2;

/// Wall clock, nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

/// Envoy's configuration pointer. Envoy keeps the object alive until
/// `on_http_filter_config_destroy`, which ends this plugin's use of it.
#[derive(Clone, Copy)]
struct EnvoyConfig(ConfigEnvoyPtr);
// SAFETY: the pointer is only an address handed back to Envoy, and only on the main thread
// (callouts, config-level metrics), which is where Envoy calls every config hook.
unsafe impl Send for EnvoyConfig {}
unsafe impl Sync for EnvoyConfig {}

/// Envoy's config scheduler; `None` once deleted.
struct Scheduler(Option<ConfigSchedulerPtr>);
// SAFETY: Envoy documents `..._config_scheduler_commit` as callable from any thread; the
// pointer is used under the mutex that holds it, and deleted (main thread) under it too.
unsafe impl Send for Scheduler {}

/// Metric ids by [`Metric::index`] (Envoy's ids start at 1; 0 = not defined).
#[derive(Clone, Copy, Debug, Default)]
pub struct Metrics([usize; Metric::ALL.len()]);

impl Metrics {
    /// Defines every metric: only possible inside `on_http_filter_config_new`.
    fn define(config: ConfigEnvoyPtr) -> Metrics {
        let mut ids = [0usize; Metric::ALL.len()];
        for m in Metric::ALL {
            let name = ModuleBuffer::of(m.name().as_bytes());
            let mut id = 0usize;
            // SAFETY: `config` is the pointer of the running config_new hook; the name outlives
            // the call and Envoy writes the id into the local.
            let r = unsafe {
                match m.kind() {
                    Kind::Counter => {
                        abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                            config,
                            name,
                            std::ptr::null(),
                            0,
                            &mut id,
                        )
                    }
                    Kind::Gauge => {
                        abi::envoy_dynamic_module_callback_http_filter_config_define_gauge(
                            config,
                            name,
                            std::ptr::null(),
                            0,
                            &mut id,
                        )
                    }
                }
            };
            if r == abi::METRICS_SUCCESS {
                ids[m.index()] = id;
            }
        }
        Metrics(ids)
    }

    fn id(&self, m: Metric) -> Option<usize> {
        Some(self.0[m.index()]).filter(|id| *id != 0)
    }

    /// Adds `n` to a counter from a stream's hook (any worker).
    pub fn add_from_stream(&self, filter: FilterEnvoyPtr, m: Metric, n: u64) {
        if let (Some(id), true) = (self.id(m), n > 0) {
            // SAFETY: `filter` is the current hook's pointer; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    filter,
                    id,
                    std::ptr::null(),
                    0,
                    n,
                );
            }
        }
    }

    fn add(&self, config: EnvoyConfig, m: Metric, n: u64) {
        if let (Some(id), true) = (self.id(m), n > 0) {
            // SAFETY: main thread, live config; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config.0,
                    id,
                    std::ptr::null(),
                    0,
                    n,
                );
            }
        }
    }

    fn set(&self, config: EnvoyConfig, m: Metric, v: u64) {
        if let Some(id) = self.id(m) {
            // SAFETY: main thread, live config; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_set_gauge(
                    config.0,
                    id,
                    std::ptr::null(),
                    0,
                    v,
                );
            }
        }
    }
}

/// Stops the ticker thread.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// One accepted configuration.
pub struct Plugin {
    /// The configuration, prepared for the request path.
    pub tracer: Tracer,
    /// Metric ids.
    pub metrics: Metrics,
    envoy: EnvoyConfig,
    encoder: otlp::Encoder,
    /// Spans encoded on the worker that ended them (see [`Plugin::push`]).
    buffer: Mutex<SpanBuffer<EncodedSpan>>,
    /// A full-batch flush was asked and has not run yet (at most one event in flight).
    flush_asked: AtomicBool,
    scheduler: Mutex<Scheduler>,
    /// Export requests in flight (main thread).
    exports: Mutex<Exports>,
    /// Failed export requests waiting for another attempt (main thread).
    retry: Mutex<RetryQueue>,
    /// A flush is running (main thread): a callout that completes inside Envoy's call to
    /// start it must not start a nested flush.
    flushing: AtomicBool,
    stop: Stop,
    ticker: Mutex<Option<JoinHandle<()>>>,
    /// Rate limit of the "buffer full" warning.
    drop_log: LogLimiter,
    /// Rate limit of export failure warnings.
    export_log: LogLimiter,
    /// Rate limit of internal fault reports (a panic caught at a hook).
    pub fault_log: LogLimiter,
}

impl Plugin {
    /// Builds the plugin for an accepted configuration (main thread, inside config_new):
    /// defines the metrics, creates the scheduler and starts the ticker.
    pub fn start(config: ConfigEnvoyPtr, tracer: Tracer) -> Result<Arc<Plugin>, String> {
        let cfg = &tracer.cfg;
        let buffer = SpanBuffer::new(
            cfg.max_buffered_spans,
            cfg.max_batch_spans,
            cfg.flush_interval_ms,
            now_ns(),
        );
        let tick = Duration::from_millis(buffer::tick_ms(cfg.flush_interval_ms));
        // SAFETY: `config` is the pointer of the running config_new hook.
        let sched =
            unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(config) };
        if sched.is_null() {
            return Err("aetherflow trace filter: Envoy gave no config scheduler; spans could not be exported".into());
        }
        let plugin = Arc::new(Plugin {
            metrics: Metrics::define(config),
            envoy: EnvoyConfig(config),
            encoder: otlp::Encoder::new(&otlp::resource(cfg)),
            buffer: Mutex::new(buffer),
            flush_asked: AtomicBool::new(false),
            scheduler: Mutex::new(Scheduler(Some(sched))),
            exports: Mutex::new(Exports::default()),
            retry: Mutex::new(RetryQueue::new(cfg.max_buffered_spans)),
            flushing: AtomicBool::new(false),
            stop: Stop::default(),
            ticker: Mutex::new(None),
            drop_log: LogLimiter::default(),
            export_log: LogLimiter::default(),
            fault_log: LogLimiter::default(),
            tracer,
        });
        let for_ticker = Arc::clone(&plugin);
        let spawned = std::thread::Builder::new()
            .name("aetherflow-tick".into())
            .spawn(move || for_ticker.tick_loop(tick));
        match spawned {
            Ok(handle) => {
                *lock(&plugin.ticker) = Some(handle);
                Ok(plugin)
            }
            Err(e) => {
                plugin.shutdown();
                Err(format!(
                    "aetherflow trace filter: cannot start the flush ticker thread: {e}"
                ))
            }
        }
    }

    fn tick_loop(&self, tick: Duration) {
        loop {
            let stopped = lock(&self.stop.stopped);
            let (stopped, _) = self
                .stop
                .wake
                .wait_timeout(stopped, tick)
                .unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
            drop(stopped);
            // An idle configuration does not wake Envoy's main thread ten times a second:
            // the tick asks for a flush only when something waits to be sent.
            if self.has_pending() {
                self.commit(EVENT_TICK);
            }
        }
    }

    /// Spans buffered, a failed request waiting for its retry, or requests a torn-down
    /// configuration left (the locks are each held for one check).
    fn has_pending(&self) -> bool {
        !lock(&self.buffer).is_empty() || !lock(&self.retry).is_empty() || !handoff::is_empty()
    }

    fn commit(&self, event: u64) {
        {
            let s = lock(&self.scheduler);
            if let Some(ptr) = s.0 {
                // SAFETY: the scheduler is alive while it is in the mutex; commit is
                // thread-safe.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
                        ptr, event,
                    )
                };
            }
        }
    }

    /// Stops the ticker and deletes the scheduler (main thread, config_destroy). This
    /// configuration cannot send any more: what it holds goes to the next one (`hand_off`).
    pub fn shutdown(&self) {
        *lock(&self.stop.stopped) = true;
        self.stop.wake.notify_all();
        let ticker = lock(&self.ticker).take();
        if let Some(t) = ticker {
            let _ = t.join();
        }
        {
            let mut s = lock(&self.scheduler);
            if let Some(ptr) = s.0.take() {
                // SAFETY: created in `start`, deleted once, under the lock commit takes.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(ptr)
                };
            }
        }
        self.hand_off();
    }

    /// Leaves what this configuration could not send for the next one (`handoff`): the
    /// callouts in flight (Envoy cancels them once this hook returns) and the buffered spans,
    /// encoded with this configuration's resource. What does not fit is counted as dropped.
    fn hand_off(&self) {
        let mut requests: Vec<retry::Request> = lock(&self.exports)
            .inflight
            .drain()
            .map(|(_, r)| r)
            .collect();
        requests.extend(lock(&self.retry).take_all());
        let now = now_ns();
        loop {
            let batch = lock(&self.buffer).next_batch(now, true);
            let Some(batch) = batch else { break };
            requests.push(retry::Request::new(
                self.encoder.encode_encoded(&batch),
                batch.len(),
            ));
        }
        let (mut kept, mut dropped) = (0, 0);
        for r in requests {
            let n = r.spans;
            match handoff::put(r) {
                Ok(()) => kept += n,
                Err(_) => dropped += n,
            }
        }
        if dropped > 0 {
            self.export_failed(
                dropped,
                &format!("configuration removed: {dropped} spans over the hand-off bound dropped"),
            );
        }
        if kept > 0 {
            host::log(
                abi::LogLevel::Info,
                &format!("aetherflow: configuration removed; {kept} spans left for the next configuration to send"),
            );
        }
    }

    /// Buffers a finished span (worker thread), or drops and counts it when the buffer is
    /// full. A full batch asks the main thread for a flush at once.
    pub fn push(&self, filter: FilterEnvoyPtr, span: Span) {
        // Encoded here, on the worker: the span's allocations are freed by the thread that
        // made them (still in its cache and its allocator's local free list), and only one
        // buffer per span crosses to the main thread. Built on the worker and freed on the
        // main thread, each of a span's ~26 allocations moved between the cores' caches
        // twice (measured in paired slices: see docs/native.md).
        let encoded = EncodedSpan::of(&span);
        drop(span);
        let pushed = lock(&self.buffer).push(encoded);
        match pushed {
            Pushed::Dropped => {
                self.metrics
                    .add_from_stream(filter, Metric::SpansDroppedBufferFull, 1);
                if let Some(n) = self.drop_log.allow(now_ns()) {
                    host::log(
                        abi::LogLevel::Warn,
                        &LogLimiter::line(
                            "span buffer full, dropping spans (collector slow or unreachable?)",
                            n,
                        ),
                    );
                }
            }
            Pushed::Buffered { full_batch } => {
                if full_batch && !self.flush_asked.swap(true, Ordering::AcqRel) {
                    self.commit(EVENT_FULL_BATCH);
                }
            }
        }
    }

    /// A scheduled event on the main thread: sends what is due.
    pub fn on_scheduled(&self, event: u64) {
        if event == EVENT_FULL_BATCH {
            self.flush_asked.store(false, Ordering::Release);
        }
        self.flush(false);
    }

    /// Sends a failed request whose backoff has passed, what a torn-down configuration left,
    /// full batches, and the partial one when the flush interval has passed, while fewer than
    /// `max_inflight_dispatches` requests are in flight (main thread). No lock is held across
    /// a callout: Envoy may report its end before the call returns.
    fn flush(&self, force_partial: bool) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        // Cleared however this ends, a caught panic included.
        let _flushing = ClearOnDrop(&self.flushing);
        let cfg = &self.tracer.cfg;
        let now = now_ns();
        loop {
            let busy = lock(&self.exports).inflight.len();
            if busy >= cfg.max_inflight_dispatches {
                break;
            }
            // First a failed request whose backoff has passed (while one waits, no new
            // batch: its spans stay in the buffer), then what a torn-down configuration left
            // (`handoff`), then this one's spans.
            let due = lock(&self.retry).due(now);
            let mut req = match due {
                Some(req) => req,
                None if !lock(&self.retry).is_empty() => break,
                None => match handoff::take() {
                    Some(req) => req,
                    None => {
                        let batch = lock(&self.buffer).next_batch(now, force_partial);
                        let Some(batch) = batch else { break };
                        retry::Request::new(self.encoder.encode_encoded(&batch), batch.len())
                    }
                },
            };
            req.attempts += 1;
            let n = req.spans;
            let headers = [
                abi::ModuleHttpHeader::of(":method", "POST"),
                abi::ModuleHttpHeader::of(":path", &cfg.collector_path),
                abi::ModuleHttpHeader::of(":authority", &cfg.collector_authority),
                abi::ModuleHttpHeader::of("content-type", "application/x-protobuf"),
            ];
            self.metrics.add(self.envoy, Metric::ExportRequests, 1);
            let mut id = 0u64;
            // SAFETY: main thread, live config; every buffer outlives the call (Envoy copies
            // the headers and the body into its request).
            let r = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_http_callout(
                    self.envoy.0,
                    &mut id,
                    ModuleBuffer::of(cfg.collector_cluster.as_bytes()),
                    headers.as_ptr(),
                    headers.len(),
                    ModuleBuffer::of(&req.body),
                    cfg.collector_timeout_ms,
                )
            };
            if r != abi::CALLOUT_INIT_SUCCESS {
                self.export_failed(
                    n,
                    &format!(
                        "cannot send export to cluster {:?} ({}); {n} spans dropped",
                        cfg.collector_cluster,
                        callout_init_reason(r)
                    ),
                );
                break;
            }
            let finished = lock(&self.exports).started(id, req);
            if let Some((req, status)) = finished {
                self.account(req, status);
            }
        }
        let buffered = lock(&self.buffer).len();
        self.metrics
            .set(self.envoy, Metric::BufferedSpans, buffered as u64);
    }

    /// A callout finished (main thread): `status` is the response's `:status` when there
    /// was a response.
    pub fn on_export_done(&self, id: u64, status: Option<u16>) {
        let flushing = self.flushing.load(Ordering::Acquire);
        let req = lock(&self.exports).finished(id, status, flushing);
        if let Some(req) = req {
            self.account(req, status);
        }
        // A finished request frees a slot: send what is waiting without delaying to the tick.
        self.flush(false);
    }

    /// The end of one attempt: counted, or kept for another (`aetherflow_core::retry`).
    fn account(&self, req: retry::Request, status: Option<u16>) {
        let n = req.spans;
        if status.is_some_and(|s| (200..300).contains(&s)) {
            self.metrics
                .add(self.envoy, Metric::SpansExported, n as u64);
            return;
        }
        let why = match status {
            Some(s) => format!("status {s}"),
            None => "no response (timeout or connection failure)".to_owned(),
        };
        let kept = lock(&self.retry).failed(req, status, now_ns());
        match kept {
            Ok(()) => {
                self.metrics.add(self.envoy, Metric::ExportFailures, 1);
                self.warn_export(&format!("export of {n} spans failed: {why}; retrying"));
            }
            Err(_) => self.export_failed(n, &format!("export of {n} spans failed: {why}; dropped")),
        }
    }

    fn export_failed(&self, n: usize, msg: &str) {
        self.metrics.add(self.envoy, Metric::ExportFailures, 1);
        self.metrics
            .add(self.envoy, Metric::SpansDroppedExportFailed, n as u64);
        self.warn_export(msg);
    }

    fn warn_export(&self, msg: &str) {
        if let Some(k) = self.export_log.allow(now_ns()) {
            host::log(abi::LogLevel::Warn, &LogLimiter::line(msg, k));
        }
    }
}

/// Locks a mutex even if a panic (caught at a hook) poisoned it: every value guarded here
/// stays consistent between statements, and the filter must keep working.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Clears a flag when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn callout_init_reason(r: abi::CalloutInitResult) -> &'static str {
    match r {
        1 => "missing required headers",
        2 => "cluster not found",
        3 => "duplicate callout id",
        4 => "cannot create request (no healthy upstream?)",
        _ => "unknown callout error",
    }
}
