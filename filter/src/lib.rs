//! Thin proxy-wasm adapter over `aetherflow_core`: moves data between Envoy and the core.
//!
//! - [`root`]: configuration, OTLP export from the root context.
//! - [`shared`]: what the root shares with its HTTP contexts: configuration, span buffer,
//!   metric ids.
//! - [`http`]: per-request host glue around the core's stream (extract, sample, inject, span).
//! - [`metrics`]: the filter's metrics through the proxy-wasm metrics ABI.
//! - [`host`]: host calls that cannot panic on hostile input.

// The host calls that return data are raw `extern` calls (see `host`): every unsafe operation
// is spelled out with its reason, even inside an unsafe fn.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod host;
pub mod http;
pub mod metrics;
pub mod root;
pub mod shared;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::TraceRoot::default()) });
}}
