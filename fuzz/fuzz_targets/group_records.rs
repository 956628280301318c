#![no_main]
//! See `fuzz/src/group_records.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel_fuzz::group_records::run(data));
