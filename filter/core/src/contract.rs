//! The contract between the filter and the collector (`../shared/DESIGN.md`, "Contract:
//! filter -> shim"), named once for the filter, the shim and the demo.

/// Set to `true` on a span the filter recorded without sampling it: the collector keeps it only
/// when a tail policy wants its trace. Only this attribute makes a span record-only; the span
/// flags never do (standard SDKs often leave the trace-flags byte unset).
pub const RECORD_ONLY_ATTRIBUTE: &str = "aetherflow.sampling.record_only";

/// OTLP span flag (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`): bits 8-9 are meaningful. Bits 0-7
/// are the W3C trace flags.
pub const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flag (`SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`): the parent (or linked) context is remote.
pub const FLAG_IS_REMOTE: u32 = 0x200;

/// OTLP `flags` of a span or link: its W3C trace flags, has-is-remote always, and is-remote
/// when its parent (or linked) context came from another process.
pub fn otlp_flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | FLAG_HAS_IS_REMOTE | if remote { FLAG_IS_REMOTE } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_flags_carry_the_trace_flags_and_the_remote_bits() {
        assert_eq!(otlp_flags(0x01, false), 0x101);
        assert_eq!(otlp_flags(0x03, true), 0x303);
        assert_eq!(otlp_flags(0x00, true), 0x300);
    }
}
