//! Thin proxy-wasm adapter over `aetherflow_core`: moves data between Envoy and the core.
//!
//! - [`root`]: configuration, OTLP export from the root context.
//! - [`shared`]: what the root shares with its HTTP contexts: configuration, span buffer,
//!   metric ids.
//! - [`http`]: per-request host glue around the core's stream (extract, sample, inject, span).
//! - [`metrics`]: the filter's metrics through the proxy-wasm metrics ABI.
//! - [`host`]: host calls that cannot panic on hostile input.
//! - [`dispatch`]: the callbacks the module exports, routed to the root and stream contexts.
//!
//! The proxy-wasm ABI itself (host calls, `proxy_on_memory_allocate`) is `aetherflow-wasm-abi`
//! (`filter/wasm-abi`): no SDK, see there why.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod dispatch;
pub mod host;
pub mod http;
pub mod metrics;
pub mod root;
pub mod shared;
