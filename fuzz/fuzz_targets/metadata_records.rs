#![no_main]
//! See `fuzz/src/metadata_records.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel_fuzz::metadata_records::run(data));
