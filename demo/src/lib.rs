//! Demo services and the `make demo` runner.
//!
//! Layout:
//! - `trace_context`: W3C `traceparent` parsing for a service continuing the proxy's trace.
//! - `otlp`: the services' own spans and their OTLP/HTTP protobuf export to the shim.
//! - `grpc`: gRPC messages (prost derives), framing, status codes, by hand (no protoc).
//! - `serve`: what both services share (incoming context, accept loop, streaming body).
//! - `http_service` / `grpc_service`: the two upstreams behind Envoy (`demo-http`, `demo-grpc`).
//! - `client`: HTTP and gRPC clients for the runner and the end-to-end tests.
//! - `stack`: the whole pipeline on loopback (services in this process; the shim process and
//!   real Envoy through `aetherflow-harness`, which holds no test code).
//! - `scenarios`: the demo's traffic and what each request must leave in the traces.
//! - `trace_view`: exported spans (OTLP JSON lines or protobuf) rendered as trace trees.
//! - `red_table`: the shim's RED metrics per route with an exemplar trace each, as a table.
#![forbid(unsafe_code)]

pub mod client;
pub mod grpc;
pub mod grpc_service;
pub mod http_service;
pub mod otlp;
pub mod red_table;
pub mod scenarios;
pub mod serve;
pub mod stack;
pub mod trace_context;
pub mod trace_view;
