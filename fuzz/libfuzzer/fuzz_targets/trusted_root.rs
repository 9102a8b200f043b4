#![no_main]
//! libFuzzer entry point for `wharf_fuzz::trusted_root` (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz::trusted_root(data));
