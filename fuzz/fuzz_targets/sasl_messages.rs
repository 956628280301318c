#![no_main]
//! See `fuzz/src/sasl_messages.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel_fuzz::sasl_messages::run(data));
