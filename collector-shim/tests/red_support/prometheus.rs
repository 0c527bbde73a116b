//! A real Prometheus server (Debian's `prometheus` package, installed by scripts/install-tools.sh)
//! scraping one target every 200 ms with exemplar storage on: bound to 127.0.0.1, its data in a
//! temporary directory, killed on drop. Queried through its HTTP API.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `prometheus` binary: `AETHERFLOW_PROMETHEUS`, else on PATH. `None` (the test is skipped with
/// a loud line) only outside CI: under `CI=true` a missing server fails the test, since
/// scripts/install-tools.sh installs it there.
pub fn binary() -> Option<PathBuf> {
    let candidate = std::env::var_os("AETHERFLOW_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("prometheus"));
    let works = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(candidate);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "prometheus is not installed (Debian package `prometheus`, scripts/install-tools.sh)"
    );
    eprintln!("SKIPPED: prometheus is not installed (run scripts/install-tools.sh)");
    None
}

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    /// Its HTTP API, `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// A free port on 127.0.0.1 (Prometheus cannot report a port 0 it bound, so one is chosen here;
/// the window between closing it and Prometheus binding it is tiny).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Prometheus {
    /// Starts `bin` scraping `http://<target>/metrics`; waits (bounded, 30 s) until it is ready.
    pub async fn start(bin: &PathBuf, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n\
                 scrape_configs:\n  - job_name: shim\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = p.http.get(format!("{}/-/ready", p.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .expect("prometheus answers");
        let bytes = resp.bytes().await.expect("prometheus body");
        let body: Value = serde_json::from_slice(&bytes).expect("prometheus JSON");
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// An instant query: `(labels, value)` per series.
    pub async fn query(&self, q: &str) -> Vec<(Value, f64)> {
        let data = self.get("/api/v1/query", &[("query", q.to_string())]).await;
        data["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let v = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                (r["metric"].clone(), v)
            })
            .collect()
    }

    /// One number (the sum of what `q` returns; 0 when it returns nothing).
    pub async fn scalar(&self, q: &str) -> f64 {
        self.query(q).await.iter().map(|(_, v)| v).sum()
    }

    /// Exemplars of the series `q` selects over the last ten minutes:
    /// `(series labels, exemplar labels, value)`.
    pub async fn exemplars(&self, q: &str) -> Vec<(Value, Value, f64)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let data = self
            .get(
                "/api/v1/query_exemplars",
                &[
                    ("query", q.to_string()),
                    ("start", (now - 600).to_string()),
                    ("end", (now + 60).to_string()),
                ],
            )
            .await;
        let mut out = Vec::new();
        for series in data.as_array().cloned().unwrap_or_default() {
            for e in series["exemplars"].as_array().cloned().unwrap_or_default() {
                let v = e["value"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                out.push((series["seriesLabels"].clone(), e["labels"].clone(), v));
            }
        }
        out
    }

    /// Whether the last scrape of the target succeeded (`up == 1`), with its error otherwise.
    pub async fn target_health(&self) -> String {
        let data = self.get("/api/v1/targets", &[]).await;
        let t = &data["activeTargets"][0];
        format!("{} {}", t["health"], t["lastError"])
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
