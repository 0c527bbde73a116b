//! Regrouping a batch by resource (and scope): the batcher mixes spans of many OTLP requests,
//! while Jaeger wants one `Batch` per process and OTLP one `ResourceSpans` per resource.
//!
//! Spans of one request share the same `Arc`, so pointer equality settles most comparisons;
//! equal contents behind different `Arc`s (one per request of the same proxy) merge too.
//! Groups keep first-seen order; the scan is linear in the (small) number of groups.
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::model::SpanRecord;

/// Spans of one resource, split by scope.
pub struct ResourceGroup<'a> {
    /// The shared resource.
    pub resource: Arc<Resource>,
    /// Scope groups in first-seen order.
    pub scopes: Vec<(Arc<InstrumentationScope>, Vec<&'a SpanRecord>)>,
}

impl ResourceGroup<'_> {
    /// Every span of the group.
    pub fn spans(&self) -> impl Iterator<Item = &SpanRecord> {
        self.scopes
            .iter()
            .flat_map(|(_, spans)| spans.iter().copied())
    }
}

fn same<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

/// Groups a batch by resource, then by scope.
pub fn by_resource(batch: &[SpanRecord]) -> Vec<ResourceGroup<'_>> {
    let mut groups: Vec<ResourceGroup<'_>> = Vec::new();
    for rec in batch {
        let g = match groups.iter().position(|g| same(&g.resource, &rec.resource)) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(ResourceGroup {
                    resource: rec.resource.clone(),
                    scopes: Vec::new(),
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        match g.scopes.iter().position(|(s, _)| same(s, &rec.scope)) {
            Some(i) => g.scopes[i].1.push(rec),
            None => g.scopes.push((rec.scope.clone(), vec![rec])),
        }
    }
    groups
}
