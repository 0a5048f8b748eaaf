//! Wycheproof primitive signature vectors (C2SP/wycheproof `testvectors_v1/`
//! at commit dac1dd4, Apache-2.0, see `tests/data/wycheproof/LICENSE`) run
//! through `VerifyingKey::verify`, the call `verify_jws` ends in.
//!
//! For every group we build the key from each form the file gives (raw
//! parameters through `KeyMaterial`, DER SubjectPublicKeyInfo through
//! `public_key_from_spki`, JWK through `verifying_key_from_jwk`), check the
//! forms agree, then verify every case with the JWS algorithm the file
//! corresponds to. `valid` must verify, `invalid` must not; `acceptable`
//! cases are listed with what we do, and that behaviour is asserted so a
//! change is noticed. Keys we refuse at import are counted and must be
//! refused for a stated policy reason; they are never silently skipped.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::fmt::Write as _;

use portcullis_jose::{
    Algorithm, Curve, KeyError, KeyMaterial, MIN_RSA_BITS, VerifyingKey, public_key_from_spki,
    verifying_key_from_jwk,
};
use serde_json::Value;
use zeroize::Zeroizing;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex(v[name].as_str().unwrap_or_else(|| panic!("missing {name}")))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    Valid,
    Invalid,
    Acceptable,
}

fn label(case: &Value) -> Label {
    match case["result"].as_str() {
        Some("valid") => Label::Valid,
        Some("invalid") => Label::Invalid,
        Some("acceptable") => Label::Acceptable,
        other => panic!("tc{}: result {other:?}", case["tcId"]),
    }
}

/// Counts for one file, and the cases that went against their label.
#[derive(Default)]
struct Tally {
    total: usize,
    valid_accepted: usize,
    invalid_rejected: usize,
    /// `acceptable` cases: (tcId, comment, what we did).
    acceptable: Vec<String>,
    /// Cases whose key we refused at import, by reason.
    key_refused: usize,
    /// Cases rejected by JWS policy rather than by the primitive (truncated HMAC tags).
    policy_rejected: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, case: &Value, verified: bool) {
        self.total += 1;
        let tc = case["tcId"].as_u64().unwrap();
        let comment = case["comment"].as_str().unwrap_or_default();
        match (label(case), verified) {
            (Label::Valid, true) => self.valid_accepted += 1,
            (Label::Invalid, false) => self.invalid_rejected += 1,
            (Label::Acceptable, v) => self.acceptable.push(format!(
                "tc{tc} ({comment}, flags {}): {}",
                case["flags"],
                if v { "accepted" } else { "rejected" }
            )),
            (l, v) => self.failures.push(format!(
                "tc{tc} ({comment}, flags {}): labelled {l:?} but {}",
                case["flags"],
                if v { "accepted" } else { "rejected" }
            )),
        }
    }

    fn refused(&mut self, cases: usize) {
        self.total += cases;
        self.key_refused += cases;
    }

    fn policy(&mut self, case: &Value, verified: bool) {
        self.total += 1;
        if verified {
            self.failures.push(format!(
                "tc{} ({}): accepted although JWS policy must reject it",
                case["tcId"], case["comment"]
            ));
        } else {
            self.policy_rejected += 1;
        }
    }

    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Prints the counts and fails on any case contrary to its label.
    /// `acceptable` is what we must do with each `acceptable` case (by tcId).
    fn finish(&self, file: &str, expected_total: u64, acceptable: &[(u64, bool)]) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{file}: {} cases: {} valid accepted, {} invalid rejected, {} acceptable, {} refused with the key at import, {} rejected by JWS policy, {} failures",
            self.total,
            self.valid_accepted,
            self.invalid_rejected,
            self.acceptable.len(),
            self.key_refused,
            self.policy_rejected,
            self.failures.len()
        );
        for a in &self.acceptable {
            let _ = writeln!(out, "  acceptable: {a}");
        }
        for f in &self.failures {
            let _ = writeln!(out, "  FAILED: {f}");
        }
        println!("{out}");
        assert_eq!(self.total as u64, expected_total, "{file}: numberOfTests");
        assert!(
            self.failures.is_empty(),
            "{file}: {} failure(s): {}",
            self.failures.len(),
            self.failures
                .iter()
                .map(|f| f.split(' ').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(
            self.acceptable.len(),
            acceptable.len(),
            "{file}: acceptable cases"
        );
        for (tc, accept) in acceptable {
            let want = format!("tc{tc} ");
            let line = self
                .acceptable
                .iter()
                .find(|a| a.starts_with(&want))
                .unwrap_or_else(|| panic!("{file}: tc{tc} is not an acceptable case"));
            assert_eq!(
                line.ends_with("accepted"),
                *accept,
                "{file}: acceptable {line}"
            );
        }
    }
}

fn groups(file: &Value) -> &Vec<Value> {
    file["testGroups"].as_array().unwrap()
}

fn tests(group: &Value) -> &Vec<Value> {
    group["tests"].as_array().unwrap()
}

/// Imports the group's JWK (when it has one) and checks it gives `material`.
fn check_jwk(group: &Value, member: &str, material: &KeyMaterial, alg: Algorithm) {
    let Some(jwk) = group.get(member) else {
        return;
    };
    let key = verifying_key_from_jwk(jwk.as_object().unwrap())
        .unwrap_or_else(|e| panic!("{member} {jwk}: {e}"));
    assert_eq!(key.material(), material, "{member} {jwk}");
    assert!(key.algorithms().contains(alg), "{member} {jwk}");
}

fn run_ecdsa(file: &str, curve: Curve, alg: Algorithm, expected_total: u64) {
    let vectors = load(file);
    let mut tally = Tally::default();
    let mut with_jwk = 0;
    for group in groups(&vectors) {
        let raw = hex_field(&group["publicKey"], "uncompressed");
        let len = curve.coordinate_len();
        assert_eq!(raw.len(), 1 + 2 * len);
        assert_eq!(raw[0], 4);
        let material = KeyMaterial::Ec {
            curve,
            x: raw[1..=len].to_vec(),
            y: raw[1 + len..].to_vec(),
        };
        let from_der = public_key_from_spki(&hex_field(group, "publicKeyDer")).unwrap();
        assert_eq!(from_der, material, "DER and raw forms differ");
        if group.get("publicKeyJwk").is_some() {
            with_jwk += 1;
        }
        check_jwk(group, "publicKeyJwk", &material, alg);
        let key = match VerifyingKey::try_new(material, None, Some(alg)) {
            Ok(key) => key,
            Err(e) => {
                tally.fail(format!("{file}: EC key refused: {e}"));
                continue;
            }
        };
        for case in tests(group) {
            let ok = key.verify(alg, &hex_field(case, "msg"), &hex_field(case, "sig"));
            tally.check(case, ok);
        }
    }
    println!(
        "{file}: {with_jwk} of {} groups also had a JWK",
        groups(&vectors).len()
    );
    tally.finish(file, expected_total, &[]);
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    run_ecdsa(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Curve::P256,
        Algorithm::ES256,
        262,
    );
}

#[test]
fn ecdsa_p384_sha384_p1363() {
    run_ecdsa(
        "ecdsa_secp384r1_sha384_p1363_test.json",
        Curve::P384,
        Algorithm::ES384,
        280,
    );
}

#[test]
fn ecdsa_p521_sha512_p1363() {
    run_ecdsa(
        "ecdsa_secp521r1_sha512_p1363_test.json",
        Curve::P521,
        Algorithm::ES512,
        318,
    );
}

/// Builds an RSA key from every form of the group and checks they agree.
/// The raw modulus has a leading 00 octet; `VerifyingKey::try_new`
/// normalizes it, so the forms are compared after import.
fn rsa_material(group: &Value, jwk_member: &str, alg: Algorithm) -> KeyMaterial {
    let raw = KeyMaterial::Rsa {
        n: hex_field(&group["publicKey"], "modulus"),
        e: hex_field(&group["publicKey"], "publicExponent"),
    };
    let from_der = public_key_from_spki(&hex_field(group, "publicKeyDer")).unwrap();
    match (
        VerifyingKey::try_new(raw, None, Some(alg)),
        VerifyingKey::try_new(from_der.clone(), None, Some(alg)),
    ) {
        (Ok(a), Ok(b)) => assert_eq!(a.material(), b.material(), "raw and DER forms differ"),
        (Err(a), Err(b)) => assert_eq!(a, b, "raw and DER forms refused differently"),
        (a, b) => panic!("raw {:?} vs DER {:?}", a.err(), b.err()),
    }
    check_jwk(group, jwk_member, &from_der, alg);
    from_der
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    let file = "rsa_signature_2048_sha256_test.json";
    let vectors = load(file);
    let alg = Algorithm::RS256;
    let mut tally = Tally::default();
    for group in groups(&vectors) {
        assert_eq!(group["keySize"], 2048);
        let material = rsa_material(group, "keyJwk", alg);
        match VerifyingKey::try_new(material, None, Some(alg)) {
            Ok(key) => {
                for case in tests(group) {
                    let ok = key.verify(alg, &hex_field(case, "msg"), &hex_field(case, "sig"));
                    tally.check(case, ok);
                }
            }
            Err(e) => {
                tally.fail(format!("2048-bit key refused: {e}"));
                tally.refused(tests(group).len());
            }
        }
    }
    // tc8: DigestInfo without the NULL parameters. RFC 8017 §9.2 note 2 lets
    // verifiers accept it; aws-lc compares against the one encoding with
    // NULL and rejects it, which is the stricter choice and what we want.
    tally.finish(file, 259, &[(8, false)]);
}

#[test]
fn rsa_pss_2048_sha256_mgf1_32() {
    let file = "rsa_pss_2048_sha256_mgf1_32_test.json";
    let vectors = load(file);
    // SHA-256, MGF1-SHA-256, 32-byte salt: exactly JWS PS256 (RFC 7518 §3.5).
    let alg = Algorithm::PS256;
    let mut tally = Tally::default();
    for group in groups(&vectors) {
        assert_eq!(
            (
                &group["sha"],
                &group["mgf"],
                &group["mgfSha"],
                &group["sLen"]
            ),
            (
                &Value::from("SHA-256"),
                &Value::from("MGF1"),
                &Value::from("SHA-256"),
                &Value::from(32)
            )
        );
        let material = rsa_material(group, "publicKeyJwk", alg);
        let key = VerifyingKey::try_new(material, None, Some(alg)).unwrap();
        for case in tests(group) {
            let ok = key.verify(alg, &hex_field(case, "msg"), &hex_field(case, "sig"));
            tally.check(case, ok);
        }
    }
    tally.finish(file, 108, &[]);
}

#[test]
fn ed25519() {
    let file = "ed25519_test.json";
    let vectors = load(file);
    let alg = Algorithm::EdDSA;
    let mut tally = Tally::default();
    for group in groups(&vectors) {
        let material = KeyMaterial::Ed25519 {
            x: hex_field(&group["publicKey"], "pk"),
        };
        let from_der = public_key_from_spki(&hex_field(group, "publicKeyDer")).unwrap();
        assert_eq!(from_der, material, "DER and raw forms differ");
        check_jwk(group, "publicKeyJwk", &material, alg);
        let key = VerifyingKey::try_new(material, None, Some(alg)).unwrap();
        for case in tests(group) {
            let ok = key.verify(alg, &hex_field(case, "msg"), &hex_field(case, "sig"));
            tally.check(case, ok);
        }
    }
    tally.finish(file, 151, &[]);
}

/// HMAC-SHA256 (`MacTest`): each case carries its own key. JWS HS256 uses
/// the full 32-byte tag and a secret of at least 32 bytes (RFC 7518 §3.2), so:
/// * 16-byte keys must be refused at import (counted, never verified);
/// * 16-byte (truncated) tags must not verify, whatever their label;
/// * full tags with an acceptable key must match the label.
#[test]
fn hmac_sha256() {
    let file = "hmac_sha256_test.json";
    let vectors = load(file);
    let alg = Algorithm::HS256;
    let mut tally = Tally::default();
    let mut sizes = Vec::new();
    // Truncated tags that are correct (labelled valid) yet must not verify.
    let mut truncated_valid = 0;
    for group in groups(&vectors) {
        let key_bits = group["keySize"].as_u64().unwrap();
        let tag_bits = group["tagSize"].as_u64().unwrap();
        sizes.push((key_bits, tag_bits, tests(group).len()));
        for case in tests(group) {
            let secret = hex_field(case, "key");
            assert_eq!(secret.len() as u64 * 8, key_bits);
            let tag = hex_field(case, "tag");
            assert_eq!(tag.len() as u64 * 8, tag_bits);
            let material = KeyMaterial::Hmac {
                secret: Zeroizing::new(secret.clone()),
            };
            match VerifyingKey::try_new(material, None, Some(alg)) {
                Err(KeyError::Weak { .. }) if secret.len() < 32 => tally.refused(1),
                Err(e) => tally.fail(format!("tc{}: key refused: {e}", case["tcId"])),
                Ok(_) if secret.len() < 32 => tally.fail(format!(
                    "tc{}: {}-byte HMAC key accepted",
                    case["tcId"],
                    secret.len()
                )),
                Ok(key) => {
                    let ok = key.verify(alg, &hex_field(case, "msg"), &tag);
                    if tag.len() == 32 {
                        tally.check(case, ok);
                    } else {
                        if label(case) == Label::Valid {
                            truncated_valid += 1;
                        }
                        tally.policy(case, ok);
                    }
                }
            }
        }
    }
    println!("{file}: groups (keySize bits, tagSize bits, cases): {sizes:?}");
    println!(
        "{file}: {truncated_valid} correct but truncated (16-byte) tags rejected, as JWS requires the full tag"
    );
    assert!(truncated_valid > 0);
    // 16-byte keys: 2 groups; truncated tags with usable keys: 2 groups.
    let count = |f: &dyn Fn(u64, u64) -> bool| {
        sizes
            .iter()
            .filter(|(k, t, _)| f(*k, *t))
            .map(|(_, _, n)| n)
            .sum::<usize>()
    };
    assert_eq!(tally.key_refused, count(&|k, _| k < 256));
    assert_eq!(tally.policy_rejected, count(&|k, t| k >= 256 && t < 256));
    tally.finish(file, 174, &[]);
}

/// The RSA floor: the 1024-bit key of `json_web_key_test.json` is refused at
/// import both as a JWK and as raw `KeyMaterial`. (The primitive files hold
/// only 2048-bit keys, so this is where a small key is exercised.)
#[test]
fn rsa_below_2048_bits_is_refused() {
    let jwk = load("json_web_key_test.json")["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["comment"] == "keysize_too_small")
        .map(|g| g["public"]["keys"][0].clone())
        .unwrap();
    let err = verifying_key_from_jwk(jwk.as_object().unwrap()).unwrap_err();
    assert!(matches!(err, KeyError::Weak { .. }), "{err}");

    let n = portcullis_jose::b64::decode(jwk["n"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(n.len() * 8, 1024);
    assert!(n.len() * 8 < MIN_RSA_BITS);
    let material = KeyMaterial::Rsa {
        n,
        e: vec![1, 0, 1],
    };
    let err = VerifyingKey::try_new(material, None, Some(Algorithm::RS256)).unwrap_err();
    assert!(matches!(err, KeyError::Weak { .. }), "{err}");
}
