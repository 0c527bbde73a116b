//! AetherFlow tracing core: everything the filter decides, with no host calls, so it is
//! tested natively and inside a wasm VM.
//!
//! It lives under `filter/` because the filter is what it was written for, but it is the
//! shared contract of the whole product: both adapters (`filter/`, the proxy-wasm module;
//! `filter/native/`, the Envoy dynamic module) run it on the request path; the collector
//! shim (`collector-shim/`) uses its contract ([`contract`]), propagation and OTLP model; the
//! demo and the tests use its `traceparent` parser and span model. A change here changes what
//! every part sees.
//!
//! # Layout
//! - Request path, in the order a request meets it: [`headers`] (a host-serialized header
//!   map read in place), [`propagation`] (extract and inject: W3C, B3, Jaeger, baggage),
//!   [`head`] (the head-sampling decision) over [`sampling`] (OTel consistent probability
//!   sampling: `th`/`rv`, thresholds) and [`ids`] (trace and span ids, the seeded generator),
//!   [`forwarded`] (the client behind the proxies), [`route`] (`http.route` templates),
//!   [`grpc`] (detection, status, message counting), and [`stream`], one traced stream: every
//!   decision both adapters share.
//! - The span: [`span`] (the model), [`semconv`] (name, attributes, status per the semantic
//!   conventions), [`envoy`] (Envoy facts decoded).
//! - Export: [`buffer`] (the per-VM span buffer and flush policy), [`retry`] (bounded retry
//!   of failed exports), [`otlp`] (protobuf
//!   encoding, over the private `wire` writer), [`contract`] (what filter and collector agree
//!   on: the record-only attribute, OTLP span flags).
//! - Configuration and operation: [`config`] (the filter's JSON configuration, validated),
//!   [`json`] (the small JSON reader it uses, with [`decimal`], its exact decimal-to-`f64`
//!   reader), [`metrics`] (metric names for every adapter),
//!   [`log_limit`] (rate-limited runtime warnings).
#![forbid(unsafe_code)]
// Test tables are tuples of (input, expected, reason): clearer inline than behind aliases.
#![cfg_attr(test, allow(clippy::type_complexity))]

pub mod buffer;
pub mod config;
pub mod contract;
pub mod decimal;
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
