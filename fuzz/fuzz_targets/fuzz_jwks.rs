//! JWKS / JWK / PEM key import on arbitrary input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_jose::fuzz_logic::jwks(data));
