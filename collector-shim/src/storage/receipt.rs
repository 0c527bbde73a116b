//! The receiver's wait for the durable write of one request's spans.
//!
//! A [`Receipt`] travels with the spans (cloned to every exporter's writer); the request's
//! [`ReceiptWait`] resolves when the last clone is dropped, whatever path each copy took
//! (sampled out, written, refused). Dropping as the signal means no path can forget to answer:
//! a copy lost in a panic or a closed channel still resolves the wait, as a success unless some
//! holder called [`Receipt::fail`] first.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Longest a receiver waits for a request's durable write before answering 503 (a disk that
/// stalls this long is failing; the client retries rather than hold its connection).
pub const WAIT: Duration = Duration::from_secs(10);

/// Shared by every copy of one request's spans.
#[derive(Debug)]
struct Inner {
    /// Set when a copy could not be made durable.
    failed: AtomicBool,
    /// Resolves the wait when the last copy is gone.
    tx: Mutex<Option<oneshot::Sender<bool>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tx = self.tx.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(!self.failed.load(Ordering::Acquire));
        }
    }
}

/// One request's token; clone it for each place its spans go.
#[derive(Clone, Debug)]
pub struct Receipt(Arc<Inner>);

/// The receiver's side: resolves when every copy of the request's spans is settled.
#[derive(Debug)]
pub struct ReceiptWait(oneshot::Receiver<bool>);

impl Receipt {
    /// A receipt and its wait.
    pub fn new() -> (Receipt, ReceiptWait) {
        let (tx, rx) = oneshot::channel();
        (
            Receipt(Arc::new(Inner {
                failed: AtomicBool::new(false),
                tx: Mutex::new(Some(tx)),
            })),
            ReceiptWait(rx),
        )
    }

    /// Marks the request as not durable (the receiver answers 503 and the client retries).
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Release);
    }
}

impl ReceiptWait {
    /// True when every copy was written (or needed no writing) within `limit`.
    pub async fn durable(self, limit: Duration) -> bool {
        matches!(tokio::time::timeout(limit, self.0).await, Ok(Ok(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_when_the_last_copy_goes() {
        let (r, wait) = Receipt::new();
        let copy = r.clone();
        drop(r);
        let handle = tokio::spawn(wait.durable(Duration::from_secs(5)));
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        drop(copy);
        assert!(handle.await.unwrap());
    }

    #[tokio::test]
    async fn one_failed_copy_fails_the_request() {
        let (r, wait) = Receipt::new();
        let copy = r.clone();
        copy.fail();
        drop((r, copy));
        assert!(!wait.durable(Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_copy_never_dropped_times_out() {
        let (r, wait) = Receipt::new();
        assert!(!wait.durable(Duration::from_millis(10)).await);
        drop(r);
    }
}
