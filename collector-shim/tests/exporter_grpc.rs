//! OTLP/gRPC exporter against a real gRPC server (the generated `TraceServiceServer` over
//! hyper's HTTP/2), plain and over TLS with a CA made at test time: headers arrive as metadata,
//! gzip is negotiated, status codes map to the retry classes.
mod exporter_support;

use std::sync::{Arc, Mutex};

use collector_shim::exporter::{
    build, ExportError, ExporterConfig, ExporterTelemetry, OtlpProtocol, RetryConfig, TlsConfig,
};
use exporter_support::pki::Pki;
use exporter_support::sample_batch;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};

/// What one call brought.
#[derive(Clone, Debug)]
struct Call {
    spans: usize,
    authorization: Option<String>,
    encoding: Option<String>,
}

/// Records calls; answers `fail` (when set) instead of OK.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
    fail: Option<Code>,
}

#[tonic::async_trait]
impl TraceService for Recorder {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let text = |k: &str| {
            req.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let call = Call {
            spans: req
                .get_ref()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            authorization: text("authorization"),
            encoding: text("grpc-encoding"),
        };
        self.calls.lock().unwrap().push(call);
        match self.fail {
            Some(code) => Err(Status::new(code, "scripted failure")),
            None => Ok(Response::new(ExportTraceServiceResponse::default())),
        }
    }
}

/// Serves `rec` on 127.0.0.1 (TLS when given) and returns the endpoint URL.
async fn serve(rec: Recorder, tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(rec).accept_compressed(CompressionEncoding::Gzip);
    let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                match acceptor {
                    None => {
                        let _ = h2.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            let _ = h2.serve_connection(TokioIo::new(tls), svc).await;
                        }
                    }
                }
            });
        }
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    format!("{scheme}://127.0.0.1:{}", addr.port())
}

fn grpc_entry(endpoint: String, tls: TlsConfig, gzip: bool) -> ExporterConfig {
    let yaml = format!(
        "type: otlp\nprotocol: grpc\nendpoint: '{endpoint}'\ncompression: {}\nheaders: {{authorization: 'Bearer grpc-token'}}\n",
        if gzip { "gzip" } else { "none" }
    );
    let mut e: ExporterConfig = serde_yaml::from_str(&yaml).unwrap();
    if let ExporterConfig::Otlp(c) = &mut e {
        assert_eq!(c.protocol, OtlpProtocol::Grpc);
        c.tls = tls;
        c.retry = RetryConfig {
            enabled: false,
            ..RetryConfig::default()
        };
    }
    e
}

#[tokio::test]
async fn grpc_export_without_tls_with_headers_and_gzip() {
    let rec = Recorder::default();
    let url = serve(rec.clone(), None).await;
    for gzip in [false, true] {
        build(
            &grpc_entry(url.clone(), TlsConfig::default(), gzip),
            ExporterTelemetry::default(),
        )
        .unwrap()
        .export(&sample_batch())
        .await
        .unwrap();
    }
    let calls = rec.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(c.spans, sample_batch().len());
        assert_eq!(c.authorization.as_deref(), Some("Bearer grpc-token"));
    }
    assert_eq!(calls[0].encoding, None);
    assert_eq!(
        calls[1].encoding.as_deref(),
        Some("gzip"),
        "compressed on the wire"
    );
}

#[tokio::test]
async fn grpc_export_over_tls_trusted_and_untrusted() {
    let pki = Pki::new();
    let rec = Recorder::default();
    let url = serve(rec.clone(), Some(pki.server_config(false))).await;
    let trusted = TlsConfig {
        ca_file: Some(pki.ca_file.clone()),
        ..TlsConfig::default()
    };
    build(
        &grpc_entry(url.clone(), trusted, true),
        ExporterTelemetry::default(),
    )
    .unwrap()
    .export(&sample_batch())
    .await
    .unwrap();
    assert_eq!(rec.calls.lock().unwrap().len(), 1);

    let telemetry = ExporterTelemetry::default();
    let untrusted = TlsConfig {
        ca_file: Some(pki.other_ca_file.clone()),
        ..TlsConfig::default()
    };
    let err = build(
        &grpc_entry(url.clone(), untrusted, false),
        telemetry.clone(),
    )
    .unwrap()
    .export(&sample_batch())
    .await
    .unwrap_err();
    let ExportError::NonRetryable(msg) = &err else {
        panic!("{err}")
    };
    assert!(msg.contains(&url) && msg.contains("UnknownIssuer"), "{msg}");
    assert_eq!(telemetry.failed_attempts.get(), 1);
    assert_eq!(rec.calls.lock().unwrap().len(), 1, "nothing more arrived");
}

#[tokio::test]
async fn grpc_status_codes_map_to_retry_classes() {
    for (code, want) in [
        (Code::Unavailable, "retryable"),
        (Code::ResourceExhausted, "throttled"),
        (Code::InvalidArgument, "non-retryable"),
        (Code::Unauthenticated, "non-retryable"),
    ] {
        let rec = Recorder {
            fail: Some(code),
            ..Recorder::default()
        };
        let url = serve(rec, None).await;
        let err = build(
            &grpc_entry(url, TlsConfig::default(), false),
            ExporterTelemetry::default(),
        )
        .unwrap()
        .export(&sample_batch())
        .await
        .unwrap_err();
        assert!(err.to_string().starts_with(want), "{code:?}: {err}");
        assert!(err.to_string().contains("scripted failure"), "{err}");
    }
}
