//! Fuzz target `batch_json`: see `garage_api::fuzz::batch_json` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| garage_api::fuzz::batch_json(data));
