//! The callbacks the module exports, and the contexts they are routed to. Only what the
//! filter needs is exported: Envoy skips a callback a module does not export (request
//! trailers, metadata, network streams, gRPC calls, queues and foreign functions are not).
//!
//! One VM is single-threaded: the contexts live in a thread-local table. A root context is
//! created for each plugin sharing the VM (`parent_context_id == 0`), a stream context for each
//! HTTP stream, with its root as parent. An id the table does not know (a bug, or a stream of
//! a root that failed) is ignored: traffic continues.

use crate::host::raw::CONTINUE;
use crate::http::HttpTrace;
use crate::root::TraceRoot;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// Context ids are small integers the host hands out in sequence: a multiplicative hash is
/// enough (std's default, SipHash, costs more than the rest of a lookup).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type ById<T> = HashMap<u32, T, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Contexts {
    /// Root contexts are shared so that a root's callback runs without the table borrowed:
    /// a host call it makes may end in another callback.
    roots: ById<Rc<RefCell<TraceRoot>>>,
    streams: ById<HttpTrace>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::default();
}

fn root(id: u32) -> Option<Rc<RefCell<TraceRoot>>> {
    CONTEXTS.with(|c| c.try_borrow().ok()?.roots.get(&id).cloned())
}

/// Runs `f` on a root context; `None` if there is none by that id (or it is busy).
fn on_root<R>(id: u32, f: impl FnOnce(&mut TraceRoot) -> R) -> Option<R> {
    let r = root(id)?;
    let mut r = r.try_borrow_mut().ok()?;
    Some(f(&mut r))
}

/// Runs `f` on a stream context. Stream callbacks make no host call that re-enters a callback.
fn on_stream(id: u32, f: impl FnOnce(&mut HttpTrace)) {
    CONTEXTS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if let Some(s) = c.streams.get_mut(&id) {
                f(s);
            }
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
    CONTEXTS.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return;
        };
        if parent_context_id == 0 {
            // The host may start a root again (after its configuration failed): keep it.
            c.roots
                .entry(context_id)
                .or_insert_with(|| Rc::new(RefCell::new(TraceRoot::default())));
            return;
        }
        let stream = match c.roots.get(&parent_context_id).map(|r| r.try_borrow()) {
            Some(Ok(r)) => r.new_stream(),
            // A root busy in a callback cannot be asked; a stream without its configuration
            // passes through untraced.
            _ => HttpTrace::new(None),
        };
        c.streams.insert(context_id, stream);
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(
    root_context_id: u32,
    plugin_configuration_size: usize,
) -> u32 {
    on_root(root_context_id, |r| {
        r.on_configure(plugin_configuration_size)
    })
    .map_or(0, u32::from)
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    on_root(root_context_id, TraceRoot::on_tick);
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token: u32,
    _num_headers: usize,
    _body_size: usize,
    _num_trailers: usize,
) {
    on_root(context_id, |r| r.on_http_call_response(token));
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _num_headers: usize,
    _end_of_stream: u32,
) -> u32 {
    on_stream(context_id, HttpTrace::on_request_headers);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(
    context_id: u32,
    body_size: usize,
    _end_of_stream: u32,
) -> u32 {
    on_stream(context_id, |s| s.on_request_body(body_size));
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _num_headers: usize,
    end_of_stream: u32,
) -> u32 {
    on_stream(context_id, |s| s.on_response_headers(end_of_stream != 0));
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(
    context_id: u32,
    body_size: usize,
    end_of_stream: u32,
) -> u32 {
    on_stream(context_id, |s| {
        s.on_response_body(body_size, end_of_stream != 0)
    });
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(context_id: u32, _num_trailers: usize) -> u32 {
    on_stream(context_id, HttpTrace::on_response_trailers);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    on_stream(context_id, HttpTrace::on_log);
}

/// A stream is done at once; a root sends what it holds first (see [`TraceRoot::on_done`]).
#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    on_root(context_id, TraceRoot::on_done).map_or(1, u32::from)
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    CONTEXTS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.streams.remove(&context_id).is_none() {
                c.roots.remove(&context_id);
            }
        }
    });
}
