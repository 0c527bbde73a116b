//! Checks the harness itself against real Envoy with the wasm filter removed from the shipped
//! config: if these fail, the filter tests' failures mean nothing.

use std::time::Duration;

use aetherflow_tests::envoy::{Envoy, EnvoyOptions};
use aetherflow_tests::envoy_config::{EnvoyConfig, Substitutions};
use aetherflow_tests::http_client::{self, ClientRequest};
use aetherflow_tests::shim::{FakeShim, ShimMode};
use aetherflow_tests::stack::REQUEST_TIMEOUT;
use aetherflow_tests::{grpc, paths, UpstreamServer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// The shipped config minus every wasm filter (plain Envoy routing).
fn config_without_filter(upstream: &UpstreamServer, shim: &FakeShim) -> EnvoyConfig {
    let mut cfg = EnvoyConfig::shipped().expect("shipped config");
    cfg.substitute(&Substitutions::loopback(
        std::path::Path::new("/nonexistent.wasm"),
        upstream.addr(),
        upstream.addr(),
        shim.addr(),
    ))
    .expect("substitute");
    let yaml = cfg.to_yaml();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("yaml");
    for l in doc["static_resources"]["listeners"]
        .as_sequence_mut()
        .expect("listeners")
    {
        for chain in l["filter_chains"].as_sequence_mut().expect("chains") {
            for f in chain["filters"].as_sequence_mut().expect("filters") {
                let hf = f["typed_config"]["http_filters"]
                    .as_sequence_mut()
                    .expect("http_filters");
                hf.retain(|h| h["name"].as_str() != Some("envoy.filters.http.wasm"));
            }
        }
    }
    EnvoyConfig::from_yaml_str(&serde_yaml::to_string(&doc).expect("yaml")).expect("reparse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_works_through_plain_envoy() {
    let upstream = UpstreamServer::start().await;
    let shim = FakeShim::start().await;
    let cfg = config_without_filter(&upstream, &shim);
    let envoy = Envoy::start(&cfg, &EnvoyOptions::default())
        .await
        .expect("envoy starts");
    let ingress = envoy.ingress();

    // HTTP/1.1 with a repeated header line: the upstream records both lines in order.
    let req = ClientRequest::get("/plain?q=1")
        .header("x-test-id", "h1")
        .header("x-dup", "a")
        .header("x-dup", "b")
        .header("x-upstream-status", "503");
    let resp = http_client::send(ingress, &req, REQUEST_TIMEOUT)
        .await
        .expect("h1");
    assert_eq!(resp.status, 503);
    let seen = upstream
        .request_tagged("h1")
        .await
        .expect("upstream saw it");
    assert_eq!(seen.header_all("x-dup"), vec!["a", "b"]);
    assert_eq!(seen.path, "/plain?q=1");

    // gRPC with trailers and 3 response frames, over h2c end to end.
    let req = ClientRequest::grpc("/demo.Echo/Stream", grpc::frames(4, 10))
        .header("x-test-id", "g1")
        .header("x-upstream-grpc-status", "5")
        .header("x-upstream-grpc-frames", "3");
    let resp = http_client::send(ingress, &req, REQUEST_TIMEOUT)
        .await
        .expect("grpc");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.grpc_status().as_deref(), Some("5"));
    assert_eq!(resp.body.len(), 3 * (5 + "reply-0".len()));
    let seen = upstream
        .request_tagged("g1")
        .await
        .expect("upstream saw grpc");
    assert_eq!(seen.version, "HTTP/2.0");
    assert_eq!(seen.body.len(), 4 * 15);

    // Trailers-only: the status arrives in the response headers and there are no trailers.
    let req = ClientRequest::grpc("/demo.Echo/Unary", grpc::frame(b"x"))
        .header("x-upstream-grpc-mode", "trailers-only")
        .header("x-upstream-grpc-status", "12");
    let resp = http_client::send(ingress, &req, REQUEST_TIMEOUT)
        .await
        .expect("trailers-only");
    assert_eq!(resp.header("grpc-status").as_deref(), Some("12"));
    assert!(resp.trailers.is_empty(), "{:?}", resp.trailers);

    // Missing status.
    let req = ClientRequest::grpc("/demo.Echo/Unary", grpc::frame(b"x"))
        .header("x-upstream-grpc-mode", "missing");
    let resp = http_client::send(ingress, &req, REQUEST_TIMEOUT)
        .await
        .expect("missing");
    assert_eq!(resp.grpc_status(), None);

    // Stats and the log are readable; plain Envoy has no wasm failures.
    let stats = envoy.stats().await.expect("stats");
    assert!(
        stats
            .get("http.ingress_http.downstream_rq_total")
            .copied()
            .unwrap_or(0)
            >= 4
    );
    assert!(envoy.log().contains("starting main dispatch loop"));
    envoy.assert_no_filter_failures().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_shim_decodes_and_misbehaves_on_demand() {
    let shim = FakeShim::start().await;
    let export = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let post = |body: Vec<u8>| {
        ClientRequest::get("/v1/traces")
            .method("POST")
            .header("content-type", "application/x-protobuf")
            .body(body)
    };
    let t = Duration::from_secs(10);
    let resp = http_client::send(shim.addr(), &post(export.encode_to_vec()), t)
        .await
        .expect("post");
    assert_eq!(resp.status, 200);
    assert_eq!(shim.spans().len(), 1);
    assert_eq!(shim.spans()[0].trace_id(), "01".repeat(16));
    let resp = http_client::send(shim.addr(), &post(vec![0xff, 0xff, 0xff]), t)
        .await
        .expect("garbage");
    assert_eq!(resp.status, 400);
    assert_eq!(shim.decode_errors().len(), 1);

    shim.set_mode(ShimMode::Status(500)).await;
    let resp = http_client::send(shim.addr(), &post(export.encode_to_vec()), t)
        .await
        .expect("post");
    assert_eq!(resp.status, 500);
    assert_eq!(shim.spans().len(), 1);

    shim.set_mode(ShimMode::Slow(Duration::from_millis(300)))
        .await;
    let started = std::time::Instant::now();
    http_client::send(shim.addr(), &post(export.encode_to_vec()), t)
        .await
        .expect("slow");
    assert!(started.elapsed() >= Duration::from_millis(300));

    shim.set_mode(ShimMode::Closed).await;
    assert!(
        http_client::send(shim.addr(), &post(export.encode_to_vec()), t)
            .await
            .is_err()
    );
    shim.set_mode(ShimMode::Ok).await;
    let resp = http_client::send(shim.addr(), &post(export.encode_to_vec()), t)
        .await
        .expect("reopened");
    assert_eq!(resp.status, 200);
    assert_eq!(shim.spans().len(), 3);
}

#[test]
fn paths_default_under_the_workspace_root() {
    let root = paths::workspace_root();
    assert!(root.join("rust-toolchain.toml").is_file());
    if std::env::var_os("AETHERFLOW_ENVOY").is_none() {
        assert_eq!(paths::envoy(), root.join(".tools/bin/envoy"));
    }
}
