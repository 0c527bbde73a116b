//! `make bench` entry point (`aetherflow-bench micro` summarizes the criterion results instead): Envoy with no tracing, with the trace filter + collector-shim, with the
//! native OpenTelemetry tracer and with the native Zipkin tracer, side by side.
//!
//! `aetherflow-bench shim-soak` (also run by `make bench`, after the harness) measures the release
//! collector-shim alone with tail sampling on at a steady 50 k spans/s: its RSS every 250 ms (peak
//! `VmHWM`, steady median), CPU µs per span, whether the rate was held (its own
//! `shim_spans_received_total` vs the target, refusals) and what the policies kept; it writes
//! `shim_soak.json` to `BENCH_OUT` (the same defaults as `harness.json`), prints a verdict against
//! the 100 MB target, and exits 1 when the rate was not held or a span was lost on the way to the
//! sink. Its settings: `BENCH_QUICK` (10 s instead of 60 s), `BENCH_SHIM_SOAK_SECS`,
//! `BENCH_SHIM_SOAK_RATE` (spans/s, default 50 000), `BENCH_SHIM_SOAK_WAIT_MS` (the tail
//! `decision_wait`, default 2000; the window is sized to hold it at that rate), and
//! `AETHERFLOW_SHIM_BIN` (default `target/release/collector-shim`).
//!
//! Environment:
//! - `BENCH_QUICK=1`: the quick profile (the smoke check, under 2 minutes);
//! - `BENCH_OUT`: where `harness.json` and `harness.png` go (default `bench/results`, or
//!   `target/bench-quick` in quick mode so the committed results stay those of a full run);
//! - `BENCH_CONFIGS`: a comma list among
//!   `baseline,wasm-floor,filter,native-floor,native,native-otel,native-zipkin` (default all;
//!   `wasm-floor` is a no-op proxy-wasm module, `AETHERFLOW_WASM_FLOOR`; `native` is the filter as
//!   a dynamic module and `native-floor` a no-op one, both from the directory of
//!   `AETHERFLOW_NATIVE`, default `target/release/libaetherflow_trace.so`);
//! - `BENCH_WORKLOADS`: a comma list among `http1,grpc` (default both);
//! - `BENCH_ROUNDS`, `BENCH_RATE` (req/s), `BENCH_SOAK` / `BENCH_SOAK_NATIVE` (requests between
//!   the RSS readings with the baseline and filter / the native tracers): override the profile;
//! - `BENCH_FILTER_CONFIG`: a JSON object merged into the filter's configuration (experiments;
//!   spans expected still assume every request is sampled);
//! - `BENCH_ENVOY_CPUS`: a `taskset` CPU list Envoy is pinned to (for example `0`);
//! - `BENCH_FLOOR_CONFIG`: the `wasm-floor` module's configuration, e.g.
//!   `{"host_call": "property", "repeat": 40}` to measure one host call's cost (see
//!   `bench/wasm-floor`);
//! - `AETHERFLOW_ENVOY`, `AETHERFLOW_WASM`, `AETHERFLOW_SHIM_BIN`: the components (see README).
//!
//! `aetherflow-bench fault-soak` (also run by `make bench`, last): steady traffic through Envoy,
//! the filter and the shim with its durable queue while the backend flaps, the shim is killed
//! and restarted and the filter's configuration is reloaded; spans sent vs received,
//! duplicates, RSS over time (`fault_soak.json`; settings in `fault_soak/cli.rs`).
//!
//! `aetherflow-bench paired` (see `paired/`): the configurations of `BENCH_CONFIGS` (default
//! all but Envoy's Zipkin tracer) running at once, Envoy CPU per request in interleaved slices
//! (closed loop by default), each slice against its own baseline; `BENCH_PAIRED_SLICES`,
//! `BENCH_PAIRED_REQUESTS` (per configuration and slice), `BENCH_PAIRED_TURNS` (the short
//! round-robin turns a closed-loop slice is sent in), `BENCH_PAIRED_RATE` (req/s: a fixed
//! rate instead of the closed loop), `BENCH_WORKLOADS`, `BENCH_QUICK`, `BENCH_OUT` (writes
//! `paired.json`). `BENCH_CONFIGS` may name `native-b`, the other half of an A/B in one run:
//! the native module again, or another build of it (`AETHERFLOW_NATIVE_B`, a
//! `libaetherflow_trace.so` in another directory), with `BENCH_FILTER_CONFIG_B` merged over
//! its configuration; and `filter-b`, the same for the Wasm form (`AETHERFLOW_WASM_B`).
//!
//! `aetherflow-bench instructions` (see `instructions.rs`) takes `BENCH_CONFIGS`,
//! `BENCH_WORKLOADS`, `BENCH_QUICK`, `BENCH_OUT`, and `BENCH_CG_REQUESTS`, `BENCH_CG_RUNS`,
//! `BENCH_CG_WARMUP` (requests before counting; default 300),
//! `BENCH_CG_KEEP` (keep the callgrind dumps), `BENCH_COUNTER=kernel` (count system calls,
//! context switches, page faults and task-clock with `perf stat` instead of instructions; writes
//! `kernel-events.json`), `BENCH_SAMPLE_RATIO` (also read by `paired`: the head-sampling ratio of the filter, its
//! native form and the OpenTelemetry tracer alike; default 1), `BENCH_CG_BREAKDOWN=0` (skip the host-call calibration that splits the
//! Wasm filter's addition; it runs when baseline, wasm-floor and filter are all measured).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use aetherflow_bench::envoy::Tracer;
use aetherflow_bench::harness::{self, Components, Harness, Profile};
use aetherflow_bench::loadgen::Workload;
use aetherflow_bench::report::{self, Report};
use aetherflow_bench::{load_average, now_rfc3339, path_from_env, plot, workspace_root};

fn env_list(name: &str) -> Option<Vec<String>> {
    let v = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
    Some(v.split(',').map(|s| s.trim().to_lowercase()).collect())
}

fn env_num<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v}: not a number")),
        _ => Ok(None),
    }
}

/// What to run, read from the environment.
struct Plan {
    profile: Profile,
    components: Components,
    tracers: Vec<Tracer>,
    workloads: Vec<Workload>,
    out: std::path::PathBuf,
}

fn configure() -> Result<Plan, String> {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
    let mut profile = if quick {
        Profile::quick()
    } else {
        Profile::full()
    };
    if let Some(r) = env_num("BENCH_ROUNDS")? {
        profile.rounds = r;
    }
    if let Some(r) = env_num("BENCH_RATE")? {
        profile.rate = Some(r);
    }
    if let Some(s) = env_num("BENCH_SOAK")? {
        profile.soak = s;
    }
    if let Some(s) = env_num("BENCH_SOAK_NATIVE")? {
        profile.soak_native = s;
    }
    let mut tracers: Vec<Tracer> = match env_list("BENCH_CONFIGS") {
        None => Tracer::STANDARD.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| {
                Tracer::ALL
                    .into_iter()
                    .find(|t| t.name() == n)
                    .ok_or_else(|| format!("BENCH_CONFIGS: unknown configuration {n:?}"))
            })
            .collect::<Result<_, _>>()?,
    };
    let workloads = match env_list("BENCH_WORKLOADS") {
        None => vec![Workload::Http1, Workload::Grpc],
        Some(names) => names
            .iter()
            .map(|n| match n.as_str() {
                "http1" => Ok(Workload::Http1),
                "grpc" => Ok(Workload::Grpc),
                _ => Err(format!("BENCH_WORKLOADS: unknown workload {n:?}")),
            })
            .collect::<Result<_, _>>()?,
    };
    let shim = path_from_env("AETHERFLOW_SHIM_BIN", "target/release/collector-shim");
    let shim = if shim.exists() {
        Some(shim)
    } else {
        eprintln!(
            "bench: {} not found: the filter and native-otel send OTLP straight to the sink",
            shim.display()
        );
        None
    };
    let wasm_floor = path_from_env(
        "AETHERFLOW_WASM_FLOOR",
        "target/wasm32-wasip1/release/aetherflow_wasm_floor.wasm",
    );
    if !wasm_floor.exists() && tracers.contains(&Tracer::WasmFloor) {
        eprintln!(
            "bench: {} not found (make wasm builds it): skipping the wasm-floor configuration",
            wasm_floor.display()
        );
        tracers.retain(|t| *t != Tracer::WasmFloor);
    }
    let native = path_from_env("AETHERFLOW_NATIVE", "target/release/libaetherflow_trace.so");
    let native_dir = native
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    // By default `native-b` is the same build: an A/B of configurations (`BENCH_FILTER_CONFIG_B`).
    let native_b = std::env::var_os("AETHERFLOW_NATIVE_B")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| native.clone());
    if tracers.contains(&Tracer::NativeB)
        && native_b.file_name() != Some(std::ffi::OsStr::new("libaetherflow_trace.so"))
    {
        return Err(format!(
            "AETHERFLOW_NATIVE_B: {} must be named libaetherflow_trace.so (Envoy loads the module by that name)",
            native_b.display()
        ));
    }
    let native_b_dir = native_b
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    for (tracer, file) in [
        (Tracer::Native, native.clone()),
        (Tracer::NativeB, native_b.clone()),
        (
            Tracer::NativeFloor,
            native_dir.join("libaetherflow_native_floor.so"),
        ),
    ] {
        if !file.exists() && tracers.contains(&tracer) {
            eprintln!(
                "bench: {} not found (make native builds it): skipping the {} configuration",
                file.display(),
                tracer.name()
            );
            tracers.retain(|t| *t != tracer);
        }
    }
    let filter_overrides = json_object_from_env("BENCH_FILTER_CONFIG")?;
    let wasm = path_from_env(
        "AETHERFLOW_WASM",
        "target/wasm32-wasip1/release/trace_filter.wasm",
    );
    // By default `filter-b` is the same module: an A/B of configurations.
    let wasm_b = std::env::var_os("AETHERFLOW_WASM_B")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| wasm.clone());
    if !wasm_b.exists() && tracers.contains(&Tracer::FilterB) {
        return Err(format!("AETHERFLOW_WASM_B: {} not found", wasm_b.display()));
    }
    let components = Components {
        native_dir,
        native_b_dir,
        envoy: path_from_env("AETHERFLOW_ENVOY", ".tools/bin/envoy"),
        wasm,
        wasm_b,
        wasm_floor,
        shim,
        work_dir: std::env::temp_dir().join(format!("aetherflow-bench-{}", std::process::id())),
        sample_ratio: aetherflow_bench::instructions::sample_ratio()?,
        b_overrides: {
            let mut merged = filter_overrides.clone();
            merged.extend(json_object_from_env("BENCH_FILTER_CONFIG_B")?);
            merged
        },
        filter_overrides,
        envoy_cpus: std::env::var("BENCH_ENVOY_CPUS").unwrap_or_default(),
        floor_overrides: json_object_from_env("BENCH_FLOOR_CONFIG")?,
    };
    let out = out_dir(quick);
    Ok(Plan {
        profile,
        components,
        tracers,
        workloads,
        out,
    })
}

/// `aetherflow-bench micro`: summarize the criterion results of this target directory.
fn micro() -> ExitCode {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| workspace_root().join("target"), Into::into);
    let report = aetherflow_bench::micro::collect(&target.join("criterion"));
    if report.results.is_empty() {
        eprintln!(
            "bench: no criterion results under {}",
            target.join("criterion").display()
        );
        return ExitCode::from(2);
    }
    println!("{}", aetherflow_bench::micro::table(&report));
    let out = match std::env::var_os("BENCH_OUT") {
        Some(v) if !v.is_empty() => v.into(),
        _ => workspace_root().join("bench/results"),
    };
    let path = out.join("micro.json");
    let written = std::fs::create_dir_all(&out).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        )
    });
    match written {
        Ok(()) => {
            eprintln!("bench: wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

/// Where results go: `BENCH_OUT`, else `bench/results` (`target/bench-quick` in quick mode).
/// A JSON object from `name` (empty when unset or blank).
fn json_object_from_env(name: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            serde_json::from_str(&v).map_err(|e| format!("{name}: not a JSON object: {e}"))
        }
        _ => Ok(Default::default()),
    }
}

fn out_dir(quick: bool) -> std::path::PathBuf {
    match std::env::var_os("BENCH_OUT") {
        Some(v) if !v.is_empty() => v.into(),
        _ if quick => workspace_root().join("target/bench-quick"),
        _ => workspace_root().join("bench/results"),
    }
}

/// `aetherflow-bench shim-soak`: the shim alone under tail sampling at a steady span rate.
async fn shim_soak() -> Result<bool, String> {
    use aetherflow_bench::shim_soak::{self, SoakPlan};
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
    let mut plan = if quick {
        SoakPlan::quick()
    } else {
        SoakPlan::full()
    };
    if let Some(s) = env_num("BENCH_SHIM_SOAK_SECS")? {
        plan.duration_s = s;
    }
    if let Some(r) = env_num("BENCH_SHIM_SOAK_RATE")? {
        plan.spans_per_second = r;
    }
    if let Some(w) = env_num("BENCH_SHIM_SOAK_WAIT_MS")? {
        plan.decision_wait_ms = w;
    }
    let bin = path_from_env("AETHERFLOW_SHIM_BIN", "target/release/collector-shim");
    if !bin.exists() {
        return Err(format!(
            "{} not found: `cargo build --release -p collector-shim`",
            bin.display()
        ));
    }
    eprintln!(
        "bench: shim soak ({}): {:.0} spans/s for {:.0} s, decision_wait {} ms, {}",
        plan.profile,
        plan.spans_per_second,
        plan.duration_s,
        plan.decision_wait_ms,
        bin.display()
    );
    let work_dir =
        std::env::temp_dir().join(format!("aetherflow-shim-soak-{}", std::process::id()));
    let report = shim_soak::run(plan, &bin, &work_dir).await;
    let _ = std::fs::remove_dir_all(&work_dir);
    let report = report?;
    println!("{}", shim_soak::table(&report));
    let out = out_dir(quick);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join("shim_soak.json");
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    if !report.rss_within_target {
        eprintln!("bench: shim soak: peak RSS above the 100 MB target (see the verdict)");
    }
    Ok(report.sound())
}

/// `aetherflow-bench instructions`: Envoy instructions per request under callgrind, every
/// configuration of `BENCH_CONFIGS` and workload of `BENCH_WORKLOADS` (see `instructions.rs`).
async fn instructions() -> Result<bool, String> {
    use aetherflow_bench::instructions::{self, Plan, Tools};
    if !instructions::available() {
        eprintln!("bench: valgrind not installed: skipping the instruction counts");
        return Ok(true);
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
    let mut plan = if quick { Plan::quick() } else { Plan::full() };
    if let Some(n) = env_num("BENCH_CG_REQUESTS")? {
        plan.requests = n;
    }
    if let Some(n) = env_num("BENCH_CG_RUNS")? {
        plan.runs = n;
    }
    if let Some(n) = env_num("BENCH_CG_WARMUP")? {
        plan.warmup = n;
    }
    let c = configure()?;
    let tools = Tools {
        envoy: c.components.envoy.clone(),
        wasm: c.components.wasm.clone(),
        wasm_floor: c.components.wasm_floor.clone(),
        native_dir: c.components.native_dir.clone(),
        native_b_dir: c.components.native_b_dir.clone(),
        wasm_b: c.components.wasm_b.clone(),
        b_overrides: c.components.b_overrides.clone(),
        shim: c
            .components
            .shim
            .clone()
            .ok_or("the instruction counts need the release collector-shim")?,
        work_dir: std::env::temp_dir().join(format!("aetherflow-cg-{}", std::process::id())),
        floor_overrides: c.components.floor_overrides.clone(),
        filter_overrides: c.components.filter_overrides.clone(),
    };
    let tracers: Vec<Tracer> = c
        .tracers
        .iter()
        .copied()
        .filter(|t| *t != Tracer::NativeZipkin)
        .collect();
    eprintln!(
        "bench: instructions per request under callgrind: {} requests after {} warm-up, {} run(s) of {:?}",
        plan.requests,
        plan.warmup,
        plan.runs,
        tracers.iter().map(|t| t.name()).collect::<Vec<_>>()
    );
    let counts = instructions::run_all(&tools, &tracers, &c.workloads, &plan, |n| {
        let figures = n
            .events
            .keys()
            .map(|k| format!("{k} {:.1}", n.event_per_request(k).unwrap_or(0.0)));
        eprintln!(
            "bench: {:<13} {:<5} per request: {} ({} requests, {} failed)",
            n.tracer.name(),
            format!("{:?}", n.workload).to_lowercase(),
            figures.collect::<Vec<_>>().join(", "),
            n.requests,
            n.failed
        );
    })
    .await;
    if std::env::var_os("BENCH_CG_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&tools.work_dir);
    }
    let counts = counts?;
    let kernel = instructions::kernel_mode();
    for w in &c.workloads {
        if kernel {
            for event in [
                "task-clock",
                "raw_syscalls:sys_enter",
                "context-switches",
                "page-faults",
            ] {
                println!("\n{w:?}: Envoy {event} per request (perf stat; task-clock in ns)\n");
                let t = instructions::table(&counts, *w, event, |c| c.event_per_request(event));
                println!("{t}");
            }
        } else {
            println!("\n{w:?}: Envoy instructions per request (callgrind)\n");
            println!(
                "{}",
                instructions::table(&counts, *w, "instructions/req", |c| Some(c.per_request()))
            );
            println!("\n{w:?}: Envoy estimated cycles per request (callgrind cache and branch simulation)\n");
            println!(
                "{}",
                instructions::table(
                    &counts,
                    *w,
                    "est. cycles/req",
                    instructions::Count::cycles_per_request
                )
            );
        }
    }
    // The host-call costs need the Wasm configurations; with them the split of the filter's
    // addition (`BENCH_CG_BREAKDOWN=0` skips the calibration runs).
    let wants_breakdown = !kernel
        && std::env::var("BENCH_CG_BREAKDOWN").map_or(true, |v| v != "0")
        && [Tracer::Baseline, Tracer::WasmFloor, Tracer::Filter]
            .iter()
            .all(|t| tracers.contains(t))
        && c.workloads.contains(&Workload::Http1);
    let mut costs = Vec::new();
    if wants_breakdown {
        let calibrated = instructions::host_call_costs(&tools, &plan).await;
        if std::env::var_os("BENCH_CG_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&tools.work_dir);
        }
        costs = calibrated?;
        println!(
            "\nOne host call from a Wasm module, Envoy instructions (and est. cycles) per call\n"
        );
        println!("| call | instructions | est. cycles |\n|---|---|---|");
        for h in &costs {
            let cycles = h.cycles.map_or("-".into(), |c| format!("{c:.0}"));
            println!("| {} | {:.0} | {cycles} |", h.kind, h.instructions);
        }
        if let Some(t) = instructions::breakdown(&counts, &costs) {
            println!("\nHttp1: where the Wasm filter's instructions go (sampled request starting a trace)\n");
            println!("{t}");
        }
    }
    std::fs::create_dir_all(&c.out).map_err(|e| format!("{}: {e}", c.out.display()))?;
    if !costs.is_empty() {
        let path = c.out.join("host-calls.json");
        let json = serde_json::to_string_pretty(&costs).map_err(|e| e.to_string())?;
        std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let path = c.out.join(if kernel {
        "kernel-events.json"
    } else {
        "instructions.json"
    });
    let json = serde_json::to_string_pretty(&counts).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(counts.iter().all(|c| c.failed == 0))
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("micro") {
        return micro();
    }
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "instructions" {
        return match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => match rt.block_on(instructions()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::from(2)
                }
            },
            Err(e) => {
                eprintln!("bench: tokio runtime: {e}");
                ExitCode::from(2)
            }
        };
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
    let soak = mode == "shim-soak" || mode == "fault-soak";
    let plan = if soak {
        None
    } else {
        match configure() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("bench: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // On Ctrl-C or SIGTERM the run is dropped, and with it the Envoy and shim processes.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = async {
                match plan {
                    Some(plan) if mode == "paired" => paired(plan).await,
                    Some(plan) => run(plan).await,
                    None if mode == "fault-soak" => {
                        aetherflow_bench::fault_soak::cli::from_env(quick, out_dir(quick)).await
                    }
                    None => shim_soak().await,
                }
            } => outcome,
            () = interrupted() => Err("interrupted".to_owned()),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// `aetherflow-bench paired`: every configuration at once, CPU per request in interleaved
/// slices (see `paired/`); writes `paired.json`.
async fn paired(plan: Plan) -> Result<bool, String> {
    use aetherflow_bench::paired::{self, PairedPlan};
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
    let mut p = if quick {
        PairedPlan::quick()
    } else {
        PairedPlan::full()
    };
    if let Some(n) = env_num("BENCH_PAIRED_SLICES")? {
        p.slices = n;
    }
    if let Some(r) = env_num::<f64>("BENCH_PAIRED_RATE")? {
        p.rate = (r > 0.0).then_some(r);
    }
    if let Some(n) = env_num("BENCH_PAIRED_REQUESTS")? {
        p.requests = n;
        p.grpc_requests = n;
    }
    if let Some(n) = env_num("BENCH_PAIRED_TURNS")? {
        p.turns = n;
    }
    // Envoy's Zipkin tracer costs 4 to 10 times the others per request: its turns would take
    // most of the run, so it is measured only when named.
    let tracers: Vec<Tracer> = if env_list("BENCH_CONFIGS").is_some() {
        plan.tracers
    } else {
        plan.tracers
            .into_iter()
            .filter(|t| *t != Tracer::NativeZipkin)
            .collect()
    };
    eprintln!(
        "bench: paired, {} slices of {} requests ({} gRPC), {}, configurations {:?}",
        p.slices,
        p.requests,
        p.grpc_requests,
        p.rate
            .map_or("closed loop".to_owned(), |r| format!("{r:.0} req/s")),
        tracers.iter().map(|t| t.name()).collect::<Vec<_>>()
    );
    let started = std::time::Instant::now();
    let work_dir = plan.components.work_dir.clone();
    let report = paired::run(
        &p,
        &plan.components,
        &tracers,
        &plan.workloads,
        &work_dir,
        |s| {
            eprintln!(
                "bench: [{:>5.0}s] slice {:>2} {:<13} {:<5} cpu {:>6.1} µs/req  ok {}  failed {}",
                started.elapsed().as_secs_f64(),
                s.slice + 1,
                s.tracer.name(),
                format!("{:?}", s.workload).to_lowercase(),
                s.envoy_cpu_us_per_request,
                s.ok,
                s.failed
            );
        },
    )
    .await;
    let _ = std::fs::remove_dir_all(&work_dir);
    let report = report?;
    println!("{}", paired::table(&report));
    std::fs::create_dir_all(&plan.out).map_err(|e| format!("{}: {e}", plan.out.display()))?;
    let path = plan.out.join("paired.json");
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(report.sound())
}

/// Runs everything and writes the outputs; Ok(false) when a configuration failed requests or
/// lost spans (the figures are still written).
async fn run(plan: Plan) -> Result<bool, String> {
    let Plan {
        profile,
        mut components,
        tracers,
        workloads,
        out,
    } = plan;
    // The rounds count every span: they run at 100 % whatever BENCH_SAMPLE_RATIO says.
    components.sample_ratio = harness::SAMPLE_RATIO;
    let (tracers, workloads, out) = (&tracers[..], &workloads[..], out.as_path());
    let started = std::time::Instant::now();
    let load_at_start = load_average();
    eprintln!(
        "bench: {} profile, {} round(s), configurations {:?}, Envoy {}",
        profile.name,
        profile.rounds,
        tracers.iter().map(|t| t.name()).collect::<Vec<_>>(),
        components.envoy.display()
    );
    let envoy_version = std::process::Command::new(&components.envoy)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let wasm_bytes = std::fs::metadata(&components.wasm).ok().map(|m| m.len());
    let work_dir = components.work_dir.clone();
    let mut bench = Harness::new(profile.clone(), components).await?;
    let samples = bench
        .run(tracers, workloads, |s| {
            eprintln!(
                "bench: [{:>5.0}s] round {} {:<13} {:<5} cpu {:>6.1} µs/req  {:>6.0} req/s  p99 {:>6} µs  spans {}/{}  failed {}",
                started.elapsed().as_secs_f64(),
                s.round + 1,
                s.tracer.name(),
                format!("{:?}", s.workload).to_lowercase(),
                s.envoy_cpu_us_per_request,
                s.throughput_rps,
                s.latency_p99_us.map_or("-".into(), |v| format!("{v:.0}")),
                s.spans_received,
                s.spans_expected,
                s.requests_failed,
            );
        })
        .await?;
    let rows = report::summarize(&samples);
    let healthy = rows
        .iter()
        .all(|r| r.requests_failed == 0 && r.spans_received >= r.spans_expected);
    let report = Report {
        schema: "aetherflow-bench harness result v1",
        finished_at: now_rfc3339(),
        profile,
        envoy_version,
        wasm_bytes,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average: (load_at_start, load_average()),
        sample_ratio: harness::SAMPLE_RATIO,
        batch_spans: harness::BATCH_SPANS,
        flush_interval_ms: harness::FLUSH_INTERVAL_MS,
        rate_rps: bench.rate(),
        rows,
        samples,
    };
    println!("{}", report::table(&report.rows));
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    let json_path = out.join("harness.json");
    std::fs::write(&json_path, json + "\n").map_err(|e| format!("{}: {e}", json_path.display()))?;
    let png_path = out.join("harness.png");
    match plot::write_png(&report.rows, &png_path) {
        Ok(()) => eprintln!(
            "bench: wrote {} and {}",
            json_path.display(),
            png_path.display()
        ),
        Err(e) => eprintln!("bench: wrote {}; plot skipped: {e}", json_path.display()),
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    if !healthy {
        eprintln!("bench: some configuration failed requests or lost spans (see the table)");
    }
    eprintln!("bench: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(healthy)
}

async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
