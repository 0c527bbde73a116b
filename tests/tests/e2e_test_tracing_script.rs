//! `scripts/test-tracing.sh` (the check for a running docker-compose stack) run for real against the
//! loopback stack: real Envoy with the filter, the demo services and the shim, exporting to receivers
//! that also answer the two query endpoints the script reads (Jaeger `/api/traces/<id>`, Zipkin
//! `/api/v2/trace/<id>`) from what they received, in those APIs' JSON shapes. Proves the script's
//! commands work and that it fails when a trace is missing.

mod e2e_support;

use std::process::Command;
use std::sync::Arc;

use aetherflow_demo::stack::{Stack, StackOptions};
use aetherflow_tests::paths::workspace_root;
use bytes::Bytes;
use e2e_support::{jaeger_spans, shim_config, zipkin_spans, Receiver};
use serde_json::json;

/// Zipkin: `/health`, and `/api/v2/trace/<id>` = the JSON list of that trace's spans.
async fn zipkin_with_query() -> Receiver {
    Receiver::start_with(Arc::new(|path: &str, seen: &[(String, Bytes)]| {
        if path == "/health" {
            return Some((200, r#"{"status":"UP"}"#.to_owned()));
        }
        let id = path.strip_prefix("/api/v2/trace/")?;
        let mut spans = Vec::new();
        for (_, body) in seen.iter().filter(|(p, _)| p == "/api/v2/spans") {
            let list: Vec<serde_json::Value> = serde_json::from_slice(body).ok()?;
            spans.extend(list.into_iter().filter(|s| s["traceId"] == id));
        }
        (!spans.is_empty()).then(|| (200, serde_json::to_string(&spans).unwrap_or_default()))
    }))
    .await
}

/// Jaeger query: `/` (the UI), and `/api/traces/<id>` = `{"data":[{"traceID", "spans", "processes"}]}`.
async fn jaeger_with_query() -> Receiver {
    Receiver::start_with(Arc::new(|path: &str, seen: &[(String, Bytes)]| {
        if path == "/" {
            return Some((200, "<html>Jaeger UI</html>".to_owned()));
        }
        let id = path.strip_prefix("/api/traces/")?;
        let bodies: Vec<Bytes> = seen.iter().filter(|(p, _)| p == "/api/traces").map(|(_, b)| b.clone()).collect();
        let spans: Vec<_> = jaeger_spans(&bodies).into_iter().filter(|s| s.trace_id == id).collect();
        if spans.is_empty() {
            return None;
        }
        let mut processes = serde_json::Map::new();
        let spans: Vec<_> = spans
            .iter()
            .map(|s| {
                let pid = format!("p-{}", s.service);
                processes.insert(pid.clone(), json!({"serviceName": s.service, "tags": []}));
                json!({"traceID": s.trace_id, "spanID": s.span_id, "operationName": s.name, "processID": pid})
            })
            .collect();
        let doc = json!({"data": [{"traceID": id, "spans": spans, "processes": processes}]});
        Some((200, doc.to_string()))
    }))
    .await
}

fn run_script(
    envoy: &str,
    shim: &str,
    jaeger: &str,
    zipkin: &str,
    wait_secs: u32,
) -> (bool, String) {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/test-tracing.sh"))
        .env("ENVOY_URL", envoy)
        .env("SHIM_URL", shim)
        .env("JAEGER_URL", jaeger)
        .env("ZIPKIN_URL", zipkin)
        .env("WAIT_SECS", wait_secs.to_string())
        .output()
        .expect("run scripts/test-tracing.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_tracing_script_passes_on_a_working_stack_and_fails_without_traces() {
    let zipkin = zipkin_with_query().await;
    let jaeger = jaeger_with_query().await;
    let opts = StackOptions {
        shim_config: Some(shim_config(&zipkin, &jaeger)),
        ..Default::default()
    };
    let mut stack = Stack::start(opts, &mut |_| {}).await.expect("stack starts");
    let envoy = stack.ingress_url();
    let shim = format!("http://{}", stack.shim.as_ref().expect("shim").addr);
    let (jaeger_url, zipkin_url) = (jaeger.url(""), zipkin.url(""));

    let (ok, output) = tokio::task::spawn_blocking({
        let (envoy, shim, jaeger_url, zipkin_url) = (
            envoy.clone(),
            shim.clone(),
            jaeger_url.clone(),
            zipkin_url.clone(),
        );
        move || run_script(&envoy, &shim, &jaeger_url, &zipkin_url, 90)
    })
    .await
    .expect("script thread");
    assert!(
        ok && output.contains("all checks passed"),
        "test-tracing.sh failed on a working stack:\n{output}"
    );
    assert_eq!(
        output.matches("  ok ").count(),
        4 + 3 + 9,
        "every check ran:\n{output}"
    );
    assert!(!zipkin_spans(&zipkin.bodies("/api/v2/spans")).is_empty());

    // A Zipkin that never stored anything: the script must say so and exit non-zero.
    let empty = Receiver::start_with(Arc::new(|path: &str, _: &[(String, Bytes)]| {
        (path == "/health").then(|| (200, String::new()))
    }))
    .await;
    let empty_url = empty.url("");
    let (ok, output) =
        tokio::task::spawn_blocking(move || run_script(&envoy, &shim, &jaeger_url, &empty_url, 3))
            .await
            .expect("script thread");
    assert!(
        !ok,
        "test-tracing.sh passed although Zipkin has no traces:\n{output}"
    );
    assert!(output.contains("FAIL  Zipkin has trace"), "{output}");
    stack.stop().await;
}
