#![no_main]
//! See `fuzz/src/quorum_messages.rs`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel_fuzz::quorum_messages::run(data));
