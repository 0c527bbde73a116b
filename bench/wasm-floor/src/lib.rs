//! The benchmark's "wasm floor": a proxy-wasm HTTP filter built with the same SDK and
//! release profile as `trace_filter.wasm`, whose every callback does nothing.
//!
//! Loaded into the same Envoy as the filter (same V8 runtime, same plugin set-up), it
//! measures what any Wasm filter costs per request before it makes a single host call:
//! Envoy creating the context and entering the VM for each stream event. The filter's own
//! cost is what it adds above this floor.
//!
//! For calibration it can also repeat one kind of host call on each request's headers, so
//! the cost of that call is the slope between two runs (`BENCH_FLOOR_CONFIG`):
//! `{"host_call": "<kind>", "repeat": N}` with kind `property` (`request.protocol`),
//! `header` (`:path`), `header_map` (all request headers), `set_header` or `clock`.
#![forbid(unsafe_code)]

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(FloorRoot { calls: Rc::new(Calibration::None) })
    });
}}

/// What each request does besides nothing.
enum Calibration {
    None,
    Repeat(HostCall, u32),
}

#[derive(Clone, Copy)]
enum HostCall {
    Property,
    Header,
    HeaderMap,
    SetHeader,
    Clock,
}

/// Reads `{"host_call": "...", "repeat": N}` without a JSON dependency: the module must stay
/// a floor. Anything else (including the harness's empty object) means no calls.
fn calibration(config: &str) -> Result<Calibration, String> {
    let field = |name: &str| -> Option<&str> {
        let at = config.find(&format!("\"{name}\""))?;
        let rest = config[at + name.len() + 2..]
            .trim_start()
            .strip_prefix(':')?;
        let rest = rest.trim_start();
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim().trim_matches('"'))
    };
    let Some(kind) = field("host_call") else {
        return Ok(Calibration::None);
    };
    let call = match kind {
        "property" => HostCall::Property,
        "header" => HostCall::Header,
        "header_map" => HostCall::HeaderMap,
        "set_header" => HostCall::SetHeader,
        "clock" => HostCall::Clock,
        other => return Err(format!("host_call: unknown kind {other:?}")),
    };
    let repeat = field("repeat")
        .unwrap_or("1")
        .parse()
        .map_err(|_| "repeat: not a number".to_owned())?;
    Ok(Calibration::Repeat(call, repeat))
}

struct FloorRoot {
    calls: Rc<Calibration>,
}

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match calibration(&String::from_utf8_lossy(&config)) {
            Ok(c) => {
                self.calls = Rc::new(c);
                true
            }
            Err(e) => {
                let _ = hostcalls::log(LogLevel::Error, &format!("wasm-floor: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FloorStream {
            calls: self.calls.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Every other HTTP callback keeps the SDK's default: continue, do nothing.
struct FloorStream {
    calls: Rc<Calibration>,
}

impl Context for FloorStream {}

impl HttpContext for FloorStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Calibration::Repeat(call, n) = *self.calls else {
            return Action::Continue;
        };
        let map = MapType::HttpRequestHeaders;
        for _ in 0..n {
            // Results are dropped: only the call's cost matters.
            let _ = match call {
                HostCall::Property => hostcalls::get_property(vec!["request", "protocol"]).is_ok(),
                HostCall::Header => hostcalls::get_map_value_bytes(map, ":path").is_ok(),
                HostCall::HeaderMap => hostcalls::get_map_bytes(map).is_ok(),
                HostCall::SetHeader => {
                    hostcalls::set_map_value(map, "x-calibration", Some("0123456789abcdef")).is_ok()
                }
                HostCall::Clock => hostcalls::get_current_time().is_ok(),
            };
        }
        Action::Continue
    }
}
