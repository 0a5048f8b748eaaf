//! The token caches through the engine (issue 17): keyed by the digest of the exact
//! token bytes, the identity kept without the token, and the negative cache for
//! rejections that cannot change while the key set does not.

use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::{Algorithm, KeySet, SigningKey, key_set_from_jwks};
use serde_json::json;

use super::*;
use crate::config;

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"secret-secret-secret-secret-secret";
const OTHER: &[u8] = b"other-secret-other-secret-other-secret";

fn engine() -> Engine {
    let k = b64::encode(SECRET);
    let text = format!(
        r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    jwks:
      inline: {{"keys":[{{"kty":"oct","k":"{k}","kid":"h1"}}]}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
rules:
  - name: api
    match: {{path: "/api/**"}}
"#
    );
    let config = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap();
    Engine::with_static_keys(config)
}

fn keys(secret: &[u8], kid: &str) -> KeySet {
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","k":"{}","kid":"{kid}"}}]}}"#,
        b64::encode(secret)
    );
    key_set_from_jwks(jwks.as_bytes()).unwrap().0
}

fn signed(secret: &[u8], kid: &str, claims: serde_json::Value) -> String {
    let key = SigningKey::from_secret(secret, Algorithm::HS256).unwrap();
    key.encode(
        Some(kid),
        &Default::default(),
        claims.to_string().as_bytes(),
    )
    .unwrap()
}

fn claims() -> serde_json::Value {
    json!({"iss": "https://idp", "aud": "api", "sub": "alice", "exp": NOW + 600, "email": "a@example.com"})
}

fn bearer(t: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    h
}

fn decide(e: &Engine, token: &str, now: i64) -> Decision {
    let h = bearer(token);
    e.decide(&AuthRequest::new(&Method::GET, "h", "/api/x", &h), now)
}

fn reason(d: &Decision) -> &'static str {
    d.reason().map_or("allow", |r| r.as_str())
}

fn negatives(e: &Engine) -> usize {
    e.negative.as_ref().map_or(0, NegativeCache::len)
}

fn hits(e: &Engine) -> u64 {
    e.cache_stats().hits.load(Ordering::Relaxed)
}

#[test]
fn a_cached_token_is_found_only_by_its_exact_bytes() {
    let e = engine();
    let t = signed(SECRET, "h1", claims());
    assert_eq!(reason(&decide(&e, &t, NOW)), "allow");
    assert_eq!(reason(&decide(&e, &t, NOW)), "allow");
    assert_eq!(hits(&e), 1);
    // The same token with one more, one fewer or one other byte is no hit: each
    // is verified afresh, and refused.
    let mut flipped = t.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for other in [format!("{t}A"), t[..t.len() - 1].to_owned(), flipped] {
        assert_ne!(reason(&decide(&e, &other, NOW)), "allow", "{other}");
    }
    assert_eq!(hits(&e), 1, "no other token hit the entry");
}

#[test]
fn a_cached_identity_keeps_no_token_and_the_request_gives_every_claim() {
    let e = engine();
    let t = signed(SECRET, "h1", claims());
    let h = bearer(&t);
    let mut req = AuthRequest::new(&Method::GET, "h", "/api/x", &h);
    req.wants_claims = true;
    for round in 0..2 {
        let Decision::Allow(allow) = e.decide(&req, NOW) else {
            panic!("round {round}: expected an allow")
        };
        let identity = allow.identity.as_ref().unwrap();
        assert!(identity.token().is_none(), "the cache keys on the digest");
        assert!(identity.claims_json().is_none());
        let json: serde_json::Value =
            serde_json::from_slice(allow.claims_json.as_deref().unwrap()).unwrap();
        assert_eq!(json["email"], "a@example.com");
        assert_eq!(
            identity.claims_with(Some(&t)).subject(),
            Some("alice"),
            "every claim, from the request's token"
        );
    }
    assert_eq!(hits(&e), 1);
    // Frontends that do not ask get no payload copy.
    req.wants_claims = false;
    let Decision::Allow(allow) = e.decide(&req, NOW) else {
        panic!("expected an allow")
    };
    assert!(allow.claims_json.is_none());
}

#[test]
fn a_bad_signature_is_remembered_until_the_key_set_changes() {
    let e = engine();
    // Signed with a key the provider does not have yet, under a kid it has.
    let t = signed(OTHER, "h1", claims());
    let first = decide(&e, &t, NOW);
    assert_eq!(reason(&first), "signature_invalid");
    assert_eq!(negatives(&e), 1);
    let again = decide(&e, &t, NOW);
    assert_eq!(reason(&again), "signature_invalid");
    let (Decision::Deny(a), Decision::Deny(b)) = (&first, &again) else {
        unreachable!()
    };
    assert_eq!(a.token_hints.kid, b.token_hints.kid);
    assert_eq!(b.token_hints.kid.as_deref(), Some("h1"));
    assert_eq!(b.token_hints.sub.as_deref(), Some("alice"));
    assert_eq!(
        (b.rule.as_deref(), b.provider.as_deref()),
        (Some("api"), Some("corp"))
    );
    // The key set rotates to the key that signed it: the remembered rejection is
    // of the old generation and no longer answers.
    e.providers()[0].slot().store(keys(OTHER, "h1"));
    assert_eq!(reason(&decide(&e, &t, NOW)), "allow");
}

#[test]
fn malformed_and_wrong_audience_tokens_are_remembered() {
    let e = engine();
    let mut c = claims();
    c["aud"] = json!("elsewhere");
    let wrong_aud = signed(SECRET, "h1", c);
    assert_eq!(reason(&decide(&e, &wrong_aud, NOW)), "audience_mismatch");
    assert_eq!(reason(&decide(&e, "a.b.c", NOW)), "token_malformed");
    assert_eq!(negatives(&e), 2);
    assert_eq!(reason(&decide(&e, &wrong_aud, NOW)), "audience_mismatch");
    assert_eq!(reason(&decide(&e, "a.b.c", NOW)), "token_malformed");
    assert_eq!(negatives(&e), 2);
}

#[test]
fn an_expired_token_is_remembered_and_says_the_time_it_is_asked_at() {
    let e = engine();
    let mut c = claims();
    c["exp"] = json!(NOW - 3600);
    let t = signed(SECRET, "h1", c);
    assert_eq!(reason(&decide(&e, &t, NOW)), "token_expired");
    assert_eq!(negatives(&e), 1);
    let Decision::Deny(later) = decide(&e, &t, NOW + 100) else {
        panic!("expected a deny")
    };
    assert_eq!(later.reason, DenyReason::TokenExpired);
    assert!(
        later.detail.contains(&format!("now {}", NOW + 100)),
        "{}",
        later.detail
    );
    assert_eq!(later.token_hints.sub.as_deref(), Some("alice"));
}

#[test]
fn a_token_not_yet_valid_is_never_remembered() {
    let e = engine();
    let mut c = claims();
    c["nbf"] = json!(NOW + 100);
    let t = signed(SECRET, "h1", c);
    assert_eq!(reason(&decide(&e, &t, NOW)), "token_not_yet_valid");
    assert_eq!(negatives(&e), 0);
    // Once its time comes it is allowed.
    assert_eq!(reason(&decide(&e, &t, NOW + 200)), "allow");
}

#[test]
fn an_iat_in_the_future_is_never_remembered() {
    let e = engine();
    let mut c = claims();
    c["iat"] = json!(NOW + 300);
    let t = signed(SECRET, "h1", c);
    assert_ne!(reason(&decide(&e, &t, NOW)), "allow");
    assert_eq!(negatives(&e), 0);
    assert_eq!(reason(&decide(&e, &t, NOW + 300)), "allow");
}

#[test]
fn an_unknown_kid_is_never_remembered_a_fetch_may_bring_it() {
    let e = engine();
    let t = signed(OTHER, "rotated", claims());
    assert_eq!(reason(&decide(&e, &t, NOW)), "key_not_found");
    assert_eq!(negatives(&e), 0);
    e.providers()[0].slot().store(keys(OTHER, "rotated"));
    assert_eq!(reason(&decide(&e, &t, NOW)), "allow");
}

#[test]
fn explain_neither_reads_nor_fills_the_negative_cache() {
    let e = engine();
    let t = signed(OTHER, "h1", claims());
    let h = bearer(&t);
    let req = AuthRequest::new(&Method::GET, "h", "/api/x", &h);
    let explained = e.explain(&req, NOW);
    assert_eq!(explained.reason, Some("signature_invalid"));
    assert_eq!(negatives(&e), 0);
    assert_eq!(reason(&e.decide(&req, NOW)), "signature_invalid");
    assert_eq!(negatives(&e), 1);
}

#[test]
fn no_negative_cache_when_the_token_cache_is_off() {
    let k = b64::encode(SECRET);
    let text = format!(
        "providers:\n  - name: corp\n    issuer: https://idp\n    audiences: [api]\n    jwks:\n      inline: {{\"keys\":[{{\"kty\":\"oct\",\"k\":\"{k}\",\"kid\":\"h1\"}}]}}\nrules:\n  - name: api\nlimits:\n  token_cache_entries: 0\n"
    );
    let config = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap();
    let e = Engine::with_static_keys(config);
    let t = signed(OTHER, "h1", claims());
    assert_eq!(reason(&decide(&e, &t, NOW)), "signature_invalid");
    assert!(e.negative.is_none());
    assert_eq!(e.cached_tokens(), 0);
}
