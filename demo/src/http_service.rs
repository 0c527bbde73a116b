//! `demo-http`: an HTTP/1.1 upstream that continues the trace. Routes:
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/orders` | 200, a JSON list (with an INTERNAL child span for the "query") |
//! | `GET /api/orders/{id}` | 200 for a numeric id, else 404 |
//! | `GET /api/fail` | 500 (SERVER span status ERROR, child span with the cause) |
//! | `GET /api/slow?ms=N` | 200 after N ms (default 300, at most 5000): for latency tail policies |
//! | `GET /healthz` | 200, not traced |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::otlp::{DemoSpan, SpanExporter};
use crate::serve::{accept_loop, incoming_context, server_address};

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
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

/// The route template a path matches (`http.route`), if any.
fn route_of(path: &str) -> Option<&'static str> {
    match path {
        "/api/orders" => Some("/api/orders"),
        "/api/fail" => Some("/api/fail"),
        "/api/slow" => Some("/api/slow"),
        "/healthz" => Some("/healthz"),
        p if p.starts_with("/api/orders/") && !p["/api/orders/".len()..].contains('/') => {
            Some("/api/orders/{id}")
        }
        _ => None,
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    exporter: SpanExporter,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let route = route_of(&path);
    if route == Some("/healthz") {
        return Ok(text(StatusCode::OK, "ok\n"));
    }
    let method = req.method().as_str().to_owned();
    let (parent, trace_state) = incoming_context(req.headers());
    let name = match route {
        Some(r) => format!("{method} {r}"),
        None => method.clone(),
    };
    let mut span = DemoSpan::server(name, parent.as_ref(), &trace_state);
    span.set_str("http.request.method", &method);
    span.set_str("url.path", &path);
    span.set_str("url.scheme", "http");
    if let Some(q) = req.uri().query() {
        span.set_str("url.query", q);
    }
    if let Some(r) = route {
        span.set_str("http.route", r);
    }
    let (host, port) = server_address(req.headers(), req.uri());
    span.set_str("server.address", host);
    if let Some(port) = port {
        span.set_int("server.port", i64::from(port));
    }
    span.set_str("client.address", peer.ip().to_string());
    span.set_str("network.protocol.version", "1.1");
    if let Some(ua) = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
    {
        span.set_str("user_agent.original", ua);
    }

    let response = match (method.as_str(), route) {
        ("GET", Some("/api/orders")) => {
            let mut query = span.child("SELECT orders");
            query.set_str("db.system.name", "sqlite");
            query.set_str("db.operation.name", "SELECT");
            tokio::time::sleep(Duration::from_millis(4)).await;
            exporter.record(query.finish());
            json(
                StatusCode::OK,
                r#"{"orders":[{"id":1,"item":"tea"},{"id":2,"item":"coffee"}]}"#,
            )
        }
        ("GET", Some("/api/orders/{id}")) => {
            let id = &path["/api/orders/".len()..];
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
                json(StatusCode::OK, &format!(r#"{{"id":{id},"item":"tea"}}"#))
            } else {
                json(StatusCode::NOT_FOUND, r#"{"error":"no such order"}"#)
            }
        }
        ("GET", Some("/api/fail")) => {
            let mut charge = span.child("charge card");
            tokio::time::sleep(Duration::from_millis(2)).await;
            charge.set_error("payment provider timed out");
            exporter.record(charge.finish());
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"payment provider timed out"}"#,
            )
        }
        ("GET", Some("/api/slow")) => {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(300)
                .min(5000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            json(StatusCode::OK, &format!(r#"{{"slept_ms":{ms}}}"#))
        }
        (_, Some(_)) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        (_, None) => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    let status = response.status();
    span.set_int("http.response.status_code", i64::from(status.as_u16()));
    // Server spans fail on 5xx only (4xx is the client's fault) per the HTTP conventions.
    if status.is_server_error() {
        span.set_str("error.type", status.as_u16().to_string());
        // No description: the status code already says it (the conventions advise against one).
        span.set_error(String::new());
    }
    exporter.record(span.finish());
    Ok(response)
}

fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_are_templates_not_paths() {
        assert_eq!(route_of("/api/orders/42"), Some("/api/orders/{id}"));
        assert_eq!(route_of("/api/orders/42/x"), None);
        assert_eq!(route_of("/api/orders"), Some("/api/orders"));
        assert_eq!(route_of("/nope"), None);
    }
}
