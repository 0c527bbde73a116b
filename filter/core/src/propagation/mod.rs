//! Context propagation: reading and writing trace headers through tiny [`Extractor`] and
//! [`Injector`] traits, so the rules are tested here with a `HashMap` and the filter
//! implements the traits over Envoy's header maps.

pub mod traceparent;

use std::collections::HashMap;

/// Read access to request headers. Names are lowercase (HTTP/2 and Envoy lowercase them).
pub trait Extractor {
    /// Every value of header `name`, one per header line, in the order received.
    /// Repeated lines matter: two `traceparent` lines make the context invalid, and
    /// `tracestate` lines are combined in order.
    fn get_all(&self, name: &str) -> Vec<&str>;

    /// The first value of header `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).first().copied()
    }
}

/// Write access to outbound request headers.
pub trait Injector {
    /// Sets header `name` to `value`, replacing every existing line of it.
    fn set(&mut self, name: &str, value: &str);
    /// Removes every line of header `name` (a stale incoming header must not leak upstream).
    fn remove(&mut self, name: &str);
}

/// Headers as `(name, value)` lines, the shape Envoy returns them in.
impl Extractor for [(String, String)] {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Extractor for Vec<(String, String)> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.as_slice().get_all(name)
    }

    fn get(&self, name: &str) -> Option<&str> {
        Extractor::get(self.as_slice(), name)
    }
}

/// A multi-valued map, for tests and for callers without a header list.
impl Extractor for HashMap<String, Vec<String>> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// A single-valued map, for tests.
impl Extractor for HashMap<String, String> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.get(name).map(|v| vec![v.as_str()]).unwrap_or_default()
    }
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, name: &str, value: &str) {
        self.insert(name.to_owned(), value.to_owned());
    }

    fn remove(&mut self, name: &str) {
        HashMap::remove(self, name);
    }
}
