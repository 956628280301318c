#![no_main]
//! See `fuzz/src/storage_files.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel_fuzz::storage_files::run(data));
