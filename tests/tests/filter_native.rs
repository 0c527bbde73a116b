//! What only the native form has: its shipped example configuration, the ABI handshake with
//! the pinned Envoy, and the module's own log lines.

use aetherflow_tests::envoy::{self};
use aetherflow_tests::envoy_config::{EnvoyConfig, Substitutions, EGRESS, INGRESS};
use aetherflow_tests::form::Form;
use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::paths;
use aetherflow_tests::stack::StackBuilder;

fn native_yaml() -> EnvoyConfig {
    EnvoyConfig::from_file(&paths::workspace_root().join("envoy/envoy-native.yaml"))
        .expect("envoy/envoy-native.yaml parses")
}

#[test]
fn envoy_native_yaml_is_the_shipped_config_with_the_native_filter() {
    let mut shipped = EnvoyConfig::shipped().expect("envoy/envoy.yaml parses");
    shipped.use_form(Form::Native).expect("native form");
    let native = native_yaml();
    assert_eq!(
        shipped.to_yaml(),
        native.to_yaml(),
        "envoy/envoy-native.yaml must be envoy/envoy.yaml with the Wasm filters replaced, nothing else"
    );
    for listener in [INGRESS, EGRESS] {
        assert_eq!(
            native.filter_config(listener).expect("native JSON"),
            EnvoyConfig::shipped()
                .expect("shipped")
                .filter_config(listener)
                .expect("wasm JSON"),
            "{listener}: the same filter JSON in both files"
        );
    }
}

#[test]
fn envoy_native_yaml_validates_with_the_real_module() {
    if !Form::Native.is_selected() {
        return;
    }
    Form::Native.require_module();
    let mut cfg = native_yaml();
    let a = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut subs = Substitutions::loopback(&paths::wasm(), a, a, a);
    subs.listener_ports.insert(INGRESS.into(), 10000);
    subs.listener_ports.insert(EGRESS.into(), 10001);
    cfg.substitute(&subs).expect("substitute");
    let v = envoy::validate(&cfg, &paths::envoy()).expect("run envoy --mode validate");
    assert!(v.accepted, "envoy refused envoy-native.yaml:\n{}", v.output);
    assert!(
        v.output
            .contains("Dynamic module ABI version v0.2.0 matched"),
        "{}",
        v.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_matches_the_abi_version_and_logs_its_configuration() {
    if !Form::Native.is_selected() {
        return;
    }
    let stack = StackBuilder::new().form(Form::Native).start().await;
    let ex = stack.ingress(ClientRequest::get("/api/orders/7")).await;
    assert_eq!(ex.response.status, 200);
    let span = stack.span_of(&ex).await;
    assert_eq!(span.span.name, "GET /api/orders/{id}");
    let log = stack.envoy.log();
    // Envoy only warns on a mismatch: the exact line is the proof of the handshake.
    assert!(
        log.contains("Dynamic module ABI version v0.2.0 matched."),
        "no ABI handshake line:\n{}",
        stack.envoy.log_tail(40)
    );
    assert!(!log.contains("is deprecated. Please recompile"), "{log}");
    for (listener, service) in [("ingress", "envoy-ingress"), ("egress", "envoy-egress")] {
        assert!(
            log.lines().any(|l| l.contains("[dynamic_modules]")
                && l.contains("aetherflow trace filter: configured")
                && l.contains(&format!("service \"{service}\""))),
            "{listener}: no configuration line from the module:\n{log}"
        );
    }
    stack.envoy.assert_no_filter_failures().await;
}
