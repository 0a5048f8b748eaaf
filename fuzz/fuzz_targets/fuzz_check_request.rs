//! An Envoy ext_authz CheckRequest (protobuf bytes): mapping, deciding, answering.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_frontend_envoy::fuzz_logic::check_request(data));
