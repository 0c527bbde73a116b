//! The HTTP/1.1 listener of the OTLP/HTTP receiver and the admin routes, hardened against
//! clients that hold connections without using them:
//!
//! - `receiver.header_read_timeout`: a connection must deliver a complete request head within it,
//!   counted from when the server starts waiting for one, so both a slowloris client (headers a
//!   byte at a time) and an idle keep-alive connection are closed after it (hyper's HTTP/1 timer).
//! - `receiver.max_connections`: connections served at once. Beyond it a new connection is
//!   accepted and closed at once (counted in `shim_connections_refused_total`) rather than left in
//!   the kernel's backlog, so the accept loop never stalls and memory stays bounded by the limit.
//!
//! Shutdown is graceful: the loop stops accepting, idle connections close, requests in flight finish.
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::event::FaultEvent;
use crate::metrics::Metrics;

/// Connection limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest wait for a complete request head (idle keep-alive included).
    pub header_read_timeout: Duration,
    /// Longest wait for a complete request body once its head is in.
    pub body_read_timeout: Duration,
}

/// The next connection with a slot, or `None` once `stop` turns true. A connection beyond the
/// limit is accepted and closed at once (counted), so the kernel's backlog never fills.
pub(super) async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    metrics: &Metrics,
    failed: &FaultEvent,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return None,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and similar: wait a little rather than spin.
                failed.report_with(1, e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let _ = tcp.set_nodelay(true);
                return Some((tcp, slot));
            }
            Err(_) => {
                metrics.connections_refused.inc();
                drop(tcp);
            }
        }
    }
}

/// A failed `accept`, counted in `shim_accept_errors_total`.
pub(super) fn accept_failed(metrics: &Metrics) -> FaultEvent {
    FaultEvent::new(
        "accepting a connection failed",
        "",
        metrics.accept_errors.clone(),
    )
}

/// Serves `router` on `listener` until `stop` turns true, then finishes requests in flight.
pub fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
    limits: ConnLimits,
    metrics: Metrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let graceful = GracefulShutdown::new();
        let failed = accept_failed(&metrics);
        while let Some((tcp, slot)) = accept(&listener, &slots, &mut stop, &metrics, &failed).await
        {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()));
            let conn = graceful.watch(conn);
            let open = metrics.connections_open.clone();
            open.inc();
            tokio::spawn(async move {
                // Errors here are the client's (reset, timeout); nothing to report per connection.
                let _ = conn.await;
                open.dec();
                drop(slot);
            });
        }
        drop(listener);
        graceful.shutdown().await;
    })
}
