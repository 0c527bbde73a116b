//! The entry of a backend that takes span batches as HTTP POST bodies (Zipkin, Jaeger Thrift),
//! written once: each backend names only its kind, default URL and path ([`PostBackend`], in its
//! own `config.rs`). The settings every HTTP exporter has (OTLP too) are read through
//! [`HttpTarget`], so transport and validation are written once as well.
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;

use super::{Headers, RetryConfig, TlsConfig, DEFAULT_TIMEOUT};

/// What tells one POST backend's entry from another's.
pub trait PostBackend {
    /// URL used when the entry gives none.
    const DEFAULT_ENDPOINT: &'static str;
    /// Path appended to an endpoint written without one (`http://zipkin:9411`).
    const PATH: &'static str;
}

/// A POST backend's exporter entry (`type: zipkin`, `type: jaeger`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostConfig<B: PostBackend> {
    /// Name in logs and metric labels; default the kind (`zipkin`, `jaeger`). Needed only to
    /// tell two exporters of one kind apart.
    #[serde(default)]
    pub name: Option<String>,
    /// URL the batches are POSTed to; default the backend's (`http://127.0.0.1:9411/api/v2/spans`,
    /// `http://127.0.0.1:14268/api/traces`). A URL with no path gets the backend's path.
    #[serde(default = "default_endpoint::<B>")]
    pub endpoint: String,
    /// Time allowed for one HTTP attempt; default `10s`.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration::deserialize"
    )]
    pub timeout: Duration,
    /// Extra request headers (e.g. authorization); default none.
    #[serde(default)]
    pub headers: Headers,
    /// Retry policy for failed attempts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// TLS settings for an `https://` endpoint (CA file, client certificate, server name).
    #[serde(default)]
    pub tls: TlsConfig,
    /// The backend, a type only.
    #[serde(skip)]
    pub backend: PhantomData<fn() -> B>,
}

impl<B: PostBackend> PostConfig<B> {
    /// An entry with every default and the given URL.
    pub fn with_endpoint(endpoint: impl Into<String>) -> Self {
        PostConfig {
            name: None,
            endpoint: endpoint.into(),
            timeout: DEFAULT_TIMEOUT,
            headers: Headers::default(),
            retry: RetryConfig::default(),
            tls: TlsConfig::default(),
            backend: PhantomData,
        }
    }
}

fn default_endpoint<B: PostBackend>() -> String {
    B::DEFAULT_ENDPOINT.to_string()
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// The transport settings of an HTTP exporter entry, whatever its backend.
pub trait HttpTarget {
    /// URL the bodies are sent to (resolved and validated).
    fn endpoint(&self) -> &str;
    /// Extra request headers.
    fn headers(&self) -> &Headers;
    /// Time allowed for one attempt.
    fn timeout(&self) -> Duration;
    /// TLS settings for an `https://` endpoint.
    fn tls(&self) -> &TlsConfig;
    /// Backoff policy.
    fn retry(&self) -> &RetryConfig;
}

/// `HttpTarget` for an entry struct with the usual field names (`endpoint`, `headers`,
/// `timeout`, `tls`, `retry`).
macro_rules! impl_http_target {
    ($t:ty $(, $g:ident: $bound:path)?) => {
        impl$(<$g: $bound>)? $crate::exporter::config::HttpTarget for $t {
            fn endpoint(&self) -> &str {
                &self.endpoint
            }
            fn headers(&self) -> &$crate::exporter::config::Headers {
                &self.headers
            }
            fn timeout(&self) -> std::time::Duration {
                self.timeout
            }
            fn tls(&self) -> &$crate::exporter::config::TlsConfig {
                &self.tls
            }
            fn retry(&self) -> &$crate::exporter::config::RetryConfig {
                &self.retry
            }
        }
    };
}
pub(crate) use impl_http_target;

impl_http_target!(PostConfig<B>, B: PostBackend);
