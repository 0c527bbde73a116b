//! Test harness for AetherFlow Tracing: the real `trace_filter.wasm` in real Envoy, real servers on
//! loopback, real wire formats decoded by independent code.
//!
//! Used by the filter integration tests (`tests/tests/filter_*.rs`) and the end-to-end tests.
//! Launching the real components (Envoy, the shim binary, the Python decoders) is the shared
//! harness's, `aetherflow-harness`; its modules are re-exported here under their old names.
//!
//! # Layout
//! - [`paths`], [`form`] (and [`each_form!`]), [`envoy_config`], [`envoy`]: re-exported from
//!   `aetherflow-harness` (artifact paths, the two filter forms, the shipped `envoy/envoy.yaml`
//!   made runnable, and real Envoy: [`Envoy::start`], readiness, ports, `/stats`, the log, filter
//!   failure detection, `envoy --mode validate`).
//! - [`deploy`]: the generator of the configurations in `deploy/` and the validators of its manifests
//!   (`kubectl kustomize`, `kubernetes-validate`, our JSON schemas of the Istio and Envoy Gateway kinds).
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
//! - [`serve`]: the accept loop the test servers share (HTTP/1.1 and h2c, one task per connection).
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
pub mod grpc;
pub mod http_client;
pub mod serve;
pub mod shim;
pub mod stack;
pub mod upstream;
pub mod w3c;
pub mod w3c_service;

pub use aetherflow_harness::{each_form, envoy, envoy_config, form, paths};
pub use aetherflow_harness::{Envoy, EnvoyConfig, EnvoyOptions, Form, Substitutions};
pub use shim::{ExportShape, FakeShim, ReceivedSpan, ShimMode};
pub use stack::{Stack, StackBuilder};
pub use upstream::{RecordedRequest, ResponsePlan, UpstreamServer};
