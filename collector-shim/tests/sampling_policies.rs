//! Every sampling rule, driven through the `Sampler` with explicit instants (no sleeping):
//! consistent probability (checked against the shared core math), record-only handling, each
//! tail policy, the decision window, early eviction, late spans, flush, dynamic probability.
mod pipeline_support;

use std::time::Duration;

use aetherflow_core::ids::TraceId;
use aetherflow_core::sampling::{Randomness, Threshold};
use collector_shim::config::{
    DynamicConfig, PolicyConfig, SamplingConfig, SharedPolicy, TailConfig,
};
use collector_shim::metrics::Metrics;
use collector_shim::model::SpanRecord;
use collector_shim::sampler::Sampler;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use pipeline_support::*;
use tokio::time::Instant;

fn tail(policies: Vec<PolicyConfig>) -> SamplingConfig {
    SamplingConfig {
        probability: 1.0,
        dynamic: None,
        tail: Some(TailConfig {
            decision_wait: Duration::from_secs(5),
            policies,
            ..Default::default()
        }),
    }
}

/// Offers `spans`, then ticks past the decision window; returns what was kept.
fn decide(sampler: &mut Sampler, spans: Vec<SpanRecord>, t: Instant) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    sampler.offer(spans, t, &mut out);
    sampler.tick(t + Duration::from_secs(6), &mut out);
    out
}

fn names(v: &[SpanRecord]) -> Vec<String> {
    let mut n: Vec<String> = v.iter().map(|r| r.span.name.clone()).collect();
    n.sort();
    n
}

#[test]
fn consistent_probability_matches_the_core_threshold() {
    let m = Metrics::new();
    let t = Instant::now();
    let cfg = SamplingConfig {
        probability: 0.25,
        ..Default::default()
    };
    let mut s = Sampler::new(&cfg, m.clone(), t);
    let threshold = Threshold::from_probability(0.25).unwrap();
    let mut kept = 0;
    for i in 0..4000u64 {
        // Spread the randomness over the whole 56-bit range.
        let r = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 8;
        let tid = trace_id(i as u32, r);
        let mut out = Vec::new();
        s.offer(vec![record(span(&tid, i, 1))], t, &mut out);
        let mut id = [0u8; 16];
        id.copy_from_slice(&tid);
        let expect = threshold.should_sample(Randomness::from_trace_id(&TraceId(id)));
        assert_eq!(out.len() == 1, expect, "trace {i}");
        if let Some(k) = out.first() {
            assert_eq!(k.span.trace_state, "ot=th:c");
            kept += 1;
        }
    }
    // About a quarter.
    assert!((800..1200).contains(&kept), "{kept}");
    assert!(m.encode().contains("shim_sampling_probability 0.25"));
}

#[test]
fn filter_threshold_and_shim_threshold_agree() {
    // The filter kept these at 25 % (th:c); the shim at 50 % keeps every one of them, and
    // leaves the stricter threshold in place.
    let cfg = SamplingConfig {
        probability: 0.5,
        ..Default::default()
    };
    let mut s = Sampler::new(&cfg, Metrics::new(), Instant::now());
    let mut out = Vec::new();
    for i in 0..200u64 {
        let r = 0xc0_0000_0000_0000 + i * 0x1_0000_0000_0000 / 4;
        let mut sp = span(&trace_id(i as u32, r), i, 1);
        sp.trace_state = "ot=th:c,vendor=x".into();
        s.offer(vec![record(sp)], Instant::now(), &mut out);
    }
    assert_eq!(out.len(), 200);
    assert!(out.iter().all(|r| r.span.trace_state == "ot=th:c,vendor=x"));
}

#[test]
fn record_only_spans_are_dropped_and_sdk_flags_are_ignored() {
    let m = Metrics::new();
    let mut s = Sampler::new(&SamplingConfig::default(), m.clone(), Instant::now());
    let tid = trace_id(1, 42);
    let mut sdk = span(&tid, 1, 1);
    sdk.flags = 0x100; // OpenTelemetry Python: has-is-remote set, trace flags byte unset
    sdk.name = "sdk".into();
    let mut zero = span(&tid, 2, 1);
    zero.flags = 0;
    zero.name = "zero".into();
    let mut ro = record_only(span(&tid, 3, 1));
    ro.name = "record-only".into();
    let mut out = Vec::new();
    s.offer(
        vec![record(sdk), record(zero), record(ro)],
        Instant::now(),
        &mut out,
    );
    assert_eq!(names(&out), vec!["sdk", "zero"]);
    let text = m.encode();
    assert!(
        text.contains("shim_spans_sampled_total{policy=\"record_only\",decision=\"out\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shim_spans_sampled_total{policy=\"probability\",decision=\"in\"} 2"),
        "{text}"
    );
}

#[test]
fn error_policy_keeps_the_whole_trace_including_record_only_spans() {
    let m = Metrics::new();
    let t = Instant::now();
    let mut s = Sampler::new(
        &tail(vec![PolicyConfig::Error { name: None }]),
        m.clone(),
        t,
    );
    let bad = trace_id(1, 1);
    let good = trace_id(2, 2);
    let mut a = record_only(span(&bad, 1, 1));
    a.name = "bad-ro".into();
    let mut b = with_error(record_only(span(&bad, 2, 1)));
    b.name = "bad-err".into();
    let mut c = record_only(span(&good, 3, 1));
    c.name = "good-ro".into();
    let mut d = span(&good, 4, 1);
    d.name = "good-sampled".into();
    let out = decide(&mut s, vec![record(a), record(b), record(c), record(d)], t);
    assert_eq!(names(&out), vec!["bad-err", "bad-ro", "good-sampled"]);
    let text = m.encode();
    assert!(
        text.contains("shim_spans_sampled_total{policy=\"error\",decision=\"in\"} 2"),
        "{text}"
    );
}

#[test]
fn latency_policy_uses_the_trace_duration() {
    let t = Instant::now();
    let p = PolicyConfig::Latency {
        name: Some("slow".into()),
        threshold: Duration::from_millis(500),
    };
    let mut s = Sampler::new(&tail(vec![p]), Metrics::new(), t);
    let slow = trace_id(1, 1);
    let fast = trace_id(2, 2);
    // Two short spans 600 ms apart make a 600 ms trace.
    let first = record_only(span(&slow, 1, 10));
    let mut second = record_only(span(&slow, 2, 10));
    second.start_time_unix_nano += 590_000_000;
    second.end_time_unix_nano += 590_000_000;
    let quick = record_only(span(&fast, 3, 100));
    let out = decide(
        &mut s,
        vec![record(first), record(second), record(quick)],
        t,
    );
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r.span.trace_id == slow));
}

#[test]
fn attribute_policies_match_route_status_range_and_service() {
    let t = Instant::now();
    let policies = vec![
        PolicyConfig::Attribute {
            name: Some("checkout".into()),
            key: "route".into(),
            values: vec!["/checkout".into()],
        },
        PolicyConfig::Attribute {
            name: Some("5xx".into()),
            key: "status_code".into(),
            values: vec!["500-599".into()],
        },
        PolicyConfig::Attribute {
            name: Some("payments".into()),
            key: "service".into(),
            values: vec!["payments".into()],
        },
    ];
    let m = Metrics::new();
    let mut s = Sampler::new(&tail(policies), m.clone(), t);
    let route = record(with_attr(
        record_only(span(&trace_id(1, 1), 1, 1)),
        "http.route",
        Value::StringValue("/checkout".into()),
    ));
    let status = record(with_attr(
        record_only(span(&trace_id(2, 1), 2, 1)),
        "http.response.status_code",
        Value::IntValue(503),
    ));
    let ok = record(with_attr(
        record_only(span(&trace_id(3, 1), 3, 1)),
        "http.response.status_code",
        Value::IntValue(404),
    ));
    let mut svc = record(record_only(span(&trace_id(4, 1), 4, 1)));
    svc.resource = std::sync::Arc::new(resource("payments"));
    let out = decide(&mut s, vec![route, status, ok, svc], t);
    let mut kept: Vec<u8> = out.iter().map(|r| r.span.trace_id[3]).collect();
    kept.sort();
    assert_eq!(kept, vec![1, 2, 4]);
    let text = m.encode();
    for p in ["checkout", "5xx", "payments"] {
        assert!(
            text.contains(&format!(
                "shim_spans_sampled_total{{policy=\"{p}\",decision=\"in\"}} 1"
            )),
            "{p}: {text}"
        );
    }
}

#[test]
fn rate_limit_keeps_traces_while_the_span_budget_lasts() {
    let t = Instant::now();
    let p = PolicyConfig::RateLimit {
        name: None,
        spans_per_second: 10.0,
    };
    let mut s = Sampler::new(&tail(vec![p]), Metrics::new(), t);
    let spans: Vec<SpanRecord> = (0..15u32)
        .map(|i| record(record_only(span(&trace_id(i, 7), i as u64, 1))))
        .collect();
    let out = decide(&mut s, spans, t);
    assert_eq!(out.len(), 10);
    // One second later the budget is back.
    let t2 = t + Duration::from_secs(7);
    let spans: Vec<SpanRecord> = (100..115u32)
        .map(|i| record(record_only(span(&trace_id(i, 7), i as u64, 1))))
        .collect();
    let mut out = Vec::new();
    s.offer(spans, t2, &mut out);
    s.tick(t2 + Duration::from_secs(6), &mut out);
    assert_eq!(out.len(), 10);
}

#[test]
fn composite_gives_each_policy_its_share() {
    let t = Instant::now();
    let p = PolicyConfig::Composite {
        name: None,
        max_spans_per_second: 20.0,
        policies: vec![
            SharedPolicy {
                share: 0.25,
                policy: PolicyConfig::Error { name: None },
            },
            SharedPolicy {
                share: 0.75,
                policy: PolicyConfig::RateLimit {
                    name: Some("rest".into()),
                    spans_per_second: 1000.0,
                },
            },
        ],
    };
    let m = Metrics::new();
    let mut s = Sampler::new(&tail(vec![p]), m.clone(), t);
    // 10 error traces: 5 fit the error share (5 spans/s), the others fall to `rest` (15/s).
    let mut spans: Vec<SpanRecord> = (0..10u32)
        .map(|i| record(with_error(record_only(span(&trace_id(i, 7), i as u64, 1)))))
        .collect();
    // 20 plain record-only traces: only what is left of the `rest` share.
    spans.extend((100..120u32).map(|i| record(record_only(span(&trace_id(i, 7), i as u64, 1)))));
    let out = decide(&mut s, spans, t);
    assert_eq!(out.len(), 20, "5 (error share) + 15 (rest share)");
    let text = m.encode();
    assert!(
        text.contains("shim_spans_sampled_total{policy=\"error\",decision=\"in\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("shim_spans_sampled_total{policy=\"rest\",decision=\"in\"} 15"),
        "{text}"
    );
}

#[test]
fn decision_window_late_spans_eviction_and_flush() {
    let m = Metrics::new();
    let t = Instant::now();
    let mut cfg = tail(vec![PolicyConfig::Error { name: None }]);
    if let Some(tc) = cfg.tail.as_mut() {
        tc.num_traces = 2;
    }
    let mut s = Sampler::new(&cfg, m.clone(), t);
    let a = trace_id(1, 1);
    let mut out = Vec::new();
    // The error arrives 3 s after the first span, still inside the 5 s window.
    s.offer(vec![record(record_only(span(&a, 1, 1)))], t, &mut out);
    s.tick(t + Duration::from_secs(3), &mut out);
    assert!(out.is_empty(), "held until the window ends");
    s.offer(
        vec![record(with_error(span(&a, 2, 1)))],
        t + Duration::from_secs(3),
        &mut out,
    );
    assert_eq!(s.next_wakeup(), Some(t + Duration::from_secs(5)));
    s.tick(t + Duration::from_secs(5), &mut out);
    assert_eq!(out.len(), 2);
    // A late record-only span of the kept trace is kept too.
    out.clear();
    s.offer(
        vec![record(record_only(span(&a, 3, 1)))],
        t + Duration::from_secs(8),
        &mut out,
    );
    assert_eq!(out.len(), 1);

    // Three new traces with room for two: the oldest is decided early (and counted).
    out.clear();
    let t9 = t + Duration::from_secs(9);
    for i in 10..13u32 {
        let sp = if i == 10 {
            with_error(span(&trace_id(i, 1), 1, 1))
        } else {
            record_only(span(&trace_id(i, 1), 1, 1))
        };
        s.offer(vec![record(sp)], t9, &mut out);
    }
    assert_eq!(out.len(), 1, "the evicted error trace is decided at once");
    assert!(m.encode().contains("shim_tail_early_evictions_total 1"));
    assert!(m.encode().contains("shim_tail_traces_held 2"));

    // Shutdown: the rest is decided without waiting (record-only, no error: dropped).
    s.flush(t9, &mut out);
    assert_eq!(out.len(), 1);
    assert!(m.encode().contains("shim_tail_traces_held 0"));
    assert_eq!(s.next_wakeup(), None);
}

#[test]
fn span_bound_evicts_early_too() {
    let m = Metrics::new();
    let t = Instant::now();
    let mut cfg = tail(vec![]);
    if let Some(tc) = cfg.tail.as_mut() {
        tc.max_spans = 10;
    }
    let mut s = Sampler::new(&cfg, m.clone(), t);
    let mut out = Vec::new();
    for i in 0..25u32 {
        s.offer(vec![record(span(&trace_id(i, 1), 1, 1))], t, &mut out);
    }
    assert_eq!(
        out.len(),
        15,
        "sampled spans pass the fallback when evicted"
    );
    assert!(m.encode().contains("shim_tail_spans_held 10"));
    assert!(m.encode().contains("shim_tail_early_evictions_total 15"));
}

#[test]
fn dynamic_probability_is_applied_and_exposed() {
    let m = Metrics::new();
    let t = Instant::now();
    let cfg = SamplingConfig {
        probability: 1.0,
        dynamic: Some(DynamicConfig {
            target_traces_per_second: 50.0,
            min_probability: 0.01,
            max_probability: 1.0,
            error_boost: 0.0,
            adjust_interval: Duration::from_secs(1),
        }),
        tail: None,
    };
    let mut s = Sampler::new(&cfg, m.clone(), t);
    let mut out = Vec::new();
    let spans: Vec<SpanRecord> = (0..1000u32)
        .map(|i| record(span(&trace_id(i, (i as u64) << 46), 1, 1)))
        .collect();
    s.offer(spans, t, &mut out);
    assert_eq!(out.len(), 1000, "starts at max_probability");
    s.tick(t + Duration::from_secs(1), &mut out);
    // 1000 traces/s against a target of 50/s.
    assert!((s.probability() - 0.05).abs() < 1e-6, "{}", s.probability());
    assert!(
        m.encode().contains("shim_sampling_probability 0.05"),
        "{}",
        m.encode()
    );
    out.clear();
    let spans: Vec<SpanRecord> = (0..1000u32)
        .map(|i| {
            record(span(
                &trace_id(i, ((i as u64) * 0x4_1893_74BC_6A7E) & 0xff_ffff_ffff_ffff),
                1,
                1,
            ))
        })
        .collect();
    s.offer(spans, t + Duration::from_secs(1), &mut out);
    assert!(
        (20..90).contains(&out.len()),
        "about 5 % kept: {}",
        out.len()
    );
}
