//! Checks of configuration values that types alone do not constrain.

use super::read::{err, is_header_name};
use super::{Config, ConfigError};
use crate::route::MAX_ROUTES;

/// Upper bounds that keep a typo from asking for gigabytes or hours.
const MAX_BUFFERED_LIMIT: usize = 1_000_000;
const MAX_INTERVAL_MS: u64 = 3_600_000;

impl Config {
    /// Checks values that types alone do not constrain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.service_name.is_empty() {
            return Err(err("service_name", "must not be empty"));
        }
        if self.collector_cluster.is_empty() {
            return Err(err("collector_cluster", "must not be empty"));
        }
        if self.collector_authority.is_empty() {
            return Err(err("collector_authority", "must not be empty"));
        }
        if !self.collector_path.starts_with('/') {
            return Err(err("collector_path", "must start with '/'"));
        }
        for (key, v) in [
            ("collector_timeout_ms", self.collector_timeout_ms),
            ("flush_interval_ms", self.flush_interval_ms),
        ] {
            if v == 0 || v > MAX_INTERVAL_MS {
                return Err(err(key, format!("must be between 1 and {MAX_INTERVAL_MS}")));
            }
        }
        if self.max_buffered_spans == 0 || self.max_buffered_spans > MAX_BUFFERED_LIMIT {
            return Err(err(
                "max_buffered_spans",
                format!("must be between 1 and {MAX_BUFFERED_LIMIT}"),
            ));
        }
        if self.max_batch_spans == 0 || self.max_batch_spans > self.max_buffered_spans {
            return Err(err(
                "max_batch_spans",
                "must be between 1 and max_buffered_spans",
            ));
        }
        if self.max_inflight_dispatches == 0 || self.max_inflight_dispatches > 1024 {
            return Err(err("max_inflight_dispatches", "must be between 1 and 1024"));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(err("sample_ratio", "must be a number between 0 and 1"));
        }
        if !self.force_sample_header.is_empty() && !is_header_name(&self.force_sample_header) {
            return Err(err(
                "force_sample_header",
                "must be a lowercase header name or \"\"",
            ));
        }
        if !self.trace_id_response_header.is_empty()
            && !is_header_name(&self.trace_id_response_header)
        {
            return Err(err(
                "trace_id_response_header",
                "must be a lowercase header name or \"\"",
            ));
        }
        if self.inbound_formats.is_empty() {
            return Err(err("inbound_formats", "must name at least one format"));
        }
        for (key, list) in [
            ("record_request_headers", &self.record_request_headers),
            ("record_response_headers", &self.record_response_headers),
        ] {
            if let Some(bad) = list.iter().find(|h| !is_header_name(h)) {
                return Err(err(key, format!("{bad:?} is not a lowercase header name")));
            }
        }
        if let Some(bad) = self.baggage_to_attributes.iter().find(|k| {
            k.is_empty()
                || !k
                    .bytes()
                    .all(|c| c.is_ascii_graphic() && !b"(),/:;<=>?@[\\]{}\"".contains(&c))
        }) {
            return Err(err(
                "baggage_to_attributes",
                format!("{bad:?} is not a baggage key"),
            ));
        }
        if let Some((bad, _)) = self.resource_attributes.iter().find(|(k, _)| k.is_empty()) {
            return Err(err(
                "resource_attributes",
                format!("{bad:?}: keys must not be empty"),
            ));
        }
        if self.max_attribute_length < 16 || self.max_attribute_length > 65_536 {
            return Err(err("max_attribute_length", "must be between 16 and 65536"));
        }
        if self.http_routes.len() > MAX_ROUTES {
            return Err(err(
                "http_routes",
                format!("at most {MAX_ROUTES} templates"),
            ));
        }
        self.routes()?;
        Ok(())
    }
}
