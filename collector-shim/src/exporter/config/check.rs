//! What an exporter entry resolves to (default endpoints and paths) and the checks serde cannot
//! make; errors start with the key relative to the entry (`endpoint`, `tls.ca_file`, ...).
use super::{
    ExporterConfig, HttpTarget, OtlpProtocol, PostBackend, PostConfig, DEFAULT_OTLP_ENDPOINT,
    DEFAULT_OTLP_GRPC_ENDPOINT, OTLP_PATH,
};

impl ExporterConfig {
    /// The entry with defaults filled in: the OTLP endpoint of its protocol when none was
    /// given, the scheme of an OTLP/gRPC endpoint written without one (`https://`, or `http://`
    /// with `insecure`), and the backend's path on an HTTP endpoint written without one
    /// (`http://zipkin:9411` -> `http://zipkin:9411/api/v2/spans`).
    pub fn resolved(&self) -> ExporterConfig {
        let mut out = self.clone();
        match &mut out {
            ExporterConfig::Zipkin(c) => with_backend_path(c),
            ExporterConfig::Jaeger(c) => with_backend_path(c),
            ExporterConfig::Otlp(c) => match c.protocol {
                OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson
                    if c.endpoint.trim().is_empty() =>
                {
                    c.endpoint = DEFAULT_OTLP_ENDPOINT.into()
                }
                OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
                    c.endpoint = with_default_path(&c.endpoint, OTLP_PATH)
                }
                OtlpProtocol::Grpc if c.endpoint.trim().is_empty() => {
                    c.endpoint = DEFAULT_OTLP_GRPC_ENDPOINT.into()
                }
                // The spec: a gRPC endpoint without a scheme is secure unless `insecure`.
                OtlpProtocol::Grpc if !c.endpoint.contains("://") => {
                    let scheme = if c.insecure { "http" } else { "https" };
                    c.endpoint = format!("{scheme}://{}", c.endpoint.trim())
                }
                OtlpProtocol::Grpc => {}
            },
            ExporterConfig::Console(_) | ExporterConfig::File(_) => {}
        }
        out
    }

    /// Checks values serde cannot; the error names the key (relative to this exporter entry,
    /// e.g. `endpoint`, `retry.max_interval`) and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = self.name_field() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "name: `{name}` must be non-empty and use only ASCII letters, digits, `_` and `-`"
                ));
            }
        }
        match &self.resolved() {
            ExporterConfig::Zipkin(c) => validate_http(c),
            ExporterConfig::Jaeger(c) => validate_http(c),
            ExporterConfig::Otlp(c) => {
                validate_http(c)?;
                let has_path = c
                    .endpoint
                    .parse::<hyper::Uri>()
                    .ok()
                    .and_then(|u| u.path_and_query().map(|p| p.as_str() != "/"))
                    .unwrap_or(false);
                if c.protocol == OtlpProtocol::Grpc && has_path {
                    return Err(format!(
                        "endpoint: `{}`: an OTLP/gRPC endpoint takes no path (write scheme://host:port)",
                        c.endpoint
                    ));
                }
                Ok(())
            }
            ExporterConfig::Console(_) => Ok(()),
            ExporterConfig::File(c) => c.validate(),
        }
    }
}

/// A POST backend's endpoint with the backend's path appended when it has none.
fn with_backend_path<B: PostBackend>(c: &mut PostConfig<B>) {
    c.endpoint = with_default_path(&c.endpoint, B::PATH);
}

/// `endpoint` with `path` appended when it has none (nothing, or only `/`, after the host).
fn with_default_path(endpoint: &str, path: &str) -> String {
    match endpoint.trim().parse::<hyper::Uri>() {
        Ok(uri)
            if uri.host().is_some() && uri.path_and_query().is_none_or(|p| p.as_str() == "/") =>
        {
            format!("{}{path}", endpoint.trim().trim_end_matches('/'))
        }
        _ => endpoint.to_string(),
    }
}

fn validate_http(target: &impl HttpTarget) -> Result<(), String> {
    let (endpoint, timeout, retry, tls) = (
        target.endpoint(),
        target.timeout(),
        target.retry(),
        target.tls(),
    );
    let key = "endpoint";
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|e| format!("{key}: `{endpoint}` is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!(
            "{key}: `{endpoint}` must start with http:// or https://"
        ));
    }
    tls.validate()?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{key}: `{endpoint}` has no host"));
    }
    if timeout.is_zero() {
        return Err("timeout: must be greater than 0".into());
    }
    for (name, value) in target.headers().iter() {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("headers.{name}: not a valid HTTP header name"));
        }
        if hyper::header::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "headers.{name}: value is not a valid HTTP header value"
            ));
        }
    }
    if retry.initial_interval.is_zero() {
        return Err("retry.initial_interval: must be greater than 0".into());
    }
    if retry.max_interval < retry.initial_interval {
        return Err("retry.max_interval: must be at least retry.initial_interval".into());
    }
    if !(retry.multiplier.is_finite() && retry.multiplier >= 1.0) {
        return Err(format!(
            "retry.multiplier: {} must be >= 1",
            retry.multiplier
        ));
    }
    Ok(())
}
