//! Console exporter: the trace-tree layout users see in `make demo`.
mod exporter_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use collector_shim::exporter::console::ConsoleExporter;
use collector_shim::exporter::Exporter;
use exporter_support::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn print(batch: &[collector_shim::model::SpanRecord]) -> String {
    let buf = Shared::default();
    let exporter = ConsoleExporter::with_writer("console", Box::new(buf.clone()));
    exporter.export(batch).await.unwrap();
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn prints_one_tree_per_trace_with_children_indented() {
    let mut batch = sample_batch();
    // A second trace arriving in the same batch, with a single root.
    batch.push(record(
        "billing",
        span(7, 0x9, 0, "POST /pay", SpanKind::Server, 100, 2_000),
    ));
    let out = print(&batch).await;
    println!("{out}");
    // Each trace ends with a blank line.
    assert_eq!(out.matches("\n\n").count(), 2, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(lines[0].starts_with("trace 4bf92f3577b34da6a3ce929d0e0e4736 · 3 spans · 12.40 ms · envoy-proxy, users · 1 error(s)"), "{}", lines[0]);
    assert!(
        lines[1].starts_with(
            "  └─ GET /api/users/{id} [envoy-proxy] SERVER 12.40 ms @+0.00 ms http=503"
        ),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("error.type=503"));
    assert!(lines[1].contains("ERROR: upstream unavailable"));
    assert!(lines[1].contains("(parent 00f067aa0ba902b7 not in batch)"));
    // Children in start order, under the server span.
    assert!(
        lines[2]
            .starts_with("     ├─ users.Users/Get [users] CLIENT 3.10 ms @+0.30 ms grpc=NOT_FOUND"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("     └─ render [envoy-proxy] INTERNAL 0.00 ms @+3.50 ms"),
        "{}",
        lines[3]
    );
    assert!(lines[3].contains("[record-only, kept by tail sampling]"));
    assert!(
        lines[4].starts_with("trace 00000000000000000000000000000007 · 1 span · 2.00 ms · billing")
    );
    assert!(lines[5].starts_with("  └─ POST /pay [billing] SERVER 2.00 ms"));
}

#[tokio::test]
async fn parent_cycles_and_deep_chains_are_bounded() {
    // a <-> b point at each other: neither is a root, both still printed once.
    let a = span(TRACE, 1, 2, "a", SpanKind::Internal, 0, 10);
    let b = span(TRACE, 2, 1, "b", SpanKind::Internal, 1, 10);
    let out = print(&[record("svc", a), record("svc", b)]).await;
    assert_eq!(out.matches(" [svc] ").count(), 2, "{out}");

    // A 200-deep chain: indentation stops growing at the depth cap.
    let chain: Vec<_> = (1..=200u64)
        .map(|n| {
            record(
                "svc",
                span(TRACE, n, n - 1, &format!("s{n}"), SpanKind::Internal, n, 1),
            )
        })
        .collect();
    let out = print(&chain).await;
    assert_eq!(out.lines().filter(|l| !l.is_empty()).count(), 201);
    let widest = out.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 250, "indent must be bounded, widest line {widest}");
}

#[tokio::test]
async fn empty_batch_prints_nothing() {
    assert_eq!(print(&[]).await, "");
}
