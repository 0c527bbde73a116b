//! The shutdown signal of the binary: SIGTERM (orchestrators) or SIGINT (Ctrl-C).

use std::future::Future;

/// The first SIGTERM or SIGINT. The handlers are installed here, when called, not when the
/// future is first polled: `main` calls this before the shim reports ready, so a SIGTERM that
/// arrives right after readiness starts a graceful shutdown instead of killing the process
/// (the default action) with batches still queued. Must be called inside the runtime. If a
/// handler cannot be installed (never on Linux), only the other signal is awaited.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => tracing::info!("SIGTERM received"),
                        _ = i.recv() => tracing::info!("SIGINT received"),
                    }
                }
                (Ok(mut t), Err(_)) => {
                    t.recv().await;
                }
                (Err(_), _) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
