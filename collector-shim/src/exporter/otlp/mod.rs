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
pub mod config;
pub mod grpc;
pub mod model;

use std::io::Write;

use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::event::FaultEvent;
use crate::exporter::config::{Compression, OtlpConfig, OtlpProtocol, RetryConfig};
use crate::exporter::post::{Encoder, PostExporter};
use crate::exporter::retry::{retry, AttemptEvents};
use crate::exporter::{ExportError, Exporter, ExporterTelemetry};
use crate::model::SpanRecord;
use grpc::GrpcSender;

/// Sends batches to an OTLP receiver: over HTTP it is the shared POST exporter with the OTLP
/// encoder, over gRPC the exporter of [`grpc`]. Built once per exporter, so the size difference
/// of the variants (hyper's pooled client against tonic's channel) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum OtlpExporter {
    /// `http/protobuf` or `http/json`.
    Http(PostExporter<OtlpHttp>),
    /// `grpc`.
    Grpc(OtlpGrpcExporter),
}

impl OtlpExporter {
    /// An exporter for `cfg` (validated).
    pub fn new(name: &str, cfg: &OtlpConfig, telemetry: ExporterTelemetry) -> Result<Self, String> {
        let http = |json| OtlpHttp {
            json,
            compression: cfg.compression,
            partial: PartialSuccess::new(name, &telemetry),
        };
        Ok(match cfg.protocol {
            OtlpProtocol::HttpProtobuf => OtlpExporter::Http(PostExporter::with_encoder(
                name,
                cfg,
                http(false),
                &telemetry,
            )?),
            OtlpProtocol::HttpJson => OtlpExporter::Http(PostExporter::with_encoder(
                name,
                cfg,
                http(true),
                &telemetry,
            )?),
            OtlpProtocol::Grpc => OtlpExporter::Grpc(OtlpGrpcExporter {
                name: name.to_string(),
                sender: GrpcSender::new(cfg)?,
                retry: cfg.retry.clone(),
                attempts: AttemptEvents::new(name, &telemetry),
                partial: PartialSuccess::new(name, &telemetry),
            }),
        })
    }
}

#[async_trait::async_trait]
impl Exporter for OtlpExporter {
    fn name(&self) -> &str {
        match self {
            OtlpExporter::Http(e) => e.name(),
            OtlpExporter::Grpc(e) => &e.name,
        }
    }

    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        match self {
            OtlpExporter::Http(e) => e.export(batch).await,
            OtlpExporter::Grpc(e) => e.export(batch).await,
        }
    }
}

/// OTLP over HTTP: one `ExportTraceServiceRequest` body per batch, protobuf or OTLP/JSON,
/// optionally gzip-compressed; the answer may report a partial success.
pub struct OtlpHttp {
    /// Bodies (and answers) are OTLP/JSON rather than protobuf.
    json: bool,
    /// Whether bodies are gzip-compressed.
    compression: Compression,
    /// Reports partially accepted batches.
    partial: PartialSuccess,
}

impl Encoder for OtlpHttp {
    fn content_type(&self) -> &'static str {
        match self.json {
            true => "application/json",
            false => "application/x-protobuf",
        }
    }

    fn content_encoding(&self) -> Option<&'static str> {
        match self.compression {
            Compression::Gzip => Some("gzip"),
            Compression::None => None,
        }
    }

    fn encode(&self, batch: &[SpanRecord]) -> (Vec<Vec<u8>>, usize) {
        let body = match self.json {
            true => encode_json(batch, self.compression),
            false => encode(batch, self.compression),
        };
        (vec![body], 0)
    }

    fn accepted(&self, answer: &[u8]) {
        // An empty or undecodable 200 body is a full success (the spec allows an empty body).
        let response = match self.json {
            true => json_response(answer),
            false => ExportTraceServiceResponse::decode(answer).unwrap_or_default(),
        };
        self.partial.report(response);
    }
}

/// OTLP over gRPC: the `TraceService/Export` method, tonic's transport beside the shared retry.
pub struct OtlpGrpcExporter {
    /// Name for logs and metric labels.
    name: String,
    /// The gRPC client of the configured endpoint.
    sender: GrpcSender,
    /// Backoff policy.
    retry: RetryConfig,
    /// Failed attempts and retries.
    attempts: AttemptEvents,
    /// Reports partially accepted batches.
    partial: PartialSuccess,
}

impl OtlpGrpcExporter {
    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        // tonic compresses (gzip) and frames the message itself.
        let request = model::request(batch);
        let response = retry(&self.retry, &self.attempts, || {
            self.sender.export(request.clone())
        })
        .await?;
        self.partial.report(response);
        Ok(())
    }
}

/// Partial success (spans the backend accepted the request for but rejected): counted in
/// `rejected_spans` and logged with the backend's message, at a bounded rate of its own (a steady
/// trickle of rejections must neither hide outage warnings nor flood the log).
pub struct PartialSuccess(FaultEvent);

impl PartialSuccess {
    fn new(exporter: &str, telemetry: &ExporterTelemetry) -> Self {
        PartialSuccess(FaultEvent::new(
            "backend accepted the batch partially",
            exporter,
            telemetry.rejected_spans.clone(),
        ))
    }

    fn report(&self, resp: ExportTraceServiceResponse) {
        let Some(p) = resp.partial_success else {
            return;
        };
        // A message without rejected spans is a warning from the backend: logged, counts 0.
        if p.rejected_spans > 0 || !p.error_message.is_empty() {
            let rejected = u64::try_from(p.rejected_spans).unwrap_or(0);
            self.0.report_with(
                rejected,
                format_args!("{} rejected: {}", rejected, p.error_message),
            );
        }
    }
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
