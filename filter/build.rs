//! Strips the name and custom sections from the wasm module: `strip = true` in the release
//! profile does not remove them for this target, and they are a fifth of the module.
//! Set `AETHERFLOW_WASM_KEEP_NAMES=1` to keep them for size analysis.
fn main() {
    println!("cargo:rerun-if-env-changed=AETHERFLOW_WASM_KEEP_NAMES");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32");
    if wasm && std::env::var_os("AETHERFLOW_WASM_KEEP_NAMES").is_none() {
        println!("cargo:rustc-cdylib-link-arg=--strip-all");
    }
}
