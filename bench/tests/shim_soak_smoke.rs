//! The shim soak's smoke check (`make test`): a few seconds at a low rate against the real
//! collector-shim binary (the debug build by default), so the stage `make bench` runs keeps
//! working. It asserts only what does not depend on the machine's speed: the load reached the
//! shim and was counted by it, the tail policies kept the error traces, every span the shim
//! exported reached the sink, and RSS was read; never a rate, a time or a memory figure.

use aetherflow_bench::path_from_env;
use aetherflow_bench::shim_soak::{self, SoakPlan};

#[test]
fn a_short_soak_feeds_the_shim_and_accounts_for_every_span() {
    let bin = path_from_env("AETHERFLOW_SHIM_BIN", "target/debug/collector-shim");
    assert!(
        bin.exists(),
        "{} not found (AETHERFLOW_SHIM_BIN); run `cargo build -p collector-shim`",
        bin.display()
    );
    let plan = SoakPlan {
        profile: "smoke",
        spans_per_second: 2_000.0,
        duration_s: 3.0,
        batch_spans: 256,
        connections: 2,
        decision_wait_ms: 500,
        ..SoakPlan::quick()
    };
    let work_dir =
        std::env::temp_dir().join(format!("aetherflow-shim-soak-smoke-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime
        .block_on(shim_soak::run(plan, &bin, &work_dir))
        .unwrap_or_else(|e| panic!("soak failed: {e}"));
    let _ = std::fs::remove_dir_all(&work_dir);
    println!("{}", shim_soak::table(&report));

    assert!(report.mix.spans > 0 && report.mix.error_traces > 0);
    assert!(report.accepted_spans > 0, "the shim counted no span");
    assert!(
        report.accepted_spans <= report.mix.spans,
        "the shim counted more spans than were sent"
    );
    assert_eq!(report.client_errors, 0, "failed requests");
    let kept_by = |policy: &str| {
        report
            .decisions
            .iter()
            .filter(|d| d.policy == policy && d.decision == "in")
            .map(|d| d.spans)
            .sum::<u64>()
    };
    assert!(kept_by("error") > 0, "{:?}", report.decisions);
    // Everything kept was exported (nothing dropped: the sink is up), and the sink got it all.
    assert_eq!(
        report.dropped.values().sum::<u64>(),
        0,
        "{:?}",
        report.dropped
    );
    assert_eq!(report.exported_spans, report.kept_spans);
    assert_eq!(report.sink_spans, report.exported_spans);
    assert!(!report.rss_samples.is_empty() && report.rss_peak_mib > 0.0);
    assert!(report.shim_cpu_us_per_span > 0.0);
}
