//! Config edges a first-time user hits, each loaded as at start-up (file -> env -> flags).
use std::time::Duration;

use collector_shim::config::{load, Config, ConfigError, MapEnv, Overrides};
use collector_shim::exporter::ExporterConfig;

fn load_file(
    name: &str,
    text: &str,
    env: &[(&str, &str)],
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    load(Some(&path), &MapEnv::from_pairs(env), flags)
}

fn yaml(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_file("shim.yaml", text, env, &Overrides::default())
}

fn endpoint(e: &ExporterConfig) -> &str {
    match e {
        ExporterConfig::Zipkin(c) => &c.endpoint,
        ExporterConfig::Jaeger(c) => &c.endpoint,
        ExporterConfig::Otlp(c) => &c.endpoint,
        other => panic!("no endpoint: {other:?}"),
    }
}

#[test]
fn otel_traces_exporter_none_leaves_no_exporter() {
    let cfg = yaml("", &[("OTEL_TRACES_EXPORTER", "none")]).unwrap();
    assert!(cfg.exporters.is_empty(), "{:?}", cfg.exporters);
    // Also over a configured one.
    let cfg = yaml(
        "exporters: [ {type: zipkin} ]",
        &[("OTEL_TRACES_EXPORTER", "none")],
    )
    .unwrap();
    assert!(cfg.exporters.is_empty(), "{:?}", cfg.exporters);
    // Without it, the embedded console default is still there.
    let cfg = yaml("", &[]).unwrap();
    assert_eq!(cfg.exporters, vec![ExporterConfig::console()]);
}

#[test]
fn a_small_queue_alone_derives_the_batch_size() {
    let cfg = load_file(
        "seed.yaml",
        "MaxQueueSize: 256\n",
        &[],
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.batch.max_queue_size, 256);
    assert_eq!(cfg.batch.batch_size(), 256);
    let cfg = yaml("", &[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]).unwrap();
    assert_eq!(cfg.batch.batch_size(), 100);
    // A large queue keeps the default batch of 512.
    let cfg = yaml("batch: {max_queue_size: 4096}", &[]).unwrap();
    assert_eq!(cfg.batch.batch_size(), 512);
    // A batch size the user did write above the queue is still refused, by its key.
    let err = yaml(
        "batch: {max_queue_size: 100, max_export_batch_size: 200}",
        &[],
    )
    .unwrap_err();
    assert_eq!(err.key, "batch.max_export_batch_size");
    let err = yaml(
        "batch: {max_queue_size: 100}",
        &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200")],
    )
    .unwrap_err();
    assert_eq!(err.key, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
}

#[test]
fn an_endpoint_without_a_path_gets_the_backends_path() {
    let cfg = yaml(
        "exporters:\n  - {type: zipkin, endpoint: 'http://zipkin:9411'}\n  - {type: jaeger, endpoint: 'http://jaeger:14268/'}\n  - {type: otlp, endpoint: 'https://tempo.example'}\n  - {type: otlp, name: custom, endpoint: 'http://c:4318/custom/path'}\n",
        &[],
    )
    .unwrap();
    let got: Vec<&str> = cfg.exporters.iter().map(endpoint).collect();
    assert_eq!(
        got,
        [
            "http://zipkin:9411/api/v2/spans",
            "http://jaeger:14268/api/traces",
            "https://tempo.example/v1/traces",
            "http://c:4318/custom/path",
        ]
    );
    let cfg = yaml(
        "",
        &[("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "http://zipkin:9411")],
    )
    .unwrap();
    assert_eq!(
        endpoint(&cfg.exporters[0]),
        "http://zipkin:9411/api/v2/spans"
    );
    let cfg = load_file(
        "seed.toml",
        "Exporter = \"zipkin\"\nEndpoint = \"http://zipkin:9411\"\n",
        &[],
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        endpoint(&cfg.exporters[0]),
        "http://zipkin:9411/api/v2/spans"
    );
}

#[test]
fn one_duration_syntax_everywhere() {
    for (text, want) in [
        ("250us", Duration::from_micros(250)),
        ("500ms", Duration::from_millis(500)),
        ("5s", Duration::from_secs(5)),
        ("1500", Duration::from_millis(1500)),
    ] {
        let cfg = yaml(
            &format!(
                "batch: {{batch_timeout: '{text}'}}\nexporters:\n  - type: zipkin\n    timeout: '{text}'\n    retry: {{initial_interval: '{text}', max_interval: 1h}}\n"
            ),
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", text), ("OTEL_BSP_EXPORT_TIMEOUT", text), ("OTEL_TRACES_EXPORTER", "otlp")],
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(cfg.batch.batch_timeout, want, "{text}");
        assert_eq!(cfg.batch.export_timeout, want, "{text}");
        let ExporterConfig::Zipkin(z) = &cfg.exporters[0] else {
            panic!()
        };
        assert_eq!(
            (z.timeout, z.retry.initial_interval),
            (want, want),
            "{text}"
        );
        let ExporterConfig::Otlp(o) = &cfg.exporters[1] else {
            panic!()
        };
        assert_eq!(o.timeout, want, "{text}");
        let seed = load_file(
            "seed.yaml",
            &format!("BatchTimeout: '{text}'\n"),
            &[],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(seed.batch.batch_timeout, want, "{text}");
    }
}

#[test]
fn errors_name_what_the_user_wrote() {
    let seed = |text: &str| {
        load_file("seed.yaml", text, &[], &Overrides::default())
            .unwrap_err()
            .key
    };
    assert_eq!(seed("SampleRate: 2\n"), "SampleRate");
    assert_eq!(seed("MaxQueueSize: 0\n"), "MaxQueueSize");
    assert_eq!(seed("BatchTimeout: 0s\n"), "BatchTimeout");
    assert_eq!(
        seed("Exporter: zipkin\nEndpoint: 'ftp://zipkin'\n"),
        "Endpoint"
    );
    let flags = Overrides {
        probability: Some(1.5),
        ..Overrides::default()
    };
    assert_eq!(
        load_file("x.yaml", "", &[], &flags).unwrap_err().key,
        "--sample-ratio"
    );
    for (var, value) in [
        ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "ftp://zipkin:9411"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
    ] {
        assert_eq!(
            yaml("", &[(var, value)]).unwrap_err().key,
            var,
            "{var}={value}"
        );
    }
}

#[test]
fn toml_syntax_errors_carry_line_and_column() {
    let err = load_file(
        "shim.toml",
        "service_name = \"a\"\n[batch]\nmax_queue_size = = 3\n",
        &[],
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.reason.contains("line 3 column"), "{err}");
    let err = load_file(
        "shim.toml",
        "[batch]\nmax_queue_size = \"many\"\n",
        &[],
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(err.key, "batch.max_queue_size", "{err}");
}

#[test]
fn env_references_in_the_file_are_expanded_and_headers_are_redacted() {
    let text = r#"
receiver: { http_listen: "127.0.0.1:${env:PORT}" }
batch: { max_queue_size: "${QUEUE}" }
exporters:
  - type: otlp
    endpoint: "https://tempo.example/v1/traces"
    headers: { authorization: "Bearer ${env:TEMPO_TOKEN}", x-cost: "$$5" }
"#;
    let env = [
        ("PORT", "14318"),
        ("QUEUE", "4096"),
        ("TEMPO_TOKEN", "s3cr3t: {not yaml}"),
    ];
    let cfg = yaml(text, &env).unwrap();
    assert_eq!(cfg.receiver.http_listen.port(), 14318);
    assert_eq!(
        cfg.batch.max_queue_size, 4096,
        "a whole reference takes its value's type"
    );
    let ExporterConfig::Otlp(c) = &cfg.exporters[0] else {
        panic!()
    };
    assert_eq!(c.headers["authorization"], "Bearer s3cr3t: {not yaml}");
    assert_eq!(c.headers["x-cost"], "$5");
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("s3cr3t"),
        "header values must not be printed: {shown}"
    );
    assert!(shown.contains("authorization"), "{shown}");

    let err = yaml(text, &env[..2]).unwrap_err();
    assert_eq!(err.key, "TEMPO_TOKEN", "{err}");
    assert!(err.reason.contains("not set"), "{err}");
    // TOML too.
    let cfg = load_file(
        "shim.toml",
        "[batch]\nmax_queue_size = \"${env:QUEUE}\"\n",
        &env,
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.batch.max_queue_size, 4096);
}

#[test]
fn a_log_level_beyond_levels_and_targets_is_refused_naming_the_key() {
    // Found by the `shim_config_toml` fuzz target: tracing-subscriber's directive parser
    // panicked inside the multi-byte character.
    let text = "log = { level = \"  f@n&11\u{284} l[rrl =11 fs@n&1\" }\n";
    let err = load_file("shim.toml", text, &[], &Overrides::default()).unwrap_err();
    assert_eq!(err.key, "log.level", "{err}");
    assert!(err.to_string().contains("not allowed"), "{err}");
    // A field filter: its value would be compiled as a regular expression, and this one took
    // libFuzzer's 10 s limit (also found by the fuzz target).
    let pattern = format!(
        ",R}}` }}ind/p[n }}r {{?= B?{}{}....'}}",
        "B".repeat(11),
        "6".repeat(80)
    );
    let text = format!("log = {{ level = \"{pattern}\" }}\n");
    let started = std::time::Instant::now();
    let err = load_file("shim.toml", &text, &[], &Overrides::default()).unwrap_err();
    assert_eq!(err.key, "log.level", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // A valid filter with directives still loads.
    let cfg = yaml("log: { level: 'warn,collector_shim=debug' }", &[]).unwrap();
    assert_eq!(cfg.log.level, "warn,collector_shim=debug");
}
