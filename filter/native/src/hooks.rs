//! The event hooks Envoy calls. Each one catches unwinding: a panic here would take the
//! whole proxy down (there is no sandbox), so a fault is counted
//! (`aetherflow_internal_errors`), logged at a bounded rate, tracing stops for that stream,
//! and the hook returns what lets traffic continue. Every pointer Envoy passes is checked
//! for null before use (Envoy does not check what `on_http_filter_new` returned).
// The hooks are called by Envoy with pointers it owns, by the ABI's contract; they cannot be
// `unsafe fn` for the caller's sake (C has no such notion) and check every pointer themselves.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::abi::{
    self, ConfigEnvoyPtr, ConfigModulePtr, EnvoyBuffer, EnvoyHttpHeader, FilterEnvoyPtr,
    FilterModulePtr, FilterStatus, CONTINUE,
};
use crate::filter::Filter;
use crate::host;
use crate::plugin::{now_ns, Plugin};
use aetherflow_core::log_limit::LogLimiter;
use aetherflow_core::stream::{Direction, Tracer};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Faults outside any configuration (no plugin to count them on).
static ORPHAN_FAULT_LOG: LogLimiter = LogLimiter::new();

fn report_fault(limiter: &LogLimiter, hook: &str) {
    if let Some(n) = limiter.allow(now_ns()) {
        host::log(
            abi::LogLevel::Error,
            &LogLimiter::line(
                &format!("internal fault in {hook}; the request continues untraced"),
                n,
            ),
        );
    }
}

/// Runs `f` on the stream's state; a panic abandons tracing for the stream.
fn on_stream(
    filter: FilterEnvoyPtr,
    module: FilterModulePtr,
    hook: &str,
    f: impl FnOnce(&mut Filter),
) {
    if filter.is_null() || module.is_null() {
        return;
    }
    // SAFETY: `module` is the `Box<Filter>` we returned from `on_http_filter_new`; Envoy calls
    // a stream's hooks one at a time on its worker thread and destroys it once.
    let state = unsafe { &mut *(module as *mut Filter) };
    if catch_unwind(AssertUnwindSafe(|| f(state))).is_err() {
        state.abandon();
        // Reporting must not panic again into Envoy.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            state.count_fault(filter);
            match state.plugin() {
                Some(p) => report_fault(&p.fault_log, hook),
                None => report_fault(&ORPHAN_FAULT_LOG, hook),
            }
        }));
    }
}

/// Runs `f` on the plugin of a configuration (main thread).
fn on_plugin(module: ConfigModulePtr, hook: &str, f: impl FnOnce(&Plugin)) {
    if module.is_null() {
        return;
    }
    // SAFETY: `module` is the `Arc<Plugin>` pointer we returned from config_new, alive until
    // config_destroy (Envoy calls no config hook after it).
    let plugin = unsafe { &*(module as *const Plugin) };
    if catch_unwind(AssertUnwindSafe(|| f(plugin))).is_err() {
        let _ = catch_unwind(AssertUnwindSafe(|| report_fault(&plugin.fault_log, hook)));
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    abi::ABI_VERSION.as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ConfigModulePtr {
    let made = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Envoy's buffer is valid during this call; it is parsed before returning.
        let raw = unsafe { config.bytes() };
        let tracer = match Tracer::from_json(raw) {
            Ok(t) => t,
            Err(line) => {
                host::log(abi::LogLevel::Error, &line);
                return std::ptr::null();
            }
        };
        host::log(abi::LogLevel::Info, &tracer.summary());
        match Plugin::start(config_envoy, tracer) {
            Ok(p) => Arc::into_raw(p) as ConfigModulePtr,
            Err(line) => {
                host::log(abi::LogLevel::Error, &line);
                std::ptr::null()
            }
        }
    }));
    made.unwrap_or_else(|_| {
        report_fault(&ORPHAN_FAULT_LOG, "on_http_filter_config_new");
        std::ptr::null()
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(module: ConfigModulePtr) {
    if module.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the pointer came from `Arc::into_raw` in config_new; Envoy destroys once.
        let plugin = unsafe { Arc::from_raw(module as *const Plugin) };
        plugin.shutdown();
    }));
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: ConfigEnvoyPtr,
    module: ConfigModulePtr,
    event_id: u64,
) {
    on_plugin(module, "on_http_filter_config_scheduled", |p| {
        p.on_scheduled(event_id)
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: ConfigEnvoyPtr,
    module: ConfigModulePtr,
    callout_id: u64,
    result: abi::CalloutResult,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_size: usize,
) {
    on_plugin(module, "on_http_filter_config_http_callout_done", |p| {
        let status = if result == abi::CALLOUT_SUCCESS {
            // SAFETY: Envoy's array of `headers_size` headers is valid during this call.
            unsafe { status_of(headers, headers_size) }
        } else {
            None
        };
        p.on_export_done(callout_id, status);
    });
}

/// The `:status` of a callout response.
///
/// # Safety
/// `headers` must point to `n` headers valid for this call (or be null).
unsafe fn status_of(headers: *const EnvoyHttpHeader, n: usize) -> Option<u16> {
    if headers.is_null() || n == 0 {
        return None;
    }
    // SAFETY: per the contract above.
    let headers = unsafe { std::slice::from_raw_parts(headers, n) };
    headers.iter().find_map(|h| {
        // SAFETY: each header points into Envoy's response map, valid for this call.
        let (k, v) = unsafe { h.name_value() };
        (k == b":status")
            .then(|| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .flatten()
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: ConfigModulePtr,
    _filter_envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    // Never null: Envoy does not check, and keeps calling the stream's hooks with it.
    let plugin = (!config.is_null()).then(|| {
        // SAFETY: `config` is our `Arc<Plugin>` pointer (see config_new); the count taken here
        // is returned when the stream's filter is destroyed.
        unsafe {
            Arc::increment_strong_count(config as *const Plugin);
            Arc::from_raw(config as *const Plugin)
        }
    });
    Box::into_raw(Box::new(Filter::new(plugin))) as FilterModulePtr
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: FilterModulePtr) {
    if module.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the pointer came from `Box::into_raw` in filter_new; destroyed once.
        drop(unsafe { Box::from_raw(module as *mut Filter) });
    }));
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter: FilterEnvoyPtr,
    module: FilterModulePtr,
    _end_of_stream: bool,
) -> FilterStatus {
    on_stream(filter, module, "request_headers", |f| {
        f.on_request_headers(filter)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter: FilterEnvoyPtr,
    module: FilterModulePtr,
    _end_of_stream: bool,
) -> FilterStatus {
    on_stream(filter, module, "request_body", |f| {
        f.on_body(filter, Direction::Request)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
) -> FilterStatus {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> FilterStatus {
    on_stream(filter, module, "response_headers", |f| {
        f.on_response_headers(filter);
        if end_of_stream {
            f.on_response_end();
        }
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter: FilterEnvoyPtr,
    module: FilterModulePtr,
    end_of_stream: bool,
) -> FilterStatus {
    on_stream(filter, module, "response_body", |f| {
        f.on_body(filter, Direction::Response);
        if end_of_stream {
            f.on_response_end();
        }
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    filter: FilterEnvoyPtr,
    module: FilterModulePtr,
) -> FilterStatus {
    on_stream(filter, module, "response_trailers", |f| {
        f.on_response_trailers(filter)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter: FilterEnvoyPtr,
    module: FilterModulePtr,
) {
    on_stream(filter, module, "stream_complete", |f| {
        f.on_stream_complete(filter)
    });
}

// Hooks Envoy requires of every HTTP filter module; this filter starts no per-stream callout,
// stream or scheduler and ignores watermarks, so they have nothing to do.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _callout_id: u64,
    _result: abi::CalloutResult,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter: FilterEnvoyPtr,
    _module: FilterModulePtr,
) {
}
