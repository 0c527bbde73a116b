//! What the README says about Envoy's own tracers, checked on the Envoy the tests run (1.40.0 from
//! `make tools`), so the comparison cannot drift from the truth:
//! - the OpenTelemetry tracer CAN return the trace id to the client: `%TRACE_ID%` in
//!   `response_headers_to_add`;
//! - it continues a `traceparent` with an upper-case trace id and one with version `ff` (both invalid
//!   in W3C Trace Context), and it does not continue a future version with extra fields (which W3C
//!   says to parse);
//! - the Zipkin tracer accepts B3 and W3C together (`trace_context_option: USE_B3_WITH_W3C_PROPAGATION`);
//! - with the filter and Envoy's tracer on the same listener (an Istio sidecar with Istio's tracing on),
//!   the OpenTelemetry tracer's `traceparent` replaces the filter's upstream, the Zipkin tracer's B3
//!   headers sit beside it (docs/istio.md).

use aetherflow_tests::envoy::{self, Envoy, EnvoyOptions};
use aetherflow_tests::envoy_config::{EnvoyConfig, Substitutions};
use aetherflow_tests::http_client::{self, ClientRequest};
use aetherflow_tests::paths;
use aetherflow_tests::shim::FakeShim;
use aetherflow_tests::stack::REQUEST_TIMEOUT;
use aetherflow_tests::upstream::{RecordedRequest, UpstreamServer};

/// A listener with Envoy's OpenTelemetry tracer (exporting nowhere useful: only the ids matter) and a
/// direct response carrying `%TRACE_ID%`.
fn config(tracer: &str) -> String {
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
    - name: ingress
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: t
                tracing:
                  provider:
{tracer}
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: {{ prefix: "/" }}
                          direct_response: {{ status: 200, body: {{ inline_string: ok }} }}
                      response_headers_to_add:
                        - header: {{ key: x-trace-id, value: "%TRACE_ID%" }}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: collector
      type: STATIC
      load_assignment:
        cluster_name: collector
        endpoints:
          - lb_endpoints:
              - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9 }} }} }}
"#
    )
}

const OTEL: &str = r#"                    name: envoy.tracers.opentelemetry
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                      service_name: claims
                      http_service:
                        http_uri: { uri: "http://127.0.0.1:9/v1/traces", cluster: collector, timeout: 1s }"#;

const ZIPKIN_B3_AND_W3C: &str = r#"                    name: envoy.tracers.zipkin
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                      collector_cluster: collector
                      collector_endpoint: /api/v2/spans
                      collector_endpoint_version: HTTP_JSON
                      trace_context_option: USE_B3_WITH_W3C_PROPAGATION"#;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[tokio::test]
async fn envoy_opentelemetry_tracer_returns_the_trace_id_and_its_traceparent_checks() {
    let cfg = EnvoyConfig::from_yaml_str(&config(OTEL)).expect("config");
    let envoy = Envoy::start(&cfg, &EnvoyOptions::default())
        .await
        .expect("Envoy starts with its OpenTelemetry tracer");
    let ask = |traceparent: Option<String>| {
        let addr = envoy.ingress();
        async move {
            let mut req = ClientRequest::get("/");
            if let Some(tp) = traceparent {
                req = req.header("traceparent", tp);
            }
            let resp = http_client::send(addr, &req, REQUEST_TIMEOUT)
                .await
                .expect("response");
            assert_eq!(resp.status, 200);
            resp.header("x-trace-id").unwrap_or_default()
        }
    };

    // Without a traceparent: a new trace, its id returned to the client.
    let new = ask(None).await;
    assert_eq!(new.len(), 32, "a trace id returned: {new:?}");
    assert!(new.bytes().all(|b| b.is_ascii_hexdigit()) && new != "0".repeat(32));
    // A valid traceparent: continued, its trace id returned.
    assert_eq!(ask(Some(format!("00-{TRACE}-{PARENT}-01"))).await, TRACE);
    // Invalid in W3C Trace Context, yet continued.
    let upper = format!("00-{}-{PARENT}-01", TRACE.to_ascii_uppercase());
    assert_eq!(ask(Some(upper)).await, TRACE, "upper-case hex is continued");
    assert_eq!(
        ask(Some(format!("ff-{TRACE}-{PARENT}-01"))).await,
        TRACE,
        "version ff is continued"
    );
    // A future version with more fields, which W3C says to parse by its first four: not continued.
    assert_ne!(
        ask(Some(format!("01-{TRACE}-{PARENT}-01-future"))).await,
        TRACE,
        "a future version is not continued"
    );
}

#[test]
fn envoy_zipkin_tracer_accepts_b3_and_w3c_together() {
    let cfg = EnvoyConfig::from_yaml_str(&config(ZIPKIN_B3_AND_W3C)).expect("config");
    let v = envoy::validate(&cfg, &paths::envoy()).expect("envoy --mode validate runs");
    assert!(v.accepted, "{}", v.output);
}

/// The filter (Wasm form, the shipped envoy.yaml) on a listener where Envoy's own tracer is on too, as in
/// an Istio sidecar: what the upstream receives. Envoy's router writes its tracer's context into the
/// upstream request after the HTTP filters ran, so its `traceparent` (OpenTelemetry tracer) replaces the
/// filter's, while its B3 headers (Zipkin tracer) sit beside the filter's `traceparent`. docs/istio.md
/// rests on this.
async fn upstream_headers_with_envoy_tracer(tracer: &str) -> (String, RecordedRequest) {
    let wasm = paths::wasm();
    paths::require(&wasm, "make wasm");
    let upstream = UpstreamServer::start().await;
    let shim = FakeShim::start().await;
    let mut cfg = EnvoyConfig::shipped().expect("envoy.yaml");
    cfg.substitute(&Substitutions::loopback(
        &wasm,
        upstream.addr(),
        upstream.addr(),
        shim.addr(),
    ))
    .expect("substitute");
    let tracing: serde_yaml::Value =
        serde_yaml::from_str(&format!("provider:\n{tracer}")).expect("tracing provider yaml");
    let doc = cfg.doc_mut();
    let listeners = doc["static_resources"]["listeners"]
        .as_sequence_mut()
        .expect("listeners");
    let ingress = listeners
        .iter_mut()
        .find(|l| l["name"].as_str() == Some("ingress"))
        .expect("ingress listener");
    ingress["filter_chains"][0]["filters"][0]["typed_config"]["tracing"] = tracing;
    let envoy = Envoy::start(&cfg, &EnvoyOptions::default())
        .await
        .expect("Envoy starts with the filter and its own tracer");
    let resp = http_client::send(
        envoy.ingress(),
        &ClientRequest::get("/api/orders").header("x-test-id", "both"),
        REQUEST_TIMEOUT,
    )
    .await
    .expect("response");
    assert_eq!(resp.status, 200);
    let filter_trace = resp.header("x-trace-id").expect("the filter's x-trace-id");
    let seen = upstream
        .request_tagged("both")
        .await
        .expect("upstream saw it");
    (filter_trace, seen)
}

fn trace_id_of(traceparent: &str) -> String {
    traceparent
        .split('-')
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_opentelemetry_tracer_overwrites_the_filters_traceparent_upstream() {
    let otel = OTEL
        .replace("cluster: collector", "cluster: trace_shim")
        .replace("127.0.0.1:9", "127.0.0.1:4318");
    let (filter_trace, seen) = upstream_headers_with_envoy_tracer(&otel).await;
    let tps = seen.header_all("traceparent");
    assert_eq!(tps.len(), 1, "one traceparent upstream: {tps:?}");
    assert_ne!(
        trace_id_of(&tps[0]),
        filter_trace,
        "the upstream sees Envoy's tracer's trace, not the filter's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_zipkin_tracer_b3_headers_sit_beside_the_filters_traceparent() {
    let zipkin = r#"                    name: envoy.tracers.zipkin
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                      collector_cluster: trace_shim
                      collector_endpoint: /api/v2/spans
                      collector_endpoint_version: HTTP_JSON"#;
    let (filter_trace, seen) = upstream_headers_with_envoy_tracer(zipkin).await;
    let tps = seen.header_all("traceparent");
    assert_eq!(tps.len(), 1, "{tps:?}");
    assert_eq!(
        trace_id_of(&tps[0]),
        filter_trace,
        "the filter's traceparent reaches the upstream"
    );
    let b3 = seen
        .header("x-b3-traceid")
        .expect("Envoy's Zipkin tracer's B3 headers");
    assert_ne!(b3, filter_trace, "a second, independent trace in B3");
}
