//! aetherflow-bench: what tracing costs inside Envoy, measured side by side with Envoy's native
//! tracers on the same machine in the same run (`make bench`), plus the criterion
//! micro-benchmarks of the hot paths (in `filter/core/benches` and `collector-shim/benches`).
//!
//! # Layout
//! - [`harness`]: the run: for each round, each configuration in turn, the same phases;
//! - [`instructions`]: Envoy instructions per request under callgrind (noise-free comparisons);
//! - [`paired`]: Envoy CPU per request with every configuration running at once, in
//!   interleaved slices (CPU time on a machine whose speed moves);
//! - [`envoy`]: the Envoy bootstrap of each configuration; the process and its admin API are
//!   `aetherflow-harness`'s launcher with the benchmark's options (one worker, `-l warning`,
//!   `--log-path`, SIGTERM then 5 s on drop);
//! - [`shim`]: collector-shim as a process exporting to the sink (the harness's launcher);
//! - [`upstream`]: the HTTP/1.1 + h2c + gRPC upstream service;
//! - [`sink`]: the trace backend that decodes and counts spans (OTLP and Zipkin v2 JSON);
//! - [`loadgen`]: the hyper load generator (closed loop and fixed rate);
//! - [`procfs`]: CPU time and RSS from `/proc`;
//! - [`stats`], [`report`], [`plot`]: medians and spreads, the table and JSON, the PNG;
//! - [`micro`]: the summary of the criterion results (spans/s, pipeline vs decode-only);
//! - [`shim_soak`] (plan, run, report), [`otlp_load`]: the shim alone under tail sampling at a
//!   steady span rate (RSS, CPU per span, decisions), fed multi-span OTLP traces.

// Signals and the clock tick rate come through the harness and rustix: no `unsafe` here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envoy;
pub mod fault_soak;
pub mod harness;
pub mod instructions;
pub mod loadgen;
pub mod micro;
pub mod otlp_load;
pub mod paired;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod shim;
pub mod shim_soak;
pub mod sink;
pub mod stats;
pub mod upstream;

use std::path::{Path, PathBuf};

/// The workspace root: the nearest directory above this crate holding `rust-toolchain.toml`.
pub fn workspace_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        if dir.join("rust-toolchain.toml").exists() {
            return dir;
        }
        if !dir.pop() {
            return PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        }
    }
}

/// `$name` if set, else `default` relative to the workspace root.
pub fn path_from_env(name: &str, default: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join(default),
    }
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minute load).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// UTC time as RFC 3339 without a date crate (days-to-civil conversion).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
