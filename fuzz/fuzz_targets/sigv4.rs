//! Fuzz target `sigv4`: see `garage_api::fuzz::sigv4` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| garage_api::fuzz::sigv4(data));
