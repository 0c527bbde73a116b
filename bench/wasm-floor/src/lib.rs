//! The benchmark's "wasm floor": a proxy-wasm HTTP filter on the same ABI layer
//! (`aetherflow-wasm-abi`) and release profile as `trace_filter.wasm`, exporting the same
//! per-stream callbacks, each of which does nothing.
//!
//! Loaded into the same Envoy as the filter (same V8 runtime, same plugin set-up), it
//! measures what the filter costs per request before it makes a single host call: Envoy
//! creating the context and entering the VM for each stream event. The filter's own cost is
//! what it adds above this floor.
//!
//! For calibration it can also repeat one kind of host call on each request's headers, so
//! the cost of that call is the slope between two runs (`BENCH_FLOOR_CONFIG`):
//! `{"host_call": "<kind>", "repeat": N}` with kind `property` (`request.protocol`),
//! `header` (`:path`), `header_map` (all request headers), `set_header` or `clock`, each
//! through the same wrapper the filter calls.
// No `forbid(unsafe_code)`: the exported callbacks are `#[no_mangle]`, which that lint
// counts; the module has no unsafe block.

use aetherflow_wasm_abi::{self as host, BufferType, LogLevel, MapType};
use std::cell::Cell;

/// What each request does besides nothing.
#[derive(Clone, Copy)]
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

thread_local! {
    /// The calibration of the plugin (one per VM in the benchmark).
    static CALLS: Cell<Calibration> = const { Cell::new(Calibration::None) };
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root_context_id: u32, size: usize) -> u32 {
    let config = host::buffer_bytes(BufferType::PluginConfiguration, 0, size).unwrap_or_default();
    match calibration(&String::from_utf8_lossy(&config)) {
        Ok(c) => {
            CALLS.with(|calls| calls.set(c));
            1
        }
        Err(e) => {
            host::log(LogLevel::Error, &format!("wasm-floor: {e}"));
            0
        }
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context_id: u32, _headers: usize, _eos: u32) -> u32 {
    let Calibration::Repeat(call, n) = CALLS.with(Cell::get) else {
        return 0;
    };
    let map = MapType::HttpRequestHeaders;
    for _ in 0..n {
        // Results are dropped: only the call's cost matters.
        match call {
            HostCall::Property => drop(host::property(b"request\0protocol")),
            HostCall::Header => drop(host::header_bytes(map, ":path")),
            HostCall::HeaderMap => drop(host::header_lines(map)),
            HostCall::SetHeader => host::set_header(map, "x-calibration", "0123456789abcdef"),
            HostCall::Clock => drop(host::now_nanos()),
        }
    }
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(_context_id: u32, _size: usize, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context_id: u32, _headers: usize, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(_context_id: u32, _size: usize, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(_context_id: u32, _trailers: usize) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_context_id: u32) {}
