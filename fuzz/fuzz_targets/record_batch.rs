#![no_main]
//! See `fuzz/src/record_batch.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel_fuzz::record_batch::run(data));
