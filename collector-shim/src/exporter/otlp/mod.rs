//! OTLP exporter: an `ExportTraceServiceRequest` POSTed to `/v1/traces` as protobuf
//! (`http/protobuf`) or as OTLP/JSON (`http/json`: hex trace and span ids, enums as integers,
//! 64-bit integers as strings, lowerCamelCase keys, by opentelemetry-proto's serde mapping), or
//! sent with the `TraceService/Export` gRPC method (`grpc`, see [`grpc`]), optionally
//! gzip-compressed. Works with Tempo, an OpenTelemetry Collector tier, and Jaeger (>= 1.35 and
//! v2 accept OTLP on ports 4318 and 4317).
//!
//! Partial success (a 200 whose `ExportTraceServiceResponse.partial_success` reports rejected
//! spans) is logged with the backend's message and counted in `rejected_spans`, never retried:
//! the OTLP spec says the rejected spans would be rejected again.
pub mod grpc;
pub mod model;

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::exporter::config::{Compression, OtlpConfig, OtlpProtocol, RetryConfig};
use crate::exporter::http::HttpSender;
use crate::exporter::retry::retry;
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
use crate::metrics::LogThrottle;
use crate::model::SpanRecord;
use grpc::GrpcSender;

/// Sends batches to an OTLP/HTTP receiver.
pub struct OtlpExporter {
    /// Name for logs and metric labels.
    name: String,
    /// HTTP or gRPC, to the configured endpoint.
    transport: Transport,
    /// Whether bodies are gzip-compressed.
    compression: Compression,
    /// Bodies (and answers) are OTLP/JSON rather than protobuf.
    json: bool,
    /// Backoff policy.
    retry: RetryConfig,
    /// Retry and rejection counters.
    telemetry: ExporterTelemetry,
    /// Bounds the log lines of a failing backend.
    log: LogThrottle,
    /// Bounds the partial-success log lines separately (a steady trickle of rejections must not
    /// hide outage warnings, nor flood the log).
    partial_log: LogThrottle,
}

impl OtlpExporter {
    /// An exporter for `cfg` (validated).
    pub fn new(name: &str, cfg: &OtlpConfig, telemetry: ExporterTelemetry) -> Result<Self, String> {
        let http = |content_type| {
            HttpSender::new(
                &cfg.endpoint,
                content_type,
                &cfg.headers,
                cfg.timeout,
                &cfg.tls,
            )
            .map(Transport::Http)
        };
        let transport = match cfg.protocol {
            OtlpProtocol::HttpProtobuf => http("application/x-protobuf")?,
            OtlpProtocol::HttpJson => http("application/json")?,
            OtlpProtocol::Grpc => Transport::Grpc(GrpcSender::new(cfg)?),
        };
        Ok(OtlpExporter {
            name: name.to_string(),
            transport,
            compression: cfg.compression,
            json: cfg.protocol == OtlpProtocol::HttpJson,
            retry: cfg.retry.clone(),
            telemetry,
            log: LogThrottle::default(),
            partial_log: LogThrottle::default(),
        })
    }

    fn partial_success(&self, resp: ExportTraceServiceResponse) {
        let Some(p) = resp.partial_success else {
            return;
        };
        if p.rejected_spans > 0 {
            self.telemetry
                .rejected_spans
                .inc_by(p.rejected_spans as u64);
        }
        if p.rejected_spans <= 0 && p.error_message.is_empty() {
            return;
        }
        if let Some(n) = self.partial_log.hit() {
            tracing::warn!(exporter = %self.name, rejected_spans = p.rejected_spans,
                message = %p.error_message, suppressed = n - 1,
                "backend accepted the batch partially");
        }
    }
}

/// How requests travel. One per exporter, built once: the size difference of the variants
/// (hyper's pooled client against tonic's channel) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Transport {
    /// `http/protobuf`: POST to the traces URL.
    Http(HttpSender),
    /// `grpc`: the TraceService/Export method.
    Grpc(GrpcSender),
}

/// Reads an OTLP/JSON `ExportTraceServiceResponse`. `rejectedSpans` is an int64, which OTLP/JSON
/// writes as a string (a number is accepted too); anything unreadable is a full success.
fn json_response(body: &[u8]) -> ExportTraceServiceResponse {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ExportTraceServiceResponse::default();
    };
    let Some(p) = doc.get("partialSuccess") else {
        return ExportTraceServiceResponse::default();
    };
    let rejected = match p.get("rejectedSpans") {
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(v) => v.as_i64().unwrap_or(0),
        None => 0,
    };
    let message = p.get("errorMessage").and_then(|m| m.as_str()).unwrap_or("");
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected.max(0),
            error_message: message.chars().take(512).collect(),
        }),
    }
}

/// Encodes a batch as the protobuf request body (gzip when asked).
pub fn encode(batch: &[SpanRecord], compression: Compression) -> Vec<u8> {
    compress(model::encode(batch), compression)
}

/// Encodes a batch as the OTLP/JSON request body (gzip when asked).
pub fn encode_json(batch: &[SpanRecord], compression: Compression) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail; an empty body would be refused as malformed.
    let raw = serde_json::to_vec(&model::request(batch)).unwrap_or_default();
    compress(raw, compression)
}

fn compress(raw: Vec<u8>, compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => raw,
        Compression::Gzip => {
            let mut gz = GzEncoder::new(
                Vec::with_capacity(raw.len() / 4),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            match gz.write_all(&raw).and_then(|()| gz.finish()) {
                Ok(out) => out,
                Err(_) => raw,
            }
        }
    }
}

#[async_trait::async_trait]
impl Exporter for OtlpExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let response = match &self.transport {
            Transport::Http(sender) => {
                let body = Bytes::from(match self.json {
                    true => encode_json(batch, self.compression),
                    false => encode(batch, self.compression),
                });
                let encoding = match self.compression {
                    Compression::Gzip => Some("gzip"),
                    Compression::None => None,
                };
                let body = retry(&self.retry, &self.telemetry, &self.log, &self.name, || {
                    let body = body.clone();
                    async move { sender.post(body, encoding).await }
                })
                .await?;
                // An empty or undecodable 200 body is a full success (the spec allows an
                // empty body).
                match self.json {
                    true => json_response(&body),
                    false => ExportTraceServiceResponse::decode(&body[..]).unwrap_or_default(),
                }
            }
            Transport::Grpc(sender) => {
                // tonic compresses (gzip) and frames the message itself.
                let request = model::request(batch);
                retry(&self.retry, &self.telemetry, &self.log, &self.name, || {
                    sender.export(request.clone())
                })
                .await?
            }
        };
        self.partial_success(response);
        Ok(())
    }
}
