//! Criterion benchmark of the shim's hot path on one core: OTLP decode -> sample -> batch ->
//! Zipkin v2 JSON encode, against decode alone (the ceiling) in the same run.
//!
//! The input is what the filter really sends: OTLP protobuf bodies of 256 spans built by
//! `aetherflow-core` (the filter's own span model and encoder), each span with its own trace id.
//! The pipeline runs through the shim's real stages: `receiver::decode` (parse + records),
//! `sampler::Sampler` (consistent probability 1.0, the path every span takes when no tail
//! policy is set), the real `batcher` (bounded queue + task, batches of 512) on a
//! current-thread runtime (one core), and `exporter::zipkin::encode` in an exporter that keeps
//! the bytes instead of sending them. Elements = spans, so criterion prints spans/s. The pipeline
//! runs twice, without and with the RED metrics stage (`red::RedMetrics`: every span counted
//! before sampling, every exported span offered as an exemplar), for the stage's cost per span.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aetherflow_core::head::{decide, Policy};
use aetherflow_core::ids::IdGenerator;
use aetherflow_core::propagation::Extracted;
use aetherflow_core::semconv::{EnvoyFacts, Exchange};
use aetherflow_core::span::SpanKind;
use collector_shim::batcher;
use collector_shim::config::{BatchConfig, SamplingConfig};
use collector_shim::exporter::{zipkin, ExportError, Exporter};
use collector_shim::metrics::Metrics;
use collector_shim::model::SpanRecord;
use collector_shim::receiver::decode::{into_records, parse, Encoding, ResourceDefaults};
use collector_shim::red::{RedConfig, RedMetrics};
use collector_shim::sampler::Sampler;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Spans per OTLP request (the filter's default `max_batch_spans`).
const SPANS_PER_REQUEST: usize = 256;
/// Requests per iteration: 2048 spans, four full Zipkin batches of 512.
const REQUESTS: usize = 8;

/// OTLP bodies as the filter sends them.
fn filter_bodies() -> Vec<Vec<u8>> {
    let cfg = aetherflow_core::config::Config::default();
    let policy = Policy::from_config(&cfg);
    let resource = aetherflow_core::otlp::resource(&cfg);
    let mut ids = IdGenerator::from_u64(7);
    let ex = Exchange {
        method: "GET".into(),
        path: "/api/items/42".into(),
        scheme: "http".into(),
        authority: "shop.example.com:8080".into(),
        protocol: Some("HTTP/1.1".into()),
        user_agent: Some("curl/8.5.0".into()),
        client_address: Some("10.1.2.3".into()),
        status: Some(200),
        envoy: EnvoyFacts {
            route_name: Some("items_route".into()),
            upstream_cluster: Some("items".into()),
            upstream_address: Some("10.1.9.9:8080".into()),
            request_id: Some("5d4b7b0e-2f3c-4c2a-9d6e-1b2c3d4e5f60".into()),
            from_upstream: Some(true),
            ..Default::default()
        },
        ..Default::default()
    };
    (0..REQUESTS)
        .map(|r| {
            let spans = (0..SPANS_PER_REQUEST).map(|i| {
                let start = 1_700_000_000_000_000_000 + (r * SPANS_PER_REQUEST + i) as u64 * 1000;
                decide(&policy, Extracted::default(), false, &mut ids).to_span(
                    ex.clone(),
                    SpanKind::Server,
                    256,
                    start,
                    start + 42_000,
                )
            });
            aetherflow_core::otlp::encode(&resource, spans)
        })
        .collect()
}

/// The end of the pipeline: Zipkin-encodes each batch and keeps only the byte count.
struct ZipkinToMemory {
    spans: Arc<AtomicU64>,
    bytes: AtomicU64,
}

#[async_trait::async_trait]
impl Exporter for ZipkinToMemory {
    fn name(&self) -> &str {
        "zipkin-memory"
    }
    async fn export(&self, batch: &[SpanRecord]) -> Result<(), ExportError> {
        let (body, _skipped) = zipkin::encode(batch);
        self.bytes
            .fetch_add(black_box(body.len()) as u64, Ordering::Relaxed);
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn decode(body: &[u8], defaults: &ResourceDefaults) -> Vec<SpanRecord> {
    let request = parse(body, Encoding::Protobuf).expect("the filter's body decodes");
    into_records(request, defaults).spans
}

fn benches(c: &mut Criterion) {
    let bodies = filter_bodies();
    let defaults = ResourceDefaults::default();
    let total = (REQUESTS * SPANS_PER_REQUEST) as u64;

    let mut g = c.benchmark_group("shim_pipeline");
    g.throughput(Throughput::Elements(total));

    g.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut n = 0;
            for body in &bodies {
                n += decode(black_box(body), &defaults).len();
            }
            assert_eq!(n as u64, total);
        })
    });

    // The whole pipeline, with the RED metrics stage off and on in the same run (the stage counts
    // every span before sampling; with probability 1.0 every span is also exported, so every span
    // is confirmed as an exemplar candidate too: its worst case).
    for (name, red) in [
        ("decode_sample_batch_zipkin_encode", None),
        (
            "decode_red_sample_batch_zipkin_encode",
            Some(RedMetrics::new(&RedConfig::default(), Instant::now())),
        ),
    ] {
        full_pipeline(&mut g, name, &bodies, &defaults, red);
    }

    // The Zipkin mapping and JSON encoding alone, for the breakdown.
    let records: Vec<SpanRecord> = bodies.iter().flat_map(|b| decode(b, &defaults)).collect();
    g.bench_function("zipkin_encode_only", |b| {
        b.iter(|| {
            for batch in records.chunks(512) {
                black_box(zipkin::encode(batch));
            }
        })
    });
    // The RED stage alone: every span counted, then confirmed as an exemplar candidate.
    let red = RedMetrics::new(&RedConfig::default(), Instant::now());
    g.bench_function("red_record_and_confirm_only", |b| {
        b.iter(|| {
            for batch in records.chunks(SPANS_PER_REQUEST) {
                red.record(black_box(batch), Instant::now());
                red.confirm(batch);
            }
        })
    });
    g.finish();

    otlp_sinks(c, &records);
}

/// One pipeline benchmark: decode -> [RED] -> sample -> batch -> Zipkin encode.
fn full_pipeline(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    bodies: &[Vec<u8>],
    defaults: &ResourceDefaults,
    red: Option<RedMetrics>,
) {
    let total = (REQUESTS * SPANS_PER_REQUEST) as u64;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let exported = Arc::new(AtomicU64::new(0));
    let exporter = Arc::new(ZipkinToMemory {
        spans: exported.clone(),
        bytes: AtomicU64::new(0),
    });
    let metrics = Metrics::new();
    let batch_cfg = BatchConfig {
        // Deep enough that one iteration never drops: the figure is throughput, not shedding.
        max_queue_size: 4 * total as usize,
        max_export_batch_size: Some(512),
        batch_timeout: Duration::from_secs(5),
        export_timeout: Duration::from_secs(30),
        storage: None,
    };
    let (handle, _task) = runtime.block_on(async {
        batcher::spawn_confirming("zipkin", exporter, &batch_cfg, metrics.clone(), red.clone())
    });
    let mut sampler = Sampler::new(&SamplingConfig::default(), metrics, Instant::now());
    let mut kept = Vec::with_capacity(SPANS_PER_REQUEST);

    g.bench_function(name, |b| {
        b.iter(|| {
            runtime.block_on(async {
                let target = exported.load(Ordering::Relaxed) + total;
                for body in bodies {
                    let spans = decode(black_box(body), defaults);
                    let now = Instant::now();
                    if let Some(r) = &red {
                        r.record(&spans, now);
                    }
                    sampler.offer(spans, now, &mut kept);
                    for span in kept.drain(..) {
                        handle.offer(span);
                    }
                    // Let the batcher task run between requests, as the receiver does.
                    tokio::task::yield_now().await;
                }
                let deadline = Instant::now() + Duration::from_secs(30);
                while exported.load(Ordering::Relaxed) < target {
                    assert!(Instant::now() < deadline, "the batcher stalled");
                    tokio::task::yield_now().await;
                }
            })
        })
    });
}

/// The certificates of the TLS tests (a CA made with rcgen at run time).
#[path = "../tests/exporter_support/pki.rs"]
#[allow(dead_code)]
mod pki;

/// A minimal OTLP/HTTP sink on 127.0.0.1 (TLS when given): reads each body, answers 200.
async fn sink(tls: Option<Arc<rustls::ServerConfig>>) -> String {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sink");
    let addr = listener.local_addr().expect("sink address");
    let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let n = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().len())
                            .unwrap_or(0);
                        black_box(n);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            bytes::Bytes::new(),
                        )))
                    },
                );
                let http1 = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    None => drop(http1.serve_connection(TokioIo::new(tcp), svc).await),
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            drop(http1.serve_connection(TokioIo::new(tls), svc).await);
                        }
                    }
                }
            });
        }
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{addr}/v1/traces")
}

/// The OTLP/HTTP exporter to a local sink, plain and TLS, in the same run: the cost of TLS on
/// the export path (keep-alive: one handshake, then record encryption).
fn otlp_sinks(c: &mut Criterion, records: &[SpanRecord]) {
    use collector_shim::exporter::{build, ExporterConfig, ExporterTelemetry, TlsConfig};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pki = pki::Pki::new();
    let mut g = c.benchmark_group("shim_otlp_export");
    g.throughput(Throughput::Elements(records.len() as u64));
    // `https_sink_aes256` makes the sink choose AES-256-GCM (its own first suite) over the
    // client's preference: the suite rustls negotiated before the exporter put AES-128-GCM first.
    for (name, tls) in [
        ("http_sink", None),
        ("https_sink", Some(pki.server_config(false))),
        ("https_sink_aes256", {
            let mut cfg = (*pki.server_config(false)).clone();
            cfg.ignore_client_order = true;
            Some(Arc::new(cfg))
        }),
    ] {
        let url = runtime.block_on(sink(tls.clone()));
        let mut cfg = ExporterConfig::otlp(url);
        if let ExporterConfig::Otlp(c) = &mut cfg {
            if tls.is_some() {
                c.tls = TlsConfig {
                    ca_file: Some(pki.ca_file.clone()),
                    ..TlsConfig::default()
                };
            }
        }
        let exporter = build(&cfg, ExporterTelemetry::default()).expect("otlp exporter");
        g.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    for batch in records.chunks(512) {
                        exporter.export(batch).await.expect("the sink accepts");
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = pipeline;
    // Short runs: `make bench` must stay within its time budget on 2 shared cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = benches
}
criterion_main!(pipeline);
