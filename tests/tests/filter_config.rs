//! The shipped `envoy/envoy.yaml` and the filter's configuration, checked by the real Envoy in
//! both forms: `envoy --mode validate` loads the real `.wasm` (and runs `on_configure`) or the
//! real native module (and runs its config hook).

use aetherflow_tests::envoy::{self, Envoy, EnvoyOptions};
use aetherflow_tests::envoy_config::{EnvoyConfig, Substitutions, EGRESS, INGRESS};
use aetherflow_tests::form::Form;
use aetherflow_tests::paths;
use serde_json::json;

/// The shipped config with loopback addresses and the real module of `form` (ports are
/// irrelevant to validate).
fn shipped(form: Form) -> EnvoyConfig {
    form.require_module();
    let wasm = paths::wasm();
    let mut cfg = EnvoyConfig::shipped().expect("envoy/envoy.yaml parses");
    let a = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut subs = Substitutions::loopback(&wasm, a, a, a);
    subs.listener_ports.insert(INGRESS.into(), 10000);
    subs.listener_ports.insert(EGRESS.into(), 10001);
    cfg.substitute(&subs).expect("substitute");
    cfg.use_form(form).expect("filter form");
    cfg
}

/// The module Envoy loads into every worker's VM (and operators pull as an OCI image) stays
/// within its size budget: 300 KB (issue "Wasm at the native tracer's cost").
#[test]
fn the_release_module_is_at_most_300_kb() {
    let wasm = paths::wasm();
    let size = std::fs::metadata(&wasm)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make wasm`)", wasm.display()))
        .len();
    assert!(size <= 300_000, "{}: {size} bytes", wasm.display());
}

fn validate(cfg: &EnvoyConfig) -> envoy::Validation {
    envoy::validate(cfg, &paths::envoy()).expect("run envoy --mode validate")
}

#[test]
fn shipped_envoy_yaml_validates_with_the_real_module_of_each_form() {
    for form in Form::selected() {
        let v = validate(&shipped(form));
        assert!(
            v.accepted,
            "{form}: envoy refused the shipped config:\n{}",
            v.output
        );
        assert!(
            envoy::wasm_failure_lines(&v.output).is_empty(),
            "{form}: {}",
            v.output
        );
        // No deprecated fields in what we ship.
        assert!(
            !v.output.contains("Deprecated field"),
            "{form}: {}",
            v.output
        );
    }
}

#[test]
fn every_documented_key_with_its_default_is_accepted() {
    let all = json!({
        "service_name": "envoy-proxy", "deployment_environment": "", "collector_cluster": "trace_shim",
        "collector_authority": "trace_shim", "collector_path": "/v1/traces", "collector_timeout_ms": 1000,
        "flush_interval_ms": 1000, "max_batch_spans": 256, "max_buffered_spans": 4096,
        "max_inflight_dispatches": 4, "sample_ratio": 1.0, "record_unsampled": true,
        "force_sample_header": "x-force-trace", "trust_incoming_context": true,
        "inbound_formats": ["w3c", "b3", "jaeger"], "outbound_formats": ["w3c", "b3", "b3single", "jaeger"],
        "trace_id_response_header": "x-trace-id", "traceresponse_header": false, "span_kind": "server",
        "record_request_headers": ["x-a"], "record_response_headers": ["x-b"], "baggage_to_attributes": ["user.id"],
        "resource_attributes": {"k8s.pod.name": "p"}, "grpc_message_counting": true, "max_attribute_length": 256,
        "http_routes": ["/api/orders/{id}", "/static/{*path}"],
        "envoy_attributes": ["client.address", "network.protocol.version", "envoy.route_name",
                             "envoy.upstream.cluster", "envoy.upstream.address", "envoy.response_flags"]
    });
    for form in Form::selected() {
        for (name, text) in [
            ("all keys", all.to_string()),
            ("empty object", "{}".to_string()),
        ] {
            let mut cfg = shipped(form);
            cfg.set_filter_config_text(INGRESS, &text).expect("set");
            let v = validate(&cfg);
            assert!(v.accepted, "{form}: {name} refused:\n{}", v.output);
        }
    }
}

/// Each bad configuration and the key its refusal must name.
const BAD: &[(&str, &str)] = &[
    (r#"{"bogus_key": 1}"#, "bogus_key"),
    (r#"{"sample_ratio": "half"}"#, "sample_ratio"),
    (r#"{"sample_ratio": 1.5}"#, "sample_ratio"),
    (r#"{"sample_ratio": -0.1}"#, "sample_ratio"),
    (r#"{"span_kind": "producer"}"#, "span_kind"),
    (
        r#"{"inbound_formats": ["w3c", "zipkin"]}"#,
        "inbound_formats",
    ),
    (r#"{"outbound_formats": ["xray"]}"#, "outbound_formats"),
    (
        r#"{"envoy_attributes": ["peer.address"]}"#,
        "envoy_attributes",
    ),
    (r#"{"outbound_formats": "w3c"}"#, "outbound_formats"),
    (r#"{"max_batch_spans": 0}"#, "max_batch_spans"),
    (r#"{"max_buffered_spans": -1}"#, "max_buffered_spans"),
    (r#"{"collector_timeout_ms": "1s"}"#, "collector_timeout_ms"),
    (r#"{"flush_interval_ms": 1.5}"#, "flush_interval_ms"),
    (r#"{"record_unsampled": "yes"}"#, "record_unsampled"),
    (r#"{"trust_incoming_context": 1}"#, "trust_incoming_context"),
    (
        r#"{"resource_attributes": {"a": 1}}"#,
        "resource_attributes",
    ),
    (
        r#"{"record_request_headers": "x-a"}"#,
        "record_request_headers",
    ),
    (r#"{"service_name": 7}"#, "service_name"),
    (
        r#"{"max_attribute_length": "long"}"#,
        "max_attribute_length",
    ),
    // A wrong type for every remaining key.
    (r#"{"deployment_environment": 1}"#, "deployment_environment"),
    (r#"{"collector_cluster": 1}"#, "collector_cluster"),
    (r#"{"collector_authority": []}"#, "collector_authority"),
    (r#"{"collector_path": false}"#, "collector_path"),
    (
        r#"{"max_inflight_dispatches": "4"}"#,
        "max_inflight_dispatches",
    ),
    (r#"{"force_sample_header": 1}"#, "force_sample_header"),
    (r#"{"inbound_formats": "w3c"}"#, "inbound_formats"),
    (
        r#"{"trace_id_response_header": 0}"#,
        "trace_id_response_header",
    ),
    (r#"{"traceresponse_header": "yes"}"#, "traceresponse_header"),
    (r#"{"span_kind": 2}"#, "span_kind"),
    (
        r#"{"record_response_headers": {}}"#,
        "record_response_headers",
    ),
    (
        r#"{"baggage_to_attributes": "user.id"}"#,
        "baggage_to_attributes",
    ),
    (
        r#"{"grpc_message_counting": "true"}"#,
        "grpc_message_counting",
    ),
];

/// Validates `(config text, key)` cases in both forms, on a few threads (each Wasm validate
/// compiles the module in V8): `(form, text, key, outcome)`.
fn validate_all(cases: &[(&str, &str)]) -> Vec<(Form, String, String, envoy::Validation)> {
    let mut results = Vec::new();
    let all: Vec<(Form, &str, &str)> = Form::selected()
        .into_iter()
        .flat_map(|f| cases.iter().map(move |(t, k)| (f, *t, *k)))
        .collect();
    for chunk in all.chunks(3) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(form, text, key)| {
                    scope.spawn(move || {
                        let mut cfg = shipped(*form);
                        cfg.set_filter_config_text(INGRESS, text).expect("set");
                        (*form, text.to_string(), key.to_string(), validate(&cfg))
                    })
                })
                .collect();
            results.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("validate thread")),
            );
        });
    }
    results
}

#[test]
fn every_bad_key_is_refused_with_a_message_naming_it() {
    let mut problems = Vec::new();
    for (form, text, key, v) in validate_all(BAD) {
        if v.accepted {
            problems.push(format!("{form}: {text}: accepted"));
        } else if !v
            .output
            .lines()
            .any(|l| l.contains(form.log_marker()) && l.contains(key.as_str()))
        {
            problems.push(format!(
                "{form}: {text}: refused, but no filter log line names `{key}`:\n{}",
                v.output
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn malformed_json_is_refused() {
    let deep = format!(
        r#"{{"resource_attributes": {}1{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<(&str, &str)> = vec![
        ("not json", ""),
        ("[1, 2]", ""),
        (r#"{"service_name": "a""#, ""),
        (r#"{"service_name": "a",}"#, ""),
        (r#"{'service_name': 'a'}"#, ""),
        (r#"{"service_name": "a"} trailing"#, ""),
        (r#"{"service_name": "a"}{}"#, ""),
        ("{\"service_name\": \"a\" // comment\n}", ""),
        (r#"{"max_batch_spans": 0256}"#, ""),
        (r#"{"sample_ratio": NaN}"#, ""),
        (r#"{"sample_ratio": .5}"#, ""),
        (r#"{"sample_ratio": +0.5}"#, ""),
        (r#"{"service_name": "\x41"}"#, ""),
        (r#"{"service_name": "\ud800"}"#, ""),
        (r#"{"service_name": "\u12"}"#, ""),
        ("{\"service_name\": \"raw\nnewline\"}", ""),
        ("{\"service_name\": \"a\u{0}b\"}", ""),
        (r#"{"service_name": "a", "service_name": "b"}"#, ""),
        (&deep, ""),
    ];
    let mut problems = Vec::new();
    for (form, text, _, v) in validate_all(&cases) {
        let shown: String = text.chars().take(60).collect();
        if v.accepted {
            problems.push(format!("{form}: {shown:?}: accepted"));
        } else if !v.output.contains(form.log_marker()) {
            problems.push(format!(
                "{form}: {shown:?}: refused without a filter log line"
            ));
        }
        if v.output.contains("panicked") {
            problems.push(format!("{form}: {shown:?}: a panic"));
        }
        let failures: Vec<String> = envoy::wasm_failure_lines(&v.output)
            .into_iter()
            .filter(|l| l.to_ascii_lowercase().contains("panic") || l.contains("proxy_on_"))
            .collect();
        if !failures.is_empty() {
            problems.push(format!("{form}: {shown:?}: the VM failed: {failures:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn json_corner_cases_that_are_valid_are_accepted() {
    let cases: Vec<(&str, &str)> = vec![
        // No configuration at all means every default.
        ("", ""),
        ("\u{feff}{}", ""),
        (
            " \t\r\n{ \t\r\n\"sample_ratio\" \t\r\n: \t\r\n1e0 \t\r\n} \t\r\n",
            "",
        ),
        (r#"{"sample_ratio": 5E-1}"#, ""),
        (r#"{"sample_ratio": 0}"#, ""),
        (r#"{"sample_ratio": 1}"#, ""),
        (
            r#"{"service_name": "caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}"#,
            "",
        ),
        (r#"{"resource_attributes": {}}"#, ""),
        (r#"{"record_request_headers": []}"#, ""),
    ];
    let mut problems = Vec::new();
    for (form, text, _, v) in validate_all(&cases) {
        // A UTF-8 BOM is not JSON text (RFC 8259 §8.1: MUST NOT add, MAY ignore): either way is fine.
        if text.starts_with('\u{feff}') {
            assert!(envoy::wasm_failure_lines(&v.output)
                .iter()
                .all(|l| !l.contains("panic")));
            continue;
        }
        if !v.accepted {
            problems.push(format!("{form}: {text:?}: refused:\n{}", v.output));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

aetherflow_tests::each_form! {
async fn a_real_start_with_a_bad_key_fails_and_logs_the_key(form) {
    let mut cfg = shipped(form);
    let a = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let wasm = paths::wasm();
    cfg.substitute(&Substitutions::loopback(&wasm, a, a, a))
        .expect("loopback ports");
    cfg.update_filter_config(EGRESS, |c| {
        c.insert("no_such_option".into(), json!(true));
    })
    .expect("edit");
    let opts = EnvoyOptions {
        startup_timeout: std::time::Duration::from_secs(60),
        form,
        ..Default::default()
    };
    match Envoy::start(&cfg, &opts).await {
        Ok(envoy) => panic!("Envoy started with a bad key; log:\n{}", envoy.log()),
        Err(e) => {
            assert!(e.contains("exited"), "{e}");
            assert!(
                e.lines()
                    .any(|l| l.contains(form.log_marker()) && l.contains("no_such_option")),
                "no filter log line names the key:\n{e}"
            );
        }
    }
}
}

aetherflow_tests::each_form! {
async fn json_string_escapes_are_decoded(form) {
    use aetherflow_tests::http_client::ClientRequest;
    use aetherflow_tests::stack::StackBuilder;
    let text = r#"{"service_name": "caf\u00e9 \ud83d\ude00 \"q\"\t\\", "flush_interval_ms": 200}"#;
    let stack = StackBuilder::new().form(form)
        .config(move |cfg| cfg.set_filter_config_text(INGRESS, text))
        .start()
        .await;
    let ex = stack.ingress(ClientRequest::get("/escapes")).await;
    let span = stack.span_of(&ex).await;
    assert_eq!(
        span.resource_str("service.name").as_deref(),
        Some("caf\u{e9} \u{1f600} \"q\"\t\\")
    );
}
}
