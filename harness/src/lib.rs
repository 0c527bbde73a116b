//! aetherflow-harness: the one harness behind the real-Envoy tests (`tests`), the demo runner
//! (`demo`), the benchmarks (`bench`) and the shim's binary tests (`collector-shim/tests`).
//! It launches the real components, stops them, and reads what they expose; it holds no test
//! assertions and no product logic, so the demo binary may depend on it at run time.
//!
//! # Layout
//! - [`paths`]: where the `.wasm`, the native module, Envoy, Python and the shim binary are
//!   (`AETHERFLOW_*` variables, defaults relative to the workspace root).
//! - [`form`]: the Wasm and native forms of the filter; [`each_form!`] runs a test against both.
//! - [`envoy_config`]: the shipped `envoy/envoy.yaml` with addresses, ports and paths substituted
//!   ([`EnvoyConfig::substitute`]) and, for tests, the filter JSON edited.
//! - [`envoy`]: the one Envoy launcher (`envoy/launch.rs`, [`envoy::EnvoyProcess`]: bootstrap written, admin port
//!   read back, bounded readiness, bound listeners, log capture, `/stats`), and on top of it the
//!   tests' and demo's [`Envoy`] (the filter's form, its metrics and failures), and
//!   `envoy --mode validate` ([`envoy::validate`]).
//! - [`shim`]: the collector-shim binary as a child process ([`shim::ShimProcess`]), on a free
//!   port polled over HTTP (and restarted there after a signal) or on port 0 with its ready
//!   line read.
//! - [`process`]: SIGTERM (a safe system call, no `kill` command), a bounded wait, then SIGKILL.
//! - [`python`]: the Python wire-format decoders of `make tools`, run bounded in time.
//! - [`prometheus`]: samples of a Prometheus/OpenMetrics text exposition.
//! - [`http`]: a plain bounded HTTP/1.1 GET for admin and health endpoints.
//!
//! Every process binds 127.0.0.1 (ports chosen by the kernel and read back), every wait has a
//! deadline, and every process is stopped when its handle drops.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envoy;
pub mod envoy_config;
pub mod form;
pub mod http;
pub mod paths;
pub mod process;
pub mod prometheus;
pub mod python;
pub mod shim;

pub use envoy::{Envoy, EnvoyOptions};
pub use envoy_config::{EnvoyConfig, Substitutions};
pub use form::Form;
