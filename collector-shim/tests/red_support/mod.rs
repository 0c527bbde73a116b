//! Fixtures of the RED metrics tests: a real Prometheus server, a shim in this process with real
//! exporters, and an OTLP/HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use collector_shim::app::build_exporters;
use collector_shim::config::Config;
use collector_shim::metrics::Metrics;
use collector_shim::{run_with, Listeners, Summary};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod prometheus;

/// A shim running in this process with the exporters its config names.
pub struct RealShim {
    /// OTLP/HTTP and admin address.
    pub addr: SocketAddr,
    /// Its metrics.
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<Summary, String>>>,
}

impl RealShim {
    /// Starts `cfg` on 127.0.0.1:0.
    pub async fn start(mut cfg: Config) -> RealShim {
        cfg.receiver.http_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let listeners = Listeners::bind(&cfg).await.expect("bind 127.0.0.1:0");
        let addr = listeners.http_addr();
        let metrics = Metrics::new();
        let exporters = build_exporters(&cfg, &metrics).expect("exporters");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run_with(
            cfg,
            listeners,
            exporters,
            metrics.clone(),
            async {
                let _ = rx.await;
            },
        ));
        RealShim {
            addr,
            metrics,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops it (bounded: 30 s).
    pub async fn stop(mut self) -> Summary {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("shutdown within 30 s")
            .expect("run task")
            .expect("run result")
    }
}

/// POSTs one OTLP/HTTP protobuf request; panics unless the shim answers 200.
pub async fn send(http: &reqwest::Client, addr: SocketAddr, req: &ExportTraceServiceRequest) {
    let resp = http
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("shim answers");
    assert_eq!(resp.status(), 200, "the shim took the request");
}

/// GET /metrics with an `Accept` header: (content type, body).
pub async fn scrape(
    http: &reqwest::Client,
    addr: SocketAddr,
    accept: Option<&str>,
) -> (String, String) {
    let mut req = http.get(format!("http://{addr}/metrics"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.expect("shim answers /metrics");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (ct, resp.text().await.expect("metrics body"))
}

/// A trace id as lowercase hex (how exemplars carry it).
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Accept` header Prometheus 2.x sends when its exemplar storage is on.
pub const PROMETHEUS_OM_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
