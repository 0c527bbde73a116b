//! Envoy instructions per request, counted by valgrind's callgrind: the figure that does not
//! move with the machine's load. On a shared VM one CPU-time sample of a configuration moves
//! by 10-20 %, as much as the differences being measured; an instruction count of the same
//! binary, configuration and requests is the same from run to run (within about 1 %, the
//! background timers), whatever else the machine is doing.
//!
//! For each configuration: Envoy starts under callgrind with instrumentation off; after a
//! warm-up, `callgrind_control -i on` starts counting, a fixed number of requests is sent
//! (closed loop), counting stops and the totals are dumped. Before that window, the same Envoy
//! is counted for a few seconds with no traffic, and that idle rate (timers: stats flush, the
//! filter's root tick, tracers' flush timers) is subtracted over the window's length: under
//! callgrind Envoy serves only a few hundred requests a second, so timer work would otherwise
//! count as per-request cost, and more of it when a loaded machine slows the run down. Instructions are not time (a cache
//! miss or a syscall costs more than its count), so the CPU-time harness stays the figure of
//! record; this one decides what CPU time is too noisy to decide, and its breakdown by
//! configuration (floor, filter) is exact.
//!
//! Callgrind also simulates the caches and the branch predictor, so each count comes with an
//! estimate of cycles: instructions plus the stalls a miss costs, at the rough prices of
//! valgrind's cachegrind manual (`CYCLES_PER_*` below). It answers "does this code run slower
//! than its instruction count says" (a module that thrashes the instruction cache would), which
//! instructions alone cannot. `BENCH_COUNTER=kernel` runs Envoy without valgrind and counts, over
//! the same window, what callgrind cannot see: system calls, context switches, page faults
//! (`perf stat`, software events and tracepoints, which work on VMs without hardware counters).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use aetherflow_harness::process::Signal;

use crate::envoy::{Builds, Envoy, Setup, Tracer};
use crate::harness::{BATCH_SPANS, FLUSH_INTERVAL_MS, SAMPLE_RATIO};
use crate::loadgen::{self, Workload};
use crate::shim::Shim;
use crate::sink::Sink;
use crate::upstream::Upstream;

/// What to count.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Requests before counting (connections, pools, V8 tiers).
    pub warmup: u64,
    /// Requests counted.
    pub requests: u64,
    /// Runs per configuration and workload (the spread).
    pub runs: usize,
}

impl Plan {
    /// The `make bench` plan.
    pub fn full() -> Plan {
        Plan {
            warmup: 300,
            requests: 2000,
            runs: 2,
        }
    }

    /// The smoke plan.
    pub fn quick() -> Plan {
        Plan {
            warmup: 50,
            requests: 200,
            runs: 1,
        }
    }
}

/// One counted run.
#[derive(Clone, Debug, Serialize)]
pub struct Count {
    /// Configuration.
    pub tracer: Tracer,
    /// Traffic.
    pub workload: Workload,
    /// Instructions Envoy executed (all threads) while the requests were served (0 in the
    /// kernel-event mode).
    pub instructions: u64,
    /// Every event counted over the window: callgrind's (`Ir`, `I1mr`, `D1mr`, `Bcm`, ...) or,
    /// with `BENCH_COUNTER=kernel`, perf's (`raw_syscalls:sys_enter`, `page-faults`, ...).
    pub events: BTreeMap<String, u64>,
    /// Requests served while counting.
    pub requests: u64,
    /// Requests that failed while counting.
    pub failed: u64,
    /// Length of the counted window, seconds.
    pub window_seconds: f64,
    /// What the same Envoy executed per second with no traffic, counted just before the window
    /// (timers: stats flush, the filter's root tick, tracer flush timers). `events` has it
    /// subtracted for the window's length, so a run that a loaded machine slows down does not
    /// count more timer work per request (empty in the kernel-event mode).
    pub idle_per_second: BTreeMap<String, f64>,
}

impl Count {
    /// Instructions per request.
    pub fn per_request(&self) -> f64 {
        self.instructions as f64 / self.requests.max(1) as f64
    }

    /// Estimated cycles per request (`None` without the cache simulation's events).
    pub fn cycles_per_request(&self) -> Option<f64> {
        cycles_estimate(&self.events).map(|c| c as f64 / self.requests.max(1) as f64)
    }

    /// One event per request.
    pub fn event_per_request(&self, name: &str) -> Option<f64> {
        self.events
            .get(name)
            .map(|v| *v as f64 / self.requests.max(1) as f64)
    }
}

/// Cycles an L1 miss that hits the last-level cache costs, roughly (cachegrind manual: "around
/// 10 cycles").
const CYCLES_PER_L1_MISS: u64 = 10;
/// Cycles a last-level miss costs, roughly (the manual: "as much as 200"; 100 is the usual
/// middle figure).
const CYCLES_PER_LL_MISS: u64 = 100;
/// Cycles a mispredicted branch costs, roughly (the manual: "10 to 30").
const CYCLES_PER_MISPREDICT: u64 = 15;

/// Instructions plus miss and mispredict stalls, from callgrind's cache and branch simulation.
pub fn cycles_estimate(events: &BTreeMap<String, u64>) -> Option<u64> {
    let get = |k: &str| events.get(k).copied();
    let l1 = get("I1mr")? + get("D1mr")? + get("D1mw")?;
    let ll = get("ILmr")? + get("DLmr")? + get("DLmw")?;
    let mispredicts = get("Bcm")? + get("Bim")?;
    Some(
        get("Ir")?
            + CYCLES_PER_L1_MISS * l1
            + CYCLES_PER_LL_MISS * ll
            + CYCLES_PER_MISPREDICT * mispredicts,
    )
}

/// The components this stage needs.
#[derive(Clone, Debug)]
pub struct Tools {
    /// The real Envoy.
    pub envoy: PathBuf,
    /// `trace_filter.wasm` and the Wasm floor.
    pub wasm: PathBuf,
    /// The no-op Wasm module.
    pub wasm_floor: PathBuf,
    /// The directory of the native modules.
    pub native_dir: PathBuf,
    /// The directory of the `native-b` build.
    pub native_b_dir: PathBuf,
    /// The `filter-b` module.
    pub wasm_b: PathBuf,
    /// The A/B halves' filter configuration keys.
    pub b_overrides: serde_json::Map<String, serde_json::Value>,
    /// collector-shim (release).
    pub shim: PathBuf,
    /// Scratch directory.
    pub work_dir: PathBuf,
    /// The `wasm-floor` module's configuration (`BENCH_FLOOR_CONFIG`: one host call's count).
    pub floor_overrides: serde_json::Map<String, serde_json::Value>,
    /// Keys merged into the filter's configuration (`BENCH_FILTER_CONFIG`).
    pub filter_overrides: serde_json::Map<String, serde_json::Value>,
}

/// Whether valgrind (with callgrind_control) is installed.
pub fn available() -> bool {
    ["valgrind", "callgrind_control"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn callgrind_control(args: &[&str], pid: u32) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The `totals:` of every callgrind output file in `dir` (the dump of the counted window), by
/// event name (the file's `events:` line).
fn totals(dir: &Path) -> Result<BTreeMap<String, u64>, String> {
    let mut sums = BTreeMap::new();
    let mut found = false;
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let is_dump = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("callgrind.out"));
        if !is_dump {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let names = text.lines().find_map(|l| l.strip_prefix("events:"));
        let values = text.lines().find_map(|l| l.strip_prefix("totals:"));
        if let (Some(names), Some(values)) = (names, values) {
            for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
                let v: u64 = value
                    .parse()
                    .map_err(|e| format!("{}: totals {value:?}: {e}", path.display()))?;
                *sums.entry(name.to_owned()).or_insert(0) += v;
            }
            found = true;
        }
    }
    if found && sums.contains_key("Ir") {
        Ok(sums)
    } else {
        Err(format!("no callgrind totals in {}", dir.display()))
    }
}

/// The head-sampling ratio of every tracer in this run: `BENCH_SAMPLE_RATIO` (0 to 1; the
/// filter, its native form and Envoy's OpenTelemetry tracer all get it), default 1.
pub fn sample_ratio() -> Result<f64, String> {
    match std::env::var("BENCH_SAMPLE_RATIO") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(format!(
                "BENCH_SAMPLE_RATIO={v}: not a ratio between 0 and 1"
            )),
        },
        _ => Ok(SAMPLE_RATIO),
    }
}

/// Software events and tracepoints `BENCH_COUNTER=kernel` counts.
const KERNEL_EVENTS: &str = "task-clock,context-switches,page-faults,raw_syscalls:sys_enter";

/// Whether this run counts kernel events (`BENCH_COUNTER=kernel`) rather than instructions.
pub fn kernel_mode() -> bool {
    std::env::var("BENCH_COUNTER").is_ok_and(|v| v == "kernel")
}

/// Counts `KERNEL_EVENTS` of process `pid` while `window` runs (`perf stat -p`, stopped with
/// SIGINT so it writes its totals).
async fn perf_window<T>(
    pid: u32,
    out: &Path,
    window: impl std::future::Future<Output = T>,
) -> Result<(T, BTreeMap<String, u64>), String> {
    let mut perf = Command::new("perf")
        .args([
            "stat",
            "-x,",
            "-e",
            KERNEL_EVENTS,
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(out)
        .spawn()
        .map_err(|e| format!("perf: {e}"))?;
    // perf attaches asynchronously; events before it does are not counted, nor is the window
    // stretched: the requests are what is divided by.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let result = window.await;
    let stopped = aetherflow_harness::process::signal(&mut perf, Signal::INT).is_ok();
    if !stopped {
        let _ = perf.kill();
    }
    let status = perf.wait().map_err(|e| format!("perf: {e}"))?;
    let text =
        std::fs::read_to_string(out).map_err(|e| format!("{}: {e} ({status})", out.display()))?;
    let mut events = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let fields: Vec<&str> = line.split(',').collect();
        if let (Some(v), Some(name)) = (
            fields.first().and_then(|v| v.parse::<f64>().ok()),
            fields.get(2),
        ) {
            // task-clock comes in milliseconds: keep nanoseconds, integral like the rest.
            let v = if *name == "task-clock" { v * 1e6 } else { v };
            events.insert((*name).to_owned(), v.round() as u64);
        }
    }
    if events.is_empty() {
        return Err(format!("perf counted nothing ({status}): {}", text.trim()));
    }
    Ok((result, events))
}

/// Counts one configuration and workload.
pub async fn count(
    tools: &Tools,
    upstream: &Upstream,
    tracer: Tracer,
    workload: Workload,
    plan: &Plan,
    run: usize,
) -> Result<Count, String> {
    let label = format!("cg-{}-{:?}-{run}", tracer.name(), workload).to_lowercase();
    let dir = tools.work_dir.join(&label);
    let cg_dir = dir.join("callgrind");
    std::fs::create_dir_all(&cg_dir).map_err(|e| format!("{}: {e}", cg_dir.display()))?;
    let sink = Sink::start().await.map_err(|e| format!("sink: {e}"))?;
    let shim = if tracer.exports_otlp() {
        Some(Shim::start(&tools.shim, sink.addr, &dir.join("shim")).await?)
    } else {
        None
    };
    let builds = tracer.builds(
        Builds {
            native_dir: &tools.native_dir,
            wasm: &tools.wasm,
            overrides: &tools.filter_overrides,
        },
        Builds {
            native_dir: &tools.native_b_dir,
            wasm: &tools.wasm_b,
            overrides: &tools.b_overrides,
        },
    );
    let setup = Setup {
        tracer,
        workload,
        upstream: upstream.addr,
        otlp: shim.as_ref().map_or(sink.addr, |s| s.addr),
        zipkin: sink.addr,
        sample_ratio: sample_ratio()?,
        batch_spans: BATCH_SPANS,
        flush_interval_ms: FLUSH_INTERVAL_MS,
        wasm: builds.wasm,
        wasm_floor: &tools.wasm_floor,
        native_dir: builds.native_dir,
        floor_overrides: &tools.floor_overrides,
        filter_overrides: builds.overrides,
    };
    let kernel = kernel_mode();
    let wrapper = if kernel {
        Vec::new()
    } else {
        vec![
            "valgrind".to_string(),
            "--tool=callgrind".to_string(),
            "--instr-atstart=no".to_string(),
            // V8 writes and runs machine code: valgrind must see the new code.
            "--smc-check=all-non-file".to_string(),
            "--cache-sim=yes".to_string(),
            "--branch-sim=yes".to_string(),
            format!("--callgrind-out-file={}/callgrind.out.%p", cg_dir.display()),
        ]
    };
    let envoy = Envoy::start_with(
        &tools.envoy,
        &setup.render(),
        &dir,
        builds.native_dir,
        &wrapper,
        Duration::from_secs(300),
    )
    .await?;
    let lanes = 2;
    let warm = loadgen::closed_loop(envoy.listener, workload, lanes, plan.warmup).await;
    if warm.failed > 0 {
        return Err(format!("{label}: warm-up failed: {:?}", warm.first_error));
    }
    let mut window_seconds = 0.0;
    let mut idle_per_second = BTreeMap::new();
    let (measured, events) = if kernel {
        let window = loadgen::closed_loop(envoy.listener, workload, lanes, plan.requests);
        perf_window(envoy.pid(), &cg_dir.join("perf.csv"), window).await?
    } else {
        // Idle first: what Envoy runs with no traffic over IDLE_WINDOW (each dump also zeroes
        // the counters, so the window below starts from zero), after the spans of the warm-up
        // have left (SETTLE outlasts every tracer's flush timer): an export caught in the idle
        // window would be subtracted from the requests' cost as if it were a timer.
        tokio::time::sleep(SETTLE).await;
        let idle_dir = cg_dir.join("idle");
        std::fs::create_dir_all(&idle_dir).map_err(|e| format!("{}: {e}", idle_dir.display()))?;
        callgrind_control(&["-i", "on"], envoy.pid())?;
        let started = Instant::now();
        tokio::time::sleep(IDLE_WINDOW).await;
        callgrind_control(&["-i", "off"], envoy.pid())?;
        let idle_seconds = started.elapsed().as_secs_f64();
        let idle = dump(&cg_dir, envoy.pid()).await?;
        move_dumps(&cg_dir, &idle_dir)?;

        callgrind_control(&["-i", "on"], envoy.pid())?;
        let started = Instant::now();
        let measured = loadgen::closed_loop(envoy.listener, workload, lanes, plan.requests).await;
        callgrind_control(&["-i", "off"], envoy.pid())?;
        window_seconds = started.elapsed().as_secs_f64();
        let window = dump(&cg_dir, envoy.pid()).await?;
        idle_per_second = idle
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64 / idle_seconds.max(1e-3)))
            .collect();
        (
            measured,
            without_idle(&window, &idle_per_second, window_seconds),
        )
    };
    drop(envoy);
    drop(shim);
    if std::env::var_os("BENCH_CG_KEEP").is_some() {
        // For `callgrind_annotate <file>`: where the instructions go, function by function.
        eprintln!("bench: kept {}", cg_dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Count {
        tracer,
        workload,
        instructions: events.get("Ir").copied().unwrap_or(0),
        events,
        requests: measured.ok,
        failed: measured.failed,
        window_seconds,
        idle_per_second,
    })
}

/// Length of the idle window counted before the requests.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// Wait between the warm-up and the idle window: longer than the filter's flush interval
/// (`FLUSH_INTERVAL_MS`) and Envoy's OpenTelemetry tracer's (5 s by default).
const SETTLE: Duration = Duration::from_secs(6);

/// Dumps (and zeroes) the counters of `pid` and reads the dump's totals.
async fn dump(cg_dir: &Path, pid: u32) -> Result<BTreeMap<String, u64>, String> {
    callgrind_control(&["-d"], pid)?;
    // The dump is written by Envoy's process on its next scheduling.
    let mut events = Err(String::new());
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        events = totals(cg_dir);
        if events.is_ok() {
            break;
        }
    }
    events
}

/// Moves the dumps of `from` into `to`, so the next window's dump is read alone.
fn move_dumps(from: &Path, to: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some(name) = path
            .file_name()
            .filter(|n| n.to_string_lossy().starts_with("callgrind.out"))
        {
            std::fs::rename(&path, to.join(name))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The window's events less the idle rate over its length (never below zero).
fn without_idle(
    window: &BTreeMap<String, u64>,
    idle_per_second: &BTreeMap<String, f64>,
    seconds: f64,
) -> BTreeMap<String, u64> {
    window
        .iter()
        .map(|(k, v)| {
            let idle = idle_per_second.get(k).copied().unwrap_or(0.0) * seconds;
            (k.clone(), (*v as f64 - idle).max(0.0).round() as u64)
        })
        .collect()
}

/// Every configuration and workload, `plan.runs` times, interleaved.
pub async fn run_all(
    tools: &Tools,
    tracers: &[Tracer],
    workloads: &[Workload],
    plan: &Plan,
    mut progress: impl FnMut(&Count),
) -> Result<Vec<Count>, String> {
    let upstream = Upstream::start()
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    let mut out = Vec::new();
    for run in 0..plan.runs {
        for &tracer in tracers {
            for &workload in workloads {
                let c = count(tools, &upstream, tracer, workload, plan, run).await?;
                progress(&c);
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// The markdown table of one per-request figure (`what`, e.g. "instructions/req"): the median
/// of the runs and the spread, what each configuration adds over the baseline, and that addition
/// against the native OpenTelemetry tracer's.
pub fn table(
    counts: &[Count],
    workload: Workload,
    what: &str,
    figure: impl Fn(&Count) -> Option<f64>,
) -> String {
    let per = |t: Tracer| -> Vec<f64> {
        counts
            .iter()
            .filter(|c| c.tracer == t && c.workload == workload)
            .filter_map(&figure)
            .collect()
    };
    let median = |mut v: Vec<f64>| -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    };
    let base = median(per(Tracer::Baseline));
    let otel = median(per(Tracer::NativeOtel));
    let mut s = format!(
        "| configuration | {what} | spread | added over baseline | added vs native-otel |\n|---|---|---|---|---|\n",
    );
    for t in Tracer::ALL {
        let v = per(t);
        let Some(m) = median(v.clone()) else { continue };
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        let spread = if m > 0.0 {
            (hi - lo) / 2.0 / m * 100.0
        } else {
            0.0
        };
        let added = base.map(|b| m - b);
        let vs = match (added, otel, base) {
            (Some(a), Some(o), Some(b)) if t != Tracer::Baseline && o - b > 0.0 => {
                format!("{:.2}x", a / (o - b))
            }
            _ => "-".into(),
        };
        let precision = if m < 100.0 { 2 } else { 0 };
        s += &format!(
            "| {} | {:.*} | ±{:.1}% | {} | {} |\n",
            t.name(),
            precision,
            m,
            spread,
            added.map_or("-".into(), |a| format!("{a:+.precision$}")),
            vs
        );
    }
    s
}

/// The host calls a Wasm filter makes, as the `wasm-floor` module can repeat them
/// (`BENCH_FLOOR_CONFIG` kinds).
pub const HOST_CALLS: [&str; 5] = ["header_map", "header", "property", "set_header", "clock"];

/// Calls per request of each kind in [`HOST_CALLS`] the filter makes with its default
/// configuration, for a sampled HTTP/1.1 request that starts a trace and succeeds: the request
/// header map, `:status`, three properties (`envoy_attributes`' default: the upstream cluster and
/// address, and `source.address` since the bench's requests carry no `X-Forwarded-For`; a
/// success costs no `response.flags` read), `traceparent` and the trace id response header set,
/// the start and end clock reads (`filter/src/http.rs`, `core::stream`).
pub const FILTER_CALLS_HTTP1: [u32; 5] = [1, 1, 3, 2, 2];

/// Repeats per calibrated request: the slope over this many calls is the cost of one.
const CALIBRATION_REPEAT: u32 = 10;

/// One host call kind's cost.
#[derive(Clone, Debug, Serialize)]
pub struct HostCallCost {
    /// The kind (see [`HOST_CALLS`]).
    pub kind: &'static str,
    /// Instructions per call.
    pub instructions: f64,
    /// Estimated cycles per call.
    pub cycles: Option<f64>,
}

/// What one call of each kind costs Envoy inside a Wasm VM: the `wasm-floor` module on
/// HTTP/1.1, once as is and once per kind repeating that call `CALIBRATION_REPEAT` times per
/// request; the difference over the repeats is one call's cost, exact to the count.
pub async fn host_call_costs(tools: &Tools, plan: &Plan) -> Result<Vec<HostCallCost>, String> {
    let upstream = Upstream::start()
        .await
        .map_err(|e| format!("upstream: {e}"))?;
    let mut plain = tools.clone();
    plain.floor_overrides = serde_json::Map::new();
    let floor = count(
        &plain,
        &upstream,
        Tracer::WasmFloor,
        Workload::Http1,
        plan,
        0,
    )
    .await?;
    let mut out = Vec::new();
    for kind in HOST_CALLS {
        let mut t = tools.clone();
        t.floor_overrides = serde_json::Map::from_iter([
            ("host_call".to_owned(), serde_json::Value::from(kind)),
            (
                "repeat".to_owned(),
                serde_json::Value::from(CALIBRATION_REPEAT),
            ),
        ]);
        let c = count(&t, &upstream, Tracer::WasmFloor, Workload::Http1, plan, 0).await?;
        let per = |x: Option<f64>, y: Option<f64>| Some((x? - y?) / f64::from(CALIBRATION_REPEAT));
        out.push(HostCallCost {
            kind,
            instructions: (c.per_request() - floor.per_request()) / f64::from(CALIBRATION_REPEAT),
            cycles: per(c.cycles_per_request(), floor.cycles_per_request()),
        });
    }
    Ok(out)
}

/// Where the Wasm filter's instructions go on HTTP/1.1 (markdown): the no-op module, each
/// kind of host call at its calibrated cost times the calls the filter makes, and the rest
/// (the filter's own code in the VM, its allocator, the export).
pub fn breakdown(counts: &[Count], costs: &[HostCallCost]) -> Option<String> {
    let median = |t: Tracer| -> Option<f64> {
        let mut v: Vec<f64> = counts
            .iter()
            .filter(|c| c.tracer == t && c.workload == Workload::Http1)
            .map(Count::per_request)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let base = median(Tracer::Baseline)?;
    let floor = median(Tracer::WasmFloor)? - base;
    let filter = median(Tracer::Filter)? - base;
    let mut s = String::from("| part | calls/req | instructions/call | instructions/req | share of the filter's addition |\n|---|---|---|---|---|\n");
    let row = |s: &mut String, part: &str, calls: &str, per: &str, v: f64| {
        s.push_str(&format!(
            "| {part} | {calls} | {per} | {v:.0} | {:.0} % |\n",
            v / filter * 100.0
        ));
    };
    row(&mut s, "entering the VM (no-op module)", "-", "-", floor);
    let mut calls_total = 0.0;
    for (cost, n) in costs.iter().zip(FILTER_CALLS_HTTP1) {
        let v = cost.instructions * f64::from(n);
        calls_total += v;
        row(
            &mut s,
            cost.kind,
            &n.to_string(),
            &format!("{:.0}", cost.instructions),
            v,
        );
    }
    row(
        &mut s,
        "own code in the VM, allocator, export",
        "-",
        "-",
        filter - floor - calls_total,
    );
    row(&mut s, "**the filter's addition**", "-", "-", filter);
    Some(s)
}
