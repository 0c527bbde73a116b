//! Host access: the safe host calls of [`aetherflow_wasm_abi`] (shared with the benchmark's
//! no-op module), and the writer of the request's propagation headers.

pub use aetherflow_wasm_abi::*;

use aetherflow_core::headers::HeaderLines;
use aetherflow_core::propagation::Injector;

/// Writes outbound propagation headers into Envoy's request header map. Holds the request's
/// header lines as received, so removing a header that is not there costs no host call.
pub struct RequestHeaders<'a>(pub &'a HeaderLines);

impl Injector for RequestHeaders<'_> {
    fn set(&mut self, name: &str, value: &str) {
        // Envoy's replace first searches the map to remove the header: a header the request
        // does not carry (`traceparent` on an edge proxy) is added instead, the same result.
        if self.0.contains(name) {
            set_header(MapType::HttpRequestHeaders, name, value);
        } else {
            add_header(MapType::HttpRequestHeaders, name, value);
        }
    }

    fn remove(&mut self, name: &str) {
        // Envoy's header names are lowercase, as are the names the core removes.
        if self.0.contains(name) {
            remove_header(MapType::HttpRequestHeaders, name);
        }
    }
}
