//! TLS end to end: HTTPS backends with a CA made at test time (rcgen), for every HTTP exporter;
//! untrusted servers refused and counted, mTLS with and without a client certificate, the
//! server name override.
mod exporter_support;

use std::path::Path;

use collector_shim::exporter::{
    build, ExportError, ExporterConfig, ExporterTelemetry, RetryConfig, TlsConfig,
};
use exporter_support::backend::{decode, Backend, Reply};
use exporter_support::pki::Pki;
use exporter_support::sample_batch;

fn no_retry() -> RetryConfig {
    RetryConfig {
        enabled: false,
        ..RetryConfig::default()
    }
}

/// An exporter entry of `kind` for `url` with `tls` and no retries.
fn entry(kind: &str, url: String, tls: TlsConfig) -> ExporterConfig {
    let mut e = match kind {
        "zipkin" => ExporterConfig::zipkin(url),
        "jaeger" => ExporterConfig::jaeger(url),
        _ => ExporterConfig::otlp(url),
    };
    match &mut e {
        ExporterConfig::Zipkin(c) => (c.tls, c.retry) = (tls, no_retry()),
        ExporterConfig::Jaeger(c) => (c.tls, c.retry) = (tls, no_retry()),
        ExporterConfig::Otlp(c) => (c.tls, c.retry) = (tls, no_retry()),
        _ => unreachable!(),
    }
    e
}

fn trusting(ca: &Path) -> TlsConfig {
    TlsConfig {
        ca_file: Some(ca.to_path_buf()),
        ..TlsConfig::default()
    }
}

#[tokio::test]
async fn every_http_exporter_delivers_over_tls_with_a_trusted_ca() {
    let pki = Pki::new();
    for (kind, path, decoder) in [
        ("zipkin", "/api/v2/spans", "zipkin_json.py"),
        ("jaeger", "/api/traces", "jaeger_thrift.py"),
        ("otlp", "/v1/traces", "otlp_proto.py"),
    ] {
        let backend = Backend::start_tls(Reply::status(200), pki.server_config(false)).await;
        let exp = build(
            &entry(kind, backend.url(path), trusting(&pki.ca_file)),
            ExporterTelemetry::default(),
        )
        .unwrap();
        exp.export(&sample_batch())
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let got = backend.received();
        assert!(!got.is_empty(), "{kind}: nothing arrived");
        assert_eq!(got[0].path, path, "{kind}");
        // The body is what the plain-HTTP exporter sends: the independent decoder reads it.
        let decoded = decode(decoder, &got[0].body, &[]);
        assert!(!decoded.is_null(), "{kind}: {decoded}");
        assert_eq!(backend.tls_failures(), 0);
    }
}

#[tokio::test]
async fn an_untrusted_server_is_refused_counted_and_named() {
    let pki = Pki::new();
    let backend = Backend::start_tls(Reply::status(200), pki.server_config(false)).await;
    let url = backend.url("/v1/traces");
    let telemetry = ExporterTelemetry::default();
    // Trusting only another CA: the server's certificate has an unknown issuer.
    let exp = build(
        &entry("otlp", url.clone(), trusting(&pki.other_ca_file)),
        telemetry.clone(),
    )
    .unwrap();
    let err = exp.export(&sample_batch()).await.unwrap_err();
    let ExportError::NonRetryable(msg) = &err else {
        panic!("a certificate problem is not worth a retry: {err}")
    };
    assert!(msg.contains(&url), "names the endpoint: {msg}");
    assert!(
        msg.contains("certificate") && msg.contains("UnknownIssuer"),
        "names the reason: {msg}"
    );
    assert_eq!(telemetry.failed_attempts.get(), 1);
    assert!(backend.received().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_unless_the_name_is_overridden() {
    let pki = Pki::new();
    let backend = Backend::start_tls(Reply::status(200), pki.server_config(false)).await;
    // The certificate names backend.test, localhost and 127.0.0.1: checking it against
    // another name fails, against one of its names succeeds, whatever the URL's host.
    let url = backend.url("/v1/traces");
    let wrong = TlsConfig {
        server_name: Some("collector.example".into()),
        ..trusting(&pki.ca_file)
    };
    let err = build(
        &entry("otlp", url.clone(), wrong),
        ExporterTelemetry::default(),
    )
    .unwrap()
    .export(&sample_batch())
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("not valid for name \"collector.example\""),
        "{err}"
    );
    let right = TlsConfig {
        server_name: Some("backend.test".into()),
        ..trusting(&pki.ca_file)
    };
    build(&entry("otlp", url, right), ExporterTelemetry::default())
        .unwrap()
        .export(&sample_batch())
        .await
        .unwrap();
    assert_eq!(backend.received().len(), 1);
}

#[tokio::test]
async fn mtls_works_with_the_client_certificate_and_fails_without() {
    let pki = Pki::new();
    let backend = Backend::start_tls(Reply::status(200), pki.server_config(true)).await;
    let url = backend.url("/api/v2/spans");
    let with_cert = TlsConfig {
        cert_file: Some(pki.client_cert_file.clone()),
        key_file: Some(pki.client_key_file.clone()),
        ..trusting(&pki.ca_file)
    };
    build(
        &entry("zipkin", url.clone(), with_cert),
        ExporterTelemetry::default(),
    )
    .unwrap()
    .export(&sample_batch())
    .await
    .unwrap();
    assert_eq!(backend.received().len(), 1);

    let telemetry = ExporterTelemetry::default();
    let err = build(
        &entry("zipkin", url, trusting(&pki.ca_file)),
        telemetry.clone(),
    )
    .unwrap()
    .export(&sample_batch())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    assert_eq!(telemetry.failed_attempts.get(), 1);
    assert_eq!(backend.received().len(), 1, "nothing more got through");
    assert!(backend.tls_failures() >= 1);
}

#[test]
fn tls_files_are_checked_at_start_up_with_the_key_named() {
    let pki = Pki::new();
    let junk = pki.dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let cases = [
        (
            TlsConfig {
                ca_file: Some(junk.clone()),
                ..TlsConfig::default()
            },
            "tls.ca_file:",
        ),
        (
            TlsConfig {
                cert_file: Some(pki.client_cert_file.clone()),
                key_file: Some(junk.clone()),
                ..TlsConfig::default()
            },
            "tls.key_file:",
        ),
    ];
    for (tls, want) in cases {
        let e = entry("otlp", "https://127.0.0.1:1/v1/traces".into(), tls);
        let err = e.validate().unwrap_err();
        assert!(err.starts_with(want), "{err}");
    }
}
