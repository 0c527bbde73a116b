//! Command-line values, applied over the file and the environment.
use std::net::SocketAddr;

use super::error::{check, ConfigError};
use super::Config;
use crate::exporter::ExporterConfig;

/// Values given on the command line; they win over the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`: OTLP/HTTP address.
    pub http_listen: Option<SocketAddr>,
    /// `--admin-listen`: address of /healthz, /readyz, /metrics.
    pub admin_listen: Option<SocketAddr>,
    /// `--grpc-listen`: OTLP/gRPC address.
    pub grpc_listen: Option<SocketAddr>,
    /// `--sample-ratio`: consistent sampling probability.
    pub probability: Option<f64>,
    /// `--exporter`: exporter types to add (with their defaults) when not configured.
    pub exporters: Vec<String>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--log-format`.
    pub log_format: Option<String>,
}

/// Applies `f` to `cfg` (flags win over the file and the environment).
pub(super) fn apply_flags(cfg: &mut Config, f: &Overrides) -> Result<(), ConfigError> {
    if let Some(a) = f.http_listen {
        cfg.receiver.http_listen = a;
    }
    if let Some(a) = f.admin_listen {
        cfg.receiver.admin_listen = Some(a);
    }
    if let Some(a) = f.grpc_listen {
        cfg.receiver.grpc_listen = Some(a);
    }
    if let Some(p) = f.probability {
        check(
            (0.0..=1.0).contains(&p),
            "--sample-ratio",
            "must be in [0, 1]",
        )?;
        cfg.sampling.probability = p;
    }
    for kind in &f.exporters {
        if !cfg.exporters.iter().any(|e| e.kind() == kind) {
            cfg.exporters.push(
                ExporterConfig::with_defaults(kind)
                    .map_err(|r| ConfigError::new("--exporter", r))?,
            );
        }
    }
    if let Some(l) = &f.log_level {
        cfg.log.level = l.clone();
    }
    if let Some(l) = &f.log_format {
        cfg.log.format = l.clone();
    }
    Ok(())
}
