//! The shutdown signal of the binary: SIGTERM (orchestrators) or SIGINT (Ctrl-C).
/// Resolves on the first SIGTERM or SIGINT. If a handler cannot be installed (never on
/// Linux), only the other signal is awaited.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
