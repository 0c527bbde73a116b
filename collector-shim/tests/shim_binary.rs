//! The real `collector-shim` binary: `--check-config` (good and bad files, bad env values,
//! each error naming the key), and SIGTERM with spans waiting in tail decisions and queues:
//! exit 0 and every accepted span delivered to a real OTLP backend.
mod pipeline_support;

use std::process::Command;
use std::time::Duration;

use pipeline_support::shim_process;
use pipeline_support::*;
use prost::Message;

fn shim_bin() -> &'static str {
    env!("CARGO_BIN_EXE_collector-shim")
}

fn write_config(text: &str, ext: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

fn check(file: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(shim_bin());
    cmd.arg("--config").arg(file).arg("--check-config");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_good_files_and_names_the_bad_key() {
    let good = write_config(
        "service_name: edge\nsampling: { probability: 0.5 }\nexporters: [ { type: zipkin, endpoint: 'http://127.0.0.1:9411/api/v2/spans' } ]\n",
        ".yaml",
    );
    let (code, out, err) = check(good.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("config ok"), "{out}");
    assert!(out.contains("zipkin"), "{out}");

    let seed = write_config("ServiceName = \"legacy\"\nExporter = \"jaeger\"\nEndpoint = \"http://127.0.0.1:14268/api/traces\"\nSampleRate = 0.1\n", ".toml");
    let (code, out, err) = check(seed.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("jaeger"), "{out}");

    let typo = write_config("batch:\n  max_queue_sise: 10\n", ".yaml");
    let (code, _, err) = check(typo.path(), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`batch.max_queue_sise`") && err.contains("unknown field"),
        "{err}"
    );

    let bad_value = write_config("sampling: { probability: 2 }\n", ".yaml");
    let (code, _, err) = check(bad_value.path(), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("sampling.probability") && err.contains("[0, 1]"),
        "{err}"
    );

    let (code, _, err) = check(good.path(), &[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")]);
    assert_eq!(code, 2);
    assert!(err.contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_pending_decisions_and_queues_then_exits_zero() {
    let (backend, received) = otlp_backend::start().await;
    let cfg = write_config(
        &format!(
            "receiver: {{ http_listen: '127.0.0.1:0' }}\n\
             batch: {{ batch_timeout: 60s, max_export_batch_size: 100 }}\n\
             sampling:\n  tail:\n    decision_wait: 60s\n    policies: [ {{ type: error }} ]\n\
             exporters: [ {{ type: otlp, endpoint: 'http://{backend}/v1/traces' }} ]\n\
             shutdown_timeout: 20s\n"
        ),
        ".yaml",
    );
    let mut shim = shim_process::start(cfg.path());
    let addr = shim.addr;
    let client = reqwest::Client::new();
    for r in 0..4u32 {
        let spans: Vec<_> = (0..50u32)
            .map(|i| span(&trace_id(r * 100 + i, 1), i as u64, 1))
            .collect();
        let resp = client
            .post(format!("http://{addr}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request("bin", spans).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Everything is held (60 s windows); nothing has reached the backend yet.
    assert_eq!(received.count(), 0);
    // SIGTERM, then up to 30 s for the exit (killed after that).
    let exit = shim.terminate_async(Duration::from_secs(30)).await;
    let log = shim.log();
    let exit = exit.unwrap_or_else(|| panic!("shim did not exit within 30 s of SIGTERM:\n{log}"));
    assert_eq!(exit.code(), Some(0), "{log}");
    assert_eq!(received.count(), 200, "{log}");
    assert!(log.contains("all queues flushed"), "{log}");
}

#[test]
fn env_and_flags_configure_without_a_file() {
    let out = Command::new(shim_bin())
        .arg("--check-config")
        .args([
            "--listen",
            "127.0.0.1:14318",
            "--sample-ratio",
            "0.5",
            "--exporter",
            "console",
        ])
        .env(
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
            "http://127.0.0.1:9411/api/v2/spans",
        )
        .env("OTEL_TRACES_SAMPLER", "traceidratio")
        .env("OTEL_TRACES_SAMPLER_ARG", "0.25")
        .env_remove("AETHERFLOW_SHIM_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The flag wins over OTEL_TRACES_SAMPLER_ARG; the env adds zipkin, the flag adds console.
    assert!(stdout.contains("listen 127.0.0.1:14318"), "{stdout}");
    assert!(stdout.contains("probability 0.5"), "{stdout}");
    assert!(stdout.contains("[\"zipkin\", \"console\"]"), "{stdout}");

    let out = Command::new(shim_bin())
        .args(["--check-config", "--exporter", "carrier-pigeon"])
        .env_remove("AETHERFLOW_SHIM_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--exporter`"));
}
