//! Opaque access tokens by OAuth 2.0 Token Introspection (RFC 7662) against a real
//! OpenID Provider (npm `oidc-provider`, `introspection`, `clientCredentials` and
//! `revocation` enabled; client-credentials tokens without a resource indicator
//! are opaque): a token from the OP is allowed through `/verify` with its claims
//! in headers and the rule's scope checks; a made-up token is 401; a revoked one is
//! 401 at once with the cache off and after `cache_ttl` with it on; a wrong
//! introspection secret is a 503 with a clear log line; the OP stopped fails
//! closed. One OP and one Portcullis serve every case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::time::Duration;

use base64::Engine as _;
use portcullis_test_util::{OidcProvider, Portcullis, Response, TempDir, request};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const M2M_SECRET: &str = "m2m-client-secret-0123456789abcdef";
const RS_SECRET: &str = "resource-server-secret-0123456789";

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// A client-credentials access token from the OP (opaque: no resource indicator).
fn client_credentials(op: &str) -> String {
    let r = request(
        "POST",
        &format!("{op}/token"),
        &[
            ("authorization", &basic("m2m", M2M_SECRET)),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "grant_type=client_credentials&scope=orders%3Aread",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.matches('.').count(), 0, "an opaque token: {token}");
    token
}

fn revoke(op: &str, token: &str) {
    let r = request(
        "POST",
        &format!("{op}/token/revocation"),
        &[
            ("authorization", &basic("m2m", M2M_SECRET)),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("token={token}&token_type_hint=access_token"),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

fn verify(p: &Portcullis, path: &str, token: &str, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "api.example.com"),
        ("x-forwarded-uri", path),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    p.verify(&headers)
}

/// `max-age` of the answer's `Cache-Control`.
fn max_age(r: &Response) -> u64 {
    r.header("cache-control")
        .and_then(|c| c.split(',').find_map(|d| d.trim().strip_prefix("max-age=")))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no max-age: {r:?}"))
}

fn reason(r: &Response) -> String {
    r.json()["reason"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn opaque_client_credentials_tokens_by_introspection() {
    let dir = TempDir::new("introspection");
    let mut op = Some(OidcProvider::start(
        dir.path(),
        &json!([
            {
                "client_id": "m2m",
                "client_secret": M2M_SECRET,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "response_types": [],
                "scope": "orders:read",
            },
            {
                // Portcullis, as the resource server that introspects.
                "client_id": "portcullis-rs",
                "client_secret": RS_SECRET,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_post",
            },
        ]),
    ));
    let issuer = op.as_ref().unwrap().issuer();
    let secret_file = dir.write("rs.secret", &format!("{RS_SECRET}\n"));
    // Three providers for the same OP: the cache off (secret from a file, sent in
    // the body), the cache on for 2s (endpoint from discovery, Basic), and a
    // wrong secret.
    let config = format!(
        r#"
providers:
  - name: nocache
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    introspection:
      client_id: portcullis-rs
      client_secret_file: {secret}
      auth: client_secret_post
      cache_ttl: 0s
      timeout: 2s
    claims_to_headers:
      - {{header: x-client, claim: client_id}}
      - {{header: x-scope, claim: scope}}
  - name: cached
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    introspection:
      endpoint: {issuer}/token/introspection
      client_id: portcullis-rs
      client_secret: {RS_SECRET}
      cache_ttl: 2s
    claims_to_headers:
      - {{header: x-client, claim: client_id}}
  - name: wrong
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    introspection:
      client_id: portcullis-rs
      client_secret: not-the-secret
rules:
  - name: orders-write
    match: {{path: /nocache/write/**}}
    providers: [nocache]
    scopes: [orders:write]
  - name: orders
    match: {{path: /nocache/**}}
    providers: [nocache]
    scopes: [orders:read]
    claims: {{client_id: [m2m]}}
  - name: cached
    match: {{path: /cached/**}}
    providers: [cached]
  - name: wrong
    match: {{path: /wrong/**}}
    providers: [wrong]
"#,
        secret = secret_file.display(),
    );
    let p = Portcullis::start(BIN, &config);
    p.wait_ready(Duration::from_secs(20));
    let op_url = issuer.clone();

    // --- The OP's opaque token is allowed; its claims reach headers. ---
    let token = client_credentials(&op_url);
    let r = verify(&p, "/nocache/orders/1", &token, &[("x-client", "forged")]);
    assert_eq!(r.status, 200, "{r:?}\n{}", p.log());
    assert_eq!(r.header("x-client"), Some("m2m"));
    assert_eq!(r.header("x-scope"), Some("orders:read"));
    // Cache-Control never past the token's answer: cache off means 0.
    assert_eq!(max_age(&r), 0, "{r:?}");
    // The same rule checks as for a JWT: a scope it lacks is a 403.
    let r = verify(&p, "/nocache/write/1", &token, &[]);
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (403, "scope_missing"),
        "{r:?}"
    );

    // --- A made-up opaque token: 401, invalid_token. ---
    let r = verify(
        &p,
        "/nocache/orders/1",
        "made-up-opaque-token-0123456789",
        &[],
    );
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (401, "token_inactive"),
        "{r:?}"
    );
    assert!(
        r.header("www-authenticate")
            .is_some_and(|w| w.contains(r#"error="invalid_token""#)),
        "{r:?}"
    );
    let r = verify(&p, "/cached/x", "made-up-opaque-token-0123456789", &[]);
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (401, "token_inactive"),
        "{r:?}"
    );

    // --- Revoked: at once with the cache off, after cache_ttl with it on. ---
    let revoked = client_credentials(&op_url);
    let r = verify(&p, "/cached/x", &revoked, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-client"), Some("m2m"));
    assert!(
        max_age(&r) <= 2,
        "Cache-Control bounded by cache_ttl: {r:?}"
    );
    revoke(&op_url, &revoked);
    let r = verify(&p, "/nocache/orders/1", &revoked, &[]);
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (401, "token_inactive"),
        "{r:?}"
    );
    let r = verify(&p, "/cached/x", &revoked, &[]);
    assert_eq!(r.status, 200, "still the cached answer: {r:?}");
    std::thread::sleep(Duration::from_millis(3100));
    let r = verify(&p, "/cached/x", &revoked, &[]);
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (401, "token_inactive"),
        "{r:?}"
    );

    // --- A wrong introspection secret: 503, and the log says why. ---
    let r = verify(&p, "/wrong/x", &token, &[]);
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (503, "introspection_unavailable"),
        "{r:?}"
    );
    // --- A burst with one new token: all allowed (one call, single flight). ---
    let burst = client_credentials(&op_url);
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| verify(&p, "/cached/burst", &burst, &[]).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers, vec![200; 8]);

    // --- The OP stopped: fail closed (503), never an allow. ---
    drop(op.take());
    let r = verify(&p, "/nocache/orders/1", &token, &[]);
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (503, "introspection_unavailable"),
        "{r:?}"
    );
    let r = verify(&p, "/cached/x", &burst, &[]);
    assert_eq!(
        r.status, 200,
        "a cached answer outlives the OP for cache_ttl: {r:?}"
    );

    std::thread::sleep(Duration::from_millis(300));
    let log = p.log();
    assert!(
        log.contains("refused Portcullis's client credentials (HTTP 401)"),
        "{log}"
    );
    assert!(log.contains("introspection_unavailable"), "{log}");
    // Never a token in the logs (only a digest of it).
    for t in [&token, &revoked, &burst] {
        assert!(!log.contains(t.as_str()), "a token in the log");
    }
    assert!(!log.contains(RS_SECRET), "the client secret in the log");
}
