//! Fuzz target `causality_token`: see `garage_api::fuzz::causality_token` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| garage_api::fuzz::causality_token(data));
