//! Workload identity inputs a client controls: SPIFFE IDs and patterns,
//! `X-Forwarded-Client-Cert`, DPoP proofs. None may panic.

use http::{HeaderMap, HeaderValue};

use crate::dpop::{ProofTarget, verify_proof};
use crate::spiffe::{SpiffeId, SpiffeIdPattern, client_certificate_thumbprint, thumbprint_of_pem};

/// Reads `data` as each workload input in turn.
pub fn workload(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let id = SpiffeId::parse(&text);
    if let (Ok(id), Ok(pattern)) = (&id, SpiffeIdPattern::parse(&text)) {
        assert!(pattern.matches(id), "an ID must match itself as a pattern");
    }
    let _ = thumbprint_of_pem(&text);
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-client-cert", value);
        let _ = client_certificate_thumbprint(None, &headers);
    }
    let target = ProofTarget {
        scheme: None,
        method: "GET",
        host: "api.test",
        path: "/",
    };
    let _ = verify_proof(&text, "a.b.c", "jkt", target, 1_700_000_000, 60);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_inputs_do_not_panic() {
        for input in [
            &b""[..],
            b"spiffe://example.org/a/b",
            b"spiffe://example.org/*",
            b"Hash=00;Cert=\"%ZZ\";,,\"",
            b"eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.",
            b"\xff\xfe-----BEGIN CERTIFICATE-----\n@@\n-----END CERTIFICATE-----",
        ] {
            workload(input);
        }
    }
}
