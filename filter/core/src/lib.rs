//! AetherFlow tracing core: everything the filter decides, with no proxy-wasm dependency,
//! so it is tested natively and inside a wasm VM, and shared with the collector shim.
//!
//! # Layout
//! - [`ids`]: `TraceId`, `SpanId` and the seeded `IdGenerator`.
//! - [`sampling`]: OTel consistent probability sampling (`th`/`rv`, thresholds, decisions).
//! - [`propagation`]: `Extractor`/`Injector` traits and the header formats.
//! - [`headers`]: a host-serialized header map read in place (`HeaderLines`).
//! - [`stream`]: one traced HTTP stream, every decision both adapters share.
//! - [`metrics`]: the filter's metric names, for every adapter.
#![forbid(unsafe_code)]
// Test tables are tuples of (input, expected, reason): clearer inline than behind aliases.
#![cfg_attr(test, allow(clippy::type_complexity))]

pub mod buffer;
pub mod config;
pub mod contract;
pub mod envoy;
pub mod forwarded;
pub mod grpc;
pub mod head;
pub mod headers;
mod hex;
pub mod ids;
pub mod json;
pub mod log_limit;
pub mod metrics;
pub mod otlp;
pub mod propagation;
pub mod retry;
pub mod route;
pub mod sampling;
pub mod semconv;
pub mod span;
pub mod stream;
mod wire;
