//! The benchmark's "wasm floor": a proxy-wasm HTTP filter built with the same SDK and
//! release profile as `trace_filter.wasm`, whose every callback does nothing.
//!
//! Loaded into the same Envoy as the filter (same V8 runtime, same plugin set-up), it
//! measures what any Wasm filter costs per request before it makes a single host call:
//! Envoy creating the context and entering the VM for each stream event. The filter's own
//! cost is what it adds above this floor.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot) });
}}

struct FloorRoot;

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FloorStream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Every HTTP callback keeps the SDK's default: continue, do nothing.
struct FloorStream;

impl Context for FloorStream {}

impl HttpContext for FloorStream {}
