//! `demo-grpc [--listen ADDR]`: the demo gRPC upstream (h2c) (see `aetherflow_demo::grpc_service`).
//! Spans go to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (default http://127.0.0.1:4318/v1/traces).
#![forbid(unsafe_code)]

use aetherflow_demo::{grpc_service, otlp, serve};

#[tokio::main]
async fn main() {
    let listen = serve::listen_arg("127.0.0.1:50051");
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo-grpc: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let endpoint = otlp::endpoint_from_env();
    let exporter = otlp::SpanExporter::start(endpoint.clone(), "demo-grpc");
    // The runner reads this line to learn the port when it asked for port 0.
    println!(
        "demo-grpc listening on {} (spans to {endpoint})",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    grpc_service::serve(listener, exporter.clone(), serve::termination_signal()).await;
    exporter.flush().await;
}
