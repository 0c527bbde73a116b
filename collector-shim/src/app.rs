//! Wiring the pipeline and running it until a shutdown future resolves (mini-redis style:
//! `main` binds the listeners and passes a signal future; tests bind `127.0.0.1:0` and pass
//! a channel).
//!
//! Shutdown order, so nothing accepted is lost: readiness goes false; the HTTP servers stop
//! accepting and finish the requests in flight; the ingest queue is closed and the sampler
//! takes every pending tail decision at once; each exporter's queue is closed and flushed.
//! Everything after readiness must fit in `shutdown_timeout`; what is still queued then is
//! counted as dropped (`shutdown_timeout`) and logged.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::batcher::{self, QueueHandle};
use crate::config::Config;
use crate::exporter::{self, Exporter};
use crate::metrics::Metrics;
use crate::model::SpanRecord;
use crate::receiver::decode::ResourceDefaults;
use crate::receiver::grpc::GrpcLimits;
use crate::receiver::http::{admin_router, otlp_router, ReceiverState};
use crate::receiver::serve::{serve, ConnLimits};
use crate::receiver::{Ingest, IngestMsg};
use crate::red::RedMetrics;
use crate::sampler::Sampler;
use crate::storage::Receipt;

/// The sockets the shim serves on (bound by the caller, so tests can use port 0).
pub struct Listeners {
    /// OTLP/HTTP (and the admin routes when `admin` is `None`).
    pub http: TcpListener,
    /// `/healthz`, `/readyz`, `/metrics` on their own port.
    pub admin: Option<TcpListener>,
    /// OTLP/gRPC, when enabled.
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses the config names; the error names the key.
    pub async fn bind(cfg: &Config) -> Result<Listeners, String> {
        let http = TcpListener::bind(cfg.receiver.http_listen)
            .await
            .map_err(|e| {
                format!(
                    "receiver.http_listen: cannot listen on {}: {e}",
                    cfg.receiver.http_listen
                )
            })?;
        let admin = match cfg.receiver.admin_listen {
            None => None,
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| format!("receiver.admin_listen: cannot listen on {a}: {e}"))?,
            ),
        };
        let grpc = match cfg.receiver.grpc_listen {
            None => None,
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| format!("receiver.grpc_listen: cannot listen on {a}: {e}"))?,
            ),
        };
        Ok(Listeners { http, admin, grpc })
    }

    /// The OTLP/HTTP address actually bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// Exporters with the (unique) names their metrics are labelled with.
pub type NamedExporters = Vec<(String, Arc<dyn Exporter>)>;

/// Builds the exporters the config lists, each with its telemetry counters; names are made
/// unique (`zipkin`, `zipkin#2`) so metric labels never merge two exporters.
pub fn build_exporters(cfg: &Config, metrics: &Metrics) -> Result<NamedExporters, String> {
    let mut out: NamedExporters = Vec::new();
    for (i, e) in cfg.exporters.iter().enumerate() {
        let name = unique_name(e.name(), &out);
        let exp = exporter::build(e, metrics.exporter_telemetry(&name))
            .map_err(|msg| format!("exporters[{i}]: {msg}"))?;
        out.push((name, exp));
    }
    Ok(out)
}

fn unique_name(base: &str, taken: &[(String, Arc<dyn Exporter>)]) -> String {
    let mut name = base.to_string();
    let mut n = 1;
    while taken.iter().any(|(t, _)| *t == name) {
        n += 1;
        name = format!("{base}#{n}");
    }
    name
}

/// What a run ended with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// False when `shutdown_timeout` ran out before every queue was flushed.
    pub flushed: bool,
    /// Spans still queued when the timeout ran out (counted as dropped).
    pub lost_at_shutdown: u64,
}

/// Runs with the exporters the config describes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, String> {
    let metrics = Metrics::new();
    let exporters = build_exporters(&config, &metrics)?;
    run_with(config, listeners, exporters, metrics, shutdown).await
}

/// Runs with the given exporters (named for metrics) and metrics registry.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    exporters: Vec<(String, Arc<dyn Exporter>)>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, String> {
    // RED metrics: counted before sampling; the first exporter confirms exemplars.
    let red = config
        .red_metrics
        .enabled
        .then(|| RedMetrics::new(&config.red_metrics, Instant::now()));
    if let Some(r) = &red {
        metrics.attach_red(r.clone());
    }

    // Exporter queues and their tasks.
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for (i, (name, exp)) in exporters.into_iter().enumerate() {
        // Exemplars come from the first exporter's accepted batches (see `red`).
        let confirm = if i == 0 { red.clone() } else { None };
        let (h, t) = match &config.batch.storage {
            None => {
                let (h, t) =
                    batcher::spawn_confirming(&name, exp, &config.batch, metrics.clone(), confirm);
                (QueueHandle::Memory(h), t)
            }
            Some(st) => {
                let (h, t) = crate::storage::durable::spawn(
                    &name,
                    exp,
                    &config.batch,
                    st,
                    metrics.clone(),
                    confirm,
                )
                .await?;
                (QueueHandle::Durable(h), t)
            }
        };
        handles.push(h);
        tasks.push(t);
    }
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();

    // Receivers -> sampler.
    let (mut ingest, ingest_rx) = Ingest::new(config.receiver.max_pending_spans, metrics.clone());
    if config.batch.storage.is_some() {
        ingest = ingest.with_receipts();
    }
    let sampler = Sampler::new(&config.sampling, metrics.clone(), Instant::now());
    let sampler_task = tokio::spawn(sampler_loop(
        sampler,
        red,
        ingest_rx,
        handles,
        ingest.clone(),
    ));

    // HTTP servers.
    let ready = Arc::new(AtomicBool::new(false));
    let mut defaults = ResourceDefaults::default();
    if !config.service_name.is_empty() {
        defaults
            .attributes
            .push(("service.name".into(), config.service_name.clone()));
    }
    for (k, v) in &config.resource_attributes {
        defaults.attributes.push((k.clone(), v.clone()));
    }
    let state = ReceiverState {
        ingest: ingest.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        max_body_bytes: config.receiver.max_body_bytes,
        body_read_timeout: config.receiver.body_read_timeout,
        defaults: Arc::new(defaults),
    };
    let admin = admin_router(metrics.clone(), ready.clone());
    let limits = ConnLimits {
        max_connections: config.receiver.max_connections,
        header_read_timeout: config.receiver.header_read_timeout,
        body_read_timeout: config.receiver.body_read_timeout,
    };
    let grpc_limits = GrpcLimits {
        conn: limits,
        max_concurrent_streams: config.receiver.grpc_max_concurrent_streams,
        keepalive_interval: config.receiver.grpc_keepalive_interval,
        keepalive_timeout: config.receiver.grpc_keepalive_timeout,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    // A separate admin listener outlives the receiver: /readyz answers 503 and /metrics
    // stays scrapeable while the queues drain.
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let http_addr = listeners.http_addr();
    let grpc_addr = listeners.grpc.as_ref().and_then(|l| l.local_addr().ok());
    let grpc_server = listeners
        .grpc
        .map(|l| crate::receiver::grpc::serve(l, state.clone(), stop_rx.clone(), grpc_limits));
    let (http_router, admin_server) = match listeners.admin {
        None => (otlp_router(state).merge(admin), None),
        Some(l) => (
            otlp_router(state),
            Some(serve(l, admin, admin_stop_rx, limits, metrics.clone())),
        ),
    };
    let http_server = serve(
        listeners.http,
        http_router,
        stop_rx,
        limits,
        metrics.clone(),
    );
    ready.store(true, Ordering::Release);
    metrics.ready.set(1);
    match grpc_addr {
        Some(g) => {
            tracing::info!(listen = %http_addr, grpc_listen = %g, exporters = ?names, "collector-shim ready")
        }
        None => tracing::info!(listen = %http_addr, exporters = ?names, "collector-shim ready"),
    }

    shutdown.await;
    let started = Instant::now();
    let deadline = started + config.shutdown_timeout;
    ready.store(false, Ordering::Release);
    metrics.ready.set(0);
    tracing::info!("shutting down: receivers stop, pending decisions taken, queues flushed");
    let _ = stop_tx.send(true);
    // Requests in flight finish before the queue is closed, so none of them is lost.
    if tokio::time::timeout_at(deadline, http_server)
        .await
        .is_err()
    {
        tracing::warn!("receiver did not stop within shutdown_timeout");
    }
    if let Some(g) = grpc_server {
        if tokio::time::timeout_at(deadline, g).await.is_err() {
            tracing::warn!("gRPC receiver did not stop within shutdown_timeout");
        }
    }
    ingest.close();
    let sampler_done = tokio::time::timeout_at(deadline, sampler_task)
        .await
        .is_ok();
    let mut flushed = sampler_done;
    let mut lost = 0;
    for t in &mut tasks {
        if tokio::time::timeout_at(deadline, &mut t.join)
            .await
            .is_err()
        {
            flushed = false;
            t.join.abort();
            let n = t.pending() as u64;
            metrics.dropped("shutdown_timeout", &t.name, n);
            lost += n;
        }
    }
    if !flushed {
        let pending = ingest.pending() as u64;
        metrics.dropped("shutdown_timeout", "", pending);
        lost += pending;
        tracing::warn!(
            lost,
            "shutdown_timeout ran out before every queue was flushed"
        );
    } else {
        tracing::info!(elapsed = ?started.elapsed(), "shutdown complete, all queues flushed");
    }
    let _ = admin_stop_tx.send(true);
    if let Some(a) = admin_server {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), a).await;
    }
    Ok(Summary {
        flushed,
        lost_at_shutdown: lost,
    })
}

/// The sampler task: takes batches from the receivers, counts them into the RED metrics,
/// wakes for decision deadlines, fans kept spans out to every exporter queue; on `Drain`
/// decides everything and returns, dropping the queue handles so the batchers flush and stop.
async fn sampler_loop(
    mut sampler: Sampler,
    red: Option<RedMetrics>,
    mut rx: mpsc::UnboundedReceiver<IngestMsg>,
    queues: Vec<QueueHandle>,
    ingest: Ingest,
) {
    let mut out: Vec<SpanRecord> = Vec::new();
    loop {
        let wake = sampler.next_wakeup();
        let timer = async move {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(IngestMsg::Spans(spans, permit, receipt)) => {
                    let now = Instant::now();
                    if let Some(r) = &red {
                        r.record(&spans, now);
                    }
                    sampler.offer(spans, now, &mut out);
                    drop(permit);
                    ingest.update_gauge();
                    // What sampling kept of this request is queued under its receipt (the
                    // receiver's 200 waits for it with the durable queue); what the tail
                    // sampler holds is queued when decided, without it.
                    fan_out(&mut out, &queues, receipt.as_ref());
                    continue;
                }
                Some(IngestMsg::Drain) | None => break,
            },
            () = timer => sampler.tick(Instant::now(), &mut out),
        }
        fan_out(&mut out, &queues, None);
    }
    sampler.flush(Instant::now(), &mut out);
    fan_out(&mut out, &queues, None);
}

fn fan_out(out: &mut Vec<SpanRecord>, queues: &[QueueHandle], receipt: Option<&Receipt>) {
    let Some((last, rest)) = queues.split_last() else {
        out.clear();
        return;
    };
    if out.is_empty() {
        return;
    }
    // Every exporter gets its own copy; the last one takes the original.
    for q in rest {
        q.offer_all(out.clone(), receipt);
    }
    last.offer_all(std::mem::take(out), receipt);
}
