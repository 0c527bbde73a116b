//! A plugin reload through file-based xDS: Envoy reads its listeners from an LDS file in a
//! watched directory, the file is replaced by an atomic rename with a changed filter
//! configuration, and the old listener (with the old plugin) drains and is torn down. The spans
//! the old plugin still held must reach the collector (docs/filter.md#reloading-the-configuration).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aetherflow_tests::envoy::EnvoyOptions;
use aetherflow_tests::envoy_config::{lds_document, EnvoyConfig};
use aetherflow_tests::form::Form;
use aetherflow_tests::http_client::ClientRequest;
use aetherflow_tests::stack::{new_span_id, new_trace_id, Stack, StackBuilder, SPAN_WAIT};
use serde_yaml::Value;

/// Requests served by the old plugin before the reload.
const BEFORE: usize = 40;
/// Requests served by the new plugin after it.
const AFTER: usize = 10;
/// Envoy's `--drain-time-s`: how long the old listener drains before it is torn down.
const DRAIN_TIME_S: u64 = 2;
/// The old plugin's flush interval: longer than the drain, so every span it traced is still
/// in its buffer when it is torn down (the worst case of a reload).
const OLD_FLUSH_MS: u64 = 60_000;
/// The service name the reloaded configuration gives the ingress spans.
const NEW_SERVICE: &str = "envoy-ingress-reloaded";

/// The LDS file Envoy watches and its two versions.
struct Lds {
    dir: tempfile::TempDir,
    reloaded: String,
}

impl Lds {
    fn path(dir: &Path) -> PathBuf {
        dir.join("lds.yaml")
    }

    /// Replaces the LDS file by an atomic rename, as a configuration manager would.
    fn reload(&self) {
        let tmp = self.dir.path().join("lds.yaml.tmp");
        std::fs::write(&tmp, &self.reloaded).expect("write the new LDS file");
        std::fs::rename(&tmp, Lds::path(self.dir.path())).expect("rename the LDS file");
    }
}

/// Every string holding `from` gets `to` instead (the filter's JSON configuration is a string
/// in either form's typed config).
fn replace_in_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Sequence(seq) => seq.iter_mut().for_each(|x| replace_in_strings(x, from, to)),
        Value::Mapping(m) => m
            .iter_mut()
            .for_each(|(_, x)| replace_in_strings(x, from, to)),
        _ => {}
    }
}

/// Moves the configuration's listeners into an LDS file in `dir` that Envoy watches, and
/// returns the reloaded version of that file: the ingress filter's service name changed and its
/// flush interval back to 200 ms.
fn move_listeners_to_lds(cfg: &mut EnvoyConfig, dir: &Path) -> Result<String, String> {
    let doc = cfg.doc_mut();
    let listeners = doc
        .get_mut("static_resources")
        .and_then(Value::as_mapping_mut)
        .and_then(|m| m.remove("listeners"))
        .and_then(|l| l.as_sequence().cloned())
        .ok_or("no static_resources.listeners")?;
    std::fs::write(Lds::path(dir), lds_document(&listeners)?).map_err(|e| e.to_string())?;
    let mut reloaded = Value::Sequence(listeners);
    replace_in_strings(
        &mut reloaded,
        "\"service_name\": \"envoy-ingress\"",
        &format!("\"service_name\": \"{NEW_SERVICE}\""),
    );
    replace_in_strings(
        &mut reloaded,
        &format!("\"flush_interval_ms\": {OLD_FLUSH_MS}"),
        "\"flush_interval_ms\": 200",
    );
    let dynamic: Value = serde_yaml::from_str(&format!(
        "lds_config:\n  resource_api_version: V3\n  path_config_source:\n    path: {}\n    watched_directory: {{ path: {} }}\n",
        Lds::path(dir).display(),
        dir.display()
    ))
    .map_err(|e| e.to_string())?;
    if let Value::Mapping(m) = doc {
        m.insert(Value::from("dynamic_resources"), dynamic);
        // xDS, even from a file, needs the node's identity.
        m.insert(
            Value::from("node"),
            serde_yaml::from_str("{ id: aetherflow, cluster: aetherflow }")
                .map_err(|e| e.to_string())?,
        );
    }
    lds_document(reloaded.as_sequence().map(Vec::as_slice).unwrap_or(&[]))
}

/// A script that runs Envoy with a short `--drain-time-s` (exec: the pid stays Envoy's).
fn envoy_with_drain_time(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let envoy = aetherflow_tests::paths::envoy();
    let script = dir.join("envoy-drain.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec '{}' --drain-time-s {DRAIN_TIME_S} \"$@\"\n",
            envoy.display()
        ),
    )
    .expect("write the Envoy wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the Envoy wrapper");
    script
}

async fn stack(form: Form) -> (Stack, Lds) {
    let dir = tempfile::Builder::new()
        .prefix("aetherflow-lds-")
        .tempdir()
        .expect("tempdir");
    let (tx, rx) = std::sync::mpsc::channel();
    let lds_dir = dir.path().to_path_buf();
    let options = EnvoyOptions {
        binary: envoy_with_drain_time(dir.path()),
        ..EnvoyOptions::default()
    };
    let stack = StackBuilder::new()
        .form(form)
        .options(options)
        .ingress_filter(|c| {
            c.insert("flush_interval_ms".into(), serde_json::json!(OLD_FLUSH_MS));
        })
        .config(move |cfg| {
            let reloaded = move_listeners_to_lds(cfg, &lds_dir)?;
            tx.send(reloaded).map_err(|e| e.to_string())
        })
        .start()
        .await;
    let reloaded = rx.recv().expect("the reloaded LDS file");
    (stack, Lds { dir, reloaded })
}

/// Requests on fresh connections, each carrying its own trace id; returns the trace ids.
async fn traffic(stack: &Stack, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let trace_id = new_trace_id();
        let tp = format!("00-{trace_id}-{}-01", new_span_id());
        let ex = stack
            .ingress(ClientRequest::get("/api/orders/1").header("traceparent", &tp))
            .await;
        assert_eq!(ex.response.status, 200);
        ids.push(trace_id);
    }
    ids
}

/// Waits, bounded, until Envoy has applied the new LDS file and torn the old listener down.
async fn wait_old_listener_gone(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_secs(DRAIN_TIME_S);
    loop {
        let stats = stack.envoy.stats().await.unwrap_or_default();
        let updated = stats
            .get("listener_manager.lds.update_success")
            .is_some_and(|&n| n >= 2);
        let draining = stats
            .get("listener_manager.total_filter_chains_draining")
            .copied()
            .unwrap_or(0)
            + stats
                .get("listener_manager.total_listeners_draining")
                .copied()
                .unwrap_or(0);
        if updated && draining == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the reload was not applied and drained in time (update_success >= 2: {updated}, draining: {draining}); envoy log:\n{}",
            stack.envoy.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

aetherflow_tests::each_form! {
async fn a_reload_loses_no_span_of_the_old_plugin(form) {
    let (stack, lds) = stack(form).await;
    let before = traffic(&stack, BEFORE).await;
    lds.reload();
    wait_old_listener_gone(&stack).await;
    let after = traffic(&stack, AFTER).await;
    let spans = stack
        .shim
        .wait_spans(BEFORE + AFTER, SPAN_WAIT, |_| true)
        .await
        .unwrap_or_else(|got| got);
    let service = |tid: &str| {
        spans
            .iter()
            .find(|s| s.trace_id() == tid)
            .map(|s| s.resource_str("service.name").unwrap_or_default())
    };
    let lost_before: Vec<_> = before.iter().filter(|t| service(t).is_none()).collect();
    let lost_after: Vec<_> = after.iter().filter(|t| service(t).is_none()).collect();
    eprintln!(
        "{form}: reload: {} of {BEFORE} spans of the old plugin lost, {} of {AFTER} of the new",
        lost_before.len(),
        lost_after.len()
    );
    assert!(lost_after.is_empty(), "spans of the new plugin lost: {lost_after:?}");
    assert!(
        after.iter().all(|t| service(t).as_deref() == Some(NEW_SERVICE)),
        "the reloaded configuration is not the one tracing"
    );
    assert!(
        lost_before.is_empty(),
        "{} of {BEFORE} spans of the old plugin lost by the reload; envoy log:\n{}",
        lost_before.len(),
        stack.envoy.log_tail(40)
    );
    assert_eq!(spans.len(), BEFORE + AFTER, "duplicated or foreign spans");
}
}
