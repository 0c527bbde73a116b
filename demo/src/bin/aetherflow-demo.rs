//! `make demo`: the whole pipeline on 127.0.0.1 without Docker. Starts the demo services, the
//! collector shim (file + console exporters) and real Envoy with the filter, sends the demo's
//! traffic, prints every trace as a tree and checks it, then stops everything.
//!
//! `--keep-running` (or `DEMO_KEEP=1`) leaves it up for manual requests until Ctrl-C; the shim's
//! console exporter then prints each new trace.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use aetherflow_demo::client::DemoClient;
use aetherflow_demo::scenarios::{self, Sent};
use aetherflow_demo::stack::{Stack, StackOptions};
use aetherflow_demo::trace_view;
use aetherflow_harness::form::Form;

/// The shim configuration of the demo: the embedded exporters (a JSON-lines file the runner
/// renders, and the console trees), an error and a latency tail policy, short timers.
fn shim_config(spans_file: &std::path::Path) -> String {
    format!(
        r#"sampling:
  probability: 1.0
  tail:
    decision_wait: 1s
    policies:
      - type: error
      - type: latency
        threshold: 250ms
batch:
  batch_timeout: 200ms
shutdown_timeout: 10s
exporters:
  - type: file
    path: "{}"
  - type: console
"#,
        spans_file.display()
    )
}

#[tokio::main]
async fn main() {
    let keep = std::env::args().any(|a| a == "--keep-running")
        || std::env::var("DEMO_KEEP").is_ok_and(|v| v == "1" || v == "true");
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: aetherflow-demo [--keep-running] [--native]   (or DEMO_KEEP=1, FILTER=native)"
        );
        return;
    }
    let form = match std::env::var("FILTER").as_deref() {
        _ if std::env::args().any(|a| a == "--native") => Form::Native,
        Ok("native") => Form::Native,
        Ok("wasm") | Ok("") | Err(_) => Form::Wasm,
        Ok(other) => {
            eprintln!("FILTER={other}: expected `wasm` (the default) or `native`");
            std::process::exit(2);
        }
    };
    match run(keep, form).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            std::process::exit(2);
        }
    }
}

async fn run(keep: bool, form: Form) -> Result<bool, String> {
    let started = Instant::now();
    let module = match form {
        Form::Wasm => "trace_filter.wasm",
        Form::Native => "the native module libaetherflow_trace.so",
    };
    println!("AetherFlow demo: real Envoy 1.40 + {module} + collector-shim + demo services, all on 127.0.0.1\n");
    let spans_dir = tempfile::Builder::new()
        .prefix("aetherflow-demo-spans-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let spans_file = spans_dir.path().join("spans.jsonl");
    let opts = StackOptions {
        shim_config: Some(shim_config(&spans_file)),
        shim_inherit_stdout: keep,
        form,
        ..Default::default()
    };
    let mut step = 0;
    let mut stack = Stack::start(opts, &mut |what| {
        step += 1;
        println!(
            "[{step}/5] {what} ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    })
    .await?;
    let base = stack.ingress_url();
    let egress = stack.egress_url();
    println!(
        "      Envoy ingress {base}, admin http://{}, shim http://{}",
        stack.envoy.admin_addr(),
        stack
            .shim
            .as_ref()
            .map(|s| s.addr.to_string())
            .unwrap_or_default()
    );

    println!(
        "[4/5] sending traffic through Envoy ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let client = DemoClient::new(Duration::from_secs(30));
    let mut sent: Vec<Sent> = Vec::new();
    for scenario in scenarios::all() {
        let s = scenarios::send(&client, &base, &egress, scenario).await;
        println!("      {:<12} {}", s.scenario.label, s.summary());
        sent.push(s);
    }

    // The shim's RED metrics (OpenMetrics, with exemplars), read before it stops.
    let mut red_text = String::new();
    if keep {
        print_manual_commands(&base, &stack);
        aetherflow_demo::serve::termination_signal().await;
        println!("\nstopping ...");
    } else {
        // The filter flushes on its timer; wait until the shim acknowledged the proxy spans.
        let proxy_spans = sent.iter().filter(|s| s.reply.is_ok()).count() as u64;
        if let Err(n) = stack
            .wait_proxy_spans_exported(proxy_spans, Duration::from_secs(30))
            .await
        {
            println!(
                "      (only {n} of {proxy_spans} proxy spans acknowledged by the shim after 30 s)"
            );
        }
        // Wait until the shim has decided on every span it received (a trace is held for its 1 s
        // tail window first; bounded), then show what it decided.
        if let Some(shim) = stack.shim.as_ref() {
            let base = format!("http://{}", shim.addr);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut metrics = String::new();
            loop {
                if let Ok(reply) = client.get(&base, "/metrics", &[]).await {
                    metrics = String::from_utf8_lossy(&reply.body).into_owned();
                }
                let (received, decided) = span_counts(&metrics);
                if (received > 0.0 && decided >= received) || std::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            {
                println!("      shim: {}", sampling_summary(&metrics));
            }
            red_text = red_metrics(&client, &base, &metrics).await;
        }
    }

    println!("[5/5] stopping Envoy, the services and the shim (it decides pending traces and flushes) ({:.1} s)", started.elapsed().as_secs_f64());
    let clean = stack.stop().await;
    if !clean {
        println!(
            "      collector-shim did not exit cleanly; its log:\n{}",
            stack.shim.as_ref().map(|s| s.log()).unwrap_or_default()
        );
    }
    let text = std::fs::read_to_string(&spans_file).unwrap_or_default();
    let traces = trace_view::by_trace(&trace_view::spans_from_json_lines(&text));

    println!(
        "\nTraces exported by the shim ({} traces, {} spans in {}):",
        traces.len(),
        traces.values().map(Vec::len).sum::<usize>(),
        spans_file.display()
    );
    let mut failures = 0;
    for s in &sent {
        let trace_id = s.trace_id().unwrap_or_else(|| "?".to_owned());
        println!(
            "\n● {} — {}\n  trace {trace_id}",
            s.scenario.label, s.scenario.about
        );
        if let Some(spans) = traces.get(&trace_id) {
            print!("{}", trace_view::render_tree(spans));
        }
        for (ok, what) in scenarios::check(s, &traces) {
            if !ok {
                failures += 1;
            }
            println!("  {} {what}", if ok { "✔" } else { "✘" });
        }
    }
    let shown: Vec<String> = sent.iter().filter_map(Sent::trace_id).collect();
    let others: Vec<&String> = traces.keys().filter(|t| !shown.contains(t)).collect();
    for trace_id in &others {
        println!("\n● manual request\n  trace {trace_id}");
        print!("{}", trace_view::render_tree(&traces[*trace_id]));
    }
    if !red_text.is_empty() {
        println!("\nRED metrics per route (the shim's server spans, counted before sampling; exemplars only from exported traces):");
        print!(
            "{}",
            aetherflow_demo::red_table::render(&aetherflow_demo::red_table::parse(&red_text))
        );
    }
    if keep {
        // The file outlives the run so manual traces can be read afterwards.
        let kept = spans_dir.keep();
        println!("spans kept in {}", kept.display());
    }
    println!(
        "\n{} in {:.1} s: {}",
        if failures == 0 {
            "demo finished"
        } else {
            "demo finished with failed checks"
        },
        started.elapsed().as_secs_f64(),
        if failures == 0 {
            "every check passed".to_owned()
        } else {
            format!("{failures} check(s) failed")
        }
    );
    Ok(failures == 0)
}

/// The shim's metrics in OpenMetrics (the format with exemplars), once its first exporter has
/// taken every kept span (exemplars are attached when an export succeeds; bounded: 5 s).
async fn red_metrics(client: &DemoClient, base: &str, metrics: &str) -> String {
    let kept: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("shim_spans_sampled_total{") && l.contains("decision=\"in\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    let accept = [("accept", "application/openmetrics-text; version=1.0.0")];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = match client.get(base, "/metrics", &accept).await {
            Ok(reply) => String::from_utf8_lossy(&reply.body).into_owned(),
            Err(_) => String::new(),
        };
        let exported: f64 = text
            .lines()
            .filter(|l| l.starts_with("shim_spans_exported_total{exporter=\"file\"}"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        if exported >= kept || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Spans the shim received and spans it has decided on (kept or dropped), from its metrics.
fn span_counts(metrics: &str) -> (f64, f64) {
    let sum = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    (
        sum("shim_spans_received_total"),
        sum("shim_spans_sampled_total"),
    )
}

/// One line from the shim's Prometheus metrics (`shim_spans_received_total`,
/// `shim_spans_sampled_total{policy, decision}`): what came in and which stage kept or dropped it.
fn sampling_summary(metrics: &str) -> String {
    let mut received = 0.0;
    let mut decisions: Vec<String> = Vec::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if name.starts_with("shim_spans_received_total") {
            received += value;
        } else if let Some(labels) = name.strip_prefix("shim_spans_sampled_total{") {
            let label = |key: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{key}=\"")))
                    .map(|v| v.trim_end_matches(['}', '"']).to_owned())
                    .unwrap_or_default()
            };
            if value == 0.0 {
                continue;
            }
            let kept = label("decision") == "in";
            decisions.push(match (label("policy").as_str(), kept) {
                ("record_only", false) => {
                    format!("{value} record-only dropped (no tail policy kept them)")
                }
                ("probability", true) => format!("{value} kept as sampled"),
                (policy, true) => format!("{value} kept by the {policy} policy"),
                (policy, false) => format!("{value} dropped by {policy}"),
            });
        }
    }
    decisions.sort_by_key(|d| d.contains("dropped"));
    format!("{received} spans received; {}", decisions.join(", "))
}

fn print_manual_commands(base: &str, stack: &Stack) {
    let proto = aetherflow_harness::paths::workspace_root().join("demo/proto");
    let authority = base.trim_start_matches("http://");
    println!(
        r#"
The stack keeps running; the shim prints each trace as its tree below. Try:

  curl -si {base}/api/orders
  curl -si -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' {base}/api/fail
  curl -si -H 'x-force-trace: 1' '{base}/api/slow?ms=400'
  printf '\x00\x00\x00\x00\x05\x0a\x03bob' | curl -s --http2-prior-knowledge -H 'content-type: application/grpc' \
      -H 'te: trailers' --data-binary @- -o /dev/null -D - {base}/demo.v1.Greeter/Fail
  grpcurl -plaintext -import-path {proto} -proto greeter.proto -d '{{"name":"bob","count":3}}' \
      {authority} demo.v1.Greeter/StreamGreetings        (if grpcurl is installed)

  Envoy admin: curl -s http://{admin}/stats | grep {prefix}aetherflow
  Shim metrics: curl -s http://{shim}/metrics

Press Ctrl-C to stop."#,
        proto = proto.display(),
        admin = stack.envoy.admin_addr(),
        prefix = stack.envoy.form().metric_prefix(),
        shim = stack
            .shim
            .as_ref()
            .map(|s| s.addr.to_string())
            .unwrap_or_default(),
    );
}
