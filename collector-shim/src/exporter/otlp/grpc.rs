//! OTLP/gRPC transport: `opentelemetry.proto.collector.trace.v1.TraceService/Export` over HTTP/2
//! (tonic), with the same TLS (the shared connector of `exporter::http`, ALPN `h2`), headers
//! (as metadata), gzip, per-attempt timeout and retry classes as the HTTP transport.
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::exporter::config::{Compression, OtlpConfig};
use crate::exporter::http::connector;
use crate::exporter::tls::tls_failure;
use crate::exporter::ExportError;

/// Sends export requests to one OTLP/gRPC endpoint over one lazily connected channel.
#[derive(Clone, Debug)]
pub struct GrpcSender {
    /// The generated client over a channel that reconnects by itself.
    client: TraceServiceClient<Channel>,
    /// Configured headers, sent as request metadata.
    metadata: MetadataMap,
    /// Budget for one attempt.
    timeout: Duration,
    /// For error messages.
    endpoint: String,
}

impl GrpcSender {
    /// A sender for `cfg` (validated: `scheme://host:port`, no path).
    pub fn new(cfg: &OtlpConfig) -> Result<Self, String> {
        let uri: hyper::Uri = cfg
            .endpoint
            .parse()
            .map_err(|e| format!("endpoint: `{}` is not a URL: {e}", cfg.endpoint))?;
        let connector = connector(&uri, &cfg.tls, cfg.timeout, true)?;
        let endpoint = Endpoint::from_shared(cfg.endpoint.clone())
            .map_err(|e| format!("endpoint: `{}`: {e}", cfg.endpoint))?
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            .user_agent(concat!(
                "aetherflow-collector-shim/",
                env!("CARGO_PKG_VERSION")
            ))
            .map_err(|e| format!("endpoint: {e}"))?;
        let channel = endpoint.connect_with_connector_lazy(connector);
        let mut client = TraceServiceClient::new(channel);
        if cfg.compression == Compression::Gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        let mut metadata = MetadataMap::new();
        for (k, v) in cfg.headers.iter() {
            // gRPC metadata keys are lowercase HTTP/2 header names.
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("headers.{k}: not a valid gRPC metadata key"))?;
            let mut value = MetadataValue::try_from(v.as_str())
                .map_err(|_| format!("headers.{k}: value is not a valid gRPC metadata value"))?;
            value.set_sensitive(true);
            metadata.insert(key, value);
        }
        Ok(GrpcSender {
            client,
            metadata,
            timeout: cfg.timeout,
            endpoint: cfg.endpoint.clone(),
        })
    }

    /// One attempt: the response on OK, else the classified error.
    pub async fn export(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        let mut req = tonic::Request::new(request);
        *req.metadata_mut() = self.metadata.clone();
        req.set_timeout(self.timeout);
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.export(req)).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(classify(&self.endpoint, &status)),
            Err(_) => Err(ExportError::Retryable(format!(
                "no response from {} within {} ms",
                self.endpoint,
                self.timeout.as_millis()
            ))),
        }
    }
}

/// The OTLP/gRPC retry rules: UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE
/// and DATA_LOSS are retryable, RESOURCE_EXHAUSTED is throttling, the rest is final; a
/// retryable status carrying `google.rpc.RetryInfo` is throttling with the delay it asks for. A TLS
/// failure under any code is final (it fails the same way until someone fixes it).
pub fn classify(endpoint: &str, status: &Status) -> ExportError {
    if let Some(reason) = tls_failure(status) {
        return ExportError::NonRetryable(format!(
            "TLS handshake with {endpoint} failed: {reason}"
        ));
    }
    let message = format!(
        "gRPC {:?} from {endpoint}: {}",
        status.code(),
        source_chain(status)
    );
    // The OTLP spec: a server that wants the client to wait says how long in a `RetryInfo`
    // among the status details; the retry loop waits that long (within its time budget).
    let retryable = matches!(
        status.code(),
        Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss
            | Code::ResourceExhausted
    );
    if let Some(delay) = retryable
        .then(|| crate::rpc::retry_delay(status.details()))
        .flatten()
    {
        return ExportError::Throttled {
            retry_after: Some(delay),
            message,
        };
    }
    match status.code() {
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => ExportError::Retryable(message),
        Code::ResourceExhausted => ExportError::Throttled {
            retry_after: None,
            message,
        },
        _ => ExportError::NonRetryable(message),
    }
}

/// The status message and its sources on one line (a transport error hides the cause there).
fn source_chain(status: &Status) -> String {
    let mut s = status.message().chars().take(512).collect::<String>();
    let mut cur = std::error::Error::source(status);
    for _ in 0..4 {
        let Some(e) = cur else { break };
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}
