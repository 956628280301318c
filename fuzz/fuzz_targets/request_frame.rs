#![no_main]
//! See `fuzz/src/request_frame.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel_fuzz::request_frame::run(data));
