//! Host access that cannot panic. The SDK's trait helpers `unwrap` host results, and its
//! string maps `unwrap` UTF-8 conversion of header values (a client can send obs-text), so
//! the filter calls the byte-level hostcalls and converts leniently.

use aetherflow_core::headers::HeaderLines;
use aetherflow_core::propagation::Injector;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use std::time::UNIX_EPOCH;

/// Bytes to text; invalid UTF-8 becomes U+FFFD (such values are invalid trace headers anyway).
pub fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

// Raw imports for the two hottest host results: the SDK's `get_map_bytes` allocates a String
// and a Vec per header line (the raw call hands back the host's buffer, which `HeaderLines`
// indexes in place), and its `get_property` builds the path anew on every call. The SDK
// declares the same imports; wasm merges identical imports.
extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

/// Takes ownership of a buffer the host returned.
///
/// # Safety
/// `data`/`size` must come from a successful host call that allocated through the SDK's
/// `proxy_on_memory_allocate` (a `Vec<u8>` of exactly `size` capacity, forgotten).
unsafe fn host_buffer(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() || size == 0 {
        return None;
    }
    // SAFETY: per the contract above; the Vec frees it on drop, as the SDK's getters do.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Every line of a header map, in order, repeated names kept.
pub fn header_lines(map: MapType) -> HeaderLines {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer and a size into the two locals; status 0 is Ok.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    if status != 0 {
        return HeaderLines::default();
    }
    // SAFETY: a successful call returns a buffer allocated through the SDK.
    match unsafe { host_buffer(data, size) } {
        Some(buf) => HeaderLines::parse(&buf),
        None => HeaderLines::default(),
    }
}

/// The first value of one header.
pub fn header(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(map, name)
        .ok()
        .flatten()
        .map(text)
}

/// Sets (replaces) a header; failures are ignored (tracing never breaks traffic).
pub fn set_header(map: MapType, name: &str, value: &str) {
    let _ = hostcalls::set_map_value(map, name, Some(value));
}

/// Removes a header.
pub fn remove_header(map: MapType, name: &str) {
    let _ = hostcalls::remove_map_value(map, name);
}

/// A property as raw bytes. `path` is the host's serialized form: segments joined by NUL
/// (`b"request\0protocol"`), written as constants so no path is built per request (the
/// SDK's `get_property` allocates the segment list and its serialization on every call).
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the path is a valid slice; the host writes a pointer and a size into the locals.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    if status != 0 {
        return None;
    }
    // SAFETY: a successful call returns a buffer allocated through the SDK.
    unsafe { host_buffer(data, size) }
}

/// A string property; `None` when absent or empty.
pub fn property_str(path: &[u8]) -> Option<String> {
    property(path).map(text)
}

/// An integer property (Envoy encodes them as 8 little-endian bytes).
pub fn property_int(path: &[u8]) -> Option<i64> {
    let b = property(path)?;
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

/// `len` bytes at `offset` of a body buffer.
pub fn body_bytes(buffer: BufferType, offset: usize, len: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(buffer, offset, len).ok().flatten()
}

/// Host clock, nanoseconds since the Unix epoch (0 if the host cannot say).
pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

/// Logs a line; failures are ignored.
pub fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

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
            let _ = hostcalls::add_map_value(MapType::HttpRequestHeaders, name, value);
        }
    }

    fn remove(&mut self, name: &str) {
        // Envoy's header names are lowercase, as are the names the core removes.
        if self.0.contains(name) {
            remove_header(MapType::HttpRequestHeaders, name);
        }
    }
}
