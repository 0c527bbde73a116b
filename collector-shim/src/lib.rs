//! collector-shim: a small OTLP pipeline that runs beside Envoy.
//!
//! Layout (a pipeline, one module per stage): `receiver` -> `sampler` -> `batcher` -> `exporter`.
#![forbid(unsafe_code)]

pub mod exporter;
pub mod model;
