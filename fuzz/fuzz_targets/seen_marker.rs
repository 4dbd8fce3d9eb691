//! Fuzz target `seen_marker`: see `garage_api::fuzz::seen_marker` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| garage_api::fuzz::seen_marker(data));
