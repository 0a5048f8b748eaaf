//! Weak keys are refused at import (issue #5; the table is in SECURITY.md): RSA-1024,
//! e = 1, HMAC secrets shorter than the hash, EC points off the curve, and small-order
//! Ed25519 keys, through `portcullis verify --jwks` (the key is ignored with a message,
//! and a token it signed is refused) and `portcullis check --config` (exit 2 naming
//! the field). The same keys served in a JWKS over HTTP are tested in `attacks.rs`.
//!
//! Peers: Portcullis, and the peers' Python (`cryptography`) to make a real RSA-1024
//! key and sign with it, and to forge with e = 1 and short HMAC secrets.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use portcullis_jose::{Algorithm, b64};
use portcullis_test_util::{Issuer, TempDir, python, run_with_input};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const ISS: &str = "https://idp.example.com";

/// Makes the weak keys and a token signed (or forged) for each. Reads the payload on stdin.
const WEAK_PY: &str = r#"
import base64, hashlib, hmac, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

payload = sys.stdin.read()
def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def seg(obj): return b64u(json.dumps(obj, separators=(",", ":")).encode())
def signing_input(alg, kid): return seg({"alg": alg, "kid": kid}) + "." + b64u(payload.encode())
out = {}

small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
nums = small.public_key().public_numbers()
si = signing_input("RS256", "weak-rsa1024")
out["rsa1024"] = {
    "jwk": {"kty": "RSA", "kid": "weak-rsa1024", "n": b64u(nums.n.to_bytes(128, "big")), "e": "AQAB"},
    "pem": small.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    "token": si + "." + b64u(small.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256())),
}

# e = 1: s^e mod n = s, so the encoded digest is a valid "signature" anyone can compute.
n = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers().n
si = signing_input("RS256", "weak-e1")
digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(si.encode()).digest()
em = b"\x00\x01" + b"\xff" * (256 - 3 - len(digest_info)) + b"\x00" + digest_info
out["e1"] = {"jwk": {"kty": "RSA", "kid": "weak-e1", "n": b64u(n.to_bytes(256, "big")), "e": "AQ"},
             "token": si + "." + b64u(em)}

def hs(name, kid, alg, secret, digest):
    si = signing_input(alg, kid)
    out[name] = {"jwk": {"kty": "oct", "kid": kid, "alg": alg, "k": b64u(secret)},
                 "token": si + "." + b64u(hmac.new(secret, si.encode(), digest).digest())}
hs("hs256_31", "weak-hs256", "HS256", b"k" * 31, hashlib.sha256)
hs("hs256_8", "weak-hs256-8", "HS256", b"password", hashlib.sha256)
hs("hs512_48", "weak-hs512", "HS512", b"k" * 48, hashlib.sha512)
json.dump(out, sys.stdout)
"#;

/// A weak key as a JWK, the problem `portcullis` must name, and a token for it.
struct Weak {
    name: &'static str,
    jwk: Value,
    problem: &'static str,
    token: String,
}

fn payload() -> String {
    let now = Issuer::now();
    json!({"iss": ISS, "sub": "admin", "aud": "orders-api", "iat": now, "exp": now + 3600})
        .to_string()
}

fn token(header: Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(payload().as_bytes()),
        b64::encode(sig)
    )
}

fn python_weak() -> &'static Value {
    static OUT: OnceLock<Value> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = run_with_input(
            Command::new(python()).args(["-c", WEAK_PY]),
            payload().as_bytes(),
            "python (weak keys)",
        );
        serde_json::from_slice(&out).unwrap()
    })
}

/// The weak keys of the issue: RSA-1024, e = 1, short HMAC secrets, off-curve EC points.
fn weak_keys() -> Vec<Weak> {
    let py = python_weak();
    let from_py = |name: &'static str, problem: &'static str| Weak {
        name,
        jwk: py[name]["jwk"].clone(),
        problem,
        token: py[name]["token"].as_str().unwrap().to_owned(),
    };
    let ec = Issuer::new(Algorithm::ES256, "good", ISS).jwk();
    let off_curve = |kid: &'static str, x: Vec<u8>, y: Vec<u8>| json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64::encode(&x), "y": b64::encode(&y)});
    let mut y = b64::decode(ec["y"].as_str().unwrap().as_bytes()).unwrap();
    let x = b64::decode(ec["x"].as_str().unwrap().as_bytes()).unwrap();
    *y.last_mut().unwrap() ^= 1;
    let es256 = |kid: &str| token(json!({"alg": "ES256", "kid": kid}), &[7; 64]);
    vec![
        from_py("rsa1024", "key too weak: RSA modulus of 1024 bits"),
        from_py("e1", "key too weak: RSA public exponent"),
        from_py("hs256_31", "key too weak: HMAC secret of 31 bytes"),
        from_py("hs256_8", "key too weak: HMAC secret of 8 bytes"),
        from_py(
            "hs512_48",
            "key too weak: HMAC secret of 48 bytes (at least 64 for HS512)",
        ),
        Weak {
            name: "P-256 point with y off by one bit",
            jwk: off_curve("weak-offcurve", x, y),
            problem: "key rejected",
            token: es256("weak-offcurve"),
        },
        Weak {
            name: "P-256 point (0, 0)",
            jwk: off_curve("weak-zero", vec![0; 32], vec![0; 32]),
            problem: "key rejected",
            token: es256("weak-zero"),
        },
        Weak {
            name: "P-256 point with coordinates of P-384's length",
            jwk: json!({"kty": "EC", "crv": "P-384", "kid": "weak-crv",
                        "x": ec["x"], "y": ec["y"]}),
            problem: "member \"x/y\" is invalid: coordinate length does not fit the curve",
            token: es256("weak-crv"),
        },
    ]
}

fn portcullis(args: &[&str], file: &Path, tail: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg(file)
        .args(tail)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `verify --jwks`: a JWKS holding only the weak key has no usable key (exit 2, the key
/// named as ignored and why); beside a good key, the weak one is ignored with the same
/// message and the token it signed finds no key (exit 1, `key_not_found`). A single
/// weak JWK (not a set) is an error (exit 2).
#[test]
fn weak_keys_are_refused_by_verify_jwks() {
    let dir = TempDir::new("attacks-keys");
    let good = Issuer::new(Algorithm::ES256, "good", ISS).jwk();
    let mut problems = Vec::new();
    for w in weak_keys() {
        let kid = w.jwk["kid"].as_str().unwrap().to_owned();
        let alone = dir.write("alone.json", &json!({"keys": [w.jwk]}).to_string());
        let out = portcullis(&["verify", "--jwks"], &alone, &[&w.token]);
        let err = stderr(&out);
        if out.status.code() != Some(2)
            || !err.contains(&format!("(kid {kid:?}) ignored: {}", w.problem))
            || !err.contains("holds no usable key")
        {
            problems.push(format!(
                "{}: only key: {:?} {err}",
                w.name,
                out.status.code()
            ));
        }
        let beside = dir.write("beside.json", &json!({"keys": [w.jwk, good]}).to_string());
        let out = portcullis(&["verify", "--jwks"], &beside, &[&w.token]);
        let err = stderr(&out);
        if out.status.code() != Some(1)
            || !err.contains(&format!("(kid {kid:?}) ignored: {}", w.problem))
            // The reason line; `verify` may add detail lines (the known kids) after it.
            || !err.lines().any(|l| l.starts_with("key_not_found: "))
        {
            problems.push(format!(
                "{}: beside a good key: {:?} {err}",
                w.name,
                out.status.code()
            ));
        }
        let single = dir.write("single.json", &w.jwk.to_string());
        let out = portcullis(&["verify", "--jwks"], &single, &[&w.token]);
        let err = stderr(&out);
        if out.status.code() != Some(2) || !err.contains(w.problem) || err.lines().count() != 1 {
            problems.push(format!(
                "{}: single JWK: {:?} {err}",
                w.name,
                out.status.code()
            ));
        }
    }
    // A PEM public key is held to the same rule.
    let pem = dir.write(
        "rsa1024.pem",
        python_weak()["rsa1024"]["pem"].as_str().unwrap(),
    );
    let out = portcullis(
        &["verify", "--jwks"],
        &pem,
        &[python_weak()["rsa1024"]["token"].as_str().unwrap()],
    );
    if out.status.code() != Some(2)
        || !stderr(&out).contains("key too weak: RSA modulus of 1024 bits")
    {
        problems.push(format!(
            "RSA-1024 PEM: {:?} {}",
            out.status.code(),
            stderr(&out)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn config(jwks_yaml: &str) -> String {
    format!(
        "providers:\n  - name: corp\n    issuer: {ISS}\n    jwks:\n{jwks_yaml}rules:\n  - name: default\n    match: {{}}\n"
    )
}

/// `check --config`: a weak inline key (in a JWKS or alone) or PEM is exit 2 with
/// `FILE:LINE: providers[0].jwks...: <problem>` on one line.
#[test]
fn weak_keys_are_refused_by_check_config() {
    let dir = TempDir::new("attacks-keys");
    let mut problems = Vec::new();
    let mut check = |name: &str, yaml: String, field: &str, problem: &str| {
        let file = dir.write("weak.yaml", &yaml);
        let out = portcullis(&["check", "--config"], &file, &[]);
        let err = stderr(&out);
        let prefix = format!("{}:", file.display());
        let ok = out.status.code() == Some(2)
            && err.lines().count() == 1
            && err.starts_with(&prefix)
            && err.contains(&format!(": {field}: "))
            && err.contains(problem);
        if !ok {
            problems.push(format!("{name}: {:?} {err}", out.status.code()));
        }
    };
    for w in weak_keys() {
        check(
            w.name,
            config(&format!("      inline: {}\n", json!({"keys": [w.jwk]}))),
            "providers[0].jwks.inline.keys[0]",
            w.problem,
        );
        check(
            w.name,
            config(&format!("      inline: {}\n", w.jwk)),
            "providers[0].jwks.inline",
            w.problem,
        );
    }
    let pem: String = python_weak()["rsa1024"]["pem"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    check(
        "RSA-1024 PEM",
        config(&format!("      pem: |\n{pem}")),
        "providers[0].jwks.pem",
        "key too weak: RSA modulus of 1024 bits",
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The encoding of the Ed25519 identity point (order 1).
const ED25519_IDENTITY: [u8; 32] = {
    let mut x = [0u8; 32];
    x[0] = 1;
    x
};

/// A small-order Ed25519 public key is the Ed25519 analogue of e = 1: with the identity
/// point, the signature (R = identity, S = 0) verifies for any message. It must be
/// refused at import like the other weak keys; the config check must fail and the
/// universal forgery must never verify.
#[test]
fn small_order_ed25519_keys_are_refused_at_import() {
    let dir = TempDir::new("attacks-keys");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "weak-ed25519",
                     "x": b64::encode(&ED25519_IDENTITY)});
    let forged = token(
        json!({"alg": "EdDSA", "kid": "weak-ed25519"}),
        &[&ED25519_IDENTITY[..], &[0u8; 32]].concat(),
    );
    let mut problems = Vec::new();
    let jwks = dir.write("ed.json", &json!({"keys": [jwk]}).to_string());
    let out = portcullis(&["verify", "--jwks"], &jwks, &[&forged]);
    if out.status.success() {
        problems.push(format!(
            "verify --jwks accepted the universal forgery (exit 0), claims: {}",
            String::from_utf8_lossy(&out.stdout).replace('\n', " ")
        ));
    }
    let yaml = dir.write(
        "ed.yaml",
        &config(&format!("      inline: {}\n", json!({"keys": [jwk]}))),
    );
    let out = portcullis(&["check", "--config"], &yaml, &[]);
    if out.status.code() != Some(2) {
        problems.push(format!(
            "check --config accepted the key: exit {:?} {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        ));
    }
    let out = portcullis(&["verify", "--config"], &yaml, &[&forged]);
    if out.status.success() {
        problems.push("verify --config accepted the universal forgery (exit 0)".to_owned());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
