//! Safe wrappers over the callbacks, for one stream: Envoy's pointers and buffers are turned
//! into borrowed text here and nowhere else. Everything Envoy hands back is treated as
//! untrusted bytes (a null pointer is empty; non-UTF-8 values are converted lossily).

use crate::abi::{self, EnvoyBuffer, EnvoyHttpHeader, FilterEnvoyPtr, HeaderType, ModuleBuffer};
use aetherflow_core::headers::NameFilter;
use aetherflow_core::propagation::{Extractor, Injector};
use aetherflow_core::stream::{HeaderSource, RequestLines, StreamFacts};
use std::borrow::Cow;

/// Text from Envoy-owned bytes: borrowed when valid UTF-8 (Envoy's header values nearly
/// always are), a lossy copy otherwise. (`from_utf8` first: its validation is several times
/// cheaper than the lossy decoder's chunk iteration, measured with callgrind.)
fn text(b: &[u8]) -> Cow<'_, str> {
    // ASCII first: header values nearly always are, and the word-at-a-time ASCII test is
    // several times cheaper than the UTF-8 validator on short strings (callgrind).
    if b.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(b) });
    }
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(String::from_utf8_lossy(b).into_owned()),
    }
}

/// Most requests carry fewer header lines than this: their view needs no heap allocation.
const INLINE_LINES: usize = 32;
/// A map with more lines than this is not read (Envoy's default limit is 100 headers).
const MAX_LINES: usize = 1024;

/// The lines of one header map, borrowed from Envoy's map for the current hook.
pub struct HeaderView<'a> {
    lines: Vec<(&'a str, Cow<'a, str>)>,
    names: NameFilter,
}

impl<'a> HeaderView<'a> {
    /// Reads every line of a header map (two callbacks, no copy of names or values): cheaper
    /// than two single-header reads.
    ///
    /// # Safety
    /// `filter` must be the pointer Envoy passed to the current hook. The lines borrow Envoy's
    /// header map: the view must be dropped before the hook returns and before any header of
    /// that map is written (writes go through [`Deferred`] and are applied after).
    pub unsafe fn read(filter: FilterEnvoyPtr, map: HeaderType) -> HeaderView<'a> {
        // SAFETY: `filter` is the pointer Envoy passed to the current hook.
        let n = unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(filter, map) };
        // Envoy writes all `n` lines: the buffer always has room for every one of them (a map
        // beyond MAX_LINES, far above Envoy's own limits, is not read at all rather than
        // read into too small a buffer).
        let n = if n > MAX_LINES { 0 } else { n };
        let mut raw = [EnvoyHttpHeader::EMPTY; INLINE_LINES];
        let mut heap = Vec::new();
        let slots: &mut [EnvoyHttpHeader] = if n <= INLINE_LINES {
            &mut raw[..n]
        } else {
            heap.resize(n, EnvoyHttpHeader::EMPTY);
            &mut heap[..]
        };
        // SAFETY: `slots` has room for the `n` lines Envoy just counted (the map cannot change
        // between the two calls: the hook runs on the stream's thread).
        let ok = n > 0
            && unsafe {
                abi::envoy_dynamic_module_callback_http_get_headers(filter, map, slots.as_mut_ptr())
            };
        let mut lines = Vec::with_capacity(if ok { n } else { 0 });
        let mut names = NameFilter::default();
        if ok {
            for h in slots.iter() {
                // SAFETY: Envoy filled each slot with pointers into the live header map.
                let (k, v) = unsafe { h.name_value() };
                // Envoy's header names are tokens: a name that is not UTF-8 is skipped.
                if let Cow::Borrowed(k) = text(k) {
                    names.insert(k);
                    lines.push((k, text(v)));
                }
            }
        }
        HeaderView { lines, names }
    }
}

impl Extractor for HeaderView<'_> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        if !self.names.may_contain(name) {
            return Vec::new();
        }
        self.lines
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        if !self.names.may_contain(name) {
            return None;
        }
        self.lines
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl RequestLines for HeaderView<'_> {
    fn lines(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().map(|(k, v)| (*k, v.as_ref()))
    }
}

/// One held-back header write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Replace every line of the header.
    Set,
    /// Append a line: for a header the map does not have (same result as a set, cheaper).
    Add,
    /// Remove every line.
    Remove,
}

impl HeaderSource for HeaderView<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }
}

/// Header writes held back until the map's header view is gone (a write may free the
/// memory the view borrows). The core reads the headers as received either way, exactly as
/// the Wasm form reads its copy of them.
pub struct Deferred {
    text: String,
    /// (op, name, value) with ranges into `text`.
    ops: Vec<(Op, std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl Default for Deferred {
    /// Sized for the usual writes (`traceparent`, perhaps `tracestate` and a legacy format)
    /// so that no write grows them.
    fn default() -> Deferred {
        Deferred {
            text: String::with_capacity(256),
            ops: Vec::with_capacity(4),
        }
    }
}

impl Deferred {
    fn push_str(&mut self, s: &str) -> std::ops::Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Holds one write back.
    pub fn push(&mut self, op: Op, name: &str, value: &str) {
        let k = self.push_str(name);
        let v = self.push_str(value);
        self.ops.push((op, k, v));
    }

    /// Applies every write, in order.
    pub fn apply(self, out: &mut Writer) {
        for (op, k, v) in &self.ops {
            let name = self.text.get(k.clone()).unwrap_or_default();
            let value = self.text.get(v.clone()).unwrap_or_default();
            match op {
                Op::Set => out.set(name, value),
                Op::Add => out.add(name, value),
                Op::Remove => out.remove(name),
            }
        }
    }
}

/// Sets or removes header lines of one map.
pub struct Writer {
    pub filter: FilterEnvoyPtr,
    pub map: HeaderType,
}

impl Writer {
    /// Appends a line of `name` (the caller knows the map has none).
    pub fn add(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        // SAFETY: `filter` is the current hook's pointer; both buffers outlive the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_add_header(
                self.filter,
                self.map,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            );
        }
    }

    fn write(&self, name: &str, value: &[u8]) {
        // SAFETY: `filter` is the current hook's pointer; both buffers outlive the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                self.map,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            );
        }
    }
}

impl Injector for Writer {
    fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            // Envoy reads an empty value as "remove": nothing the tracer sets is empty, but
            // a set must never turn into a removal silently.
            return;
        }
        self.write(name, value.as_bytes());
    }

    fn remove(&mut self, name: &str) {
        self.write(name, b"");
    }
}

/// Reads single headers of one map.
pub struct Reader {
    pub filter: FilterEnvoyPtr,
    pub map: HeaderType,
}

impl HeaderSource for Reader {
    fn header(&self, name: &str) -> Option<String> {
        let mut out = EnvoyBuffer::EMPTY;
        let mut count = 0usize;
        // SAFETY: the key outlives the call; Envoy writes one buffer and a count into locals.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                self.filter,
                self.map,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                &mut count,
            )
        };
        if !found || out.ptr.is_null() {
            return None;
        }
        // SAFETY: Envoy's buffer is valid during this hook; copied at once.
        Some(text(unsafe { out.bytes() }).into_owned())
    }
}

/// Envoy's stream attributes, read at the end of the stream.
pub struct Attributes(pub FilterEnvoyPtr);

impl Attributes {
    fn string(&self, id: abi::AttributeId) -> Option<String> {
        let mut out = EnvoyBuffer::EMPTY;
        // SAFETY: Envoy writes one buffer into the local; it is copied before returning.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.0, id, &mut out,
            )
        };
        if !ok {
            return None;
        }
        // SAFETY: as above.
        let b = unsafe { out.bytes() };
        (!b.is_empty()).then(|| text(b).into_owned())
    }

    fn int(&self, id: abi::AttributeId) -> Option<u64> {
        let mut out = 0u64;
        // SAFETY: Envoy writes one integer into the local.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_int(self.0, id, &mut out)
        };
        ok.then_some(out)
    }
}

impl StreamFacts for Attributes {
    fn response_code(&mut self) -> Option<i64> {
        self.int(abi::ATTR_RESPONSE_CODE)
            .and_then(|c| i64::try_from(c).ok())
    }
    fn response_code_details(&mut self) -> Option<String> {
        self.string(abi::ATTR_RESPONSE_CODE_DETAILS)
    }
    fn response_flags(&mut self) -> Option<u64> {
        self.int(abi::ATTR_RESPONSE_FLAGS)
    }
    fn protocol(&mut self) -> Option<String> {
        self.string(abi::ATTR_REQUEST_PROTOCOL)
    }
    fn source_address(&mut self) -> Option<String> {
        self.string(abi::ATTR_SOURCE_ADDRESS)
    }
    fn route_name(&mut self) -> Option<String> {
        self.string(abi::ATTR_XDS_ROUTE_NAME)
    }
    fn upstream_cluster(&mut self) -> Option<String> {
        // `xds.cluster_name` is not an attribute of HTTP filters in this ABI; the routed
        // cluster is its own callback.
        let mut out = EnvoyBuffer::EMPTY;
        // SAFETY: as in `string`.
        let ok =
            unsafe { abi::envoy_dynamic_module_callback_http_get_cluster_name(self.0, &mut out) };
        if !ok {
            return None;
        }
        // SAFETY: as in `string`.
        let b = unsafe { out.bytes() };
        (!b.is_empty()).then(|| text(b).into_owned())
    }
    fn upstream_address(&mut self) -> Option<String> {
        self.string(abi::ATTR_UPSTREAM_ADDRESS)
    }
}

/// Most body chunks are a handful of slices: no heap allocation to read them.
const INLINE_SLICES: usize = 8;

/// Calls `f` with the slices of the body chunk received in the current body hook, read in
/// place (no copy); an unreadable chunk is an empty list.
///
/// # Safety
/// `filter` must be the pointer of the current body hook.
pub unsafe fn with_received_body<R>(
    filter: FilterEnvoyPtr,
    body: abi::BodyType,
    f: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> R,
) -> R {
    // SAFETY: `filter` is the current hook's pointer.
    let n = unsafe { abi::envoy_dynamic_module_callback_http_get_body_chunks_size(filter, body) };
    let mut inline = [EnvoyBuffer::EMPTY; INLINE_SLICES];
    let mut heap = Vec::new();
    // A body chunk is a handful of slices; a count beyond this is not believed.
    let n = if n > 1 << 16 { 0 } else { n };
    let slots: &mut [EnvoyBuffer] = if n <= INLINE_SLICES {
        &mut inline[..n]
    } else {
        heap.resize(n, EnvoyBuffer::EMPTY);
        &mut heap[..]
    };
    // SAFETY: `slots` has room for the `n` slices Envoy just counted.
    let ok = n > 0
        && unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks(
                filter,
                body,
                slots.as_mut_ptr(),
            )
        };
    let used = if ok { n } else { 0 };
    // SAFETY: Envoy's slices stay valid during the body hook, which outlives `f`.
    let mut slices = slots[..used].iter().map(|c| unsafe { c.bytes() });
    f(&mut slices)
}

/// Logs a line through Envoy's `dynamic_modules` logger (any thread).
pub fn log(level: abi::LogLevel, msg: &str) {
    // SAFETY: the message outlives the call (Envoy copies it).
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(msg.as_bytes())) }
}
