//! OTLP exporter: protobuf `ExportTraceServiceRequest` POSTed to `/v1/traces` (`http/protobuf`),
//! or sent with the `TraceService/Export` gRPC method (`grpc`, see [`grpc`]), optionally
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
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::exporter::config::{Compression, OtlpConfig, OtlpProtocol, RetryConfig};
use crate::exporter::http::HttpSender;
use crate::exporter::retry::{retry, LogLimiter};
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
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
    /// Backoff policy.
    retry: RetryConfig,
    /// Retry and rejection counters.
    telemetry: ExporterTelemetry,
    /// Bounds the log lines of a failing backend.
    log: LogLimiter,
    /// Bounds the partial-success log lines separately (a steady trickle of rejections must not
    /// hide outage warnings, nor flood the log).
    partial_log: LogLimiter,
}

impl OtlpExporter {
    /// An exporter for `cfg` (validated).
    pub fn new(name: &str, cfg: &OtlpConfig, telemetry: ExporterTelemetry) -> Result<Self, String> {
        let transport = match cfg.protocol {
            OtlpProtocol::HttpProtobuf => Transport::Http(HttpSender::new(
                &cfg.endpoint,
                "application/x-protobuf",
                &cfg.headers,
                cfg.timeout,
                &cfg.tls,
            )?),
            OtlpProtocol::Grpc => Transport::Grpc(GrpcSender::new(cfg)?),
        };
        Ok(OtlpExporter {
            name: name.to_string(),
            transport,
            compression: cfg.compression,
            retry: cfg.retry.clone(),
            telemetry,
            log: LogLimiter::default(),
            partial_log: LogLimiter::default(),
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
        if (p.rejected_spans > 0 || !p.error_message.is_empty()) && self.partial_log.allow() {
            tracing::warn!(exporter = %self.name, rejected_spans = p.rejected_spans,
                message = %p.error_message, suppressed = self.partial_log.take_suppressed(),
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

/// Encodes a batch as the request body (gzip when asked).
pub fn encode(batch: &[SpanRecord], compression: Compression) -> Vec<u8> {
    let raw = model::encode(batch);
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
                let body = Bytes::from(encode(batch, self.compression));
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
                ExportTraceServiceResponse::decode(&body[..]).unwrap_or_default()
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
