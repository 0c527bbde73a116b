#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| aetherflow_fuzz::storage_segment(data));
