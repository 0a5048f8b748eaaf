//! The canonical request reader against a small reference normalizer: an accepted
//! path must read the same to every way an upstream might read it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_policy::fuzz_logic::differential(data));
