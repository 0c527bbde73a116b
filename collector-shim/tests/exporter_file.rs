//! File exporter: OTLP-JSON lines, rotation, and the hard cap with counted drops.
mod exporter_support;

use collector_shim::exporter::{build, ExporterConfig, ExporterTelemetry, FileConfig};
use exporter_support::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

fn cfg(path: &std::path::Path, max_bytes: u64, max_files: u32) -> ExporterConfig {
    ExporterConfig::File(FileConfig {
        name: None,
        path: path.to_path_buf(),
        max_bytes,
        max_files,
    })
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

#[tokio::test]
async fn writes_one_otlp_json_span_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.jsonl");
    let exp = build(&ExporterConfig::file(&path), ExporterTelemetry::default()).unwrap();
    exp.export(&sample_batch()).await.unwrap();
    exp.export(&sample_batch()[..1]).await.unwrap();
    exp.shutdown().await.unwrap();
    let got = lines(&path);
    assert_eq!(got.len(), 4);
    let l = &got[0];
    assert_eq!(l["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(l["spanId"], "0000000000001111");
    assert_eq!(l["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(l["name"], "GET /api/users/{id}");
    assert_eq!(l["kind"], 2);
    assert_eq!(l["startTimeUnixNano"], T0.to_string());
    assert_eq!(l["status"]["code"], 2);
    assert_eq!(l["resource"]["attributes"][0]["key"], "service.name");
    assert_eq!(
        l["resource"]["attributes"][0]["value"]["stringValue"],
        "envoy-proxy"
    );
    assert_eq!(l["scope"]["name"], "aetherflow.trace_filter");
    let code = l["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "http.response.status_code")
        .unwrap();
    assert_eq!(code["value"]["intValue"], "503");
}

fn many(n: u64) -> Vec<collector_shim::model::SpanRecord> {
    (1..=n)
        .map(|i| {
            record(
                "svc",
                span(TRACE, i, 0, &format!("op-{i:04}"), SpanKind::Server, i, 5),
            )
        })
        .collect()
}

#[tokio::test]
async fn rotates_and_keeps_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.jsonl");
    let t = ExporterTelemetry::default();
    let exp = build(&cfg(&path, 4096, 2), t.clone()).unwrap();
    for chunk in many(200).chunks(10) {
        exp.export(chunk).await.unwrap();
    }
    exp.shutdown().await.unwrap();
    let rotated = |n: u32| dir.path().join(format!("spans.jsonl.{n}"));
    assert!(rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists(), "only max_files rotations are kept");
    for p in [path.clone(), rotated(1), rotated(2)] {
        let size = std::fs::metadata(&p).unwrap().len();
        assert!(size <= 4096, "{} has {size} bytes", p.display());
    }
    // Newest spans in the live file, older ones in .1 then .2, in order, no line split or lost
    // between the kept files.
    let names: Vec<String> = [rotated(2), rotated(1), path.clone()]
        .iter()
        .flat_map(|p| lines(p))
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.last().unwrap(), "op-0200");
    let first: u32 = names[0][3..].parse().unwrap();
    let expected: Vec<String> = (first..=200).map(|i| format!("op-{i:04}")).collect();
    assert_eq!(names, expected);
    assert_eq!(t.dropped_spans.get(), 0);
}

#[tokio::test]
async fn hard_cap_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capped.jsonl");
    let t = ExporterTelemetry::default();
    let exp = build(&cfg(&path, 2048, 0), t.clone()).unwrap();
    exp.export(&many(100)).await.unwrap();
    let kept = lines(&path).len() as u64;
    assert!(kept > 0 && kept < 100, "{kept}");
    assert_eq!(t.dropped_spans.get(), 100 - kept);
    assert!(std::fs::metadata(&path).unwrap().len() <= 2048);
    assert!(!dir.path().join("capped.jsonl.1").exists());
}

#[tokio::test]
async fn missing_directory_is_a_config_error() {
    let err = build(
        &ExporterConfig::file("/nonexistent-dir-aetherflow/spans.jsonl"),
        ExporterTelemetry::default(),
    )
    .err()
    .unwrap();
    assert!(
        err.starts_with("path: directory `/nonexistent-dir-aetherflow` does not exist"),
        "{err}"
    );
}
