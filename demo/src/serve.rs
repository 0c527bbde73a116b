//! What both demo services share: reading the incoming trace context from request headers,
//! the accept loop with a shutdown signal, and a response body fed from a channel (for gRPC
//! server streaming and trailers).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::trace_context::TraceParent;

/// The incoming W3C context: the first `traceparent` (none if invalid, or if the header is
/// repeated: the spec makes duplicates invalid) and every `tracestate` line joined in order.
pub fn incoming_context(headers: &HeaderMap) -> (Option<TraceParent>, String) {
    let mut lines = headers.get_all("traceparent").iter();
    let parent = match (lines.next(), lines.next()) {
        (Some(v), None) => v.to_str().ok().and_then(TraceParent::parse),
        _ => None,
    };
    let trace_state = match parent {
        Some(_) => headers
            .get_all("tracestate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(","),
        None => String::new(),
    };
    (parent, trace_state)
}

/// `server.address` and `server.port` from the `Host`/`:authority` the request carried.
pub fn server_address(headers: &HeaderMap, uri: &hyper::Uri) -> (String, Option<u16>) {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host.to_owned(), port.parse().ok()),
        _ => (authority, None),
    }
}

/// Accepts connections until `shutdown` resolves, handing each to `serve_connection`.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    serve_connection: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, peer));
                }
                // Out of file descriptors and the like: keep serving the connections we have.
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// A response body whose frames (data, then optionally trailers) arrive through a channel.
pub struct ChannelBody(pub mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// Waits for SIGINT or SIGTERM (what the runner and docker send).
pub async fn termination_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The address a demo service listens on: `--listen ADDR`, else `DEMO_LISTEN`, else `default`
/// (the defaults are the `demo_http` / `demo_grpc` endpoints of envoy/envoy.yaml).
pub fn listen_arg(default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--listen") {
        Some(i) => args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| default.to_owned()),
        None => std::env::var("DEMO_LISTEN").unwrap_or_else(|_| default.to_owned()),
    }
}
