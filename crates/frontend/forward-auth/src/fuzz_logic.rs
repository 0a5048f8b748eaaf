//! Fuzzing entry point: what proxies send to `/verify`. Must never panic.

use http::Request;

use crate::original_request;

/// Lines: the verify URI (path and query), then `name: value` headers. The original
/// request is recovered and decided by a fixed engine, and the answer rendered.
pub fn verify_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let uri = lines.next().unwrap_or("/verify");
    let mut builder = Request::builder().method("GET").uri(uri);
    for line in lines.take(64) {
        if let Some((name, value)) = line.split_once(':') {
            builder = builder.header(name.trim(), value.trim());
        }
    }
    let Ok(req) = builder.body(()) else { return };
    let Ok(original) = original_request(&req) else {
        return;
    };
    let engine = portcullis_policy::fuzz_logic::fixed_engine();
    let mut auth = portcullis_policy::AuthRequest::new(
        &original.method,
        &original.host,
        &original.path,
        req.headers(),
    );
    auth.extra_claims = &original.extra_claims;
    auth.removes_headers = original.via == crate::Via::EnvoyHttp;
    let decision = engine.decide(&auth, 1_700_000_000);
    let _ = crate::render(&decision, false, crate::nginx_may_be_asking(req.headers()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostile_inputs_do_not_panic() {
        super::verify_request(b"/verify?claims_%ff=%zz&claims_=x\nx-original-url: http://[::1\nx-forwarded-uri: /a\nx-original-uri: /a");
        super::verify_request(b"/verify/%2e%2e/admin\nhost: a\x00b");
        super::verify_request(b"");
    }
}
