//! TLS of the network exporters (Zipkin, Jaeger, OTLP over HTTP and gRPC): one rustls client
//! configuration built from one settings block, so every exporter trusts, authenticates and
//! names servers the same way.
//!
//! - Trust: the system's root certificates (`rustls-native-certs`), or only the CAs of `ca_file`.
//! - Client authentication (mTLS): `cert_file` (chain, leaf first) and `key_file` (PKCS#8, PKCS#1
//!   or SEC1), both PEM.
//! - `server_name`: the name checked against the server certificate (and sent as SNI) instead of
//!   the endpoint's host, for backends reached through an IP address or a tunnel.
//! - Versions: TLS 1.2 and 1.3 (rustls implements nothing older), crypto from `ring`.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;

/// The `tls:` block of an exporter entry. Used only with an `https://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) trusted for the server, instead of the system roots.
    /// Env (OTLP): `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`. Default: the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mTLS (with `key_file`).
    /// Env (OTLP): `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE`. Default: none.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`. Env (OTLP): `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY`.
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against (and send as SNI). Default: the
    /// endpoint's host.
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Whether any setting was given.
    pub fn is_set(&self) -> bool {
        *self != TlsConfig::default()
    }

    /// Checks what can be checked without the system roots: the files exist and hold what they
    /// should, the key comes with a certificate, the server name is a DNS name or an IP address.
    /// Errors start with the key (`tls.ca_file: ...`).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.ca_file {
            load_certs(p).map_err(|e| format!("tls.ca_file: {e}"))?;
        }
        self.client_auth()?;
        self.server_name()?;
        Ok(())
    }

    /// The server name override, parsed.
    pub fn server_name(&self) -> Result<Option<ServerName<'static>>, String> {
        self.server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.to_string())
                    .map_err(|_| format!("tls.server_name: `{n}` is not a DNS name or IP address"))
            })
            .transpose()
    }

    fn client_auth(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(None),
            (Some(_), None) => Err("tls.cert_file: needs tls.key_file as well".into()),
            (None, Some(_)) => Err("tls.key_file: needs tls.cert_file as well".into()),
            (Some(c), Some(k)) => {
                let certs = load_certs(c).map_err(|e| format!("tls.cert_file: {e}"))?;
                let key = load_key(k).map_err(|e| format!("tls.key_file: {e}"))?;
                Ok(Some((certs, key)))
            }
        }
    }

    /// The rustls client configuration: roots, optional client certificate, TLS 1.2 minimum.
    /// ALPN is left to the caller (HTTP/1.1 for the HTTP exporters, h2 for gRPC).
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(p) => {
                for cert in load_certs(p).map_err(|e| format!("tls.ca_file: {e}"))? {
                    roots.add(cert).map_err(|e| {
                        format!("tls.ca_file: {}: not a usable CA: {e}", p.display())
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    let why = found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    return Err(format!(
                        "tls.ca_file: no system root certificates found{why}; install the \
                         system CA bundle or set tls.ca_file"
                    ));
                }
            }
        }
        Self::config_with_roots(roots, self.client_auth()?)
    }

    /// A configuration trusting nothing: for a plain `http://` endpoint, where it is never used.
    pub fn unused() -> Result<ClientConfig, String> {
        Self::config_with_roots(RootCertStore::empty(), None)
    }

    fn config_with_roots(
        roots: RootCertStore,
        client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<ClientConfig, String> {
        // ring rather than aws-lc-rs: it builds with a C compiler alone (no cmake, a fraction
        // of the build time). rustls 0.23.48 deprecates it for lacking post-quantum key
        // exchange; X25519 and the NIST curves remain, which every tracing backend offers.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        // AES-128-GCM before AES-256-GCM (ring's default order; servers follow the client's):
        // both are strong, and with 10 AES rounds instead of 14 a span batch costs the client
        // and the backend less to encrypt and decrypt (the TLS export benchmark's gap to plain
        // HTTP). ChaCha20-Poly1305 keeps its place for servers without AES.
        provider
            .cipher_suites
            .sort_by_key(|s| !AES_128_FIRST.contains(&s.suite()));
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(roots);
        match client_auth {
            None => Ok(builder.with_no_client_auth()),
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls.key_file: does not match tls.cert_file: {e}")),
        }
    }
}

/// Suites moved to the front of the client's preference, in this order.
const AES_128_FIRST: [rustls::CipherSuite; 3] = [
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// Every certificate of a PEM file (at least one).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let iter =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{shown}: no `BEGIN CERTIFICATE` block"));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: no usable PEM private key: {e}", path.display()))
}

/// The reason of a TLS failure somewhere in an error's source chain (an untrusted, expired or
/// misnamed certificate, a refused client certificate, a protocol mismatch), if it is one.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    // Bounded: error chains are short; this only guards against a cycle.
    for _ in 0..16 {
        let err = cur?;
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        // `io::Error::source` skips the error it wraps (tokio-rustls wraps the rustls error in
        // one, hyper-rustls that in another): step into it instead.
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_is_offered_first_and_every_suite_stays() {
        let cfg = TlsConfig::unused().unwrap();
        let suites: Vec<_> = cfg
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(suites[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        #[allow(deprecated)]
        let all = rustls::crypto::ring::default_provider().cipher_suites.len();
        assert_eq!(suites.len(), all);
        assert!(suites.contains(&rustls::CipherSuite::TLS13_AES_256_GCM_SHA384));
    }
}
