//! The HTTP transport shared by the Zipkin, Jaeger and OTLP exporters: one pooled HTTP/1.1
//! client per exporter (TLS from `exporter::tls` for `https://` endpoints), a per-attempt
//! timeout, and the classification of every outcome into [`ExportError`] (the retry loop in
//! `exporter::retry` acts on that).
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT,
};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::exporter::retry::parse_retry_after;
use crate::exporter::tls::{tls_failure, TlsConfig};
use crate::exporter::ExportError;

/// Largest response body read back (error messages, OTLP partial success); the rest is ignored.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest backend message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 512;

/// POSTs bodies of one content type to one URL.
#[derive(Clone, Debug)]
pub struct HttpSender {
    /// Pooled keep-alive client; TLS only for an `https://` endpoint.
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Where every request goes.
    uri: Uri,
    /// Configured headers plus content type and user agent, sent on every request.
    headers: HeaderMap,
    /// Budget for one attempt: connect, send, and read the response.
    timeout: Duration,
}

impl HttpSender {
    /// A sender for `endpoint` (already validated as an `http://` or `https://` URL).
    /// Errors start with the key (`endpoint`, `headers.NAME`, `tls.ca_file`, ...).
    pub fn new(
        endpoint: &str,
        content_type: &'static str,
        extra_headers: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
        tls: &TlsConfig,
    ) -> Result<Self, String> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|e| format!("endpoint: `{endpoint}` is not a URL: {e}"))?;
        let connector = connector(&uri, tls, timeout, false)?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!(
                "aetherflow-collector-shim/",
                env!("CARGO_PKG_VERSION")
            )),
        );
        for (k, v) in extra_headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("headers.{k}: not a valid HTTP header name"))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| format!("headers.{k}: value is not a valid HTTP header value"))?;
            // Configured headers often carry credentials: `Debug` prints them as `Sensitive`
            // and HTTP/2 never indexes them.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(HttpSender {
            client,
            uri,
            headers,
            timeout,
        })
    }

    /// The URL requests go to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// One attempt: POST `body`, return the response body on 2xx, else the classified error.
    pub async fn post(
        &self,
        body: Bytes,
        content_encoding: Option<&'static str>,
    ) -> Result<Bytes, ExportError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone());
        if let Some(h) = req.headers_mut() {
            h.extend(self.headers.clone());
            if let Some(enc) = content_encoding {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
            }
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ExportError::NonRetryable(format!("building request: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                // An untrusted, expired or misnamed certificate, or a refused client
                // certificate, fails the same way on every try until someone fixes it.
                if let Some(reason) = tls_failure(&e) {
                    return ExportError::NonRetryable(format!(
                        "TLS handshake with {} failed: {reason}",
                        self.uri
                    ));
                }
                // Connection refused/reset and similar: the backend may come back.
                let what = if e.is_connect() {
                    "connecting to"
                } else {
                    "sending to"
                };
                ExportError::Retryable(format!("{what} {}: {}", self.uri, error_chain(&e)))
            })?;
            let (parts, body) = resp.into_parts();
            // A body we cannot read fully still leaves the status as the answer.
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok::<_, ExportError>((parts.status, parts.headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                ExportError::Retryable(format!(
                    "no response from {} within {} ms",
                    self.uri,
                    self.timeout.as_millis()
                ))
            })??;
        if status.is_success() {
            return Ok(body);
        }
        Err(classify(status, &headers, &body, SystemTime::now()))
    }
}

/// The connector of one exporter: TCP with `timeout` to connect, wrapped in TLS for `https://`
/// (with the configured roots, client certificate and server name). `h2` selects ALPN `h2`
/// (gRPC), otherwise HTTP/1.1. The TLS settings are not read for a plain `http://` endpoint.
pub fn connector(
    uri: &Uri,
    tls: &TlsConfig,
    timeout: Duration,
    h2: bool,
) -> Result<HttpsConnector<HttpConnector>, String> {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(timeout));
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let https = uri.scheme_str() == Some("https");
    let config = if https {
        tls.client_config()?
    } else {
        TlsConfig::unused()?
    };
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match tls.server_name()? {
        Some(name) if https => {
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        _ => builder,
    };
    Ok(if h2 {
        builder.enable_http2().wrap_connector(tcp)
    } else {
        builder.enable_http1().wrap_connector(tcp)
    })
}

/// Maps a non-2xx answer to the retry class, quoting the backend's message.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> ExportError {
    let message = format!("HTTP {status}: {}", backend_message(body));
    match status.as_u16() {
        429 | 503 => ExportError::Throttled {
            retry_after: headers
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now)),
            message,
        },
        // Not implemented / version not supported will not change on a retry.
        501 | 505 => ExportError::NonRetryable(message),
        // Request timeout is the server giving up on a slow client: try again.
        408 => ExportError::Retryable(message),
        500..=599 => ExportError::Retryable(message),
        _ => ExportError::NonRetryable(message),
    }
}

/// The response body as text for a log line: trimmed, bounded, lossy UTF-8.
fn backend_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

/// An error and its sources on one line ("client error (Connect): tcp connect error: ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    let mut depth = 0;
    while let Some(src) = cur {
        if depth >= 4 {
            break;
        }
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
        depth += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn status_classification() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_500_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let cases: &[(u16, &str)] = &[
            (400, "non"), (401, "non"), (403, "non"), (404, "non"), (413, "non"), (408, "retry"),
            (429, "throttled"), (500, "retry"), (501, "non"), (502, "retry"), (503, "throttled"),
            (504, "retry"), (505, "non"), (599, "retry"), (302, "non"),
        ];
        for &(code, want) in cases {
            let e = classify(StatusCode::from_u16(code).unwrap(), &h, b"  bad span  ", now);
            let got = match &e {
                ExportError::Retryable(_) => "retry",
                ExportError::Throttled { retry_after, .. } => {
                    assert_eq!(*retry_after, Some(Duration::from_secs(3)));
                    "throttled"
                }
                ExportError::NonRetryable(_) => "non",
            };
            assert_eq!(got, want, "status {code}");
            assert!(e.to_string().contains("bad span"), "{e}");
        }
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(5000);
        let m = backend_message(body.as_bytes());
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(backend_message(b""), "(empty body)");
    }
}
