//! What the pipeline tests send and read over HTTP: numbered spans posted as OTLP/HTTP protobuf,
//! the `/metrics` text, and configurations written as the user writes them (YAML).

use std::net::SocketAddr;
use std::time::Duration;

use collector_shim::config::{self, Config};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::{request, span, trace_id};

/// How long one test request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `n` spans of one millisecond, in traces `base`, `base + 1`, ... (full sampling randomness),
/// the span numbered `span_number(i)`.
pub fn numbered_spans(base: u32, n: u32, span_number: impl Fn(u32) -> u64) -> Vec<Span> {
    (0..n)
        .map(|i| span(&trace_id(base + i, 1), span_number(i), 1))
        .collect()
}

/// Posts `spans` (service `svc`) to the shim's OTLP/HTTP receiver at `addr`: the status, 0 when
/// no answer came within 10 s.
pub async fn post_spans(client: &reqwest::Client, addr: SocketAddr, spans: Vec<Span>) -> u16 {
    client
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request("svc", spans).encode_to_vec())
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Posts request `tag`: 50 spans numbered `tag * 1000 + i`, each in its own trace; the status,
/// 0 when no answer came.
pub async fn post_numbered(client: &reqwest::Client, addr: SocketAddr, tag: u32) -> u16 {
    let spans = numbered_spans(tag * 1000, 50, |i| u64::from(tag * 1000 + i));
    post_spans(client, addr, spans).await
}

/// The shim's `/metrics` text (Prometheus format) at `addr`.
pub async fn scrape(client: &reqwest::Client, addr: SocketAddr) -> String {
    client
        .get(format!("http://{addr}/metrics"))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics body")
}

/// A configuration from YAML, loaded and validated as the binary loads a file.
pub fn load_config(yaml: &str) -> Config {
    config::load::finish(config::load::parse_str(yaml, false).expect("config parses"))
        .expect("config is valid")
}
