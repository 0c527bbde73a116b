//! A plain HTTP/1.1 GET for admin and health endpoints (Envoy's admin API, the shim's `/readyz`,
//! `/healthz` and `/metrics`): one connection per request, bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// `GET path` on `addr`: (status, body as text), within `timeout` (connect, answer and body).
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    tokio::time::timeout(timeout, get_unbounded(addr, path))
        .await
        .map_err(|_| format!("GET {path} on {addr} timed out"))?
}

async fn get_unbounded(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// `GET path`: the body on a 2xx answer, the status and body as the error otherwise.
pub async fn get_ok(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    match get(addr, path, timeout).await? {
        (status, body) if (200..300).contains(&status) => Ok(body),
        (status, body) => Err(format!("{status}: {body}")),
    }
}
