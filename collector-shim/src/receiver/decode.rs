//! Request bodies to spans: content type, gzip (bounded: a gzip bomb stops at the limit),
//! OTLP protobuf or OTLP JSON, and span validation for partial success.
use std::io::Read;
use std::sync::Arc;

use flate2::read::GzDecoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::model::SpanRecord;

/// The two OTLP/HTTP encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// From a `content-type` value (parameters such as `charset` ignored).
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The `content-type` of a response in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// Metric label.
    pub fn transport(self) -> &'static str {
        match self {
            Encoding::Protobuf => "http_protobuf",
            Encoding::Json => "http_json",
        }
    }
}

/// Why a body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than the limit once decompressed (413).
    TooLarge,
    /// Not valid gzip, protobuf or JSON (400), with the reason.
    Malformed(String),
}

/// Inflates a gzip body, refusing to produce more than `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let read = GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Malformed(format!("invalid gzip body: {e}")))?;
    if read > limit {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

/// Parses an `ExportTraceServiceRequest` in `encoding`.
pub fn parse(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, DecodeError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| DecodeError::Malformed(format!("invalid OTLP protobuf: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| DecodeError::Malformed(format!("invalid OTLP JSON: {e}"))),
    }
}

/// What a request turned into.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Valid spans, ready for the sampler.
    pub spans: Vec<SpanRecord>,
    /// Spans refused (invalid ids), reported in the partial-success response.
    pub rejected: u64,
    /// First reason for a rejection, for the response's `error_message`.
    pub reason: Option<String>,
}

/// Resource defaults the shim adds where the sender left them out.
#[derive(Clone, Debug, Default)]
pub struct ResourceDefaults {
    /// Added to every resource that lacks the key (`service.name` from `service_name`, ...).
    pub attributes: Vec<(String, String)>,
}

impl ResourceDefaults {
    fn apply(&self, mut r: Resource) -> Resource {
        for (k, v) in &self.attributes {
            if !r.attributes.iter().any(|kv| kv.key == *k) {
                r.attributes.push(KeyValue {
                    key: k.clone(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(v.clone())),
                    }),
                    ..Default::default()
                });
            }
        }
        r
    }
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

/// Splits a request into span records; spans with an invalid trace or span id (wrong length
/// or all zeros, which the OTLP spec calls invalid) are rejected and counted.
pub fn into_records(req: ExportTraceServiceRequest, defaults: &ResourceDefaults) -> Accepted {
    let mut acc = Accepted::default();
    for rs in req.resource_spans {
        let resource = Arc::new(defaults.apply(rs.resource.unwrap_or_default()));
        for ss in rs.scope_spans {
            let scope = Arc::new(ss.scope.unwrap_or_default());
            for span in ss.spans {
                if !valid_id(&span.trace_id, 16) || !valid_id(&span.span_id, 8) {
                    acc.rejected += 1;
                    acc.reason.get_or_insert_with(|| {
                        "spans with an invalid trace_id (16 bytes, not all zero) or span_id (8 bytes, not all zero) were rejected".into()
                    });
                    continue;
                }
                acc.spans.push(SpanRecord {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    span,
                });
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(gunzip(&bomb, 1024 * 1024), Err(DecodeError::TooLarge));
        assert_eq!(
            gunzip(&bomb, 10 * 1024 * 1024).unwrap().len(),
            10 * 1024 * 1024
        );
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn json_uses_hex_ids_and_integer_enums() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
          "parentSpanId":"","name":"GET /x","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
          "attributes":[{"key":"http.response.status_code","value":{"intValue":"500"}}],"status":{"code":2}}]}]}]}"#;
        let req = parse(body, Encoding::Json).unwrap();
        let acc = into_records(req, &ResourceDefaults::default());
        assert_eq!(acc.rejected, 0);
        let s = &acc.spans[0].span;
        assert_eq!(s.trace_id[0], 0x5b);
        assert_eq!(s.span_id.len(), 8);
        assert_eq!(s.kind, 2);
        assert_eq!(s.status.as_ref().unwrap().code, 2);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 1_000_000_000);
    }
}
