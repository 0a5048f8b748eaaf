//! The worked examples of RFC 7515 Appendix A.1–A.4 (HS256, RS256, ES256,
//! ES512) and RFC 8037 Appendix A (Ed25519), verified with `verify_jws`.
//! Keys and tokens are copied from the RFCs (the tokens joined from the
//! RFCs' display line breaks).
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_jose::{
    Algorithm, AlgorithmSet, DEFAULT_MAX_TOKEN_BYTES, KeySet, Validation, VerifyingKey, b64,
    json::parse_object, verify_jws, verify_jwt, verifying_key_from_jwk,
};

/// The JWS Payload of RFC 7515 A.1–A.3, with its CRLF line breaks.
const JWT_PAYLOAD: &[u8] =
    b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

/// RFC 7515 A.1.1: the HMAC key.
const A1_JWK: &str = r#"{"kty":"oct",
 "k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
}"#;

/// RFC 7515 A.1.1: the complete JWS.
const A1_JWS: &str = concat!(
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
);

/// RFC 7515 A.2.1: the RSA key (public members only; `d`, `p`, ... are not needed to verify).
const A2_JWK: &str = r#"{"kty":"RSA",
 "n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
 "e":"AQAB"
}"#;

/// RFC 7515 A.2.1: the complete JWS.
const A2_JWS: &str = concat!(
    "eyJhbGciOiJSUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
    "p0igcN_IoypGlUPQGe77Rw",
);

/// RFC 7515 A.3.1: the P-256 key (public members).
const A3_JWK: &str = r#"{"kty":"EC",
 "crv":"P-256",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
}"#;

/// RFC 7515 A.3.1: the complete JWS.
const A3_JWS: &str = concat!(
    "eyJhbGciOiJFUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA",
    "pmWQxfKTUJqPP3-Kg6NU1Q",
);

/// RFC 7515 A.4.1: the P-521 key (public members).
const A4_JWK: &str = r#"{"kty":"EC",
 "crv":"P-521",
 "x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
 "y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"
}"#;

/// RFC 7515 A.4.1: the complete JWS; its payload is the ASCII string "Payload".
const A4_JWS: &str = concat!(
    "eyJhbGciOiJFUzUxMiJ9",
    ".",
    "UGF5bG9hZA",
    ".",
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq",
    "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp",
    "EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
);

/// RFC 8037 A.2: the Ed25519 public key.
const ED25519_JWK: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

/// RFC 8037 A.3: the key's RFC 7638 thumbprint.
const ED25519_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

/// RFC 8037 A.4: the signed JWS; its payload is "Example of Ed25519 signing".
const ED25519_JWS: &str = concat!(
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0Jz",
    "lnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
);

fn key(jwk: &str) -> VerifyingKey {
    verifying_key_from_jwk(&parse_object(jwk.as_bytes()).unwrap()).unwrap()
}

fn only(alg: Algorithm) -> AlgorithmSet {
    AlgorithmSet::EMPTY.with(alg)
}

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

/// Verifies `token` with `jwk` allowing only `alg`, checks the payload, and
/// checks that a tampered signature and a tampered payload are refused.
fn check_example(jwk: &str, token: &str, alg: Algorithm, payload: &[u8]) {
    let keys = KeySet::new(vec![key(jwk)]);
    let jws = verify_jws(token, &keys, only(alg), DEFAULT_MAX_TOKEN_BYTES)
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
    assert_eq!(jws.header.alg(), alg);
    assert_eq!(jws.payload, payload, "{alg}");

    // Flip one bit of the signature.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig.as_bytes()).unwrap();
    sig[10] ^= 1;
    let tampered = format!("{input}.{}", b64::encode(&sig));
    let err = verify_jws(&tampered, &keys, only(alg), DEFAULT_MAX_TOKEN_BYTES).unwrap_err();
    assert_eq!(err.reason().as_str(), "signature_invalid", "{alg}");

    // Change the payload, keep the signature.
    let (header, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other = format!("{header}.{}.{sig}", b64::encode(b"other payload"));
    let err = verify_jws(&other, &keys, only(alg), DEFAULT_MAX_TOKEN_BYTES).unwrap_err();
    assert_eq!(err.reason().as_str(), "signature_invalid", "{alg}");

    // The example's algorithm must be allowed (`Ed25519`, RFC 9864's name for the
    // same verification as `EdDSA`, allows it too: it is left out of the others).
    let others: AlgorithmSet = Algorithm::ALL
        .into_iter()
        .filter(|a| !a.same_verification(alg))
        .collect();
    let err = verify_jws(token, &keys, others, DEFAULT_MAX_TOKEN_BYTES).unwrap_err();
    assert_eq!(err.reason().as_str(), "algorithm_not_allowed", "{alg}");
}

#[test]
fn rfc7515_a1_hs256() {
    check_example(A1_JWK, A1_JWS, Algorithm::HS256, JWT_PAYLOAD);
}

#[test]
fn rfc7515_a2_rs256() {
    check_example(A2_JWK, A2_JWS, Algorithm::RS256, JWT_PAYLOAD);
}

#[test]
fn rfc7515_a3_es256() {
    check_example(A3_JWK, A3_JWS, Algorithm::ES256, JWT_PAYLOAD);
}

#[test]
fn rfc7515_a4_es512() {
    check_example(A4_JWK, A4_JWS, Algorithm::ES512, b"Payload");
}

#[test]
fn rfc8037_a4_ed25519() {
    check_example(
        ED25519_JWK,
        ED25519_JWS,
        Algorithm::EdDSA,
        b"Example of Ed25519 signing",
    );
    assert_eq!(
        key(ED25519_JWK).material().thumbprint().as_deref(),
        Some(ED25519_THUMBPRINT)
    );
}

/// A.1's header is `{"typ":"JWT",\r\n "alg":"HS256"}` with a CRLF: whitespace
/// inside the JSON is fine, and the header we return is the parsed one.
#[test]
fn rfc7515_a1_header_with_crlf() {
    let keys = KeySet::new(vec![key(A1_JWK)]);
    let jws = verify_jws(
        A1_JWS,
        &keys,
        only(Algorithm::HS256),
        DEFAULT_MAX_TOKEN_BYTES,
    )
    .unwrap();
    assert_eq!(jws.header.typ(), Some("JWT"));
    assert_eq!(jws.header.kid(), None);
}

/// A.1 as a JWT: `exp` is 1300819380 (2011-03-22T18:43:00Z).
#[test]
fn rfc7515_a1_as_jwt_expiry() {
    let keys = KeySet::new(vec![key(A1_JWK)]);
    let validation = Validation::default();

    let err = verify_jwt(A1_JWS, &keys, &validation, now()).unwrap_err();
    assert_eq!(err.reason().as_str(), "token_expired");

    let jwt = verify_jwt(A1_JWS, &keys, &validation, 1_300_819_000).unwrap();
    assert_eq!(jwt.claims.issuer(), Some("joe"));
    assert_eq!(jwt.claims.expires_at().unwrap(), Some(1_300_819_380.0));
    assert_eq!(
        jwt.claims.get("http://example.com/is_root"),
        Some(&serde_json::Value::Bool(true))
    );

    // The issuer check holds too.
    let joe = Validation {
        issuer: Some("joe".to_owned()),
        ..Validation::default()
    };
    assert!(verify_jwt(A1_JWS, &keys, &joe, 1_300_819_000).is_ok());
    let other = Validation {
        issuer: Some("jane".to_owned()),
        ..Validation::default()
    };
    let err = verify_jwt(A1_JWS, &keys, &other, 1_300_819_000).unwrap_err();
    assert_eq!(err.reason().as_str(), "issuer_mismatch");
}

/// No key verifies another example's token.
#[test]
fn examples_do_not_cross_verify() {
    let examples = [
        (A1_JWK, A1_JWS),
        (A2_JWK, A2_JWS),
        (A3_JWK, A3_JWS),
        (A4_JWK, A4_JWS),
        (ED25519_JWK, ED25519_JWS),
    ];
    let all: AlgorithmSet = Algorithm::ALL.into_iter().collect();
    for (i, (jwk, _)) in examples.iter().enumerate() {
        let keys = KeySet::new(vec![key(jwk)]);
        for (j, (_, token)) in examples.iter().enumerate() {
            let result = verify_jws(token, &keys, all, DEFAULT_MAX_TOKEN_BYTES);
            assert_eq!(result.is_ok(), i == j, "key {i} token {j}");
        }
    }
}
