//! Summary of the criterion micro-benchmarks (`make bench` runs them first): elements/s per
//! benchmark from criterion's own result files, and the shim pipeline's share of its decode-only
//! ceiling measured in the same run.

use std::path::Path;

use serde::Serialize;

/// One criterion benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct MicroResult {
    /// `group/function`.
    pub id: String,
    /// Median time per iteration, ns.
    pub median_ns_per_iter: f64,
    /// Elements (spans, requests) per iteration.
    pub elements_per_iter: u64,
    /// Median time per element, ns.
    pub ns_per_element: f64,
    /// Elements per second on one core.
    pub elements_per_second: f64,
}

/// The summary file.
#[derive(Clone, Debug, Serialize)]
pub struct MicroReport {
    /// What this file is.
    pub schema: &'static str,
    /// Every benchmark found.
    pub results: Vec<MicroResult>,
    /// Shim end-to-end spans/s over decode-only spans/s (target >= 0.5).
    pub shim_pipeline_ratio_to_decode_only: Option<f64>,
    /// Time per span of the pipeline with the RED metrics stage over without it, minus 1
    /// (target <= 0.15), both measured in the same run.
    pub red_metrics_overhead: Option<f64>,
}

fn read_one(dir: &Path) -> Option<MicroResult> {
    let bench: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("new/benchmark.json")).ok()?).ok()?;
    let estimates: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("new/estimates.json")).ok()?).ok()?;
    let id = bench.get("full_id")?.as_str()?.to_owned();
    let elements = bench
        .get("throughput")
        .and_then(|t| t.get("Elements"))
        .and_then(|e| e.as_u64())
        .unwrap_or(1);
    let median = estimates.get("median")?.get("point_estimate")?.as_f64()?;
    let per = median / elements as f64;
    Some(MicroResult {
        id,
        median_ns_per_iter: median,
        elements_per_iter: elements,
        ns_per_element: per,
        elements_per_second: 1e9 / per,
    })
}

/// Reads every `<group>/<function>/new/` under criterion's output directory.
pub fn collect(criterion_dir: &Path) -> MicroReport {
    let mut results = Vec::new();
    let groups = std::fs::read_dir(criterion_dir)
        .into_iter()
        .flatten()
        .flatten();
    for group in groups {
        for function in std::fs::read_dir(group.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(r) = read_one(&function.path()) {
                results.push(r);
            }
        }
    }
    results.sort_by(|a, b| a.id.cmp(&b.id));
    let rate = |id: &str| {
        results
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.elements_per_second)
    };
    let ratio = rate("shim_pipeline/decode_sample_batch_zipkin_encode")
        .zip(rate("shim_pipeline/decode_only"))
        .map(|(pipeline, ceiling)| pipeline / ceiling);
    let red = rate("shim_pipeline/decode_sample_batch_zipkin_encode")
        .zip(rate("shim_pipeline/decode_red_sample_batch_zipkin_encode"))
        .map(|(off, on)| off / on - 1.0);
    MicroReport {
        schema: "aetherflow-bench micro-benchmark summary v1",
        results,
        shim_pipeline_ratio_to_decode_only: ratio,
        red_metrics_overhead: red,
    }
}

/// The printed table.
pub fn table(report: &MicroReport) -> String {
    let mut out =
        String::from("\n| benchmark | per element | elements/s (1 core) |\n|---|---|---|\n");
    for r in &report.results {
        let per = if r.ns_per_element >= 1000.0 {
            format!("{:.2} µs", r.ns_per_element / 1000.0)
        } else {
            format!("{:.0} ns", r.ns_per_element)
        };
        out += &format!("| {} | {per} | {:.0} |\n", r.id, r.elements_per_second);
    }
    if let Some(ratio) = report.shim_pipeline_ratio_to_decode_only {
        out += &format!(
            "\nshim pipeline (decode -> sample -> batch -> Zipkin JSON) = {:.0} % of the decode-only ceiling\n",
            ratio * 100.0
        );
    }
    if let Some(red) = report.red_metrics_overhead {
        out += &format!(
            "RED metrics stage (every span counted, every exported span an exemplar candidate) adds {:.1} % per span (target <= 15 %)\n",
            red * 100.0
        );
    }
    out
}
