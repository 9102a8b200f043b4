#![no_main]
//! libFuzzer entry point for `wharf_fuzz::reference` (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz::reference(data));
