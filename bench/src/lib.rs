//! aetherflow-bench: what tracing costs inside Envoy, measured side by side with Envoy's native
//! tracers on the same machine in the same run (`make bench`), plus the criterion
//! micro-benchmarks of the hot paths (in `filter/core/benches` and `collector-shim/benches`).
//!
//! # Layout
//! - [`harness`]: the run: for each round, each configuration in turn, the same phases;
//! - [`envoy`]: the Envoy bootstrap of each configuration, the process and its admin API;
//! - [`shim`]: collector-shim as a process exporting to the sink;
//! - [`upstream`]: the HTTP/1.1 + h2c + gRPC upstream service;
//! - [`sink`]: the trace backend that decodes and counts spans (OTLP and Zipkin v2 JSON);
//! - [`loadgen`]: the hyper load generator (closed loop and fixed rate);
//! - [`procfs`]: CPU time and RSS from `/proc`;
//! - [`stats`], [`report`], [`plot`]: medians and spreads, the table and JSON, the PNG;
//! - [`micro`]: the summary of the criterion results (spans/s, pipeline vs decode-only).

pub mod envoy;
pub mod harness;
pub mod loadgen;
pub mod micro;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod shim;
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
