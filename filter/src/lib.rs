//! Thin proxy-wasm adapter over `aetherflow_core`: moves data between Envoy and the core.
//!
//! - [`root`]: configuration, span buffer, OTLP export from the root context, metrics.
//! - [`http`]: per-request extraction, sampling, injection, span building.
//! - [`host`]: host calls that cannot panic on hostile input.

// The host calls that return data are raw `extern` calls (see `host`): every unsafe operation
// is spelled out with its reason, even inside an unsafe fn.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod host;
pub mod http;
pub mod metrics;
pub mod root;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::TraceRoot::default()) });
}}
