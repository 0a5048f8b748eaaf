//! Workload identity inputs: SPIFFE IDs and patterns, X-Forwarded-Client-Cert, DPoP proofs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_policy::fuzz_logic::workload(data));
