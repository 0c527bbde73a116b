//! collector-shim: a small OTLP pipeline that runs beside Envoy.
//!
//! # Layout
//! A pipeline, one module per stage: [`receiver`] (OTLP/HTTP in, limits, load shedding) ->
//! [`red`] (RED metrics from every span, exemplars from exported ones) -> [`sampler`] (consistent probability, tail policies, dynamic probability) -> [`batcher`]
//! (a bounded queue and a task per exporter) -> [`exporter`] (Zipkin, Jaeger, OTLP, console,
//! file). [`config`] reads file + `OTEL_*` env + flags, [`metrics`] is the self-telemetry,
//! [`app`] wires it all and runs until a shutdown future resolves ([`shutdown`] has the
//! signal one), [`model`] is the span record that flows through, [`storage`] the optional
//! durable (on-disk) queue per exporter, [`rpc`] the `google.rpc` messages (error status,
//! `RetryInfo`) both ends of OTLP use, [`event`] the one way a runtime fault is reported
//! (counted and logged at a bounded rate in one call).
#![forbid(unsafe_code)]

pub mod app;
pub mod batcher;
pub mod config;
pub mod event;
pub mod exporter;
pub mod metrics;
pub mod model;
pub mod receiver;
pub mod red;
pub mod rpc;
pub mod sampler;
pub mod shutdown;
pub mod storage;

pub use app::{run, run_with, Listeners, Summary};
