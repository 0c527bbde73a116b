//! Envoy instructions per request, counted by valgrind's callgrind: the figure that does not
//! move with the machine's load. On a shared VM one CPU-time sample of a configuration moves
//! by 10-20 %, as much as the differences being measured; an instruction count of the same
//! binary, configuration and requests is the same from run to run (within about 1 %, the
//! background timers), whatever else the machine is doing.
//!
//! For each configuration: Envoy starts under callgrind with instrumentation off; after a
//! warm-up, `callgrind_control -i on` starts counting, a fixed number of requests is sent
//! (closed loop), counting stops and the totals are dumped. Instructions are not time (a cache
//! miss or a syscall costs more than its count), so the CPU-time harness stays the figure of
//! record; this one decides what CPU time is too noisy to decide, and its breakdown by
//! configuration (floor, filter) is exact.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::envoy::{Envoy, Setup, Tracer};
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
    /// Instructions Envoy executed (all threads) while the requests were served.
    pub instructions: u64,
    /// Requests served while counting.
    pub requests: u64,
    /// Requests that failed while counting.
    pub failed: u64,
}

impl Count {
    /// Instructions per request.
    pub fn per_request(&self) -> f64 {
        self.instructions as f64 / self.requests.max(1) as f64
    }
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
    /// collector-shim (release).
    pub shim: PathBuf,
    /// Scratch directory.
    pub work_dir: PathBuf,
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

/// The `totals:` of every callgrind output file in `dir` (the dump of the counted window).
fn totals(dir: &Path) -> Result<u64, String> {
    let mut sum = 0u64;
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
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix("totals:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        {
            sum += v;
            found = true;
        }
    }
    if found {
        Ok(sum)
    } else {
        Err(format!("no callgrind totals in {}", dir.display()))
    }
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
    let shim = if matches!(tracer, Tracer::Filter | Tracer::Native | Tracer::NativeOtel) {
        Some(Shim::start(&tools.shim, sink.addr, &dir.join("shim")).await?)
    } else {
        None
    };
    let no_overrides = serde_json::Map::new();
    let setup = Setup {
        tracer,
        workload,
        upstream: upstream.addr,
        otlp: shim.as_ref().map_or(sink.addr, |s| s.addr),
        zipkin: sink.addr,
        sample_ratio: SAMPLE_RATIO,
        batch_spans: BATCH_SPANS,
        flush_interval_ms: FLUSH_INTERVAL_MS,
        wasm: &tools.wasm,
        wasm_floor: &tools.wasm_floor,
        native_dir: &tools.native_dir,
        floor_overrides: &no_overrides,
        filter_overrides: &no_overrides,
    };
    let wrapper = vec![
        "valgrind".to_string(),
        "--tool=callgrind".to_string(),
        "--instr-atstart=no".to_string(),
        // V8 writes and runs machine code: valgrind must see the new code.
        "--smc-check=all-non-file".to_string(),
        format!("--callgrind-out-file={}/callgrind.out.%p", cg_dir.display()),
    ];
    let envoy = Envoy::start_with(
        &tools.envoy,
        &setup.render(),
        &dir,
        &tools.native_dir,
        &wrapper,
        Duration::from_secs(300),
    )
    .await?;
    let lanes = 2;
    let warm = loadgen::closed_loop(envoy.listener, workload, lanes, plan.warmup).await;
    if warm.failed > 0 {
        return Err(format!("{label}: warm-up failed: {:?}", warm.first_error));
    }
    callgrind_control(&["-i", "on"], envoy.pid())?;
    let measured = loadgen::closed_loop(envoy.listener, workload, lanes, plan.requests).await;
    callgrind_control(&["-i", "off"], envoy.pid())?;
    callgrind_control(&["-d"], envoy.pid())?;
    // The dump is written by Envoy's process on its next scheduling.
    let mut instructions = Err(String::new());
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        instructions = totals(&cg_dir);
        if instructions.is_ok() {
            break;
        }
    }
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
        instructions: instructions?,
        requests: measured.ok,
        failed: measured.failed,
    })
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

/// The markdown table: instructions per request (median of the runs, and the spread), what
/// each configuration adds over the baseline, and that addition against the native
/// OpenTelemetry tracer's.
pub fn table(counts: &[Count], workload: Workload) -> String {
    let per = |t: Tracer| -> Vec<f64> {
        counts
            .iter()
            .filter(|c| c.tracer == t && c.workload == workload)
            .map(Count::per_request)
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
    let mut s = String::from(
        "| configuration | instructions/req | spread | added over baseline | added vs native-otel |\n|---|---|---|---|---|\n",
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
        s += &format!(
            "| {} | {:.0} | ±{:.1}% | {} | {} |\n",
            t.name(),
            m,
            spread,
            added.map_or("-".into(), |a| format!("{a:+.0}")),
            vs
        );
    }
    s
}
