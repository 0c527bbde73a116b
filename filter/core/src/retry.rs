//! Export requests waiting for another attempt after a retryable failure, apart from the host
//! so both adapters share it and it is tested here.
//!
//! The collector is down for a moment when it restarts (its durable queue keeps what it
//! accepted, but a request sent while it is down is refused). A request that failed with no
//! answer (connection refused, reset, timeout) or a retryable status (429, 502, 503, 504, the
//! statuses the OTLP specification calls retryable) is kept, encoded, and sent again after a
//! backoff: [`FIRST_BACKOFF_MS`] doubling up to [`MAX_BACKOFF_MS`], [`MAX_ATTEMPTS`] attempts
//! in all (about 6 s of retries). While a request waits, the adapter sends no new batches (the
//! spans wait in the span buffer, bounded as always): the oldest spans leave first, and a
//! collector that is down is probed by one request, not by every batch. The queue holds at
//! most `max_spans` spans (the adapters pass `max_buffered_spans`); a request beyond that,
//! or out of attempts, is dropped and the adapter counts its spans.

/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// Wait before the second attempt.
pub const FIRST_BACKOFF_MS: u64 = 250;
/// Longest wait between two attempts.
pub const MAX_BACKOFF_MS: u64 = 2000;

/// Whether an export that ended with `status` (`None`: no answer) may be tried again.
pub fn retryable(status: Option<u16>) -> bool {
    matches!(status, None | Some(429 | 502 | 503 | 504))
}

/// One encoded export request.
#[derive(Debug)]
pub struct Request {
    /// The OTLP body.
    pub body: Vec<u8>,
    /// Spans in it.
    pub spans: usize,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not to be sent before this time (host clock, ns).
    due_ns: u64,
}

impl Request {
    /// A request before its first attempt.
    pub fn new(body: Vec<u8>, spans: usize) -> Request {
        Request {
            body,
            spans,
            attempts: 0,
            due_ns: 0,
        }
    }
}

/// Failed requests waiting for their next attempt, oldest first.
#[derive(Debug, Default)]
pub struct RetryQueue {
    /// Oldest first (a few requests at most: a plain vector keeps the Wasm module small).
    waiting: Vec<Request>,
    spans: usize,
    max_spans: usize,
}

impl RetryQueue {
    /// An empty queue holding at most `max_spans` spans.
    pub fn new(max_spans: usize) -> RetryQueue {
        RetryQueue {
            max_spans,
            ..RetryQueue::default()
        }
    }

    /// Whether requests wait (then the adapter sends no new batches).
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// An attempt of `req` failed with `status`: keeps it for later when that may help;
    /// otherwise gives it back to be dropped and counted.
    pub fn failed(
        &mut self,
        mut req: Request,
        status: Option<u16>,
        now_ns: u64,
    ) -> Result<(), Request> {
        if !retryable(status)
            || req.attempts >= MAX_ATTEMPTS
            || self.spans + req.spans > self.max_spans
        {
            return Err(req);
        }
        let shift = req.attempts.saturating_sub(1).min(16);
        let backoff_ms = (FIRST_BACKOFF_MS << shift).min(MAX_BACKOFF_MS);
        req.due_ns = now_ns.saturating_add(backoff_ms * 1_000_000);
        self.spans += req.spans;
        self.waiting.push(req);
        Ok(())
    }

    /// The oldest request if it is due at `now_ns` (any waiting request when `now_ns` is
    /// `u64::MAX`: the plugin is closing and sends everything once more).
    pub fn due(&mut self, now_ns: u64) -> Option<Request> {
        if self.waiting.first()?.due_ns > now_ns {
            return None;
        }
        let req = self.waiting.remove(0);
        self.spans -= req.spans;
        Some(req)
    }

    /// Every waiting request (a native configuration handing over to the next one).
    pub fn take_all(&mut self) -> Vec<Request> {
        self.spans = 0;
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn attempted(spans: usize, attempts: u32) -> Request {
        Request {
            attempts,
            ..Request::new(vec![1, 2, 3], spans)
        }
    }

    #[rustfmt::skip]
    #[test]
    fn what_is_retried() {
        for (status, retry) in [
            (None, true), (Some(429), true), (Some(502), true), (Some(503), true), (Some(504), true),
            (Some(400), false), (Some(413), false), (Some(500), false), (Some(200), false),
        ] {
            assert_eq!(retryable(status), retry, "{status:?}");
        }
    }

    #[test]
    fn a_failed_request_waits_its_backoff_then_leaves() {
        let mut q = RetryQueue::new(100);
        assert!(q.failed(attempted(10, 1), None, 0).is_ok());
        assert!(!q.is_empty());
        assert!(
            q.due(FIRST_BACKOFF_MS * MS - 1).is_none(),
            "not before the backoff"
        );
        let r = q.due(FIRST_BACKOFF_MS * MS).expect("due");
        assert_eq!(
            (r.spans, r.attempts, r.body.as_slice()),
            (10, 1, &[1u8, 2, 3][..])
        );
        assert!(q.is_empty());
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let mut q = RetryQueue::new(100);
        let mut waits = Vec::new();
        for attempts in 1..MAX_ATTEMPTS {
            assert!(q.failed(attempted(1, attempts), Some(503), 0).is_ok());
            let mut t = 0;
            while q.due(t).is_none() {
                t += MS;
            }
            waits.push(t / MS);
        }
        assert_eq!(waits, [250, 500, 1000, 2000, 2000]);
    }

    #[test]
    fn out_of_attempts_not_retryable_or_over_the_bound_is_given_back() {
        let mut q = RetryQueue::new(15);
        assert!(q.failed(attempted(1, MAX_ATTEMPTS), None, 0).is_err());
        assert!(q.failed(attempted(1, 1), Some(400), 0).is_err());
        assert!(q.failed(attempted(10, 1), None, 0).is_ok());
        assert_eq!(
            q.failed(attempted(6, 1), None, 0).map_err(|r| r.spans),
            Err(6)
        );
        assert!(q.failed(attempted(5, 1), None, 0).is_ok());
        assert_eq!(q.take_all().len(), 2);
        assert!(q.failed(attempted(15, 1), None, 0).is_ok(), "room again");
    }

    #[test]
    fn closing_sends_what_waits_at_once_oldest_first() {
        let mut q = RetryQueue::new(100);
        assert!(q.failed(attempted(1, 1), None, 0).is_ok());
        assert!(q.failed(attempted(2, 3), None, 0).is_ok());
        assert_eq!(q.due(u64::MAX).map(|r| r.spans), Some(1));
        assert_eq!(q.due(u64::MAX).map(|r| r.spans), Some(2));
        assert!(q.due(u64::MAX).is_none());
    }
}
