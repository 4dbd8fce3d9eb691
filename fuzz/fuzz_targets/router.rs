//! Fuzz target `router`: see `garage_api::fuzz::router` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| garage_api::fuzz::router(data));
