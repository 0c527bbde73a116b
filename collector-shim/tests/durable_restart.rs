//! The real `collector-shim` binary with the durable queue, in the middle of a backend outage:
//! SIGKILL while clients are sending, and SIGTERM, then a restart against the recovered backend:
//! every span answered 200 before the signal is delivered (at least once: duplicates are
//! counted here, and none are expected when the backend took nothing before the signal).
//! Damaged queue files at start-up are counted and skipped, and the binary starts anyway.
mod pipeline_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pipeline_support::shim_process::{self, ShimProcess};
use pipeline_support::*;

/// A config file for the binary: one OTLP exporter to `backend`, the queue under `dir`.
fn write_config(dir: &Path, backend: SocketAddr) -> PathBuf {
    let path = dir.join("shim.yaml");
    let text = format!(
        "receiver: {{ http_listen: '127.0.0.1:0' }}\n\
         batch: {{ max_export_batch_size: 50, batch_timeout: 20ms, \
         storage: {{ directory: '{}' }} }}\n\
         exporters:\n  - type: otlp\n    endpoint: 'http://{backend}/v1/traces'\n    timeout: 2s\n    \
         retry: {{ initial_interval: 20ms, max_interval: 50ms, max_elapsed_time: 100ms }}\n\
         shutdown_timeout: 3s\n",
        dir.join("queue").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Span numbers the backend received, and how many arrived more than once.
fn delivered(received: &otlp_backend::Received) -> (HashSet<u64>, usize) {
    let spans = received.spans.lock().unwrap();
    let ids: Vec<u64> = spans
        .iter()
        .map(|s| u64::from_be_bytes(s.span_id.clone().try_into().unwrap()) - 1)
        .collect();
    let unique: HashSet<u64> = ids.iter().copied().collect();
    let dups = ids.len() - unique.len();
    (unique, dups)
}

fn spans_of(tags: &[u32]) -> HashSet<u64> {
    tags.iter()
        .flat_map(|t| (0..50).map(move |i| u64::from(t * 1000 + i)))
        .collect()
}

/// Sends SIGTERM and waits (bounded, 15 s) for the exit status.
fn terminate(shim: &mut ShimProcess) -> std::process::ExitStatus {
    shim.terminate(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no exit within 15 s of SIGTERM:\n{}", shim.log()))
}

/// One test's set-up: an OTLP backend (refusing everything while `down`), the binary's config
/// with its queue in a temporary directory, and a client.
struct Rig {
    received: Arc<otlp_backend::Received>,
    dir: tempfile::TempDir,
    config: PathBuf,
    client: reqwest::Client,
}

impl Rig {
    /// The rig and the first shim.
    async fn start(backend_down: bool) -> (Rig, ShimProcess) {
        let (backend, received) = otlp_backend::start().await;
        if backend_down {
            received.refuse_next.store(usize::MAX, Ordering::SeqCst);
        }
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), backend);
        let shim = shim_process::start_async(&config).await;
        let rig = Rig {
            received,
            dir,
            config,
            client: reqwest::Client::new(),
        };
        (rig, shim)
    }

    /// The backend takes batches again and the shim starts on the same queue.
    async fn recover(&self) -> ShimProcess {
        self.received.refuse_next.store(0, Ordering::SeqCst);
        shim_process::start_async(&self.config).await
    }

    /// Posts numbered requests from `clients` senders (each its own range of 500 tags, at most
    /// `per_client`) until the shim stops answering; returns the tags answered 200 so far.
    fn send(&self, addr: SocketAddr, clients: u32, per_client: u32) -> Sending {
        let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
        let senders = (0..clients)
            .map(|c| {
                let (client, answered) = (self.client.clone(), answered.clone());
                tokio::spawn(async move {
                    for tag in (c * per_client)..(c * per_client + per_client) {
                        match post_numbered(&client, addr, tag).await {
                            200 => answered.lock().unwrap().push(tag),
                            _ => break, // the shim is gone
                        }
                    }
                })
            })
            .collect();
        Sending { answered, senders }
    }

    /// Waits (bounded, 60 s) until every span of `want` has reached the backend.
    async fn wait_delivered(&self, want: &HashSet<u64>, shim: &ShimProcess) {
        assert!(
            eventually(60, || want.is_subset(&delivered(&self.received).0)).await,
            "{} of {} spans delivered\n{}",
            want.intersection(&delivered(&self.received).0).count(),
            want.len(),
            shim.log()
        );
    }
}

/// Clients sending numbered requests.
struct Sending {
    answered: Arc<std::sync::Mutex<Vec<u32>>>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Sending {
    fn count(&self) -> usize {
        self.answered.lock().unwrap().len()
    }

    /// Waits for the senders to stop (the shim is gone); the tags answered 200.
    async fn answered(self) -> Vec<u32> {
        for s in self.senders {
            s.await.unwrap();
        }
        let answered = self.answered.lock().unwrap().clone();
        answered
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_clients_send_loses_no_span_answered_200() {
    let (rig, mut shim) = Rig::start(true).await;
    let received = &rig.received;
    // Two clients send while the backend is down; the shim is killed in the middle.
    let sending = rig.send(shim.addr, 2, 500);
    assert!(
        eventually(30, || sending.count() >= 20).await,
        "{}",
        shim.log()
    );
    shim.kill(); // SIGKILL
    let answered = sending.answered().await;
    assert!(received.count() == 0, "the backend was down the whole time");

    let shim = rig.recover().await;
    let want = spans_of(&answered);
    rig.wait_delivered(&want, &shim).await;
    let text = scrape(&rig.client, shim.addr).await;
    let recovered = metric_value(
        &text,
        "shim_storage_recovered_spans_total{exporter=\"otlp\"}",
    );
    assert!(recovered >= want.len() as f64, "{text}");
    let (_, dups) = delivered(received);
    assert_eq!(
        dups, 0,
        "nothing was exported before the kill, so nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_outage_keeps_the_queue_for_the_next_start() {
    let (rig, mut shim) = Rig::start(true).await;
    let received = &rig.received;
    let tags: Vec<u32> = (0..20).collect();
    for &tag in &tags {
        assert_eq!(post_numbered(&rig.client, shim.addr, tag).await, 200);
    }
    let (status, _stopped) = tokio::task::spawn_blocking(move || (terminate(&mut shim), shim))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(received.count(), 0);

    let shim = rig.recover().await;
    let want = spans_of(&tags);
    assert!(
        eventually(60, || delivered(received).0 == want).await,
        "{} of {} delivered\n{}",
        delivered(received).0.len(),
        want.len(),
        shim.log()
    );
    assert_eq!(delivered(received).1, 0, "no duplicates");
}

/// Paths of the exporter's segment files, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("queue/otlp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_queue_files_at_start_up_are_counted_and_skipped() {
    let (rig, mut shim) = Rig::start(true).await;
    let (received, dir) = (&rig.received, &rig.dir);
    for tag in 0..10 {
        assert_eq!(post_numbered(&rig.client, shim.addr, tag).await, 200);
    }
    tokio::task::spawn_blocking(move || terminate(&mut shim))
        .await
        .unwrap();
    // Each request is one record. Damage the first record's payload, cut the last record
    // short, and leave a file that is not a segment.
    let segs = segments(dir.path());
    let first = &segs[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[8 + 12 + 40] ^= 0xff;
    std::fs::write(first, bytes).unwrap();
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    std::fs::write(
        dir.path().join("queue/otlp/00000000000000000999.seg"),
        [0u8; 100],
    )
    .unwrap();

    let shim = rig.recover().await;
    let want = spans_of(&(1..9).collect::<Vec<_>>());
    assert!(
        eventually(60, || delivered(received).0 == want).await,
        "{} delivered, want {}\n{}",
        delivered(received).0.len(),
        want.len(),
        shim.log()
    );
    let text = scrape(&rig.client, shim.addr).await;
    for reason in ["checksum", "truncated", "header"] {
        let series =
            format!("shim_storage_corrupt_records_total{{exporter=\"otlp\",reason=\"{reason}\"}}");
        assert_eq!(metric_value(&text, &series), 1.0, "{series}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_exporting_sends_at_most_one_batch_twice() {
    let (rig, mut shim) = Rig::start(false).await;
    let received = &rig.received;
    let sending = rig.send(shim.addr, 1, 2000);
    // Killed while the backend is taking batches.
    assert!(
        eventually(30, || received.count() >= 1000).await,
        "{}",
        shim.log()
    );
    shim.kill();
    let answered = sending.answered().await;
    let shim = rig.recover().await;
    let want = spans_of(&answered);
    rig.wait_delivered(&want, &shim).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // At least once: the batch in flight at the kill may arrive twice, nothing else.
    let (_, dups) = delivered(received);
    assert!(dups <= 50, "{dups} spans delivered twice");
    println!("duplicates after SIGKILL while exporting: {dups} spans");
}

#[test]
fn an_unusable_queue_directory_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let config = dir.path().join("shim.yaml");
    std::fs::write(
        &config,
        format!(
            "receiver: {{ http_listen: '127.0.0.1:0' }}\nbatch: {{ storage: {{ directory: '{}' }} }}\n",
            not_a_dir.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_collector-shim"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: it must exit on its own within 15 s.
    let status = aetherflow_harness::process::wait_for_exit(&mut child, Duration::from_secs(15));
    let Some(status) = status else {
        let _ = child.kill();
        panic!("still running with an unusable queue directory");
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("batch.storage.directory"), "{err}");
}
