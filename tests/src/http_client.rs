//! A small test client over real TCP: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) through hyper,
//! one connection per request (so requests spread over Envoy's workers), plus a raw-bytes mode for
//! requests hyper itself would refuse to send.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which protocol the client speaks to Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// Cleartext HTTP/2 with prior knowledge (what gRPC clients do).
    H2c,
}

/// A request to send. Header lines keep their order and repeats; values are raw bytes.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header lines in order (repeats are separate lines).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Request body.
    pub body: Bytes,
    /// Protocol to Envoy.
    pub protocol: Protocol,
}

impl ClientRequest {
    /// `GET path` over HTTP/1.1.
    pub fn get(path: &str) -> Self {
        ClientRequest {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            protocol: Protocol::Http1,
        }
    }

    /// A unary or client-streaming gRPC call over h2c: `path` is `/package.Service/Method`, `body` the
    /// already framed request messages (see [`crate::grpc::frames`]).
    pub fn grpc(path: &str, body: Bytes) -> Self {
        ClientRequest {
            method: "POST".into(),
            path: path.into(),
            headers: vec![
                ("content-type".into(), b"application/grpc".to_vec()),
                ("te".into(), b"trailers".to_vec()),
            ],
            body,
            protocol: Protocol::H2c,
        }
    }

    /// Adds a header line (repeats allowed).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Sets the method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = method.into();
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }
}

/// A collected response.
#[derive(Clone, Debug, Default)]
pub struct ClientResponse {
    /// Status code.
    pub status: u16,
    /// Header lines in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Whole body.
    pub body: Bytes,
    /// Trailer lines (HTTP/2 or chunked HTTP/1.1).
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl ClientResponse {
    /// First value of header `name` as text (lossy).
    pub fn header(&self, name: &str) -> Option<String> {
        lookup(&self.headers, name)
    }

    /// First value of trailer `name`, falling back to a header (trailers-only gRPC responses).
    pub fn grpc_status(&self) -> Option<String> {
        lookup(&self.trailers, "grpc-status").or_else(|| self.header("grpc-status"))
    }
}

fn lookup(lines: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    lines
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn header_lines(map: &hyper::HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Sends `req` to `addr` on a fresh connection and collects the response, within `timeout`.
pub async fn send(
    addr: SocketAddr,
    req: &ClientRequest,
    timeout: Duration,
) -> Result<ClientResponse, String> {
    tokio::time::timeout(timeout, send_inner(addr, req))
        .await
        .map_err(|_| {
            format!(
                "{} {} to {addr}: no response within {timeout:?}",
                req.method, req.path
            )
        })?
}

async fn send_inner(addr: SocketAddr, req: &ClientRequest) -> Result<ClientResponse, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    let uri = match req.protocol {
        Protocol::Http1 => req.path.clone(),
        Protocol::H2c => format!("http://{addr}{}", req.path),
    };
    let mut builder = hyper::Request::builder()
        .method(req.method.as_str())
        .uri(uri);
    if req.protocol == Protocol::Http1 && !req.headers.iter().any(|(n, _)| n == "host") {
        builder = builder.header("host", addr.to_string());
    }
    let mut request = builder
        .body(Full::new(req.body.clone()))
        .map_err(|e| e.to_string())?;
    for (name, value) in &req.headers {
        let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name}: {e}"))?;
        let value = hyper::header::HeaderValue::from_bytes(value)
            .map_err(|e| format!("header value for {name}: {e}"))?;
        request.headers_mut().append(name, value);
    }
    let response = match req.protocol {
        Protocol::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
                .send_request(request)
                .await
                .map_err(|e| format!("http1 request: {e}"))?
        }
        Protocol::H2c => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
                .send_request(request)
                .await
                .map_err(|e| format!("h2 request: {e}"))?
        }
    };
    let status = response.status().as_u16();
    let headers = header_lines(response.headers());
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response body: {e}"))?;
    let trailers = collected.trailers().map(header_lines).unwrap_or_default();
    Ok(ClientResponse {
        status,
        headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// `GET path` over HTTP/1.1.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<ClientResponse, String> {
    send(addr, &ClientRequest::get(path), timeout).await
}

/// What came back for a raw request: the status (if a status line arrived) and the response head.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// Status code from the status line, if any.
    pub status: Option<u16>,
    /// Everything read (lossy text), up to the limit.
    pub text: String,
}

/// Writes `request` bytes as-is (any bytes: hostile header tests) and reads what Envoy answers until it
/// closes the connection or `timeout`. Send `connection: close` to get a prompt end.
pub async fn send_raw(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<RawResponse, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + timeout;
    while buf.len() < 1 << 20 {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Ok(RawResponse { status, text })
}

/// Sends every request concurrently as streams of ONE cleartext HTTP/2 connection (multiplexing:
/// one Envoy worker, one connection, interleaved filter contexts). Results are in request order.
pub async fn send_h2_multiplexed(
    addr: SocketAddr,
    reqs: &[ClientRequest],
    timeout: Duration,
) -> Result<Vec<Result<ClientResponse, String>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut tasks = Vec::new();
    for req in reqs {
        let mut sender = sender.clone();
        let mut request = hyper::Request::builder()
            .method(req.method.as_str())
            .uri(format!("http://{addr}{}", req.path))
            .body(Full::new(req.body.clone()))
            .map_err(|e| e.to_string())?;
        for (name, value) in &req.headers {
            let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| e.to_string())?;
            let value = hyper::header::HeaderValue::from_bytes(value).map_err(|e| e.to_string())?;
            request.headers_mut().append(name, value);
        }
        tasks.push(tokio::spawn(async move {
            let fut = async {
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| format!("h2 stream: {e}"))?;
                let status = response.status().as_u16();
                let headers = header_lines(response.headers());
                let collected = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?;
                let trailers = collected.trailers().map(header_lines).unwrap_or_default();
                Ok(ClientResponse {
                    status,
                    headers,
                    body: collected.to_bytes(),
                    trailers,
                })
            };
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| "h2 stream timed out".to_string())?
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string())?);
    }
    Ok(out)
}
