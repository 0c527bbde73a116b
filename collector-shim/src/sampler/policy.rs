//! Tail policies: each looks at every span a trace had within its decision window and says
//! whether to keep the whole trace. Rate budgets use `tokio::time::Instant` so tests can
//! drive them with paused time.
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tokio::time::Instant;

use crate::config::PolicyConfig;
use crate::model::SpanRecord;

/// A budget of spans per second (token bucket holding at most one second's worth).
#[derive(Debug)]
pub struct SpanBudget {
    /// Spans added per second.
    rate: f64,
    /// Spans available now.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl SpanBudget {
    /// A full bucket of `rate` spans per second.
    pub fn new(rate: f64, now: Instant) -> Self {
        SpanBudget {
            rate,
            tokens: rate,
            updated: now,
        }
    }

    /// Takes `n` spans from the budget if they fit.
    pub fn try_take(&mut self, n: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated = now;
        // A trace bigger than a whole second's budget still passes when the bucket is full,
        // otherwise it could never be kept.
        let n = n as f64;
        if self.tokens >= n || self.tokens >= self.rate {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// How an attribute policy compares values.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// Exact text (strings, bools as `true`/`false`, numbers in decimal).
    Text(String),
    /// Inclusive integer range, from `500-599`.
    Range(i64, i64),
}

/// A runtime policy, built from its config.
#[derive(Debug)]
pub enum Policy {
    /// Any span with status ERROR.
    Error,
    /// Trace duration (last end - first start) at or above the threshold.
    Latency(Duration),
    /// A span or resource attribute matching one of the values.
    Attribute {
        /// The attribute key (convenience names resolved).
        key: String,
        /// Accepted values.
        matchers: Vec<Matcher>,
    },
    /// Keep while the span budget lasts.
    RateLimit(SpanBudget),
    /// Sub-policies, each limited to its share of a span budget.
    Composite(Vec<(NamedPolicy, SpanBudget)>),
}

/// A policy with the name used in metric labels.
#[derive(Debug)]
pub struct NamedPolicy {
    /// `name` from the config, else the policy type.
    pub name: String,
    /// The policy.
    pub policy: Policy,
}

fn resolve_key(key: &str) -> String {
    match key {
        "route" => "http.route",
        "status_code" => "http.response.status_code",
        "service" => "service.name",
        other => other,
    }
    .to_string()
}

fn matcher(v: &str) -> Matcher {
    if let Some((a, b)) = v.split_once('-') {
        if let (Ok(lo), Ok(hi)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
            return Matcher::Range(lo, hi);
        }
    }
    Matcher::Text(v.to_string())
}

impl NamedPolicy {
    /// Builds the runtime policy (config already validated).
    pub fn from_config(cfg: &PolicyConfig, now: Instant) -> Self {
        let (name, kind, policy) = match cfg {
            PolicyConfig::Error { name } => (name, "error", Policy::Error),
            PolicyConfig::Latency { name, threshold } => {
                (name, "latency", Policy::Latency(*threshold))
            }
            PolicyConfig::Attribute { name, key, values } => (
                name,
                "attribute",
                Policy::Attribute {
                    key: resolve_key(key),
                    matchers: values.iter().map(|v| matcher(v)).collect(),
                },
            ),
            PolicyConfig::RateLimit {
                name,
                spans_per_second,
            } => (
                name,
                "rate_limit",
                Policy::RateLimit(SpanBudget::new(*spans_per_second, now)),
            ),
            PolicyConfig::Composite {
                name,
                max_spans_per_second,
                policies,
            } => (
                name,
                "composite",
                Policy::Composite(
                    policies
                        .iter()
                        .map(|sp| {
                            (
                                NamedPolicy::from_config(&sp.policy, now),
                                SpanBudget::new(sp.share * max_spans_per_second, now),
                            )
                        })
                        .collect(),
                ),
            ),
        };
        NamedPolicy {
            name: name.clone().unwrap_or_else(|| kind.to_string()),
            policy,
        }
    }

    /// Whether this policy keeps the trace; returns the deciding policy's name (a composite
    /// answers with the sub-policy's name).
    pub fn evaluate(&mut self, spans: &[SpanRecord], now: Instant) -> Option<String> {
        let keep = match &mut self.policy {
            Policy::Error => spans.iter().any(is_error),
            Policy::Latency(threshold) => trace_duration(spans) >= *threshold,
            Policy::Attribute { key, matchers } => spans.iter().any(|s| {
                let found = find_attr(&s.span.attributes, key).or_else(|| {
                    s.resource
                        .attributes
                        .iter()
                        .find(|kv| kv.key == *key)
                        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                });
                found.is_some_and(|v| matchers.iter().any(|m| value_matches(v, m)))
            }),
            Policy::RateLimit(budget) => budget.try_take(spans.len(), now),
            Policy::Composite(subs) => {
                for (sub, budget) in subs.iter_mut() {
                    if let Some(name) = sub.evaluate(spans, now) {
                        if budget.try_take(spans.len(), now) {
                            return Some(name);
                        }
                    }
                }
                false
            }
        };
        keep.then(|| self.name.clone())
    }
}

fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn value_matches(v: &Value, m: &Matcher) -> bool {
    match (v, m) {
        (Value::IntValue(i), Matcher::Range(lo, hi)) => (*lo..=*hi).contains(i),
        (Value::StringValue(s), Matcher::Range(lo, hi)) => {
            s.parse::<i64>().is_ok_and(|i| (*lo..=*hi).contains(&i))
        }
        (Value::StringValue(s), Matcher::Text(t)) => s == t,
        (Value::IntValue(i), Matcher::Text(t)) => t.parse::<i64>() == Ok(*i),
        (Value::BoolValue(b), Matcher::Text(t)) => t.parse::<bool>() == Ok(*b),
        (Value::DoubleValue(d), Matcher::Text(t)) => t.parse::<f64>() == Ok(*d),
        _ => false,
    }
}

/// Status ERROR on the span.
pub fn is_error(s: &SpanRecord) -> bool {
    s.span
        .status
        .as_ref()
        .is_some_and(|st| st.code == StatusCode::Error as i32)
}

/// From the earliest start to the latest end among the spans.
pub fn trace_duration(spans: &[SpanRecord]) -> Duration {
    let start = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.span.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    Duration::from_nanos(end.saturating_sub(start))
}

/// The span carries `aetherflow.sampling.record_only = true` (the filter recorded it without
/// sampling it). Only this attribute makes a span record-only; flags are never read for it.
pub fn is_record_only(s: &SpanRecord) -> bool {
    match find_attr(
        &s.span.attributes,
        aetherflow_core::contract::RECORD_ONLY_ATTRIBUTE,
    ) {
        Some(Value::BoolValue(b)) => *b,
        Some(Value::StringValue(v)) => v == "true",
        _ => false,
    }
}
