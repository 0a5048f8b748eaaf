//! Istio's sample JWKS, signing key and tokens (istio/istio
//! `security/tools/jwt/samples/`, Apache-2.0) against our verify and sign paths.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_jose::{
    Algorithm, KeySet, SigningKey, Validation, b64, key_set_from_jwks, public_key_from_pem,
    verify_jwt,
};
use serde_json::{Map, json};

const JWKS: &str = include_str!("data/istio-jwks.json");
const DEMO_JWT: &str = include_str!("data/istio-demo.jwt");
const GROUPS_SCOPE_JWT: &str = include_str!("data/istio-groups-scope.jwt");
const KEY_PEM: &str = include_str!("data/istio-key.pem");

const ISSUER: &str = "testing@secure.istio.io";
const KID: &str = "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ";

#[expect(clippy::disallowed_methods, reason = "tests mint with the wall clock")]
fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn keys() -> KeySet {
    let (keys, rejected) = key_set_from_jwks(JWKS.as_bytes()).unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(keys.len(), 1);
    keys
}

fn validation() -> Validation {
    Validation {
        issuer: Some(ISSUER.to_owned()),
        ..Validation::default()
    }
}

#[test]
fn sample_files_are_single_line_tokens() {
    for token in [DEMO_JWT, GROUPS_SCOPE_JWT] {
        assert_eq!(token, token.trim(), "stray whitespace around the token");
        assert_eq!(token.split('.').count(), 3);
    }
}

#[test]
fn demo_token_verifies_now() {
    let keys = keys();
    let jwt = verify_jwt(DEMO_JWT, &keys, &validation(), now()).unwrap();
    assert_eq!(jwt.header.alg(), Algorithm::RS256);
    assert_eq!(jwt.header.kid(), Some(KID));
    assert_eq!(jwt.claims.issuer(), Some(ISSUER));
    assert_eq!(jwt.claims.subject(), Some(ISSUER));
    assert_eq!(jwt.claims.expires_at().unwrap(), Some(4_685_989_700.0));
    assert_eq!(jwt.claims.get("foo"), Some(&json!("bar")));
    // No `aud`: an audience requirement must fail.
    let with_aud = Validation {
        audiences: vec!["anything".to_owned()],
        ..validation()
    };
    let err = verify_jwt(DEMO_JWT, &keys, &with_aud, now()).unwrap_err();
    assert_eq!(err.reason().as_str(), "audience_mismatch");
}

#[test]
fn groups_scope_token_verifies_now() {
    let keys = keys();
    let jwt = verify_jwt(GROUPS_SCOPE_JWT, &keys, &validation(), now()).unwrap();
    assert_eq!(jwt.header.kid(), Some(KID));
    assert_eq!(jwt.claims.issuer(), Some(ISSUER));
    // This token's exp is 3537391104 (2082), not the demo token's 4685989700.
    assert_eq!(jwt.claims.expires_at().unwrap(), Some(3_537_391_104.0));
    assert_eq!(jwt.claims.get("groups"), Some(&json!(["group1", "group2"])));
    assert_eq!(jwt.claims.get("scope"), Some(&json!(["scope1", "scope2"])));
}

#[test]
fn wrong_issuer_and_expiry_are_refused() {
    let keys = keys();
    let other = Validation {
        issuer: Some("testing@secure.istio.io.evil".to_owned()),
        ..Validation::default()
    };
    let err = verify_jwt(DEMO_JWT, &keys, &other, now()).unwrap_err();
    assert_eq!(err.reason().as_str(), "issuer_mismatch");
    let err = verify_jwt(DEMO_JWT, &keys, &validation(), 4_685_989_700 + 3600).unwrap_err();
    assert_eq!(err.reason().as_str(), "token_expired");
}

/// The JWKS `kid` is the RFC 7638 thumbprint of the key it names.
#[test]
fn kid_is_the_rfc7638_thumbprint() {
    let keys = keys();
    let key = &keys.keys()[0];
    assert_eq!(key.kid().map(|k| k.as_str()), Some(KID));
    assert_eq!(key.material().thumbprint().as_deref(), Some(KID));
}

/// The PKCS#1 private key is the JWKS key's private half; a token minted
/// with it verifies against the JWKS.
#[test]
fn minted_token_verifies_against_the_jwks() {
    let keys = keys();
    let signer = SigningKey::from_pem(KEY_PEM, None).unwrap();
    assert_eq!(signer.alg(), Algorithm::RS256);
    assert_eq!(&signer.public_material(), keys.keys()[0].material());
    assert_eq!(
        &public_key_from_pem(KEY_PEM).unwrap(),
        keys.keys()[0].material()
    );

    let now = now();
    let claims = json!({"iss": ISSUER, "sub": "minted", "iat": now, "exp": now + 300});
    let token = signer
        .encode(Some(KID), &Map::new(), claims.to_string().as_bytes())
        .unwrap();
    let jwt = verify_jwt(&token, &keys, &validation(), now).unwrap();
    assert_eq!(jwt.claims.subject(), Some("minted"));
    assert_eq!(jwt.header.kid(), Some(KID));

    // Without a kid the one key of the set is still found.
    let token = signer
        .encode(None, &Map::new(), claims.to_string().as_bytes())
        .unwrap();
    assert!(verify_jwt(&token, &keys, &validation(), now).is_ok());
}

/// RSASSA-PKCS1-v1_5 is deterministic: signing the sample tokens' signing
/// input with the sample key reproduces Istio's signatures byte for byte.
#[test]
fn signer_reproduces_the_sample_signatures() {
    let signer = SigningKey::from_pem(KEY_PEM, Some(Algorithm::RS256)).unwrap();
    for token in [DEMO_JWT, GROUPS_SCOPE_JWT] {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let ours = signer.sign(input.as_bytes()).unwrap();
        assert_eq!(b64::encode(&ours), sig);
    }
}
