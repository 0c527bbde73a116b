//! A request body with a deadline: once `receiver.body_read_timeout` has passed since the head
//! arrived, a body that is still incomplete ends in an error (a gRPC `DEADLINE_EXCEEDED`
//! status, which tonic answers as is) and the refusal is counted. Frames that have arrived are
//! always delivered first, so only a stalled or trickling client meets the deadline.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Sleep;

/// Boxed body error, as tonic and hyper take them.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `inner` that must end within a deadline.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    /// Counts the bodies cut off.
    timed_out: Counter,
    /// Ended (complete or cut off).
    done: bool,
}

impl<B> DeadlineBody<B> {
    /// `inner`, which must end within `timeout` from now.
    pub fn new(inner: B, timeout: Duration, timed_out: Counter) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            timed_out,
            done: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    this.done = true;
                    this.timed_out.inc();
                    let status = tonic::Status::deadline_exceeded(format!(
                        "request body not received within {:?} (receiver.body_read_timeout)",
                        this.timeout
                    ));
                    Poll::Ready(Some(Err(Box::new(status))))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
