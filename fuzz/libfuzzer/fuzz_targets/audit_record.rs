#![no_main]
//! libFuzzer entry point for `wharf_fuzz::audit_record` (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz::audit_record(data));
