//! Our declarations of the Envoy dynamic-modules ABI (HTTP filter subset), written from the
//! text of Envoy's `abi.h`: exactly the types, event hooks and callbacks this module uses.
//! No Rust SDK for this ABI version is published; these are checked against the real Envoy
//! 1.40 binary by the test suite (a wrong signature shows as a wrong value or a crash there).
//!
//! Naming: `envoy_dynamic_module_type_*` types become the short Rust names below; hooks are
//! defined in [`crate::hooks`]; callbacks are the `extern "C"` block at the end.
#![allow(non_camel_case_types)]
// The enums mirror the header's complete value lists (their discriminants are the ABI), also
// the values this module does not pass today.
#![allow(dead_code)]

use std::ffi::c_void;

/// The ABI version this module is built against (Envoy 1.40 reports `v0.2.0`; a mismatch is
/// only a warning in Envoy's log).
pub const ABI_VERSION: &std::ffi::CStr = c"v0.2.0";

/// A buffer owned by Envoy (valid for the duration the callback documents).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, or empty for a null pointer.
    ///
    /// # Safety
    /// `ptr`/`length` must describe readable memory for the returned lifetime (Envoy's
    /// guarantee for the current hook).
    pub unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            return &[];
        }
        // SAFETY: per the contract above.
        unsafe { std::slice::from_raw_parts(self.ptr, self.length) }
    }
}

/// A buffer owned by the module, read by Envoy during the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(s: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: s.as_ptr(),
            length: s.len(),
        }
    }
}

/// A header owned by Envoy's header map.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl EnvoyHttpHeader {
    /// A header with no name and no value (slots Envoy fills).
    pub const EMPTY: EnvoyHttpHeader = EnvoyHttpHeader {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };

    /// The name and the value.
    ///
    /// # Safety
    /// Both pointers must describe readable memory for the returned lifetime (Envoy's
    /// guarantee for the hook that produced the header).
    pub unsafe fn name_value<'a>(&self) -> (&'a [u8], &'a [u8]) {
        let name = EnvoyBuffer {
            ptr: self.key_ptr,
            length: self.key_length,
        };
        let value = EnvoyBuffer {
            ptr: self.value_ptr,
            length: self.value_length,
        };
        // SAFETY: per the contract above.
        unsafe { (name.bytes(), value.bytes()) }
    }
}

/// A header owned by the module (callout requests).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl ModuleHttpHeader {
    pub fn of(key: &str, value: &str) -> ModuleHttpHeader {
        ModuleHttpHeader {
            key_ptr: key.as_ptr(),
            key_length: key.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        }
    }
}

/// Which header map (`envoy_dynamic_module_type_http_header_type`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderType {
    RequestHeader = 0,
    RequestTrailer = 1,
    ResponseHeader = 2,
    ResponseTrailer = 3,
}

/// Which body (`envoy_dynamic_module_type_http_body_type`; the header's names).
#[repr(C)]
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    ReceivedRequestBody = 0,
    BufferedRequestBody = 1,
    ReceivedResponseBody = 2,
    BufferedResponseBody = 3,
}

/// `envoy_dynamic_module_type_log_level`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
    Off = 6,
}

/// `envoy_dynamic_module_type_http_callout_init_result` (a `u32` on the wire: Envoy may add
/// values, which must not be undefined behaviour here).
pub type CalloutInitResult = u32;
pub const CALLOUT_INIT_SUCCESS: CalloutInitResult = 0;

/// `envoy_dynamic_module_type_http_callout_result`.
pub type CalloutResult = u32;
pub const CALLOUT_SUCCESS: CalloutResult = 0;

/// `envoy_dynamic_module_type_metrics_result`.
pub type MetricsResult = u32;
pub const METRICS_SUCCESS: MetricsResult = 0;

/// `envoy_dynamic_module_type_attribute_id` values this module reads.
pub type AttributeId = u32;
pub const ATTR_REQUEST_PROTOCOL: AttributeId = 10;
pub const ATTR_RESPONSE_CODE: AttributeId = 15;
pub const ATTR_RESPONSE_CODE_DETAILS: AttributeId = 16;
pub const ATTR_RESPONSE_FLAGS: AttributeId = 17;
pub const ATTR_SOURCE_ADDRESS: AttributeId = 24;
pub const ATTR_UPSTREAM_ADDRESS: AttributeId = 41;
pub const ATTR_XDS_ROUTE_NAME: AttributeId = 61;

/// Continue status of every `on_http_filter_*` header/body/trailer hook (value 0 in each of
/// the status enums).
pub type FilterStatus = u32;
pub const CONTINUE: FilterStatus = 0;

/// `..._http_filter_config_envoy_ptr`: Envoy's filter configuration.
pub type ConfigEnvoyPtr = *mut c_void;
/// `..._http_filter_config_module_ptr`: ours.
pub type ConfigModulePtr = *const c_void;
/// `..._http_filter_envoy_ptr`: Envoy's per-stream filter.
pub type FilterEnvoyPtr = *mut c_void;
/// `..._http_filter_module_ptr`: ours.
pub type FilterModulePtr = *const c_void;
/// `..._http_filter_config_scheduler_module_ptr`.
pub type ConfigSchedulerPtr = *mut c_void;

extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        gauge_id: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    /// Replaces every value of `key`; an empty value removes the header.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// Appends a line (an existing line of `key` stays): cheaper than a set when the map has
    /// no line of `key`.
    pub fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
        result: *mut EnvoyBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        id: AttributeId,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoyPtr,
        id: AttributeId,
        result: *mut u64,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_cluster_name(
        filter: FilterEnvoyPtr,
        result: *mut EnvoyBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: ConfigEnvoyPtr,
    ) -> ConfigSchedulerPtr;
    /// Thread-safe: posts `event_id` to the main thread's `on_http_filter_config_scheduled`.
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: ConfigSchedulerPtr,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: ConfigSchedulerPtr,
    );
    /// Main thread only.
    pub fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: ConfigEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> CalloutInitResult;
}
