//! Test harness for AetherFlow Tracing: the real `trace_filter.wasm` in real Envoy, real servers on
//! loopback, real wire formats decoded by independent code.
//!
//! Used by the filter integration tests (`tests/tests/filter_*.rs`), the end-to-end tests, the demo
//! and the benchmarks.
//!
//! # Layout
//! - [`paths`]: where the `.wasm`, Envoy, Python and the shim binary are (`AETHERFLOW_*` env vars).
//! - [`form`]: the Wasm and native forms of the filter; [`each_form!`] runs a test against both.
//! - [`envoy_config`]: the shipped `envoy/envoy.yaml`, with addresses/ports/paths substituted
//!   ([`EnvoyConfig::substitute`]) and, for tests, the filter JSON edited.
//! - [`deploy`]: the generator of the configurations in `deploy/` and the validators of its manifests
//!   (`kubectl kustomize`, `kubernetes-validate`, our JSON schemas of the Istio and Envoy Gateway kinds).
//! - [`envoy`]: start Envoy ([`Envoy::start`], kill on drop), readiness, bound ports, `/stats`,
//!   the log, wasm failure detection, and `envoy --mode validate` ([`envoy::validate`]).
//! - [`upstream`]: an HTTP/1.1 + h2c upstream that records requests and answers programmable
//!   responses, gRPC included (trailers, trailers-only, N frames, missing status, delays).
//! - [`shim`]: a fake collector shim decoding OTLP protobuf, switchable to slow / 500 / closed.
//! - [`http_client`]: HTTP/1.1, h2c (one connection per request, or many streams multiplexed on
//!   one connection) and raw-bytes requests.
//! - [`grpc`]: gRPC framing and status names.
//! - [`w3c`]: independent traceparent/tracestate readers and the consistent-sampling rule.
//! - [`w3c_service`]: the W3C Trace Context test suite's "service under test" as the product is
//!   deployed: ingress listener -> an uninstrumented application that forwards the context
//!   headers -> egress listener -> the caller's callback server ([`w3c_service::W3cStack`]).
//! - [`stack`]: upstream + shim + Envoy in one call ([`StackBuilder`]); [`stack::Exchange`] pairs a
//!   client response with what the upstream received, [`Stack::span_of`] finds its proxy span.
//!
//! Every server binds 127.0.0.1 with a kernel-chosen port (Envoy's listeners and admin too: the
//! bound ports are read back), every wait has a deadline, and every process or task is stopped
//! when its handle drops.
//!
//! # Example
//! ```no_run
//! # async fn demo() {
//! use aetherflow_tests::{http_client::{self, ClientRequest}, stack::*};
//! let stack = StackBuilder::new().ingress_filter(|c| { c.insert("sample_ratio".into(), 0.5.into()); }).start().await;
//! let resp = http_client::send(stack.envoy.ingress(), &ClientRequest::get("/hello"), REQUEST_TIMEOUT).await.unwrap();
//! let trace_id = resp.header("x-trace-id").unwrap();
//! let span = stack.shim.span_of_trace(&trace_id, SPAN_WAIT).await;
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod deploy;
pub mod envoy;
pub mod envoy_config;
pub mod form;
pub mod grpc;
pub mod http_client;
pub mod paths;
pub mod shim;
pub mod stack;
pub mod upstream;
pub mod w3c;
pub mod w3c_service;

pub use envoy::{Envoy, EnvoyOptions};
pub use envoy_config::{EnvoyConfig, Substitutions};
pub use form::Form;
pub use shim::{ExportShape, FakeShim, ReceivedSpan, ShimMode};
pub use stack::{Stack, StackBuilder};
pub use upstream::{RecordedRequest, ResponsePlan, UpstreamServer};
