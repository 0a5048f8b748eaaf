//! The logic of the fuzz targets in `fuzz/` (run with `scripts/fuzz`).
//!
//! Each target there is a one-line shim over a function of this module, so the
//! same logic also runs under `cargo test` (see the tests below) and needs no
//! nightly toolchain to be checked. Every function accepts any bytes, returns
//! nothing and must never panic: a panic is a bug in the token core.
//!
//! The keys the targets verify with are fixed and built once per process:
//! an HS256 secret (`kid` `hs`), a kid-less 64-byte HMAC secret (HS256/384/512),
//! an ES256 key (`kid` `es`), an Ed25519 key (`kid` `ed`) and an RSA-2048 key
//! (the Istio demo key, with its `kid`). [`sample_tokens`] and [`sample_jwks`]
//! are the valid inputs the seed corpora under `fuzz/seeds/` hold.

use std::sync::OnceLock;

use aws_lc_rs::hmac;
use serde_json::{Map, Value};

use crate::alg::{Algorithm, AlgorithmSet, Family};
use crate::claims::{Claims, Validation};
use crate::error::TokenError;
use crate::key::{KeyMaterial, Kid, VerifyingKey};
use crate::keyset::KeySet;
use crate::sign::SigningKey;
use crate::token::{CompactJws, DEFAULT_MAX_TOKEN_BYTES, Header};
use crate::verify::{verify_jws, verify_jwt};
use crate::{b64, import, json, jwk, pem};

/// The HS256 secret of the key with `kid` `hs` (32 bytes).
const HS_SECRET: &[u8] = b"portcullis-fuzz-hs256-secret-32b";
/// The secret of the kid-less HMAC key (64 bytes: every HS algorithm).
const HMAC_ANY_SECRET: &[u8] = b"portcullis-fuzz-kidless-hmac-secret-of-sixty-four-bytes-00000000";
/// A fixed P-256 private key (PKCS#8 DER), `kid` `es`.
const ES256_PKCS8: &[u8] = &[
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20, 0x4c, 0xb3, 0x6c, 0x14, 0xf9, 0x74, 0x99, 0x83, 0x2e, 0xc5, 0x3e, 0x2a,
    0x8b, 0xef, 0xee, 0x6d, 0xf1, 0x63, 0x90, 0xac, 0x65, 0xac, 0xff, 0x13, 0xcb, 0xf8, 0x63, 0x2a,
    0xda, 0x4e, 0x9f, 0xb5, 0xa1, 0x44, 0x03, 0x42, 0x00, 0x04, 0x22, 0xa4, 0x7c, 0xde, 0x36, 0xe5,
    0xdd, 0xb2, 0x16, 0x20, 0x2d, 0x11, 0x09, 0xec, 0x26, 0x79, 0x5e, 0x5d, 0x97, 0x79, 0xf7, 0xd9,
    0xe9, 0x00, 0xde, 0x40, 0xbf, 0x3f, 0x27, 0xa7, 0xf9, 0xb6, 0x1e, 0xfd, 0xf2, 0x3e, 0x25, 0xa8,
    0x8c, 0xcc, 0xbf, 0xa9, 0xb4, 0x9b, 0x7a, 0xd3, 0x3a, 0xfa, 0xce, 0xc2, 0x47, 0xda, 0xf9, 0x45,
    0xa6, 0x5d, 0x4c, 0x57, 0x87, 0x00, 0x33, 0xde, 0x77, 0xea,
];
/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The fixed Ed25519 seed, `kid` `ed`.
const ED25519_SEED: [u8; 32] = *b"portcullis-fuzz-ed25519-seed-32b";
/// The Istio demo RSA-2048 public key (RS256 and PS256 both verify with it).
const RSA_JWK: &str = r#"{"kty":"RSA","kid":"DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ","e":"AQAB","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}"#;
/// An RS256 token the Istio demo key signed (`exp` in 2118).
const RSA_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IkRIRmJwb0lVcXJZOHQyenBBMnFYZkNtcjVWTzVaRXI0UnpIVV8tZW52dlEiLCJ0eXAiOiJKV1QifQ.eyJleHAiOjQ2ODU5ODk3MDAsImZvbyI6ImJhciIsImlhdCI6MTUzMjM4OTcwMCwiaXNzIjoidGVzdGluZ0BzZWN1cmUuaXN0aW8uaW8iLCJzdWIiOiJ0ZXN0aW5nQHNlY3VyZS5pc3Rpby5pbyJ9.CfNnxWP2tcnR9q0vxyxweaF3ovQYHYZl82hAUsn21bwQd9zP7c-LS9qd_vpdLG4Tn1A15NxfCjp5f7QNBUo-KC9PJqYpgGbaXhaGx7bEdFWjcwv3nZzvc7M__ZpaCERdwU7igUmJqYGBYQ51vr2njU9ZimyKkfDe3axcyiBZde7G6dabliUosJvvKOPcKIWPccCgefSj_GNfwIip3-SsFdlR7BtbVUcqR-yv-XOxJ3Uc1MI0tz3uMiiZcyPV7sNCU4KRnemRIMHVOfuvHsU60_GhGbiSFzgPTAa9WTltbnarTbxudb_YEOx12JiwYToeX0DCPb43W1tzIBxgm8NxUg";

/// The clock the fixed tokens are valid at (2023-11-14).
const NOW: i64 = 1_700_000_000;
/// Clocks every parsed claim set is validated at: the extremes and some ordinary ones.
const NOWS: [i64; 7] = [
    i64::MIN,
    -1,
    0,
    NOW,
    4_102_444_800,
    253_402_300_800,
    i64::MAX,
];
/// Payload of the tokens [`sample_tokens`] mints.
const SAMPLE_CLAIMS: &str = r#"{"iss":"https://issuer.example","sub":"alice","aud":["api","other"],"exp":4102444800,"nbf":1600000000,"iat":1600000000,"scope":"read write","realm_access":{"roles":["admin"]}}"#;

/// The fixed keys, built once per process.
struct Fixture {
    keys: KeySet,
    es256: Option<SigningKey>,
    eddsa: Option<SigningKey>,
    validations: Vec<Validation>,
    tokens: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}

impl Fixture {
    fn new() -> Fixture {
        let es256 = SigningKey::from_pkcs8(ES256_PKCS8, Some(Algorithm::ES256)).ok();
        let mut ed_der = ED25519_PKCS8_PREFIX.to_vec();
        ed_der.extend_from_slice(&ED25519_SEED);
        let eddsa = SigningKey::from_pkcs8(&ed_der, Some(Algorithm::EdDSA)).ok();
        let secret = |s: &[u8]| KeyMaterial::Hmac {
            secret: zeroize::Zeroizing::new(s.to_vec()),
        };
        let mut keys = Vec::new();
        keys.extend(
            VerifyingKey::try_new(
                secret(HS_SECRET),
                Some(Kid::new("hs")),
                Some(Algorithm::HS256),
            )
            .ok(),
        );
        keys.extend(VerifyingKey::try_new(secret(HMAC_ANY_SECRET), None, None).ok());
        for (signer, kid) in [(&es256, "es"), (&eddsa, "ed")] {
            if let Some(signer) = signer {
                keys.extend(
                    VerifyingKey::try_new(signer.public_material(), Some(Kid::new(kid)), None).ok(),
                );
            }
        }
        if let Ok(rsa) = json::parse_object(RSA_JWK.as_bytes()) {
            keys.extend(jwk::verifying_key_from_jwk(&rsa).ok());
        }
        let mut fixture = Fixture {
            keys: KeySet::new(keys),
            es256,
            eddsa,
            validations: validations(),
            tokens: Vec::new(),
        };
        fixture.tokens = fixture.mint_samples();
        fixture
    }

    /// One valid token per fixed key (and per HS algorithm of the kid-less secret).
    fn mint_samples(&self) -> Vec<String> {
        let header = |alg: &str, kid: Option<&str>| {
            let mut h = Map::new();
            h.insert("alg".to_owned(), Value::from(alg));
            h.insert("typ".to_owned(), Value::from("at+jwt"));
            if let Some(kid) = kid {
                h.insert("kid".to_owned(), Value::from(kid));
            }
            serde_json::to_vec(&Value::Object(h)).unwrap_or_default()
        };
        let mut out = Vec::new();
        for (alg, kid) in [
            (Algorithm::HS256, Some("hs")),
            (Algorithm::HS256, None),
            (Algorithm::HS384, None),
            (Algorithm::HS512, Some("not-in-the-set")),
            (Algorithm::ES256, Some("es")),
            (Algorithm::EdDSA, Some("ed")),
            (Algorithm::EdDSA, None),
        ] {
            let input = format!(
                "{}.{}",
                b64::encode(&header(alg.name(), kid)),
                b64::encode(SAMPLE_CLAIMS.as_bytes())
            );
            if let Some(token) = self.resign(input.as_bytes(), alg, kid) {
                out.push(token);
            }
        }
        out.push(RSA_TOKEN.to_owned());
        out
    }

    /// Signs `signing_input` with the fixed key a token of this `alg` and `kid`
    /// would be verified with, so arbitrary headers and payloads reach claim checks.
    fn resign(&self, signing_input: &[u8], alg: Algorithm, kid: Option<&str>) -> Option<String> {
        let signature = match alg.family() {
            Family::Hmac => {
                let (hmac_alg, _) = alg.hmac()?;
                let secret = if kid == Some("hs") {
                    HS_SECRET
                } else {
                    HMAC_ANY_SECRET
                };
                hmac::sign(&hmac::Key::new(hmac_alg, secret), signing_input)
                    .as_ref()
                    .to_vec()
            }
            Family::Okp => self.eddsa.as_ref()?.sign(signing_input).ok()?,
            Family::Ec(_) if alg == Algorithm::ES256 => {
                self.es256.as_ref()?.sign(signing_input).ok()?
            }
            _ => return None,
        };
        let input = std::str::from_utf8(signing_input).ok()?;
        Some(format!("{input}.{}", b64::encode(&signature)))
    }
}

/// The validations every claim set is checked against: the default, a strict
/// one, a lax one and some with extreme settings.
fn validations() -> Vec<Validation> {
    let strict = Validation {
        issuer: Some("https://issuer.example".to_owned()),
        audiences: vec!["api".to_owned(), "billing".to_owned()],
        algorithms: Some(
            [Algorithm::HS256, Algorithm::ES256, Algorithm::RS256]
                .into_iter()
                .collect(),
        ),
        clock_skew_secs: 0,
        typ: Some("application/at+jwt".to_owned()),
        ..Validation::default()
    };
    let lax = Validation {
        clock_skew_secs: i64::MAX,
        ..Validation::default().dangerous_allow_missing_exp()
    };
    let odd = Validation {
        clock_skew_secs: i64::MIN,
        audiences: vec![String::new()],
        algorithms: Some(AlgorithmSet::EMPTY),
        typ: Some(String::new()),
        max_token_bytes: 0,
        ..Validation::default()
    };
    let negative_skew = Validation {
        clock_skew_secs: -1,
        typ: Some("application/".to_owned()),
        max_token_bytes: 512,
        ..Validation::default()
    };
    vec![Validation::default(), strict, lax, odd, negative_skew]
}

/// Valid tokens for the fixed keys: the seeds of the `fuzz_token` target.
/// Each verifies with the fixed key set and `Validation::default()` at 2023-11-14.
pub fn sample_tokens() -> Vec<String> {
    fixture().tokens.clone()
}

/// JWKS documents (and single JWKs) holding the fixed public keys: the seeds of
/// the `fuzz_jwks` target. Each imports at least one key with which one of
/// [`sample_tokens`] verifies.
pub fn sample_jwks() -> Vec<String> {
    let fx = fixture();
    let mut jwks: Vec<Value> = Vec::new();
    for key in fx.keys.keys() {
        let mut member = match key.material() {
            KeyMaterial::Hmac { secret } => {
                let mut m = Map::new();
                m.insert("kty".to_owned(), Value::from("oct"));
                m.insert("k".to_owned(), Value::from(b64::encode(secret)));
                m
            }
            other => match other.public_jwk() {
                Some(m) => m,
                None => continue,
            },
        };
        if let Some(kid) = key.kid() {
            member.insert("kid".to_owned(), Value::from(kid.as_str()));
        }
        jwks.push(Value::Object(member));
    }
    let mut out: Vec<String> = jwks.iter().map(Value::to_string).collect();
    let mut all = Map::new();
    all.insert("keys".to_owned(), Value::Array(jwks.clone()));
    out.push(Value::Object(all).to_string());
    // Members a real provider's JWKS carries: `use`, `alg`, `key_ops`, `x5t`.
    let decorated: Vec<Value> = jwks
        .into_iter()
        .map(|mut v| {
            if let Value::Object(m) = &mut v {
                m.insert("use".to_owned(), Value::from("sig"));
                m.insert("key_ops".to_owned(), serde_json::json!(["verify"]));
                m.insert("x5t".to_owned(), Value::from("bm90LWEtdGh1bWJwcmludA"));
                let alg = match m.get("kty").and_then(Value::as_str) {
                    Some("RSA") => "RS256",
                    Some("EC") => "ES256",
                    Some("OKP") => "EdDSA",
                    _ => "HS256",
                };
                m.insert("alg".to_owned(), Value::from(alg));
            }
            v
        })
        .collect();
    out.push(serde_json::json!({ "keys": decorated }).to_string());
    out
}

/// Fuzz target `fuzz_token`: `data` as a compact JWS (when it is UTF-8) and as
/// JSON, through parsing, verification against the fixed key set, claim parsing
/// and validation at several clocks.
///
/// Input with a line feed is also read as `header JSON` LF `payload JSON`: both
/// are encoded and signed here with the fixed key of the header's `alg`, so the
/// fuzzer can mutate the JSON itself rather than its base64.
pub fn token(data: &[u8]) {
    let fx = fixture();
    json_paths(data);
    let _ = b64::decode(data);
    let mut buf = Vec::new();
    let _ = b64::decode_into(data, &mut buf);
    if let Ok(text) = std::str::from_utf8(data) {
        check_token(fx, text, true);
    }
    if let Some(pos) = data.iter().position(|b| *b == b'\n') {
        let (header_json, rest) = data.split_at(pos);
        let payload_json = rest.get(1..).unwrap_or_default();
        if let Ok(header) = Header::from_json(header_json) {
            let input = format!("{}.{}", b64::encode(header_json), b64::encode(payload_json));
            if let Some(signed) = fx.resign(input.as_bytes(), header.alg(), header.kid()) {
                check_token(fx, &signed, false);
            }
        }
    }
}

/// A token through everything a gateway does with one. With `resign`, the
/// token is also signed again with the fixed key of its `alg`, so any header
/// and payload that parse also pass the signature and reach `verify_jwt`'s claim checks.
fn check_token(fx: &Fixture, text: &str, resign: bool) {
    match verify_jws(
        text,
        &fx.keys,
        fx.keys.algorithms(),
        DEFAULT_MAX_TOKEN_BYTES,
    ) {
        Ok(jws) => {
            let _ = (jws.payload.len(), jws.key.kid(), jws.header.alg());
        }
        Err(e) => describe(&e),
    }
    let _ = verify_jws(text, &fx.keys, all_algorithms(), 64);
    // Two full checks (each verifies a signature); the other validations and
    // clocks run on the parsed claims below, which is what `verify_jwt` does
    // once the signature holds.
    for validation in fx.validations.iter().take(2) {
        match verify_jwt(text, &fx.keys, validation, NOW) {
            Ok(jwt) => {
                claim_accessors(&jwt.claims);
                let _ = jwt.key.kid();
            }
            Err(e) => describe(&e),
        }
    }
    let Ok(jws) = CompactJws::parse(text, usize::MAX) else {
        return;
    };
    let header = jws.header();
    let _ = (
        header.alg(),
        header.kid(),
        header.typ(),
        header.members().len(),
    );
    let _ = jws.signature();
    let _ = jws.as_str();
    if let Ok(payload) = jws.payload()
        && let Ok(claims) = Claims::from_json(&payload)
    {
        claim_accessors(&claims);
        validate_everywhere(header, &claims);
    }
    if resign && let Some(signed) = fx.resign(jws.signing_input(), header.alg(), header.kid()) {
        for validation in fx.validations.iter().take(2) {
            match verify_jwt(&signed, &fx.keys, validation, NOW) {
                Ok(jwt) => claim_accessors(&jwt.claims),
                Err(e) => describe(&e),
            }
        }
    }
}

/// Fuzz target `fuzz_jwks`: `data` as a JWKS, a single JWK and a PEM key (also through
/// `import_keys`, with and without secrets allowed); any
/// key set that results verifies the fixed sample tokens.
pub fn jwks(data: &[u8]) {
    let fx = fixture();
    if let Ok((set, rejected)) = jwk::key_set_from_jwks(data) {
        for r in &rejected {
            let _ = (r.index, r.kid.as_deref(), r.error.to_string());
        }
        use_key_set(fx, &set);
    }
    if let Ok((set, _)) = jwk::key_set_from_json(data) {
        use_key_set(fx, &set);
    }
    // The import every key source shares, as a fetched and as a local document.
    for secrets in [import::Secrets::Allow, import::Secrets::Refuse] {
        if let Ok(imported) = import::import_keys(data, import::KeyFormat::Detect, secrets) {
            for s in &imported.skipped {
                let _ = (s.index, s.kid.as_deref(), s.reason.is_unsupported());
                let _ = (s.reason.to_string(), s.reason.to_key_error());
            }
            use_key_set(fx, &imported.keys);
        }
    }
    if let Ok(obj) = json::parse_object(data)
        && let Ok(key) = jwk::verifying_key_from_jwk(&obj)
    {
        use_key_set(fx, &KeySet::new(vec![key]));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(material) = pem::public_key_from_pem(text)
    {
        let _ = (material.kty(), material.family(), material.public_jwk());
        if let Ok(key) = VerifyingKey::try_new(material, None, None) {
            use_key_set(fx, &KeySet::new(vec![key]));
        }
    }
}

/// Everything a caller does with an imported key set.
fn use_key_set(fx: &Fixture, set: &KeySet) {
    let _ = (
        set.len(),
        set.is_empty(),
        set.algorithms(),
        set.has_kid("hs"),
    );
    for key in set.keys() {
        let material = key.material();
        let _ = (material.thumbprint(), material.public_jwk(), key.kid());
        let _ = format!("{key:?}");
        for alg in key.algorithms().iter() {
            let _ = key.verify(alg, b"message", &[0; 64]);
        }
    }
    for token in &fx.tokens {
        if let Ok(jwt) = verify_jwt(token, set, &Validation::default(), NOW) {
            claim_accessors(&jwt.claims);
        }
        let _ = verify_jws(token, set, all_algorithms(), DEFAULT_MAX_TOKEN_BYTES);
    }
}

/// What a gateway does with an error: its reason code and its message.
fn describe(e: &TokenError) {
    let _ = (e.reason().as_str(), e.to_string(), format!("{e:?}"));
}

fn all_algorithms() -> AlgorithmSet {
    Algorithm::ALL.into_iter().collect()
}

/// `data` as a header, as claims and as strict JSON.
fn json_paths(data: &[u8]) {
    let _ = json::parse_strict(data);
    // The sparse parse refuses what the full one refuses and keeps what it is asked for.
    let full = json::parse_object(data);
    let keep: &dyn Fn(&str) -> bool = &|name| name.len() % 2 == 0;
    match (&full, json::parse_object_keeping(data, keep)) {
        (Ok(all), Ok(some)) => {
            assert_eq!(some.len(), all.keys().filter(|n| keep(n)).count());
            assert!(some.iter().all(|(n, v)| all.get(n) == Some(v)));
        }
        (Err(_), Err(_)) => {}
        (full, kept) => panic!("parse_object {full:?} but parse_object_keeping {kept:?}"),
    }
    if let Ok(header) = Header::from_json(data) {
        if let Ok(claims) = Claims::from_json(data) {
            claim_accessors(&claims);
            validate_everywhere(&header, &claims);
        }
    } else if let Ok(claims) = Claims::from_json(data) {
        claim_accessors(&claims);
        if let Ok(header) = Header::from_json(br#"{"alg":"HS256","typ":"at+jwt"}"#) {
            validate_everywhere(&header, &claims);
        }
    }
}

fn validate_everywhere(header: &Header, claims: &Claims) {
    for validation in &fixture().validations {
        for now in NOWS {
            if let Err(e) = validation.validate(header, claims, now) {
                describe(&e);
            }
        }
    }
}

fn claim_accessors(claims: &Claims) {
    let _ = (claims.issuer(), claims.subject(), claims.get("scope"));
    let _ = (claims.expires_at(), claims.audiences());
    for name in ["exp", "nbf", "iat"] {
        let _ = claims.numeric_date(name);
    }
    for path in ["realm_access.roles", "a.b.c", "", ".", "..", "x."] {
        let _ = claims.path(path);
    }
    let _ = claims.members().len();
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target);
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    out.push((entry.path(), bytes));
                }
            }
        }
        out.sort();
        out
    }

    fn b64_token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            b64::encode(header.as_bytes()),
            b64::encode(payload.as_bytes())
        )
    }

    #[test]
    fn the_fixture_is_complete() {
        let fx = fixture();
        assert_eq!(fx.keys.len(), 5, "{:?}", fx.keys);
        assert_eq!(fx.tokens.len(), 8);
        for token in &fx.tokens {
            let verified = verify_jwt(token, &fx.keys, &Validation::default(), NOW);
            assert!(verified.is_ok(), "{token}: {verified:?}");
        }
    }

    #[test]
    fn each_sample_jwks_verifies_a_sample_token() {
        let tokens = sample_tokens();
        for doc in sample_jwks() {
            let imported = jwk::key_set_from_json(doc.as_bytes());
            let Ok((set, rejected)) = imported else {
                panic!("{doc}: {imported:?}");
            };
            assert!(rejected.is_empty(), "{doc}: {rejected:?}");
            assert!(
                tokens
                    .iter()
                    .any(|t| verify_jwt(t, &set, &Validation::default(), NOW).is_ok()),
                "{doc}"
            );
            jwks(doc.as_bytes());
        }
    }

    #[test]
    fn committed_seeds_run_and_their_tokens_verify() {
        let fx = fixture();
        let tokens = seeds("fuzz_token");
        assert!(tokens.len() >= 5, "fuzz/seeds/fuzz_token: {}", tokens.len());
        for (path, bytes) in &tokens {
            token(bytes);
            let text = String::from_utf8_lossy(bytes);
            // `.txt` seeds are the raw form: header JSON, a line feed, payload JSON.
            let signed = match text.split_once('\n') {
                Some((h, p)) if path.extension().is_some_and(|e| e == "txt") => {
                    let header = Header::from_json(h.as_bytes());
                    let Ok(header) = header else {
                        panic!("{}: {header:?}", path.display());
                    };
                    let input = format!(
                        "{}.{}",
                        b64::encode(h.as_bytes()),
                        b64::encode(p.as_bytes())
                    );
                    fx.resign(input.as_bytes(), header.alg(), header.kid())
                }
                _ => Some(text.trim_end().to_owned()),
            };
            let verified = signed.map(|t| verify_jwt(&t, &fx.keys, &Validation::default(), NOW));
            assert!(
                verified.as_ref().is_some_and(Result::is_ok),
                "{}: {verified:?}",
                path.display()
            );
        }
        let docs = seeds("fuzz_jwks");
        assert!(docs.len() >= 3, "fuzz/seeds/fuzz_jwks: {}", docs.len());
        for (path, bytes) in &docs {
            jwks(bytes);
            let imported = if path.extension().is_some_and(|e| e == "pem") {
                let text = String::from_utf8_lossy(bytes);
                pem::public_key_from_pem(&text).is_ok()
            } else {
                jwk::key_set_from_json(bytes).is_ok_and(|(set, _)| !set.is_empty())
            };
            assert!(imported, "{}", path.display());
        }
    }

    #[test]
    fn samples_run_through_both_targets() {
        for t in sample_tokens() {
            token(t.as_bytes());
            jwks(t.as_bytes());
        }
        for doc in sample_jwks() {
            token(doc.as_bytes());
        }
    }

    #[test]
    fn hostile_tokens() {
        let deep_array = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_object = format!("{}1{}", r#"{"a":"#.repeat(20_000), "}".repeat(20_000));
        let huge_int = "9".repeat(10_000);
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b".".to_vec(),
            b"..".to_vec(),
            ".".repeat(100_000).into_bytes(),
            ".".repeat(DEFAULT_MAX_TOKEN_BYTES).into_bytes(),
            "a.".repeat(50_000).into_bytes(),
            vec![0xff; 1000],
            b"\xff.\xfe.\xfd".to_vec(),
            "=".repeat(10_000).into_bytes(),
            deep_array.clone().into_bytes(),
            deep_object.clone().into_bytes(),
            format!(r#"{{"alg":"HS256","exp":{huge_int}}}"#).into_bytes(),
            br#"{"alg":"HS256","exp":1e400,"nbf":-1e400,"iat":-0.0}"#.to_vec(),
            br#"{"exp":18446744073709551616,"nbf":-9223372036854775809}"#.to_vec(),
            br#"{"exp":253402300799,"aud":[[],{},null],"iss":{}}"#.to_vec(),
        ];
        for header in [
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS256","kid":"hs"}"#,
            r#"{"alg":"EdDSA","kid":"ed","typ":"application/"}"#,
            r#"{"alg":"ES256","kid":"es","cty":"jwt"}"#,
            r#"{"alg":"HS512","kid":"\u0000\ud83d\ude00"}"#,
        ] {
            for payload in [
                "{}",
                "[]",
                "null",
                "",
                &deep_array,
                &deep_object,
                &format!(r#"{{"exp":{huge_int}}}"#),
                r#"{"exp":1e308,"nbf":1e-400,"iat":5e-324}"#,
                r#"{"exp":-1,"aud":"api","iss":"https://issuer.example"}"#,
                r#"{"exp":4102444800,"aud":["api"],"iss":"https://issuer.example","a":{"b":{"c":1}}}"#,
                r#"{"exp":253402300799.99999,"nbf":0,"iat":1e-10}"#,
                r#"{"exp":4102444800,"exp":1}"#,
            ] {
                inputs.push(b64_token(header, payload).into_bytes());
                inputs.push(format!("{header}\n{payload}").into_bytes());
            }
        }
        // A valid token with a huge signature, and with each segment emptied.
        for t in sample_tokens() {
            inputs.push(format!("{t}{}", "A".repeat(20_000)).into_bytes());
            let parts: Vec<&str> = t.split('.').collect();
            if let [h, p, s] = parts[..] {
                inputs.push(format!(".{p}.{s}").into_bytes());
                inputs.push(format!("{h}..{s}").into_bytes());
                inputs.push(format!("{h}.{p}.").into_bytes());
                inputs.push(format!("{h}.{p}.{s}.").into_bytes());
            }
        }
        for input in &inputs {
            token(input);
            jwks(input);
        }
    }

    #[test]
    fn hostile_jwks() {
        let rsa = |n: &str, e: &str| format!(r#"{{"keys":[{{"kty":"RSA","n":"{n}","e":"{e}"}}]}}"#);
        let big_n = b64::encode(&[0xff; 1025]);
        let odd_n = b64::encode(&[0xc1; 256]);
        let too_many = format!(
            r#"{{"keys":[{}]}}"#,
            vec![r#"{"kty":"oct","k":"AAAA"}"#; 101].join(",")
        );
        let over_limit = format!(
            r#"{{"keys":[],"pad":"{}"}}"#,
            "x".repeat(jwk::MAX_JWKS_BYTES)
        );
        let inputs: Vec<String> = vec![
            String::new(),
            "{}".to_owned(),
            r#"{"keys":null}"#.to_owned(),
            r#"{"keys":[null,1,"a",[],{}]}"#.to_owned(),
            format!(
                r#"{{"keys":{}{}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            format!(r#"{{"keys":[{}]}}"#, r#"{"a":"#.repeat(5_000)),
            too_many,
            over_limit,
            rsa(&big_n, "AQAB"),
            rsa(&odd_n, "AQAB"),
            rsa(&odd_n, &b64::encode(&[0xff; 5])),
            rsa(&odd_n, "AA"),
            rsa(&format!("AAAA{odd_n}"), "AAEAAQ"),
            rsa(&"9".repeat(10_000), "AQAB"),
            r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#.to_owned(),
            format!(
                r#"{{"kty":"EC","crv":"P-521","x":"{}","y":"{}"}}"#,
                b64::encode(&[0xff; 66]),
                b64::encode(&[0xff; 66])
            ),
            format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
                b64::encode(&[0; 32])
            ),
            r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#.to_owned(),
            format!(r#"{{"kty":"oct","k":"{}"}}"#, b64::encode(&[7; 100_000])),
            r#"{"kty":"oct","k":"AAAA","alg":"HS512","use":"sig","key_ops":[]}"#.to_owned(),
            format!(
                r#"{{"kty":"oct","k":"{}","alg":"RS256","kid":7}}"#,
                b64::encode(HS_SECRET)
            ),
            format!(
                r#"{{"kty":"oct","k":"{}","exp":1e400}}"#,
                b64::encode(HS_SECRET)
            ),
            "-----BEGIN PUBLIC KEY-----\nMA==\n-----END PUBLIC KEY-----\n".to_owned(),
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_owned(),
            "-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEA\n-----END RSA PUBLIC KEY-----\n"
                .to_owned(),
            "-----BEGIN PRIVATE KEY-----\n".repeat(10_000),
        ];
        for input in &inputs {
            jwks(input.as_bytes());
            token(input.as_bytes());
        }
    }
}
