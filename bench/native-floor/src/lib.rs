//! A dynamic-module HTTP filter that does nothing: every hook Envoy 1.40 requires, each
//! returning at once. The harness runs it as the `native-floor` configuration, so the cost of
//! crossing into a native module at all is measured beside the real filter in the same run.
//! It imports no callback and owns no memory: the configuration and stream pointers it hands
//! Envoy are non-null constants it never dereferences.
#![forbid(unsafe_op_in_unsafe_fn)]

use std::ffi::c_void;

/// An Envoy-owned buffer, as passed by value to config_new.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const u8,
    length: usize,
}

/// What config_new and filter_new return: any non-null pointer (never read).
static TOKEN: u8 = 0;

fn token() -> *const c_void {
    &TOKEN as *const u8 as *const c_void
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    c"v0.2.0".as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config: *mut c_void,
    _name: EnvoyBuffer,
    _value: EnvoyBuffer,
) -> *const c_void {
    token()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_config: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    _config: *const c_void,
    _filter: *mut c_void,
) -> *const c_void {
    token()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_filter: *const c_void) {}

/// The header/body/trailer hooks: 0 is Continue in each status enum.
macro_rules! continue_hooks {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[no_mangle]
            pub extern "C" fn $name(_filter: *mut c_void, _module: *const c_void $(, $arg: $ty)*) -> u32 {
                $(let _ = $arg;)*
                0
            }
        )*
    };
}

continue_hooks! {
    envoy_dynamic_module_on_http_filter_request_headers(end: bool);
    envoy_dynamic_module_on_http_filter_request_body(end: bool);
    envoy_dynamic_module_on_http_filter_request_trailers();
    envoy_dynamic_module_on_http_filter_response_headers(end: bool);
    envoy_dynamic_module_on_http_filter_response_body(end: bool);
    envoy_dynamic_module_on_http_filter_response_trailers();
}

/// Hooks with nothing to return.
macro_rules! void_hooks {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[no_mangle]
            pub extern "C" fn $name(_filter: *mut c_void, _module: *const c_void $(, $arg: $ty)*) {
                $(let _ = $arg;)*
            }
        )*
    };
}

void_hooks! {
    envoy_dynamic_module_on_http_filter_stream_complete();
    envoy_dynamic_module_on_http_filter_http_callout_done(
        id: u64, result: u32, headers: *const c_void, headers_size: usize, body: *const c_void, body_size: usize);
    envoy_dynamic_module_on_http_filter_http_stream_headers(
        id: u64, headers: *const c_void, headers_size: usize, end: bool);
    envoy_dynamic_module_on_http_filter_http_stream_data(
        id: u64, data: *const c_void, data_count: usize, end: bool);
    envoy_dynamic_module_on_http_filter_http_stream_trailers(
        id: u64, trailers: *const c_void, trailers_size: usize);
    envoy_dynamic_module_on_http_filter_http_stream_complete(id: u64);
    envoy_dynamic_module_on_http_filter_http_stream_reset(id: u64, reason: u32);
    envoy_dynamic_module_on_http_filter_scheduled(event: u64);
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark();
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark();
}
