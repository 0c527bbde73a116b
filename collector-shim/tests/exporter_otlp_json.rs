//! The OTLP exporter with `protocol: http/json`: the body a real HTTP backend receives is
//! `application/json` and follows the OTLP/JSON rules (hex ids, enums as integers, 64-bit
//! integers as strings, lowerCamelCase keys), checked and decoded by Python's
//! `opentelemetry-proto` (`decoders/otlp_json.py`), which must read exactly the request the
//! protobuf encoder would send; the variable `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` selects it.
mod exporter_support;

use collector_shim::config::{load, MapEnv, Overrides};
use collector_shim::exporter::otlp::model;
use collector_shim::exporter::{
    build, Compression, ExporterConfig, ExporterTelemetry, OtlpProtocol,
};
use exporter_support::backend::{decode, Backend, Reply};
use exporter_support::sample_batch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fn json_entry(url: String, compression: Compression) -> ExporterConfig {
    let ExporterConfig::Otlp(mut cfg) = ExporterConfig::otlp(url) else {
        unreachable!()
    };
    cfg.protocol = OtlpProtocol::HttpJson;
    cfg.compression = compression;
    ExporterConfig::Otlp(cfg)
}

#[tokio::test]
async fn http_json_bodies_follow_otlp_json_and_decode_to_what_was_sent() {
    // A partial success in OTLP/JSON is read back (and counted).
    let backend = Backend::start(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"partialSuccess":{"rejectedSpans":"1","errorMessage":"one too old"}}"#),
    )
    .await;
    let batch = sample_batch();
    let sent = model::request(&batch);
    for compression in [Compression::None, Compression::Gzip] {
        let telemetry = ExporterTelemetry::default();
        build(
            &json_entry(backend.url("/v1/traces"), compression),
            telemetry.clone(),
        )
        .unwrap()
        .export(&batch)
        .await
        .unwrap();
        assert_eq!(telemetry.rejected_spans.get(), 1, "partial success read");
        let got = backend.received().pop().expect("a request");
        assert_eq!(got.path, "/v1/traces");
        assert_eq!(got.headers["content-type"], "application/json");
        assert_eq!(
            got.headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            (compression == Compression::Gzip).then_some("gzip")
        );

        let out = decode("otlp_json.py", &got.body, &[]);
        assert_eq!(out["violations"], serde_json::json!([]), "OTLP/JSON rules");
        let hex = out["protobuf_hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let read = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(read, sent, "Python read exactly what was sent");
    }
    // The rules the checker enforces are present in this batch (so the check could fail).
    let text = String::from_utf8(collector_shim::exporter::otlp::encode_json(
        &batch,
        Compression::None,
    ))
    .unwrap();
    assert!(
        text.contains(r#""traceId":"4bf92f3577b34da6a3ce929d0e0e4736""#),
        "{text}"
    );
    assert!(text.contains(r#""kind":2"#), "{text}");
    assert!(text.contains(r#""intValue":"503""#), "{text}");
    assert!(text.contains(r#""startTimeUnixNano":""#), "{text}");
}

#[test]
fn the_protocol_variable_selects_http_json() {
    let env = MapEnv::from_pairs(&[
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]);
    let cfg = load(None, &env, &Overrides::default()).unwrap();
    let [ExporterConfig::Otlp(c)] = cfg.exporters.as_slice() else {
        panic!("{:?}", cfg.exporters)
    };
    assert_eq!(c.protocol, OtlpProtocol::HttpJson);
    assert_eq!(c.endpoint, "http://collector:4318/v1/traces");
}
