//! OTLP/gRPC exporter edges against a real tonic server: throttling with `google.rpc.RetryInfo`
//! (the exporter waits at least the delay the server asks for before the next attempt, and gives
//! up at once when that delay would end past `retry.max_elapsed_time`), and endpoints written
//! without a scheme, secured unless `insecure` / `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE` says
//! otherwise.
mod exporter_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collector_shim::config::{load, MapEnv, Overrides};
use collector_shim::exporter::{
    build, ExportError, ExporterConfig, ExporterTelemetry, OtlpProtocol, RetryConfig,
};
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
use tonic::{Code, Request, Response, Status};

/// A protobuf length-delimited field (wire type 2) with a one-byte length.
fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 128);
    let mut out = vec![(tag << 3) | 2, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// `google.rpc.Status{code, message, details: [Any(RetryInfo{retry_delay: seconds})]}`,
/// encoded by hand from the `.proto` definitions (independent of the shim's own types).
fn status_details(code: Code, seconds: u8) -> Vec<u8> {
    let duration = vec![0x08, seconds]; // google.protobuf.Duration.seconds = 1 (varint)
    let retry_info = field(1, &duration); // RetryInfo.retry_delay = 1
    let mut any = field(1, b"type.googleapis.com/google.rpc.RetryInfo"); // Any.type_url = 1
    any.extend(field(2, &retry_info)); // Any.value = 2
    let mut status = vec![0x08, code as u8]; // Status.code = 1
    status.extend(field(2, b"slow down")); // Status.message = 2
    status.extend(field(3, &any)); // Status.details = 3
    status
}

/// Answers the first `throttle` calls with `code` and a RetryInfo of `delay_s`, then OK; keeps
/// when each call arrived.
#[derive(Clone)]
struct Throttler {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    throttle: usize,
    code: Code,
    delay_s: u8,
}

#[tonic::async_trait]
impl TraceService for Throttler {
    async fn export(
        &self,
        _req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let n = {
            let mut a = self.arrivals.lock().unwrap();
            a.push(Instant::now());
            a.len()
        };
        if n <= self.throttle {
            return Err(Status::with_details(
                self.code,
                "slow down",
                status_details(self.code, self.delay_s).into(),
            ));
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn serve(svc: Throttler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(svc);
    tokio::spawn(async move {
        // Bounded: the tests below make at most a handful of connections.
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                let _ = h2.serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    format!("http://127.0.0.1:{}", addr.port())
}

fn entry(endpoint: &str, retry: RetryConfig) -> ExporterConfig {
    let yaml = format!("type: otlp\nprotocol: grpc\nendpoint: '{endpoint}'\n");
    let mut e: ExporterConfig = serde_yaml::from_str(&yaml).unwrap();
    if let ExporterConfig::Otlp(c) = &mut e {
        c.retry = retry;
    }
    e
}

/// Backoff alone would retry within a millisecond.
fn quick_retry(max_elapsed: Duration) -> RetryConfig {
    RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(1),
        max_interval: Duration::from_millis(1),
        multiplier: 1.0,
        max_elapsed_time: max_elapsed,
    }
}

#[tokio::test]
async fn the_retry_info_delay_is_waited_before_the_next_attempt() {
    for code in [Code::Unavailable, Code::ResourceExhausted] {
        let server = Throttler {
            arrivals: Arc::default(),
            throttle: 1,
            code,
            delay_s: 1,
        };
        let url = serve(server.clone()).await;
        let telemetry = ExporterTelemetry::default();
        build(
            &entry(&url, quick_retry(Duration::from_secs(30))),
            telemetry.clone(),
        )
        .unwrap()
        .export(&sample_batch())
        .await
        .unwrap_or_else(|e| panic!("{code:?}: {e}"));
        let arrivals = server.arrivals.lock().unwrap().clone();
        assert_eq!(arrivals.len(), 2, "{code:?}: one throttled call, one retry");
        let gap = arrivals[1] - arrivals[0];
        assert!(
            gap >= Duration::from_secs(1),
            "{code:?}: retried after {gap:?}, before the 1 s the server asked for"
        );
        assert_eq!(telemetry.retries.get(), 1);
    }
}

#[tokio::test]
async fn a_retry_info_delay_past_the_time_budget_gives_up_at_once() {
    let server = Throttler {
        arrivals: Arc::default(),
        throttle: usize::MAX,
        code: Code::Unavailable,
        delay_s: 120,
    };
    let url = serve(server.clone()).await;
    let err = build(
        &entry(&url, quick_retry(Duration::from_secs(5))),
        ExporterTelemetry::default(),
    )
    .unwrap()
    .export(&sample_batch())
    .await
    .unwrap_err();
    let ExportError::Throttled {
        retry_after,
        message,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(120)));
    assert!(message.contains("slow down"), "{message}");
    assert_eq!(server.arrivals.lock().unwrap().len(), 1, "no retry in vain");
}

/// The OTLP entry the loader makes of `pairs` (with `OTEL_TRACES_EXPORTER=otlp`).
fn load_otlp(
    pairs: &[(&str, &str)],
) -> Result<ExporterConfig, collector_shim::config::ConfigError> {
    let mut all = vec![("OTEL_TRACES_EXPORTER", "otlp")];
    all.extend_from_slice(pairs);
    let cfg = load(None, &MapEnv::from_pairs(&all), &Overrides::default())?;
    Ok(cfg.exporters.into_iter().next().expect("an exporter"))
}

fn endpoint(e: &ExporterConfig) -> String {
    match e {
        ExporterConfig::Otlp(c) => c.endpoint.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_scheme_less_grpc_endpoint_is_secure_unless_insecure() {
    let server = Throttler {
        arrivals: Arc::default(),
        throttle: 0,
        code: Code::Ok,
        delay_s: 0,
    };
    let url = serve(server.clone()).await;
    let host_port = url.trim_start_matches("http://").to_string();
    let no_retry = RetryConfig {
        enabled: false,
        ..RetryConfig::default()
    };

    // Insecure (the variable, either form): plain text reaches the plain server.
    for var in [
        "OTEL_EXPORTER_OTLP_INSECURE",
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    ] {
        let mut e = load_otlp(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &host_port),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            (var, "TRUE"),
        ])
        .unwrap();
        assert_eq!(endpoint(&e), format!("http://{host_port}"), "{var}");
        if let ExporterConfig::Otlp(c) = &mut e {
            c.retry = no_retry.clone();
        }
        build(&e, ExporterTelemetry::default())
            .unwrap()
            .export(&sample_batch())
            .await
            .unwrap_or_else(|err| panic!("{var}: {err}"));
    }
    assert_eq!(server.arrivals.lock().unwrap().len(), 2);

    // Secure by default (and with `false`): a TLS handshake the plain server cannot answer.
    for pairs in [
        vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", host_port.as_str())],
        vec![
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", host_port.as_str()),
            ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
        ],
    ] {
        let mut all = pairs.clone();
        all.push(("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"));
        let mut e = load_otlp(&all).unwrap();
        assert_eq!(endpoint(&e), format!("https://{host_port}"), "{pairs:?}");
        if let ExporterConfig::Otlp(c) = &mut e {
            c.retry = no_retry.clone();
        }
        let err = build(&e, ExporterTelemetry::default())
            .unwrap()
            .export(&sample_batch())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&host_port), "{err}");
    }
    assert_eq!(
        server.arrivals.lock().unwrap().len(),
        2,
        "no call arrived in the clear"
    );

    // The config key does the same; a scheme, when written, decides.
    let yaml = format!("type: otlp\nprotocol: grpc\nendpoint: '{host_port}'\ninsecure: true\n");
    let e: ExporterConfig = serde_yaml::from_str(&yaml).unwrap();
    e.validate().unwrap();
    assert_eq!(endpoint(&e.resolved()), format!("http://{host_port}"));
    let yaml = "type: otlp\nprotocol: grpc\nendpoint: 'https://c:4317'\ninsecure: true\n";
    let e: ExporterConfig = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(endpoint(&e.resolved()), "https://c:4317");
}

#[test]
fn insecure_values_and_scopes() {
    // Only true or false, case-insensitively; anything else names the variable.
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_INSECURE", "yes"),
        ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "1"),
    ] {
        let err = load_otlp(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), (var, value)]).unwrap_err();
        assert_eq!(err.key, var, "{err}");
    }
    // The _TRACES_ form wins.
    let e = load_otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "False"),
    ])
    .unwrap();
    assert_eq!(endpoint(&e), "https://collector:4317");
    // OTLP/HTTP always takes the endpoint's scheme: none is still an error, insecure or not.
    let err = load_otlp(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ])
    .unwrap_err();
    assert_eq!(err.key, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{err}");
    let ExporterConfig::Otlp(c) = load_otlp(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(c.protocol, OtlpProtocol::Grpc);
    assert!(!c.insecure, "secure by default");
}
