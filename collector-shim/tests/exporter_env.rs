//! The standard `OTEL_EXPORTER_OTLP_*` variables reach the wire: loaded through the shim's
//! config loader (as at start-up), built, and exported to a recording backend.
mod exporter_support;

use std::io::Read;
use std::time::Duration;

use collector_shim::config::{load, ConfigError, MapEnv, Overrides};
use collector_shim::exporter::{build, ExporterConfig, ExporterTelemetry, OtlpProtocol};
use exporter_support::backend::{Backend, Reply};
use exporter_support::pki::Pki;
use exporter_support::sample_batch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

fn load_env(pairs: &[(&str, &str)]) -> Result<collector_shim::config::Config, ConfigError> {
    load(None, &MapEnv::from_pairs(pairs), &Overrides::default())
}

fn only_exporter(cfg: &collector_shim::config::Config) -> &ExporterConfig {
    assert_eq!(cfg.exporters.len(), 1, "{:?}", cfg.exporters);
    &cfg.exporters[0]
}

#[tokio::test]
async fn headers_compression_and_certificate_from_the_environment_arrive() {
    let pki = Pki::new();
    let backend = Backend::start_tls(Reply::status(200), pki.server_config(false)).await;
    let base = format!("https://127.0.0.1:{}", backend.addr.port());
    let ca = pki.ca_file.display().to_string();
    let cfg = load_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &base),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20s3cret,x-tenant=t1",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
    ])
    .unwrap();
    let e = only_exporter(&cfg);
    let ExporterConfig::Otlp(c) = e else {
        panic!("{e:?}")
    };
    assert_eq!(c.timeout, Duration::from_millis(2500));
    build(e, ExporterTelemetry::default())
        .unwrap()
        .export(&sample_batch())
        .await
        .unwrap();
    let got = backend.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(
        r.path, "/v1/traces",
        "the spec appends v1/traces to the base endpoint"
    );
    assert_eq!(r.headers["authorization"], "Bearer s3cret");
    assert_eq!(r.headers["x-tenant"], "t1");
    assert_eq!(r.headers["content-encoding"], "gzip");
    // Compressed on the wire: gzip magic, and it inflates to the OTLP request.
    assert_eq!(&r.body[..2], &[0x1f, 0x8b]);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut raw)
        .unwrap();
    let req = ExportTraceServiceRequest::decode(&raw[..]).unwrap();
    let spans: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(spans, sample_batch().len());
}

#[test]
fn endpoint_rules_of_the_spec() {
    let otlp = |pairs: &[(&str, &str)]| match only_exporter(&load_env(pairs).unwrap()) {
        ExporterConfig::Otlp(c) => (c.protocol, c.endpoint.clone()),
        other => panic!("{other:?}"),
    };
    // Generic endpoint over HTTP: v1/traces appended, with or without a trailing slash.
    for base in ["http://c:4318", "http://c:4318/", "http://c:4318/prefix/"] {
        let (_, ep) = otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)]);
        assert_eq!(ep, format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    // The signal-specific endpoint is used as is, and wins over the generic one.
    let (_, ep) = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/custom/traces",
        ),
    ]);
    assert_eq!(ep, "http://c:4318/custom/traces");
    // gRPC takes the generic endpoint as is.
    let (proto, ep) = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    assert_eq!((proto, ep.as_str()), (OtlpProtocol::Grpc, "https://c:4317"));
    // OTEL_TRACES_EXPORTER=otlp with grpc and no endpoint: the gRPC default port.
    let (proto, ep) = otlp(&[
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
    ]);
    assert_eq!(
        (proto, ep.as_str()),
        (OtlpProtocol::Grpc, "http://127.0.0.1:4317")
    );
}

#[test]
fn invalid_values_stop_start_up_naming_the_variable() {
    let missing = "/nonexistent/ca.pem";
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "carrier-pigeon"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", missing),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", missing),
    ] {
        let err = load_env(&[("OTEL_TRACES_EXPORTER", "otlp"), (var, value)]).unwrap_err();
        assert_eq!(err.key, var, "{err}");
    }
    let err = load_env(&[
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "later"),
    ])
    .unwrap_err();
    assert_eq!(err.key, "OTEL_EXPORTER_ZIPKIN_TIMEOUT", "{err}");
}

#[tokio::test]
async fn an_auth_header_from_an_env_reference_in_the_file_arrives() {
    let backend = Backend::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shim.yaml");
    std::fs::write(
        &path,
        format!(
            "exporters:\n  - type: zipkin\n    endpoint: {}\n    headers: {{authorization: 'Bearer ${{env:ZIPKIN_TOKEN}}'}}\n",
            backend.url("")
        ),
    )
    .unwrap();
    let env = MapEnv::from_pairs(&[("ZIPKIN_TOKEN", "from-env")]);
    let cfg = load(Some(&path), &env, &Overrides::default()).unwrap();
    build(only_exporter(&cfg), ExporterTelemetry::default())
        .unwrap()
        .export(&sample_batch())
        .await
        .unwrap();
    let got = backend.received();
    assert_eq!(
        got[0].path, "/api/v2/spans",
        "no path written: Zipkin's applied"
    );
    assert_eq!(got[0].headers["authorization"], "Bearer from-env");
}
