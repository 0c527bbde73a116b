//! The standard `OTEL_EXPORTER_*` variables that tune an exporter entry (endpoints are mapped
//! by the shim's config loader with the `ExporterConfig` constructors).
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Compression, ExporterConfig, OtlpProtocol, TlsConfig};

impl ExporterConfig {
    /// Applies the standard per-exporter `OTEL_*` variables to this entry (endpoints are
    /// handled by the caller with the constructors above). For `otlp`, each of
    /// `HEADERS` (added to the configured ones), `COMPRESSION`, `TIMEOUT`, `PROTOCOL`,
    /// `INSECURE` (gRPC endpoints without a scheme), `CERTIFICATE`, `CLIENT_CERTIFICATE` and `CLIENT_KEY` is read from
    /// `OTEL_EXPORTER_OTLP_TRACES_*`, or else `OTEL_EXPORTER_OTLP_*`; for `zipkin`,
    /// `OTEL_EXPORTER_ZIPKIN_TIMEOUT`. Timeouts use the config's duration syntax (a plain number
    /// is milliseconds, as the spec says). Errors start with the variable's name.
    pub fn apply_otel_env(&mut self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        let var = |suffix: &str| otlp_var(get, suffix);
        let duration = |(name, v): (String, String)| {
            crate::config::duration::parse(&v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!(
                        "{name}: `{v}` is not a positive duration (milliseconds, or e.g. `10s`)"
                    )
                })
        };
        match self {
            ExporterConfig::Otlp(c) => {
                if let Some((name, v)) = var("HEADERS") {
                    let headers = parse_otel_headers(&v).map_err(|e| format!("{name}: {e}"))?;
                    c.headers.extend(headers);
                }
                if let Some((name, v)) = var("COMPRESSION") {
                    c.compression = match v.trim() {
                        "gzip" => Compression::Gzip,
                        "none" => Compression::None,
                        other => return Err(format!("{name}: `{other}` is not `gzip` or `none`")),
                    };
                }
                if let Some(found) = var("TIMEOUT") {
                    c.timeout = duration(found)?;
                }
                if let Some((name, v)) = var("PROTOCOL") {
                    c.protocol = OtlpProtocol::parse(&v).map_err(|e| format!("{name}: {e}"))?;
                }
                if let Some((name, v)) = var("INSECURE") {
                    c.insecure = match v.trim().to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(format!("{name}: `{}` is not `true` or `false`", v.trim()))
                        }
                    };
                }
                apply_tls_env(&mut c.tls, &var)?;
            }
            ExporterConfig::Zipkin(c) => {
                if let Some(v) =
                    get("OTEL_EXPORTER_ZIPKIN_TIMEOUT").filter(|v| !v.trim().is_empty())
                {
                    c.timeout = duration(("OTEL_EXPORTER_ZIPKIN_TIMEOUT".into(), v))?;
                }
            }
            ExporterConfig::Jaeger(_) | ExporterConfig::Console(_) | ExporterConfig::File(_) => {}
        }
        Ok(())
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_{suffix}`, or else `OTEL_EXPORTER_OTLP_{suffix}`, with its name;
/// an empty value counts as unset (as the spec says).
pub fn otlp_var(get: &dyn Fn(&str) -> Option<String>, suffix: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"),
        format!("OTEL_EXPORTER_OTLP_{suffix}"),
    ]
    .into_iter()
    .find_map(|name| {
        get(&name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    })
}

/// The certificate variables, each checked as it is read so an error names the variable.
fn apply_tls_env(
    tls: &mut TlsConfig,
    var: &dyn Fn(&str) -> Option<(String, String)>,
) -> Result<(), String> {
    let mut names = Vec::new();
    for (suffix, slot) in [
        ("CERTIFICATE", &mut tls.ca_file),
        ("CLIENT_CERTIFICATE", &mut tls.cert_file),
        ("CLIENT_KEY", &mut tls.key_file),
    ] {
        if let Some((name, v)) = var(suffix) {
            *slot = Some(PathBuf::from(v.trim()));
            names.push((suffix, name));
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    tls.validate().map_err(|e| {
        // `tls.ca_file: ...` -> the variable that set tls.ca_file, when one did.
        let (key, why) = e.split_once(": ").unwrap_or(("", e.as_str()));
        let suffix = match key {
            "tls.ca_file" => "CERTIFICATE",
            "tls.cert_file" => "CLIENT_CERTIFICATE",
            "tls.key_file" => "CLIENT_KEY",
            _ => "",
        };
        match names.iter().find(|(s, _)| *s == suffix) {
            Some((_, n)) => format!("{n}: {why}"),
            None => {
                let all: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
                format!("{}: {e}", all.join(", "))
            }
        }
    })
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
