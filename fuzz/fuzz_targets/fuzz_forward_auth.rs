//! What a proxy sends to /verify: recovering the original request, deciding, rendering.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_frontend_forward_auth::fuzz_logic::verify_request(data));
