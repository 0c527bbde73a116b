//! A real HTTP server on 127.0.0.1 standing in for Zipkin, Jaeger or an OTLP collector: it
//! records every request and answers from a script (status, headers, body, delay).
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// Wait this long before answering (timeouts).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<Reply>,
}

/// The fake backend. Answers `default` once the script is used up.
#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    default: Reply,
    /// Served over TLS (`https://` URLs).
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// TLS handshakes that failed (untrusted client, missing client certificate, ...).
    tls_failures: Arc<AtomicUsize>,
}

impl Backend {
    /// Starts on a port the OS picks.
    pub async fn start(default: Reply) -> Backend {
        Self::start_on("127.0.0.1:0".parse().unwrap(), default).await
    }

    /// Starts on a given address (to bring a "down" backend back on the same port).
    pub async fn start_on(addr: SocketAddr, default: Reply) -> Backend {
        Self::start_with(addr, default, None).await
    }

    /// Starts an HTTPS backend with `tls` on a port the OS picks.
    pub async fn start_tls(default: Reply, tls: Arc<rustls::ServerConfig>) -> Backend {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        Self::start_with("127.0.0.1:0".parse().unwrap(), default, Some(acceptor)).await
    }

    async fn start_with(
        addr: SocketAddr,
        default: Reply,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let backend = Backend {
            addr,
            state: Arc::default(),
            default,
            tls,
            tls_failures: Arc::default(),
        };
        let b = backend.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let b = b.clone();
                tokio::spawn(async move {
                    let svc = {
                        let b = b.clone();
                        hyper::service::service_fn(move |req| {
                            let b = b.clone();
                            async move { Ok::<_, Infallible>(b.handle(req).await) }
                        })
                    };
                    let http1 = hyper::server::conn::http1::Builder::new();
                    match &b.tls {
                        None => {
                            let _ = http1.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => {
                                let _ = http1.serve_connection(TokioIo::new(tls), svc).await;
                            }
                            Err(_) => {
                                b.tls_failures.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        backend
    }

    /// A free loopback address with nothing listening (connection refused until started).
    pub async fn unused_addr() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// TLS handshakes the backend refused or that failed.
    pub fn tls_failures(&self) -> usize {
        self.tls_failures.load(Ordering::SeqCst)
    }

    /// Queues answers for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let reply = {
            let mut st = self.state.lock().unwrap();
            st.received.push(Received {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                headers: parts.headers,
                body,
            });
            st.script
                .pop_front()
                .unwrap_or_else(|| self.default.clone())
        };
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut resp = Response::builder().status(reply.status);
        for (k, v) in &reply.headers {
            resp = resp.header(*k, v);
        }
        resp.body(Full::new(reply.body)).unwrap()
    }
}

/// Runs a decoder script from `tests/decoders/` on `input` with AETHERFLOW_PYTHON (the shared
/// harness, bounded in time) and returns its stdout parsed as JSON. Panics with the script's
/// stderr when it fails.
pub fn decode(script: &str, input: &[u8], args: &[&str]) -> serde_json::Value {
    aetherflow_harness::python::decode_json(script, input, args).unwrap_or_else(|e| panic!("{e}"))
}
