//! A request (method, host, path, headers) decided by a fixed engine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_policy::fuzz_logic::request(data));
