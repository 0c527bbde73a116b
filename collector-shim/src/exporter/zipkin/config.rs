//! The `type: zipkin` entry: the shared POST entry with Zipkin's default URL and path.
use crate::exporter::config::{PostBackend, PostConfig};

/// Zipkin v2 (`/api/v2/spans`, Zipkin's own default port).
#[derive(Debug, Clone, PartialEq)]
pub struct Zipkin;

impl PostBackend for Zipkin {
    const DEFAULT_ENDPOINT: &'static str = "http://127.0.0.1:9411/api/v2/spans";
    const PATH: &'static str = "/api/v2/spans";
}

/// A Zipkin exporter entry.
pub type ZipkinConfig = PostConfig<Zipkin>;
