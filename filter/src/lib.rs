//! Thin proxy-wasm adapter over `aetherflow_core`.
