//! The `type: jaeger` entry: the shared POST entry with the Jaeger collector's Thrift-over-HTTP
//! URL and path.
use crate::exporter::config::{PostBackend, PostConfig};

/// Jaeger Thrift over HTTP (`jaeger-collector` port 14268).
#[derive(Debug, Clone, PartialEq)]
pub struct Jaeger;

impl PostBackend for Jaeger {
    /// The seed's `http://localhost:14268/api/traces`, with `127.0.0.1` because `localhost`
    /// may resolve to `::1`.
    const DEFAULT_ENDPOINT: &'static str = "http://127.0.0.1:14268/api/traces";
    const PATH: &'static str = "/api/traces";
}

/// A Jaeger exporter entry.
pub type JaegerConfig = PostConfig<Jaeger>;
