#![no_main]
//! libFuzzer entry point for `wharf_fuzz::cosign_payload` (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz::cosign_payload(data));
