//! `demo-grpc`: gRPC over HTTP/2 cleartext (h2c, prior knowledge) serving `demo.v1.Greeter`
//! with hand-written framing; continues the trace like `demo-http`.
//!
//! - `SayHello` (unary) answers one `HelloReply`, then trailers `grpc-status: 0`.
//! - `StreamGreetings` (server streaming) sends `count` replies 20 ms apart; the SERVER span
//!   covers the whole stream.
//! - `Fail` answers a trailers-only response: `grpc-status: 13` (INTERNAL) + `grpc-message`.
//! - Anything else: trailers-only `UNIMPLEMENTED`.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::grpc::{self, Code, HelloReply, HelloRequest, StreamRequest};
use crate::otlp::{DemoSpan, SpanExporter};
use crate::serve::{accept_loop, incoming_context, server_address, ChannelBody};

/// The message `Fail` returns (tests look for it in the exported spans).
pub const FAIL_MESSAGE: &str = "simulated failure: inventory database unavailable";

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    exporter: SpanExporter,
    shutdown: impl std::future::Future<Output = ()>,
) {
    accept_loop(listener, shutdown, move |stream, peer| {
        let exporter = exporter.clone();
        async move {
            let service = service_fn(move |req| handle(req, peer, exporter.clone()));
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    exporter: SpanExporter,
) -> Result<Response<ChannelBody>, std::convert::Infallible> {
    let (parent, trace_state) = incoming_context(req.headers());
    let path = req.uri().path().to_owned();
    // `:path` is `/package.Service/Method`; `rpc.method` is `package.Service/Method`.
    let rpc_method = path.trim_start_matches('/').to_owned();
    let method = rpc_method
        .strip_prefix(grpc::SERVICE)
        .and_then(|m| m.strip_prefix('/'))
        .map(str::to_owned);
    let mut span = DemoSpan::server(rpc_method.clone(), parent.as_ref(), &trace_state);
    span.set_str("rpc.system.name", "grpc");
    span.set_str("rpc.method", &rpc_method);
    let (host, port) = server_address(req.headers(), req.uri());
    span.set_str("server.address", host);
    if let Some(port) = port {
        span.set_int("server.port", i64::from(port));
    }
    span.set_str("client.address", peer.ip().to_string());

    let is_grpc = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(finish_trailers_only(
                span,
                &exporter,
                Code::Internal as u32,
                &format!("reading request: {e}"),
            ))
        }
    };
    if !is_grpc {
        return Ok(finish_trailers_only(
            span,
            &exporter,
            Code::Internal as u32,
            "content-type must be application/grpc",
        ));
    }
    let messages = match grpc::deframe(&body) {
        Ok(m) => m,
        Err(why) => {
            return Ok(finish_trailers_only(
                span,
                &exporter,
                Code::Internal as u32,
                &why,
            ))
        }
    };
    let first = messages.first().cloned().unwrap_or_default();

    match method.as_deref() {
        Some(grpc::SAY_HELLO) => {
            let Ok(request) = HelloRequest::decode(first) else {
                return Ok(finish_trailers_only(
                    span,
                    &exporter,
                    Code::InvalidArgument as u32,
                    "undecodable HelloRequest",
                ));
            };
            let reply = HelloReply {
                message: format!("Hello, {}!", non_empty(&request.name)),
            };
            Ok(stream_replies(span, exporter, vec![reply], Duration::ZERO))
        }
        Some(grpc::STREAM_GREETINGS) => {
            let Ok(request) = StreamRequest::decode(first) else {
                return Ok(finish_trailers_only(
                    span,
                    &exporter,
                    Code::InvalidArgument as u32,
                    "undecodable StreamRequest",
                ));
            };
            let count = match request.count {
                0 => 3,
                n => n.min(20),
            };
            let replies = (1..=count)
                .map(|i| HelloReply {
                    message: format!("Greeting {i} of {count} for {}", non_empty(&request.name)),
                })
                .collect();
            Ok(stream_replies(
                span,
                exporter,
                replies,
                Duration::from_millis(20),
            ))
        }
        Some(grpc::FAIL) => {
            let mut lookup = span.child("inventory lookup");
            tokio::time::sleep(Duration::from_millis(3)).await;
            lookup.set_error(FAIL_MESSAGE);
            exporter.record(lookup.finish());
            Ok(finish_trailers_only(
                span,
                &exporter,
                Code::Internal as u32,
                FAIL_MESSAGE,
            ))
        }
        _ => Ok(finish_trailers_only(
            span,
            &exporter,
            Code::Unimplemented as u32,
            &format!("unknown method {path}"),
        )),
    }
}

fn non_empty(name: &str) -> &str {
    if name.is_empty() {
        "stranger"
    } else {
        name
    }
}

fn grpc_headers(headers: &mut HeaderMap) {
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
}

fn status_trailers(code: u32, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if !message.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&grpc::encode_message(message)) {
            trailers.insert("grpc-message", v);
        }
    }
    trailers
}

fn record_status(span: &mut DemoSpan, code: u32, message: &str) {
    span.set_str("rpc.response.status_code", grpc::code_name(code));
    if grpc::is_server_error(code) {
        span.set_str("error.type", grpc::code_name(code));
        span.set_error(message);
    }
}

/// A trailers-only response (HTTP 200, status in the headers, no body): how gRPC servers
/// answer a call that fails before any message.
fn finish_trailers_only(
    mut span: DemoSpan,
    exporter: &SpanExporter,
    code: u32,
    message: &str,
) -> Response<ChannelBody> {
    record_status(&mut span, code, message);
    exporter.record(span.finish());
    let (_tx, rx) = mpsc::channel(1);
    let mut response = Response::new(ChannelBody(rx));
    grpc_headers(response.headers_mut());
    response
        .headers_mut()
        .extend(status_trailers(code, message));
    response
}

/// Sends `replies` (with `gap` between them), then `grpc-status: 0` trailers, and ends the span
/// when the stream is done.
fn stream_replies(
    mut span: DemoSpan,
    exporter: SpanExporter,
    replies: Vec<HelloReply>,
    gap: Duration,
) -> Response<ChannelBody> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut sent = 0i64;
        for (i, reply) in replies.iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if tx.send(Frame::data(grpc::frame(reply))).await.is_err() {
                // The client went away: the span says so.
                span.set_int("aetherflow.demo.messages_sent", sent);
                record_status(&mut span, 1, "client cancelled");
                exporter.record(span.finish());
                return;
            }
            sent += 1;
        }
        let _ = tx.send(Frame::trailers(status_trailers(0, ""))).await;
        span.set_int("aetherflow.demo.messages_sent", sent);
        record_status(&mut span, 0, "");
        exporter.record(span.finish());
    });
    let mut response = Response::new(ChannelBody(rx));
    grpc_headers(response.headers_mut());
    response
}
