//! Fuzz target `config`: see `garage_api::fuzz::config` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| garage_api::fuzz::config(data));
