//! Export requests in flight, by callout id (main thread): kept with their bodies for a
//! retry, or for the next configuration if this one is destroyed while they are in flight.

use aetherflow_core::retry;
use std::collections::HashMap;

/// Export requests in flight, by callout id.
#[derive(Default)]
pub struct Exports {
    /// Callout id -> the request (kept for a retry, or for the next configuration if this
    /// one is destroyed while the callout is in flight).
    pub inflight: HashMap<u64, retry::Request>,
    /// Results that arrived while their callout was being started (before its id was
    /// known to `inflight`): at most one per started callout.
    early: HashMap<u64, Option<u16>>,
}

impl Exports {
    /// A callout was started: its result, if Envoy already delivered it.
    pub fn started(
        &mut self,
        id: u64,
        req: retry::Request,
    ) -> Option<(retry::Request, Option<u16>)> {
        match self.early.remove(&id) {
            Some(status) => Some((req, status)),
            None => {
                self.inflight.insert(id, req);
                None
            }
        }
    }

    /// A callout finished: its request, or `None` when it is not known yet (kept for
    /// `started` when a flush is starting callouts) or at all.
    pub fn finished(
        &mut self,
        id: u64,
        status: Option<u16>,
        flushing: bool,
    ) -> Option<retry::Request> {
        let req = self.inflight.remove(&id);
        if req.is_none() && flushing {
            self.early.insert(id, status);
        }
        req
    }
}
