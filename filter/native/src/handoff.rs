//! Export requests a torn-down configuration could not finish, waiting for a live one.
//!
//! When a configuration changes (an LDS or ECDS update), Envoy creates the new filter
//! configuration first and destroys the old one after its listener drained; the destructor
//! cancels the old configuration's callouts, and no hook of it runs again. So the old plugin
//! cannot send what it still holds. It encodes it instead (its own resource, so the spans keep
//! the service name they were traced under) and leaves the requests here; the next flush of
//! any live configuration of the module sends them first. Process-wide and bounded: beyond
//! [`MAX_SPANS`] the dying configuration counts the spans as dropped. A request cancelled in
//! flight may have reached the collector already: it is sent again (at least once).

use aetherflow_core::retry::Request;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// Most spans held for a successor configuration.
pub const MAX_SPANS: usize = 65_536;

#[derive(Default)]
struct Queue {
    requests: VecDeque<Request>,
    spans: usize,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    requests: VecDeque::new(),
    spans: 0,
});

/// Leaves `request` for a live configuration; gives it back when the queue is full.
pub fn put(request: Request) -> Result<(), Request> {
    let mut q = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
    if q.spans.saturating_add(request.spans) > MAX_SPANS {
        return Err(request);
    }
    q.spans += request.spans;
    q.requests.push_back(request);
    Ok(())
}

/// Whether nothing is waiting (the ticker's check before it wakes the main thread).
pub fn is_empty() -> bool {
    QUEUE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .requests
        .is_empty()
}

/// The oldest request left by a torn-down configuration.
pub fn take() -> Option<Request> {
    let mut q = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
    let r = q.requests.pop_front()?;
    q.spans -= r.spans;
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_leave_in_order_and_the_queue_is_bounded() {
        let big = |spans| Request::new(vec![0; 4], spans);
        assert!(put(big(MAX_SPANS - 1)).is_ok());
        assert!(put(big(2)).is_err(), "over the bound");
        assert!(put(big(1)).is_ok());
        assert_eq!(take().map(|r| r.spans), Some(MAX_SPANS - 1));
        assert_eq!(take().map(|r| r.spans), Some(1));
        assert!(take().is_none());
    }
}
