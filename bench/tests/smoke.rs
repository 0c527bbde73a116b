//! The benchmark harness's smoke check (`make test` runs it once): the quick profile over every
//! configuration and both workloads, with the real Envoy, the real `trace_filter.wasm`, the real native module and the
//! real collector-shim. It asserts only that every configuration served all its requests and that
//! every span arrived at the sink, never on timings (the machine may be busy).

use aetherflow_bench::envoy::Tracer;
use aetherflow_bench::harness::{Components, Harness, Profile};
use aetherflow_bench::loadgen::Workload;
use aetherflow_bench::paired::{self, PairedPlan};
use aetherflow_bench::path_from_env;

fn component(var: &str, default: &str, how: &str) -> std::path::PathBuf {
    let path = path_from_env(var, default);
    assert!(path.exists(), "{} not found ({var}); {how}", path.display());
    path
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn components(name: &str) -> Components {
    Components {
        envoy: component("AETHERFLOW_ENVOY", ".tools/bin/envoy", "run `make tools`"),
        wasm: component(
            "AETHERFLOW_WASM",
            "target/wasm32-wasip1/release/trace_filter.wasm",
            "run `make wasm`",
        ),
        wasm_floor: component(
            "AETHERFLOW_WASM_FLOOR",
            "target/wasm32-wasip1/release/aetherflow_wasm_floor.wasm",
            "run `make wasm`",
        ),
        native_dir: component(
            "AETHERFLOW_NATIVE",
            "target/release/libaetherflow_trace.so",
            "run `make native`",
        )
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default(),
        native_b_dir: Default::default(),
        wasm_b: Default::default(),
        b_overrides: Default::default(),
        sample_ratio: aetherflow_bench::harness::SAMPLE_RATIO,
        shim: Some(component(
            "AETHERFLOW_SHIM_BIN",
            "target/debug/collector-shim",
            "run `cargo build -p collector-shim`",
        )),
        filter_overrides: Default::default(),
        floor_overrides: Default::default(),
        envoy_cpus: String::new(),
        work_dir: std::env::temp_dir().join(format!(
            "aetherflow-bench-smoke-{name}-{}",
            std::process::id()
        )),
    }
}

#[test]
fn quick_profile_serves_every_request_and_delivers_every_span() {
    let components = components("harness");
    let work_dir = components.work_dir.clone();
    let runtime = runtime();
    let samples = runtime.block_on(async {
        let mut harness = Harness::new(Profile::quick(), components)
            .await
            .expect("upstream starts");
        harness
            .run(Tracer::STANDARD, &[Workload::Http1, Workload::Grpc], |_| {})
            .await
            .unwrap_or_else(|e| panic!("harness run failed: {e}"))
    });
    let _ = std::fs::remove_dir_all(&work_dir);

    assert_eq!(
        samples.len(),
        Tracer::STANDARD.len() * 2,
        "one sample per configuration and workload"
    );
    for s in &samples {
        let what = format!("{} {:?}", s.tracer.name(), s.workload);
        assert_eq!(
            s.requests_failed, 0,
            "{what}: failed requests, first: {:?}",
            s.first_error
        );
        assert!(
            s.requests_ok >= Profile::quick().warmup,
            "{what}: served {}",
            s.requests_ok
        );
        assert_eq!(
            s.spans_expected,
            s.requests_ok * s.tracer.spans_per_request(),
            "{what}: every request is sampled"
        );
        assert!(
            s.spans_received >= s.spans_expected,
            "{what}: spans received vs expected (Envoy stats: {:?}, log errors: {:?})",
            s.envoy_stats,
            s.envoy_log_errors
        );
        if matches!(
            s.tracer,
            Tracer::Filter | Tracer::Native | Tracer::NativeOtel
        ) {
            assert!(s.via_shim, "{what}: spans went through collector-shim");
        }
        if s.workload == Workload::Http1 {
            assert!(
                s.latency_p99_us.is_some(),
                "{what}: the fixed-rate phase ran"
            );
        }
    }
}

/// The paired slices with the native module beside the baseline and Envoy's OpenTelemetry
/// tracer: every slice measured, every request served, every span delivered (no timing).
#[test]
fn paired_slices_measure_every_configuration_and_deliver_every_span() {
    let components = components("paired");
    let work_dir = components.work_dir.clone();
    let plan = PairedPlan {
        slices: 2,
        requests: 200,
        grpc_requests: 100,
        warmup: 100,
        ..PairedPlan::quick()
    };
    let tracers = [Tracer::Native, Tracer::NativeOtel];
    let workloads = [Workload::Http1, Workload::Grpc];
    let runtime = runtime();
    let report = runtime
        .block_on(paired::run(
            &plan,
            &components,
            &tracers,
            &workloads,
            &work_dir,
            |_| {},
        ))
        .unwrap_or_else(|e| panic!("paired run failed: {e}"));
    let _ = std::fs::remove_dir_all(&work_dir);

    // The baseline is added to what was asked for.
    assert_eq!(report.rows.len(), 3 * workloads.len(), "{:?}", report.rows);
    assert_eq!(report.samples.len(), 3 * workloads.len() * plan.slices);
    assert!(
        report.sound(),
        "a request failed or a span was lost: {:?}",
        report.rows
    );
    for r in &report.rows {
        let what = format!("{} {:?}", r.tracer.name(), r.workload);
        let cpu = r.envoy_cpu_us_per_request.as_ref().expect("CPU measured");
        assert_eq!(cpu.n, plan.slices, "{what}: one figure per slice");
        assert!(cpu.median > 0.0, "{what}: Envoy used CPU");
        if r.tracer != Tracer::Baseline {
            assert!(
                r.added_ratio_to_native_otel.is_some(),
                "{what}: a ratio per slice"
            );
            assert!(r.spans_expected > Some(0), "{what}: spans expected");
        }
    }
    assert!(paired::table(&report).contains("native-otel"));
}
