//! `exporters:` entries: YAML shape, defaults, validation messages and env-var constructors.
use std::time::Duration;

use collector_shim::exporter::config::{parse_duration, parse_otel_headers};
use collector_shim::exporter::{Compression, ExporterConfig, ExporterTelemetry};

fn parse(yaml: &str) -> Result<Vec<ExporterConfig>, String> {
    serde_yaml::from_str(yaml).map_err(|e| e.to_string())
}

#[test]
fn every_kind_parses_with_documented_defaults() {
    let all = parse(
        r#"
- type: zipkin
- type: jaeger
- type: otlp
- type: console
- type: file
  path: /tmp/spans.jsonl
"#,
    )
    .unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["zipkin", "jaeger", "otlp", "console", "file"]);
    assert_eq!(
        all[0],
        ExporterConfig::zipkin("http://127.0.0.1:9411/api/v2/spans")
    );
    assert_eq!(
        all[1],
        ExporterConfig::jaeger("http://127.0.0.1:14268/api/traces")
    );
    // The OTLP endpoint's default depends on the protocol: filled in by `resolved()`.
    assert_eq!(
        all[2].resolved(),
        ExporterConfig::otlp("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(all[3], ExporterConfig::console());
    assert_eq!(all[4], ExporterConfig::file("/tmp/spans.jsonl"));
    for c in &all {
        c.validate().unwrap();
    }
}

#[test]
fn full_otlp_entry() {
    let all = parse(
        r#"
- type: otlp
  name: tempo
  endpoint: http://10.0.0.5:4318/v1/traces
  compression: gzip
  timeout: 2500ms
  headers: {x-scope-orgid: tenant-1}
  retry: {initial_interval: 100ms, max_interval: 2s, max_elapsed_time: 1m, multiplier: 1.5}
"#,
    )
    .unwrap();
    let ExporterConfig::Otlp(c) = &all[0] else {
        panic!("not otlp: {all:?}")
    };
    assert_eq!(all[0].name(), "tempo");
    assert_eq!(c.compression, Compression::Gzip);
    assert_eq!(c.timeout, Duration::from_millis(2500));
    assert_eq!(c.headers["x-scope-orgid"], "tenant-1");
    assert_eq!(c.retry.max_elapsed_time, Duration::from_secs(60));
    assert!(c.retry.enabled);
    all[0].validate().unwrap();
}

#[test]
fn unknown_keys_and_kinds_are_refused_by_name() {
    let err = parse("- type: zipkin\n  endpont: http://x\n").unwrap_err();
    assert!(err.contains("endpont"), "{err}");
    let err = parse("- type: kafka\n").unwrap_err();
    assert!(err.contains("kafka"), "{err}");
    let err = parse("- type: console\n  color: true\n").unwrap_err();
    assert!(err.contains("color"), "{err}");
    let err = parse("- type: otlp\n  compression: zstd\n").unwrap_err();
    assert!(err.contains("zstd"), "{err}");
    let err = parse("- type: file\n").unwrap_err();
    assert!(err.contains("path"), "{err}");
    let err = parse("- type: jaeger\n  timeout: 10 parsecs\n").unwrap_err();
    assert!(err.contains("parsecs"), "{err}");
}

#[rustfmt::skip]
#[test]
fn validate_names_key_and_reason() {
    let cases: &[(&str, &str)] = &[
        ("- type: zipkin\n  endpoint: https://zipkin:9411/api/v2/spans\n  tls: {ca_file: /nonexistent/ca.pem}", "tls.ca_file: cannot read /nonexistent/ca.pem"),
        ("- type: otlp\n  tls: {cert_file: /nonexistent/c.pem}",                     "tls.cert_file: needs tls.key_file as well"),
        ("- type: otlp\n  tls: {server_name: 'not a name!'}",                       "tls.server_name: `not a name!` is not a DNS name"),
        ("- type: otlp\n  protocol: grpc\n  endpoint: http://c:4317/v1/traces",    "endpoint: `http://c:4317/v1/traces`: an OTLP/gRPC endpoint takes no path"),
        ("- type: jaeger\n  endpoint: 'not a url'",                       "endpoint: `not a url` is not a URL"),
        ("- type: otlp\n  endpoint: /v1/traces",                          "endpoint: `/v1/traces` must start with http:// or https://"),
        ("- type: otlp\n  timeout: 0s",                                   "timeout: must be greater than 0"),
        ("- type: otlp\n  headers: {'bad header': x}",                    "headers.bad header: not a valid HTTP header name"),
        ("- type: zipkin\n  retry: {initial_interval: 2s, max_interval: 1s}", "retry.max_interval: must be at least retry.initial_interval"),
        ("- type: zipkin\n  retry: {multiplier: 0.5}",                    "retry.multiplier: 0.5 must be >= 1"),
        ("- type: file\n  path: x.jsonl\n  max_bytes: 10",                "max_bytes: 10 is too small"),
        ("- type: console\n  name: 'my console'",                         "name: `my console` must be non-empty"),
    ];
    for (yaml, want) in cases {
        let cfg = &parse(yaml).unwrap()[0];
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with(want), "{yaml}: got `{err}`, want `{want}...`");
        // build() refuses the same config with the same message.
        let built = collector_shim::exporter::build(cfg, ExporterTelemetry::default());
        assert_eq!(built.err().as_deref(), Some(err.as_str()));
    }
}

#[test]
fn env_constructors() {
    assert_eq!(
        ExporterConfig::otlp_from_base("http://collector:4318"),
        ExporterConfig::otlp("http://collector:4318/v1/traces")
    );
    assert_eq!(
        ExporterConfig::otlp_from_base("http://collector:4318/"),
        ExporterConfig::otlp("http://collector:4318/v1/traces")
    );
    let h = parse_otel_headers("api-key=secret%20value, x-tenant = t1").unwrap();
    assert_eq!(h["api-key"], "secret value");
    assert_eq!(h["x-tenant"], "t1");
    assert!(parse_otel_headers("novalue")
        .unwrap_err()
        .contains("novalue"));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    // One duration syntax everywhere: a plain number is milliseconds.
    assert_eq!(parse_duration("10").unwrap(), Duration::from_millis(10));
    assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
}

#[test]
fn durations_accept_integer_milliseconds() {
    let all = parse("- type: zipkin\n  timeout: 1500\n").unwrap();
    let ExporterConfig::Zipkin(c) = &all[0] else {
        panic!()
    };
    assert_eq!(c.timeout, Duration::from_millis(1500));
}

#[tokio::test]
async fn build_makes_every_kind() {
    let dir = std::env::temp_dir();
    let all = parse(&format!(
        "- type: zipkin\n- type: jaeger\n- {{type: otlp, name: tempo, compression: gzip}}\n- type: console\n- type: file\n  path: {}/aetherflow-build-test.jsonl\n",
        dir.display()
    ))
    .unwrap();
    for cfg in &all {
        let exp = collector_shim::exporter::build(cfg, ExporterTelemetry::default()).unwrap();
        assert_eq!(exp.name(), cfg.name());
    }
    assert_eq!(all[2].name(), "tempo");
}

#[test]
fn otel_env_for_otlp_and_zipkin() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let mut otlp = ExporterConfig::otlp("http://127.0.0.1:4318/v1/traces");
    otlp.apply_otel_env(&env(&[
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=generic"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "api-key=traces,x-tenant=t1",
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
    ]))
    .unwrap();
    let ExporterConfig::Otlp(c) = &otlp else {
        unreachable!()
    };
    assert_eq!(
        c.headers["api-key"], "traces",
        "the signal-specific variable wins"
    );
    assert_eq!(c.headers["x-tenant"], "t1");
    assert_eq!(c.compression, Compression::Gzip);
    assert_eq!(c.timeout, Duration::from_millis(2500));

    let mut zipkin = ExporterConfig::zipkin("http://127.0.0.1:9411/api/v2/spans");
    zipkin
        .apply_otel_env(&env(&[("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "750")]))
        .unwrap();
    let ExporterConfig::Zipkin(c) = &zipkin else {
        unreachable!()
    };
    assert_eq!(c.timeout, Duration::from_millis(750));

    let err = ExporterConfig::otlp("http://x:4318/v1/traces")
        .apply_otel_env(&env(&[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd")]))
        .unwrap_err();
    assert_eq!(
        err,
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: `zstd` is not `gzip` or `none`"
    );
    let err = ExporterConfig::otlp("http://x:4318/v1/traces")
        .apply_otel_env(&env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "ten")]))
        .unwrap_err();
    assert!(
        err.starts_with("OTEL_EXPORTER_OTLP_TIMEOUT: `ten`"),
        "{err}"
    );
}
