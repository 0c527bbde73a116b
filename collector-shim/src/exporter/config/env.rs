//! The standard `OTEL_EXPORTER_*` variables that tune an exporter entry (endpoints are mapped
//! by the shim's config loader with the `ExporterConfig` constructors).
use std::collections::BTreeMap;
use std::time::Duration;

use super::{Compression, ExporterConfig};

impl ExporterConfig {
    /// Applies the standard per-exporter `OTEL_*` variables to this entry (endpoints are
    /// handled by the caller with the constructors above): for `otlp`,
    /// `OTEL_EXPORTER_OTLP_TRACES_{HEADERS,COMPRESSION,TIMEOUT}` or else the generic
    /// `OTEL_EXPORTER_OTLP_{HEADERS,COMPRESSION,TIMEOUT}` (headers are added to the configured
    /// ones); for `zipkin`, `OTEL_EXPORTER_ZIPKIN_TIMEOUT`. Timeouts are in milliseconds, as the
    /// spec says. Errors name the variable and the reason.
    pub fn apply_otel_env(&mut self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        let var = |specific: &str, generic: &str| {
            get(specific)
                .map(|v| (specific.to_string(), v))
                .or_else(|| get(generic).map(|v| (generic.to_string(), v)))
                .filter(|(_, v)| !v.trim().is_empty())
        };
        let millis = |(name, v): (String, String)| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| format!("{name}: `{v}` is not a positive number of milliseconds"))
        };
        match self {
            ExporterConfig::Otlp(c) => {
                if let Some((name, v)) = var(
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "OTEL_EXPORTER_OTLP_HEADERS",
                ) {
                    let headers = parse_otel_headers(&v).map_err(|e| format!("{name}: {e}"))?;
                    c.headers.extend(headers);
                }
                if let Some((name, v)) = var(
                    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                    "OTEL_EXPORTER_OTLP_COMPRESSION",
                ) {
                    c.compression = match v.trim() {
                        "gzip" => Compression::Gzip,
                        "none" => Compression::None,
                        other => return Err(format!("{name}: `{other}` is not `gzip` or `none`")),
                    };
                }
                if let Some(found) = var(
                    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                ) {
                    c.timeout = millis(found)?;
                }
            }
            ExporterConfig::Zipkin(c) => {
                if let Some(found) = var(
                    "OTEL_EXPORTER_ZIPKIN_TIMEOUT",
                    "OTEL_EXPORTER_ZIPKIN_TIMEOUT",
                ) {
                    c.timeout = millis(found)?;
                }
            }
            ExporterConfig::Jaeger(_) | ExporterConfig::Console(_) | ExporterConfig::File(_) => {}
        }
        Ok(())
    }
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS`: comma-separated
/// `key=value` pairs (W3C Baggage format, values percent-decoded).
pub fn parse_otel_headers(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}` is not key=value"))?;
        let (k, v) = (k.trim(), percent_decode(v.trim())?);
        if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(format!("`{k}` is not a valid HTTP header name"));
        }
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in `{s}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}
