//! The accept loop of the test servers ([`crate::upstream`], [`crate::shim`],
//! [`crate::w3c_service`]): HTTP/1.1 and h2c on one listener, one task per connection; the
//! connections end with the loop (abort its task to close them all).

use std::error::Error;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Serves every connection `listener` accepts with the service `make` returns for it, with
/// `TCP_NODELAY` when `nodelay`. Runs until its task is aborted.
pub async fn accept_loop<S, B>(listener: TcpListener, nodelay: bool, make: impl Fn() -> S)
where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if nodelay {
            let _ = stream.set_nodelay(true);
        }
        let service = make();
        conns.spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}
