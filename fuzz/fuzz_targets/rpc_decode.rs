//! Fuzz target `rpc_decode`: see `garage_api::fuzz::rpc_decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| garage_api::fuzz::rpc_decode(data));
