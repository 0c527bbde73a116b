//! The upstream service behind Envoy: a small, fast HTTP server that answers every request at
//! once, over HTTP/1.1 or h2c (prior knowledge), and a gRPC unary responder on the same port.
//!
//! It runs inside the harness process, so its CPU is not in Envoy's figures; it does the same
//! work for every configuration, so it cancels out of the comparison.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The HTTP answer: small, like a typical JSON API reply.
const HTTP_BODY: &[u8] = b"{\"status\":\"ok\",\"service\":\"bench-upstream\"}";

/// A running upstream; dropping it stops accepting new connections.
pub struct Upstream {
    /// Where Envoy's `upstream` cluster points.
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Upstream {
    /// Binds 127.0.0.1 on a port the OS picks and serves until dropped.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(answer);
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, accept })
    }
}

type Reply = Either<Full<Bytes>, GrpcReply>;

async fn answer(req: Request<Incoming>) -> Result<Response<Reply>, Infallible> {
    let is_grpc = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    // Read the request body to its end so the stream completes cleanly on both protocols.
    let _ = req.into_body().collect().await;
    let response = if is_grpc {
        Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(Either::Right(GrpcReply::default()))
    } else {
        Response::builder()
            .header(CONTENT_TYPE, "application/json")
            .body(Either::Left(Full::new(Bytes::from_static(HTTP_BODY))))
    };
    Ok(response.unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new())))))
}

/// A unary gRPC reply: one length-prefixed message, then trailers with `grpc-status: 0`.
#[derive(Default)]
pub struct GrpcReply {
    /// 0: message not sent yet, 1: trailers not sent yet, 2: done.
    step: u8,
}

/// One gRPC message frame: uncompressed flag, 4-byte big-endian length, then a protobuf message
/// (field 1, string "pong").
pub const GRPC_MESSAGE: &[u8] = &[0, 0, 0, 0, 6, 0x0a, 4, b'p', b'o', b'n', b'g'];

impl Body for GrpcReply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.step {
            0 => Frame::data(Bytes::from_static(GRPC_MESSAGE)),
            1 => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                Frame::trailers(trailers)
            }
            _ => return Poll::Ready(None),
        };
        self.step += 1;
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.step >= 2
    }
}
