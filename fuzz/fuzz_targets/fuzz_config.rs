//! The YAML config: two-stage parsing, then compiling and deciding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_policy::fuzz_logic::config(data));
