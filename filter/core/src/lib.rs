//! AetherFlow tracing core: everything the filter decides, with no proxy-wasm dependency,
//! so it is tested natively and inside a wasm VM, and shared with the collector shim.
#![forbid(unsafe_code)]
