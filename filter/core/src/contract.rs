//! The contract between the filter and the collector (`../shared/DESIGN.md`, "Contract:
//! filter -> shim"), named once for the filter, the shim and the demo.

/// Set to `true` on a span the filter recorded without sampling it: the collector keeps it only
/// when a tail policy wants its trace. Only this attribute makes a span record-only; the span
/// flags never do (standard SDKs often leave the trace-flags byte unset).
pub const RECORD_ONLY_ATTRIBUTE: &str = "aetherflow.sampling.record_only";
