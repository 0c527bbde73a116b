//! `aetherflow-bench fault-soak`: the plan from the environment, the run, the outputs.
//!
//! - `FAULT_SOAK_SECONDS`: how long the traffic lasts (default 600; `BENCH_QUICK=1`: 60);
//! - `FAULT_SOAK_CYCLE_SECONDS`: the fault cycle (default 60; at least 6);
//! - `FAULT_SOAK_RATE`: requests per second (default 200), over `FAULT_SOAK_LANES` keep-alive
//!   connections (default 4);
//! - `FAULT_SOAK_FORM`: `wasm` (default) or `native`;
//! - `AETHERFLOW_ENVOY`, `AETHERFLOW_WASM`, `AETHERFLOW_NATIVE`, `AETHERFLOW_SHIM_BIN`: the
//!   components (defaults under the workspace, the shim's the release build).

use std::path::{Path, PathBuf};

use super::{run, table, Components, Plan};
use crate::path_from_env;

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v}: not a number")),
        _ => Ok(default),
    }
}

fn plan(quick: bool) -> Result<Plan, String> {
    let form = std::env::var("FAULT_SOAK_FORM").unwrap_or_else(|_| "wasm".into());
    if form != "wasm" && form != "native" {
        return Err(format!("FAULT_SOAK_FORM={form}: `wasm` or `native`"));
    }
    Ok(Plan {
        duration_s: env_num("FAULT_SOAK_SECONDS", if quick { 60 } else { 600 })?,
        cycle_s: env_num("FAULT_SOAK_CYCLE_SECONDS", 60)?.max(6),
        rate: env_num("FAULT_SOAK_RATE", 200.0)?,
        lanes: env_num("FAULT_SOAK_LANES", 4)?,
        form,
    })
}

fn require(path: &Path, how: &str) -> Result<(), String> {
    if path.exists() {
        Ok(())
    } else {
        Err(format!("{} not found: {how}", path.display()))
    }
}

/// Runs the soak and writes `fault_soak.json` (or `fault_soak-native.json`) into `out`;
/// Ok(false) when a span was lost or a request failed.
pub async fn from_env(quick: bool, out: PathBuf) -> Result<bool, String> {
    let plan = plan(quick)?;
    let native = path_from_env("AETHERFLOW_NATIVE", "target/release/libaetherflow_trace.so");
    let c = Components {
        envoy: path_from_env("AETHERFLOW_ENVOY", ".tools/bin/envoy"),
        wasm: path_from_env(
            "AETHERFLOW_WASM",
            "target/wasm32-wasip1/release/trace_filter.wasm",
        ),
        native_dir: native
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        shim: path_from_env("AETHERFLOW_SHIM_BIN", "target/release/collector-shim"),
    };
    require(&c.envoy, "make tools")?;
    require(&c.shim, "cargo build --release -p collector-shim")?;
    match plan.form.as_str() {
        "native" => require(&native, "make native")?,
        _ => require(&c.wasm, "make wasm")?,
    }
    eprintln!(
        "bench: fault soak ({} form): {} s of {:.0} req/s, a fault cycle of {} s",
        plan.form, plan.duration_s, plan.rate, plan.cycle_s
    );
    let dir = std::env::temp_dir().join(format!("aetherflow-fault-soak-{}", std::process::id()));
    let report = run(plan, &c, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = report?;
    println!("{}", table(&report));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let name = match report.plan.form.as_str() {
        "native" => "fault_soak-native.json",
        _ => "fault_soak.json",
    };
    let path = out.join(name);
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(report.sound())
}
