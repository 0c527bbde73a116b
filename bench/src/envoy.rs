//! Envoy for one benchmark configuration: the generated bootstrap, and the process (started by
//! the shared harness's launcher with the benchmark's options) with its admin API.
//!
//! Every configuration shares the same listener, route, upstream cluster and runtime layer; only
//! the tracing part differs, so the difference in cost is the tracer's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aetherflow_harness::envoy::{EnvoyProcess, Launch, LogTo, OnDrop};
use serde::Serialize;

use crate::loadgen::Workload;

/// The tracing set-ups compared side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tracer {
    /// No tracing at all: the baseline.
    Baseline,
    /// A proxy-wasm module that does nothing (`bench/wasm-floor`): what any Wasm filter costs
    /// before its first host call.
    WasmFloor,
    /// `trace_filter.wasm` exporting OTLP to collector-shim.
    Filter,
    /// A dynamic module that does nothing (`bench/native-floor`): what any native module costs.
    NativeFloor,
    /// The filter as a dynamic module (`libaetherflow_trace.so`), OTLP to collector-shim.
    Native,
    /// Envoy's native `envoy.tracers.opentelemetry`, OTLP/HTTP to the same shim.
    NativeOtel,
    /// Envoy's native `envoy.tracers.zipkin`, Zipkin v2 JSON straight to the sink.
    NativeZipkin,
    /// A second build of the native filter (`AETHERFLOW_NATIVE_B`), configured like `native`:
    /// the other half of an A/B measured in the same run. Only run when named.
    NativeB,
    /// A second Wasm module (`AETHERFLOW_WASM_B`), configured like `filter`: the Wasm form's
    /// A/B in the same run. Only run when named.
    FilterB,
}

impl Tracer {
    /// Every configuration: the standard ones, then the A/B halves `native-b` and `filter-b`
    /// (only run when named).
    pub const ALL: [Tracer; 9] = [
        Tracer::Baseline,
        Tracer::WasmFloor,
        Tracer::Filter,
        Tracer::NativeFloor,
        Tracer::Native,
        Tracer::NativeOtel,
        Tracer::NativeZipkin,
        Tracer::NativeB,
        Tracer::FilterB,
    ];

    /// The configurations a run measures unless told otherwise (all but the A/B halves),
    /// baseline first.
    pub const STANDARD: &'static [Tracer] = Tracer::ALL.split_at(7).0;

    /// The name used in the table, the JSON and the plot.
    pub fn name(self) -> &'static str {
        match self {
            Tracer::Baseline => "baseline",
            Tracer::WasmFloor => "wasm-floor",
            Tracer::Filter => "filter",
            Tracer::NativeFloor => "native-floor",
            Tracer::Native => "native",
            Tracer::NativeOtel => "native-otel",
            Tracer::NativeZipkin => "native-zipkin",
            Tracer::NativeB => "native-b",
            Tracer::FilterB => "filter-b",
        }
    }

    /// The configuration an A/B half is compared with, slice by slice.
    pub fn ab_partner(self) -> Option<Tracer> {
        match self {
            Tracer::NativeB => Some(Tracer::Native),
            Tracer::FilterB => Some(Tracer::Filter),
            _ => None,
        }
    }

    /// The builds and filter configuration this configuration loads: an A/B half takes the
    /// other build of its own form (`b`) and the B configuration; every other configuration `a`.
    pub fn builds<'a>(self, a: Builds<'a>, b: Builds<'a>) -> Builds<'a> {
        match self {
            Tracer::NativeB => Builds { wasm: a.wasm, ..b },
            Tracer::FilterB => Builds {
                native_dir: a.native_dir,
                ..b
            },
            _ => a,
        }
    }

    /// Whether spans go to the collector as OTLP (the shim runs beside this Envoy).
    pub fn exports_otlp(self) -> bool {
        matches!(
            self,
            Tracer::Filter
                | Tracer::FilterB
                | Tracer::Native
                | Tracer::NativeB
                | Tracer::NativeOtel
        )
    }

    /// Spans Envoy produces per request (one server span: the native tracers are run with
    /// `spawn_upstream_span: false`, the filter makes one span per stream).
    pub fn spans_per_request(self) -> u64 {
        match self {
            Tracer::Baseline | Tracer::WasmFloor | Tracer::NativeFloor => 0,
            _ => 1,
        }
    }
}

/// One set of the filter's builds and its configuration keys (see [`Tracer::builds`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Builds<'a> {
    /// The directory of `libaetherflow_trace.so` (and the native floor).
    pub native_dir: &'a Path,
    /// `trace_filter.wasm`.
    pub wasm: &'a Path,
    /// Keys merged over the filter's configuration.
    pub overrides: &'a serde_json::Map<String, serde_json::Value>,
}

/// Everything needed to render one Envoy bootstrap.
pub struct Setup<'a> {
    /// Which tracer.
    pub tracer: Tracer,
    /// HTTP/1.1 or gRPC traffic (the upstream cluster speaks h2c for gRPC).
    pub workload: Workload,
    /// The upstream service.
    pub upstream: SocketAddr,
    /// OTLP/HTTP receiver for the filter and the native OpenTelemetry tracer (the shim).
    pub otlp: SocketAddr,
    /// Zipkin receiver for the native Zipkin tracer (the sink).
    pub zipkin: SocketAddr,
    /// Head-sampling ratio, the same for every tracer.
    pub sample_ratio: f64,
    /// Spans per export batch, the same for every tracer (filter `max_batch_spans`, native
    /// `tracing.*.min_flush_spans`).
    pub batch_spans: u32,
    /// Flush interval, the same for every tracer.
    pub flush_interval_ms: u32,
    /// The filter module.
    pub wasm: &'a Path,
    /// The no-op module of the `wasm-floor` configuration.
    pub wasm_floor: &'a Path,
    /// The directory of `libaetherflow_trace.so` and `libaetherflow_native_floor.so` (Envoy's
    /// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`; set by [`Envoy::start`]).
    pub native_dir: &'a Path,
    /// The `wasm-floor` module's configuration (`BENCH_FLOOR_CONFIG`: host-call calibration).
    pub floor_overrides: &'a serde_json::Map<String, serde_json::Value>,
    /// Extra filter configuration keys, merged over the defaults above (for experiments such
    /// as `{"record_unsampled": false}`; empty in the standard runs).
    pub filter_overrides: &'a serde_json::Map<String, serde_json::Value>,
}

fn cluster(name: &str, addr: SocketAddr, h2: bool) -> String {
    let protocol = if h2 {
        r#"
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }"#
    } else {
        ""
    };
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: 1s{protocol}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {ip}, port_value: {port} }}"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

impl Setup<'_> {
    /// The Envoy bootstrap YAML.
    pub fn render(&self) -> String {
        let percent = self.sample_ratio * 100.0;
        let tracing = match self.tracer {
            Tracer::Baseline
            | Tracer::WasmFloor
            | Tracer::Filter
            | Tracer::FilterB
            | Tracer::NativeFloor
            | Tracer::Native
            | Tracer::NativeB => String::new(),
            Tracer::NativeOtel => format!(
                r#"
          tracing:
            random_sampling: {{ value: {percent} }}
            spawn_upstream_span: false
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: bench-envoy
                http_service:
                  http_uri:
                    uri: "http://{otlp}/v1/traces"
                    cluster: trace_shim
                    timeout: 1s"#,
                otlp = self.otlp
            ),
            Tracer::NativeZipkin => r#"
          tracing:
            random_sampling: { value: PERCENT }
            spawn_upstream_span: false
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin_sink
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON"#
                .replace("PERCENT", &percent.to_string()),
        };
        let module = match self.tracer {
            Tracer::Filter | Tracer::FilterB => Some(self.wasm),
            Tracer::WasmFloor => Some(self.wasm_floor),
            _ => None,
        };
        let mut filter_config = serde_json::json!({
            "service_name": "bench-envoy",
            "sample_ratio": self.sample_ratio,
            "max_batch_spans": self.batch_spans,
            "flush_interval_ms": self.flush_interval_ms,
        });
        if let Some(map) = filter_config.as_object_mut() {
            map.extend(self.filter_overrides.clone());
        }
        let native_module = match self.tracer {
            Tracer::Native | Tracer::NativeB => {
                Some(("aetherflow_trace", filter_config.to_string()))
            }
            Tracer::NativeFloor => Some(("aetherflow_native_floor", String::new())),
            _ => None,
        };
        let wasm_filter = if let Some((name, config)) = native_module {
            format!(
                r#"
          - name: envoy.filters.http.dynamic_modules
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {{ name: {name} }}
              filter_name: {name}
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: {config}"#,
                config = serde_json::to_string(&config).unwrap_or_default(),
            )
        } else if let Some(module) = module {
            let config = if matches!(self.tracer, Tracer::Filter | Tracer::FilterB) {
                filter_config
            } else {
                serde_json::Value::Object(self.floor_overrides.clone())
            };
            format!(
                r#"
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: aetherflow_trace
                root_id: aetherflow_trace
                failure_policy: FAIL_OPEN
                vm_config:
                  vm_id: aetherflow_trace
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {wasm} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config}"#,
                wasm = serde_json::to_string(&module.display().to_string()).unwrap_or_default(),
                config = serde_json::to_string(&config.to_string()).unwrap_or_default(),
            )
        } else {
            String::new()
        };
        let mut clusters = cluster("upstream", self.upstream, self.workload == Workload::Grpc);
        clusters += &cluster("trace_shim", self.otlp, false);
        clusters += &cluster("zipkin_sink", self.zipkin, false);
        format!(
            r#"# Generated by aetherflow-bench for the "{name}" configuration.
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
layered_runtime:
  layers:
  - name: bench
    static_layer:
      # The same flush batch for every tracer (the filter: max_batch_spans / flush_interval_ms).
      tracing.opentelemetry.min_flush_spans: {batch}
      tracing.opentelemetry.flush_interval_ms: {interval}
      tracing.zipkin.min_flush_spans: {batch}
      tracing.zipkin.flush_interval_ms: {interval}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO{tracing}
          route_config:
            name: bench_routes
            virtual_hosts:
            - name: bench
              domains: ["*"]
              routes:
              - name: bench_route
                match: {{ prefix: "/" }}
                route: {{ cluster: upstream, timeout: 5s }}
          http_filters:{wasm_filter}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:{clusters}
"#,
            name = self.tracer.name(),
            batch = self.batch_spans,
            interval = self.flush_interval_ms,
        )
    }
}

/// A running Envoy of one benchmark configuration: the harness's launcher with the benchmark's
/// options (one worker, log level `warning` to `--log-path`, SIGTERM then a 5 s wait on drop).
pub struct Envoy {
    process: EnvoyProcess,
    /// The admin interface.
    pub admin: SocketAddr,
    /// The ingress listener.
    pub listener: SocketAddr,
    /// Envoy's log file (read for the error message when start-up fails).
    pub log: PathBuf,
}

/// How long a stopping Envoy (or shim) may take to exit on SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

impl Envoy {
    /// Starts `envoy` with one worker thread on `bootstrap` (written into `dir`) and waits,
    /// bounded, until it is ready and its listener is bound.
    pub async fn start(
        envoy: &Path,
        bootstrap: &str,
        dir: &Path,
        native_dir: &Path,
    ) -> Result<Self, String> {
        Self::start_with(
            envoy,
            bootstrap,
            dir,
            native_dir,
            &[],
            Duration::from_secs(60),
        )
        .await
    }

    /// [`Envoy::start`] under a wrapper command (e.g. `valgrind --tool=callgrind ...`: the
    /// wrapper's process is Envoy's), ready within `ready_within`.
    pub async fn start_with(
        envoy: &Path,
        bootstrap: &str,
        dir: &Path,
        native_dir: &Path,
        wrapper: &[String],
        ready_within: Duration,
    ) -> Result<Self, String> {
        let launch = Launch {
            binary: envoy.to_owned(),
            wrapper: wrapper.to_vec(),
            concurrency: 1,
            log_level: "warning".into(),
            component_log_level: None,
            log_to: LogTo::LogPath,
            startup_timeout: ready_within,
            modules_dir: native_dir.to_owned(),
            dir: Some(dir.to_owned()),
            on_drop: OnDrop::Terminate(STOP_GRACE),
        };
        let process = EnvoyProcess::start(bootstrap, &launch).await?;
        let listener = process
            .listener("ingress")
            .ok_or_else(|| format!("envoy has no ingress listener: {}", process.log_tail(8)))?;
        Ok(Envoy {
            admin: process.admin_addr(),
            listener,
            log: process.log_path().to_owned(),
            process,
        })
    }

    /// The process id, for `/proc` readings.
    pub fn pid(&self) -> u32 {
        self.process.pid().unwrap_or(0)
    }

    /// Counters and gauges whose names contain one of `parts` (admin `/stats`, text format).
    pub async fn stats(&self, parts: &[&str]) -> BTreeMap<String, u64> {
        let mut stats = self.process.stats().await.unwrap_or_default();
        stats.retain(|name, _| parts.iter().any(|p| name.contains(p)));
        stats
    }

    /// The last lines of Envoy's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail(8)
    }

    /// Lines of Envoy's log at error level or above (a healthy run has none).
    pub fn log_errors(&self) -> Vec<String> {
        self.process.log_errors(5)
    }
}

#[cfg(test)]
mod tests {
    use super::{Builds, Tracer};
    use std::path::Path;

    #[test]
    fn each_ab_half_takes_the_other_build_of_its_own_form_and_the_b_configuration() {
        let (a_keys, b_keys) = (serde_json::Map::new(), {
            let mut m = serde_json::Map::new();
            m.insert("sample_ratio".into(), 0.0.into());
            m
        });
        let a = Builds {
            native_dir: Path::new("a"),
            wasm: Path::new("a.wasm"),
            overrides: &a_keys,
        };
        let b = Builds {
            native_dir: Path::new("b"),
            wasm: Path::new("b.wasm"),
            overrides: &b_keys,
        };
        let native_b = Tracer::NativeB.builds(a, b);
        assert_eq!(
            (native_b.native_dir, native_b.wasm),
            (Path::new("b"), Path::new("a.wasm"))
        );
        assert_eq!(native_b.overrides, &b_keys);
        let filter_b = Tracer::FilterB.builds(a, b);
        assert_eq!(
            (filter_b.native_dir, filter_b.wasm),
            (Path::new("a"), Path::new("b.wasm"))
        );
        assert_eq!(filter_b.overrides, &b_keys);
        for t in Tracer::STANDARD {
            assert_eq!(t.builds(a, b), a, "{}", t.name());
        }
    }
}
