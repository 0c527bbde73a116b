//! Clients for the runner and the end-to-end tests: plain HTTP/1.1 requests and gRPC calls over
//! h2c, both returning what a test wants to look at (status, headers, messages, trailers).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::grpc;

/// What came back from one HTTP exchange.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Trailers, when the server sent some (gRPC).
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `grpc-status` from the trailers, or from the headers of a trailers-only response.
    pub fn grpc_status(&self) -> Option<u32> {
        self.grpc_field("grpc-status").and_then(|s| s.parse().ok())
    }

    /// Decoded `grpc-message`, if any.
    pub fn grpc_message(&self) -> Option<String> {
        self.grpc_field("grpc-message")
            .map(|m| grpc::decode_message(&m))
    }

    fn grpc_field(&self, name: &str) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| self.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The length-prefixed messages of a gRPC response body.
    pub fn grpc_messages(&self) -> Result<Vec<Bytes>, String> {
        grpc::deframe(&self.body)
    }
}

/// HTTP/1.1 and h2c clients with a per-request deadline.
pub struct DemoClient {
    http1: Client<HttpConnector, Full<Bytes>>,
    h2c: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Default for DemoClient {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl DemoClient {
    /// Clients whose every exchange must finish within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        // No Nagle: a small request (a gRPC frame after its headers) must not wait for an ACK.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            http1: Client::builder(TokioExecutor::new()).build(connector.clone()),
            h2c: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(connector),
            timeout,
        }
    }

    /// `GET base + path` over HTTP/1.1 with extra headers.
    pub async fn get(
        &self,
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut builder = hyper::Request::get(format!("{base}{path}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.exchange(&self.http1, request).await
    }

    /// A gRPC call of `demo.v1.Greeter/<method>` with one request message.
    pub async fn grpc(
        &self,
        base: &str,
        method: &str,
        message: &impl prost::Message,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut builder = hyper::Request::post(format!("{base}/{}/{method}", grpc::SERVICE))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder
            .body(Full::new(grpc::frame(message)))
            .map_err(|e| e.to_string())?;
        self.exchange(&self.h2c, request).await
    }

    async fn exchange(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Reply, String> {
        let work = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let collected = body.collect().await.map_err(|e| e.to_string())?;
            let trailers = collected.trailers().cloned();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: collected.to_bytes(),
                trailers,
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}
