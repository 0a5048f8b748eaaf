//! Shared by the attack suite's test files (`attacks.rs`, `attacks_format.rs`,
//! `attacks_claims.rs`; the table is in SECURITY.md), each of which includes it with
//! `#[path = "attacks_support.rs"] mod support;` and runs one server for its tests.
//! Cargo also builds this file alone as a test target without tests: it is
//! self-contained for that reason.
//!
//! The server: provider `corp` fetches its JWKS (an RS256-pinned RSA key and an ES256
//! key, plus weak keys that must be ignored at import) from a [`JwksServer`] that
//! counts its hits; a second [`JwksServer`] plays the attacker's `jku`/`x5u` host and
//! must never be hit. Provider `at` backs a rule that expects `typ: at+jwt`; provider
//! `permissive` holds corp's two keys inline but allows every algorithm, to show that
//! a key's family and `alg` hold even when an allow-list does not protect.
//!
//! Every case is sent to HTTP forward auth (`/verify`) and, in one Python run per
//! file (`peers/attack_grpc.py`: grpcio + xds-protos), to Envoy ext_authz gRPC
//! (`envoy.service.auth.v3.Authorization/Check`); both answers must be the expected
//! deny (status, reason code, `WWW-Authenticate`, gRPC code).
//!
//! Peers: Portcullis, and the peers' Python (`scripts/install-peers`).
#![allow(dead_code, reason = "each test file uses part of this module")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use portcullis_jose::{Algorithm, SigningKey, b64};
use portcullis_test_util::{Issuer, JwksServer, Portcullis, TempDir, python, run_with_input};
use serde_json::{Value, json};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub(crate) const ISS: &str = "https://idp.example.com";
pub(crate) const AT_ISS: &str = "https://at.example.com";
pub(crate) const AUD: &str = "orders-api";

// Reason codes (CONTRACT.md).
pub(crate) const MALFORMED: &[&str] = &["token_malformed"];
pub(crate) const SIGNATURE: &[&str] = &["signature_invalid"];
pub(crate) const ALGORITHM: &[&str] = &["algorithm_not_allowed"];
pub(crate) const NO_KEY: &[&str] = &["key_not_found"];
pub(crate) const ISSUER: &[&str] = &["issuer_mismatch"];
pub(crate) const AUDIENCE: &[&str] = &["audience_mismatch"];

// ---------------------------------------------------------------------------------
// The shared server
// ---------------------------------------------------------------------------------

/// Everything the attacks need: the server, the key servers, the keys.
pub(crate) struct Fixture {
    pub(crate) p: Portcullis,
    /// The provider's JWKS (counts fetches).
    pub(crate) jwks: JwksServer,
    /// The attacker's host for `jku`/`x5u`: must stay at zero hits.
    pub(crate) attacker: JwksServer,
    pub(crate) started: Instant,
    /// `kid: rs-1`, RS256 (the JWK pins `alg: RS256`).
    pub(crate) rs: Issuer,
    /// The same RSA key, able to sign other RSA algorithms (PS256, RS384...).
    pub(crate) rsa_pkcs8: Vec<u8>,
    /// `kid: ec-1`, ES256 on P-256.
    pub(crate) ec: Issuer,
    /// The `at` provider's key (`kid: at-1`, ES256).
    pub(crate) at: Issuer,
    /// The attacker's own keys.
    pub(crate) mallory: Issuer,
    pub(crate) mallory_p384: SigningKey,
    /// An attacker RSA key with a self-signed certificate claiming the provider's name.
    pub(crate) x5c_key: SigningKey,
    pub(crate) x5c_cert: String,
    /// Forgeries made by Python (HS with the public key in every encoding, weak keys).
    pub(crate) forged: Value,
    pub(crate) _wrapper: TempDir,
}

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::start)
}

/// Python that forges what our Rust side cannot: HMAC keyed with the provider's
/// public keys in every encoding an application might hold them in, a self-signed
/// certificate for `x5c`, and tokens signed by weak keys (RSA-1024, e = 1, a short
/// HMAC secret). Reads a job on stdin, writes JSON on stdout.
pub(crate) const FORGE_PY: &str = r#"
import base64, datetime, hashlib, hmac, json, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

job = json.load(sys.stdin)
E, F = serialization.Encoding, serialization.PublicFormat

def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def unb64u(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def num(s): return int.from_bytes(unb64u(s), "big")
def seg(obj): return b64u(json.dumps(obj, separators=(",", ":")).encode())

HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
def hs(secret, alg, header, payload):
    signing_input = seg(header) + "." + b64u(payload.encode())
    mac = hmac.new(secret, signing_input.encode(), HASHES[alg]).digest()
    return signing_input + "." + b64u(mac)

rsa_jwk, ec_jwk = job["rsa_jwk"], job["ec_jwk"]
rsa_pub = rsa.RSAPublicNumbers(num(rsa_jwk["e"]), num(rsa_jwk["n"])).public_key()
ec_pub = ec.EllipticCurvePublicNumbers(num(ec_jwk["x"]), num(ec_jwk["y"]), ec.SECP256R1()).public_key()
spki = rsa_pub.public_bytes(E.PEM, F.SubjectPublicKeyInfo)
pkcs1 = rsa_pub.public_bytes(E.PEM, F.PKCS1)
ec_spki = ec_pub.public_bytes(E.PEM, F.SubjectPublicKeyInfo)
encodings = [
    ("rs-1", "SPKI PEM", spki),
    ("rs-1", "SPKI PEM without its trailing newline", spki.rstrip(b"\n")),
    ("rs-1", "SPKI PEM with CRLF line ends", spki.replace(b"\n", b"\r\n")),
    ("rs-1", "PKCS#1 PEM", pkcs1),
    ("rs-1", "PKCS#1 PEM without its trailing newline", pkcs1.rstrip(b"\n")),
    ("rs-1", "SPKI DER", rsa_pub.public_bytes(E.DER, F.SubjectPublicKeyInfo)),
    ("rs-1", "PKCS#1 DER", rsa_pub.public_bytes(E.DER, F.PKCS1)),
    ("rs-1", "OpenSSH", rsa_pub.public_bytes(E.OpenSSH, F.OpenSSH)),
    ("rs-1", "JWK JSON as served", json.dumps(rsa_jwk).encode()),
    ("rs-1", "JWK JSON compact", json.dumps(rsa_jwk, separators=(",", ":")).encode()),
    ("rs-1", "JWK JSON of the RFC 7638 members", json.dumps({"e": rsa_jwk["e"], "kty": "RSA", "n": rsa_jwk["n"]}, separators=(",", ":")).encode()),
    ("rs-1", "raw modulus bytes", unb64u(rsa_jwk["n"])),
    ("rs-1", "modulus as base64url text", rsa_jwk["n"].encode()),
    ("ec-1", "EC SPKI PEM", ec_spki),
    ("ec-1", "EC SPKI PEM without its trailing newline", ec_spki.rstrip(b"\n")),
    ("ec-1", "EC SPKI DER", ec_pub.public_bytes(E.DER, F.SubjectPublicKeyInfo)),
    ("ec-1", "EC uncompressed point", ec_pub.public_bytes(E.X962, F.UncompressedPoint)),
    ("ec-1", "EC JWK JSON as served", json.dumps(ec_jwk).encode()),
]
out = {"hs": [], "hs_empty": [], "weak": {}}
for kid, name, secret in encodings:
    for alg in HASHES:
        for with_kid in (True, False):
            header = {"alg": alg, "typ": "JWT"}
            if with_kid:
                header["kid"] = kid
            out["hs"].append({
                "what": f"{alg} keyed with the {name} ({'kid ' + kid if with_kid else 'no kid'})",
                "token": hs(secret, alg, header, job["payload"]),
            })
# The classic kid attack: point kid at a file (or query) that yields an empty or known secret.
for kid in job["empty_secret_kids"]:
    out["hs_empty"].append({
        "what": f"HS256 with an empty secret, kid {kid!r}",
        "token": hs(b"", "HS256", {"alg": "HS256", "kid": kid}, job["payload"]),
    })

# x5c: an attacker key with a self-signed certificate that names the provider.
attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example.com")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(attacker.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(attacker, hashes.SHA256()))
out["x5c"] = {
    "cert": base64.b64encode(cert.public_bytes(E.DER)).decode(),
    "pkcs8": b64u(attacker.private_bytes(E.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
}

# Weak keys, each with a token it signs (the server must have ignored the key).
def rs256_input(kid):
    return seg({"alg": "RS256", "kid": kid}) + "." + b64u(job["payload"].encode())
small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
small_numbers = small.public_key().public_numbers()
signing_input = rs256_input("weak-rsa1024")
out["weak"]["rsa1024"] = {
    "jwk": {"kty": "RSA", "kid": "weak-rsa1024", "alg": "RS256", "use": "sig",
            "n": b64u(small_numbers.n.to_bytes(128, "big")), "e": b64u(small_numbers.e.to_bytes(3, "big"))},
    "token": signing_input + "." + b64u(small.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())),
}
# e = 1: the "signature" is the PKCS#1 v1.5 encoded digest itself, which anyone can compute.
big = rsa.generate_private_key(public_exponent=65537, key_size=2048)
n = big.public_key().public_numbers().n
signing_input = rs256_input("weak-e1")
digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(signing_input.encode()).digest()
em = b"\x00\x01" + b"\xff" * (256 - 3 - len(digest_info)) + b"\x00" + digest_info
out["weak"]["e1"] = {
    "jwk": {"kty": "RSA", "kid": "weak-e1", "alg": "RS256", "use": "sig", "n": b64u(n.to_bytes(256, "big")), "e": "AQ"},
    "token": signing_input + "." + b64u(em),
}
short = b"0123456789abcdef0123456789abcde"  # 31 bytes
out["weak"]["hs_short"] = {
    "jwk": {"kty": "oct", "kid": "weak-hs", "alg": "HS256", "use": "sig", "k": b64u(short)},
    "token": hs(short, "HS256", {"alg": "HS256", "kid": "weak-hs"}, job["payload"]),
}
json.dump(out, sys.stdout)
"#;

/// Runs Python with `script` and `input` on stdin; returns stdout as JSON.
pub(crate) fn run_python(args: &[&str], input: &str) -> Value {
    let out = run_with_input(
        Command::new(python()).args(args),
        input.as_bytes(),
        &format!("python {args:?}"),
    );
    serde_json::from_slice(&out).unwrap()
}

/// A shell wrapper around the binary: the server lives in a `static` (dropped never),
/// so the wrapper stops it, by its pid, once this test process is gone, then removes
/// the server's scratch folder and its own.
pub(crate) fn wrapper(dir: &TempDir) -> String {
    let script = format!(
        r#"#!/bin/sh
watched=$PPID
"{BIN}" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
while kill -0 "$watched" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
kill -TERM "$child" 2>/dev/null
wait "$child"
case "$3" in */portcullis-serve-*/portcullis.yaml) rm -rf "$(dirname "$3")" ;; esac
case "$0" in */portcullis-attacks-*/portcullis) rm -rf "$(dirname "$0")" ;; esac
"#
    );
    let path = dir.write("portcullis", &script);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

impl Fixture {
    pub(crate) fn start() -> Fixture {
        let (rsa, rsa_pkcs8) = SigningKey::generate(Algorithm::RS256).unwrap();
        let rs = Issuer {
            key: rsa,
            kid: "rs-1".into(),
            iss: ISS.into(),
        };
        let ec = Issuer::new(Algorithm::ES256, "ec-1", ISS);
        let at = Issuer::new(Algorithm::ES256, "at-1", AT_ISS);
        let mallory = Issuer::new(Algorithm::ES256, "mallory-1", ISS);
        let mallory_p384 = SigningKey::generate(Algorithm::ES384).unwrap().0;
        let job = json!({
            "rsa_jwk": rs.jwk(),
            "ec_jwk": ec.jwk(),
            "payload": claims(&[]),
            "empty_secret_kids": [
                "../../../../../../../../dev/null",
                "/dev/null",
                "' UNION SELECT '' -- ",
                "x' OR '1'='1",
            ],
        });
        let forged = run_python(&["-c", FORGE_PY], &job.to_string());
        let x5c_key = SigningKey::from_pkcs8(
            &b64::decode(forged["x5c"]["pkcs8"].as_str().unwrap().as_bytes()).unwrap(),
            Some(Algorithm::RS256),
        )
        .unwrap();
        let x5c_cert = forged["x5c"]["cert"].as_str().unwrap().to_owned();

        // The served JWKS: the good keys, and weak ones that must be ignored at import.
        let off_curve = {
            let mut jwk = ec.jwk();
            let mut y = b64::decode(jwk["y"].as_str().unwrap().as_bytes()).unwrap();
            *y.last_mut().unwrap() ^= 1;
            jwk["y"] = Value::from(b64::encode(&y));
            jwk["kid"] = Value::from("weak-offcurve");
            jwk
        };
        let weak = &forged["weak"];
        let jwks_doc = json!({"keys": [
            rs.jwk(), ec.jwk(),
            weak["rsa1024"]["jwk"], weak["e1"]["jwk"], weak["hs_short"]["jwk"], off_curve,
            small_order_ed25519_jwk(),
        ]});
        let jwks = JwksServer::start(&jwks_doc.to_string(), None);
        let attacker = JwksServer::start(&mallory.jwks(), None);

        let yaml = format!(
            r#"
providers:
  - name: corp
    issuer: {ISS}
    audiences: [{AUD}]
    jwks:
      uri: {jwks_url}
      refresh: 1h
      min_refresh: 1s
      timeout: 2s
  - name: permissive
    issuer: {ISS}
    audiences: [{AUD}]
    algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512]
    jwks:
      inline: {{"keys": [{rs_jwk}, {ec_jwk}]}}
  - name: at
    issuer: {AT_ISS}
    audiences: [{AUD}]
    typ: at+jwt
    jwks:
      inline: {at_jwks}
rules:
  - name: access-tokens
    match: {{path: "/typ/**"}}
    providers: [at]
  - name: any-algorithm
    match: {{path: "/any-alg/**"}}
    providers: [permissive]
  - name: default
    match: {{}}
    providers: [corp]
"#,
            jwks_url = jwks.url(),
            at_jwks = at.jwks(),
            rs_jwk = rs.jwk(),
            ec_jwk = ec.jwk(),
        );
        let dir = TempDir::new("attacks");
        let p = Portcullis::start(&wrapper(&dir), &yaml);
        p.wait_ready(Duration::from_secs(20));
        Fixture {
            p,
            jwks,
            attacker,
            started: Instant::now(),
            rs,
            rsa_pkcs8: rsa_pkcs8.to_vec(),
            ec,
            at,
            mallory,
            mallory_p384,
            x5c_key,
            x5c_cert,
            forged,
            _wrapper: dir,
        }
    }

    /// The provider's RSA key, to sign with another RSA algorithm.
    pub(crate) fn rsa_as(&self, alg: Algorithm) -> SigningKey {
        SigningKey::from_pkcs8(&self.rsa_pkcs8, Some(alg)).unwrap()
    }

    /// The last lines of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.p.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Nothing was fetched on the attacker's behalf: the attacker's host was never
    /// contacted, and the provider's JWKS was fetched once at start plus at most one
    /// the unknown-`kid` refetch budget since (`UNKNOWN_KID_BURST`, 10, then one per
    /// `UNKNOWN_KID_REFILL`, 3 s).
    pub(crate) fn assert_nothing_fetched(&self) {
        assert_eq!(
            self.attacker.hits(),
            0,
            "the attacker's jku/x5u host was contacted; log:\n{}",
            self.log_tail()
        );
        let allowed = 1 + 10 + self.started.elapsed().as_secs() as usize / 3;
        assert!(
            self.jwks.hits() <= allowed,
            "provider JWKS fetched {} times in {:?} (at most {allowed}): refetches are not rate-limited; log:\n{}",
            self.jwks.hits(),
            self.started.elapsed(),
            self.log_tail()
        );
    }
}

// ---------------------------------------------------------------------------------
// Token construction
// ---------------------------------------------------------------------------------

/// Marks a member to leave out in [`claims`].
pub(crate) const ABSENT: &str = "<absent>";

/// A payload's JSON text: valid claims for `corp` with members replaced, added or
/// (with [`ABSENT`]) removed. Values are raw JSON text, so any shape can be written.
pub(crate) fn claims(overrides: &[(&str, &str)]) -> String {
    let now = Issuer::now();
    let mut members: Vec<(String, String)> = vec![
        ("iss".into(), json!(ISS).to_string()),
        ("sub".into(), r#""mallory""#.into()),
        ("aud".into(), json!(AUD).to_string()),
        ("iat".into(), now.to_string()),
        ("exp".into(), (now + 3600).to_string()),
    ];
    for (name, value) in overrides {
        match members.iter_mut().find(|(n, _)| n == name) {
            Some(m) => m.1 = (*value).to_owned(),
            None => members.push(((*name).to_owned(), (*value).to_owned())),
        }
    }
    let body: Vec<String> = members
        .iter()
        .filter(|(_, v)| v != ABSENT)
        .map(|(n, v)| format!("{}:{v}", json!(n)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A header's JSON text: `alg`, `kid` when given, and `extra` raw members (`,"x":1`).
pub(crate) fn header(alg: &str, kid: Option<&str>, extra: &str) -> String {
    let kid = kid
        .map(|k| format!(",\"kid\":{}", json!(k)))
        .unwrap_or_default();
    format!("{{\"alg\":{}{kid}{extra}}}", json!(alg))
}

pub(crate) fn seg(json_text: &str) -> String {
    b64::encode(json_text.as_bytes())
}

/// `h.p.sig` with `key` signing the two segments exactly as given (not re-encoded).
pub(crate) fn sign_segments(key: &SigningKey, h: &str, p: &str) -> String {
    let input = format!("{h}.{p}");
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

/// A token whose header and payload JSON texts are signed by `key`.
pub(crate) fn signed(key: &SigningKey, header_json: &str, payload_json: &str) -> String {
    sign_segments(key, &seg(header_json), &seg(payload_json))
}

/// A token with the given raw signature bytes.
pub(crate) fn with_sig(header_json: &str, payload_json: &str, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        seg(header_json),
        seg(payload_json),
        b64::encode(sig)
    )
}

/// `corp`'s RS256 key signing a header with `extra` members over `payload`.
pub(crate) fn rs_signed(f: &Fixture, extra: &str, payload: &str) -> String {
    signed(&f.rs.key, &header("RS256", Some("rs-1"), extra), payload)
}

pub(crate) fn split3(token: &str) -> (&str, &str, &str) {
    let mut it = token.splitn(3, '.');
    (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap_or(""),
    )
}

/// The encoding of the Ed25519 identity point (order 1): as a public key it "verifies"
/// the signature R = identity, S = 0 for every message, like RSA with e = 1.
pub(crate) const ED25519_IDENTITY: [u8; 32] = {
    let mut x = [0u8; 32];
    x[0] = 1;
    x
};

pub(crate) fn small_order_ed25519_jwk() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": "weak-ed25519-identity", "use": "sig",
           "x": b64::encode(&ED25519_IDENTITY)})
}

/// Random 64-bit numbers without a crate: std's randomly keyed hasher.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

// ---------------------------------------------------------------------------------
// Cases and how they are checked
// ---------------------------------------------------------------------------------

/// Which rule a case is sent to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route {
    /// The `default` rule (provider `corp`).
    Api,
    /// The `access-tokens` rule (provider `at`, `typ: at+jwt`).
    AccessTokens,
    /// The `any-algorithm` rule (provider `permissive`: every algorithm allowed).
    AnyAlgorithm,
}

impl Route {
    pub(crate) fn http_path(self) -> &'static str {
        match self {
            Route::Api => "/verify",
            Route::AccessTokens => "/verify/typ/orders",
            Route::AnyAlgorithm => "/verify/any-alg/orders",
        }
    }

    pub(crate) fn grpc_path(self) -> &'static str {
        match self {
            Route::Api => "/orders/42",
            Route::AccessTokens => "/typ/orders",
            Route::AnyAlgorithm => "/any-alg/orders",
        }
    }
}

/// One forged (or, for controls, genuine) token and the answer it must get.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) what: String,
    pub(crate) token: String,
    pub(crate) route: Route,
    /// 200 for an allow, else the deny status.
    pub(crate) status: u16,
    /// Acceptable reason codes (one, unless a comment says why two).
    pub(crate) reasons: &'static [&'static str],
    /// Skip HTTP (a test sends it its own way).
    pub(crate) grpc_only: bool,
}

pub(crate) fn deny(
    what: impl Into<String>,
    token: String,
    reasons: &'static [&'static str],
) -> Case {
    Case {
        what: what.into(),
        token,
        route: Route::Api,
        status: 401,
        reasons,
        grpc_only: false,
    }
}

pub(crate) fn allow(what: impl Into<String>, token: String) -> Case {
    Case {
        status: 200,
        reasons: &[],
        ..deny(what, token, &[])
    }
}

impl Case {
    pub(crate) fn to(mut self, route: Route) -> Case {
        self.route = route;
        self
    }

    pub(crate) fn grpc_only(mut self) -> Case {
        self.grpc_only = true;
        self
    }
}

/// An answer from either frontend.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// gRPC only: `CheckResponse.status.code`, and the code the status calls for.
    pub(crate) grpc_code: Option<(i64, i64)>,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn reason(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
    }
}

/// Problems with one answer, or none.
pub(crate) fn judge(case: &Case, answer: &Answer, frontend: &str) -> Option<String> {
    let reason = answer.reason();
    let mut problems = Vec::new();
    if answer.status != case.status {
        problems.push(format!(
            "status {} (expected {})",
            answer.status, case.status
        ));
    }
    if let Some((code, expected)) = answer.grpc_code
        && code != expected
    {
        problems.push(format!("gRPC code {code} (expected {expected})"));
    }
    if case.status != 200 {
        if !reason.as_deref().is_some_and(|r| case.reasons.contains(&r)) {
            problems.push(format!(
                "reason {reason:?} (expected one of {:?})",
                case.reasons
            ));
        }
        if case.status == 401 {
            let www = answer.www_authenticate.as_deref().unwrap_or("");
            if !www.starts_with(r#"Bearer realm="portcullis", error="invalid_token""#) {
                problems.push(format!("WWW-Authenticate {www:?}"));
            }
        }
    }
    (!problems.is_empty()).then(|| {
        let shown: String = case.token.chars().take(160).collect();
        format!(
            "[{frontend}] {}: {} — body {:?}; token ({} bytes) {shown}…",
            case.what,
            problems.join(", "),
            answer.body,
            case.token.len()
        )
    })
}

/// `GET` on the forward-auth listener with the token, over a raw socket (so an early
/// answer to an oversized request is read, not turned into a write error).
pub(crate) fn http_verify(port: u16, path: &str, token: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: orders.example\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let www_authenticate = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.trim().to_owned());
    Answer {
        status,
        grpc_code: None,
        www_authenticate,
        body: body.to_owned(),
    }
}

pub(crate) fn grpc_answer(result: &Value) -> Answer {
    if let Some(error) = result.get("rpc_error") {
        return Answer {
            status: 0,
            grpc_code: None,
            www_authenticate: None,
            body: format!("gRPC error instead of an answer: {error}"),
        };
    }
    let status = result["http_status"].as_u64().unwrap_or(0) as u16;
    // The gRPC code must agree with the HTTP status: OK, UNAUTHENTICATED, PERMISSION_DENIED.
    let code = result["code"].as_i64().unwrap_or(-1);
    let expected_code = match status {
        200 => 0,
        401 => 16,
        _ => 7,
    };
    Answer {
        status,
        grpc_code: Some((code, expected_code)),
        www_authenticate: result["headers"]["www-authenticate"]
            .as_str()
            .map(str::to_owned),
        body: result["body"].as_str().unwrap_or_default().to_owned(),
    }
}

// ---------------------------------------------------------------------------------
// The table of one file: its cases, built once; the gRPC answers, fetched once
// ---------------------------------------------------------------------------------

pub(crate) type Builder = fn(&Fixture) -> Vec<Case>;

/// The attacks of one test file: `(test name, its cases)`. One table per binary, so
/// the caches below (one per binary too) are keyed by test name only.
pub(crate) type Attacks = &'static [(&'static str, Builder)];

pub(crate) fn all_cases(attacks: Attacks) -> &'static HashMap<&'static str, Vec<Case>> {
    static CASES: OnceLock<HashMap<&'static str, Vec<Case>>> = OnceLock::new();
    CASES.get_or_init(|| {
        let f = fixture();
        attacks
            .iter()
            .map(|(name, build)| (*name, build(f)))
            .collect()
    })
}

/// Every case of the file through Envoy ext_authz gRPC, in one Python run.
pub(crate) fn grpc_answers(attacks: Attacks) -> &'static HashMap<&'static str, Vec<Value>> {
    static ANSWERS: OnceLock<HashMap<&'static str, Vec<Value>>> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let f = fixture();
        let cases = all_cases(attacks);
        let order: Vec<&str> = attacks.iter().map(|(n, _)| *n).collect();
        let batch: Vec<Value> = order
            .iter()
            .flat_map(|name| &cases[name])
            .map(|c| json!({"token": c.token, "path": c.route.grpc_path()}))
            .collect();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/attack_grpc.py");
        let target = format!("127.0.0.1:{}", f.p.grpc);
        let results = run_python(&[script, &target], &Value::Array(batch).to_string());
        let mut results = results.as_array().unwrap().clone().into_iter();
        order
            .iter()
            .map(|name| (*name, results.by_ref().take(cases[name].len()).collect()))
            .collect()
    })
}

/// Sends every case of `attack` (a name in `attacks`) to both frontends and checks every answer.
pub(crate) fn run(attacks: Attacks, attack: &str) {
    let f = fixture();
    let cases = &all_cases(attacks)[attack];
    assert!(!cases.is_empty(), "{attack} has no cases");
    let mut problems = Vec::new();
    for case in cases.iter().filter(|c| !c.grpc_only) {
        let answer = http_verify(f.p.http, case.route.http_path(), &case.token);
        problems.extend(judge(case, &answer, "http /verify"));
    }
    let grpc = &grpc_answers(attacks)[attack];
    assert_eq!(grpc.len(), cases.len(), "gRPC answers for {attack}");
    for (case, result) in cases.iter().zip(grpc) {
        problems.extend(judge(case, &grpc_answer(result), "grpc Check"));
    }
    assert!(
        problems.is_empty(),
        "{attack}: {} of {} answers wrong:\n{}\n--- server log (tail):\n{}",
        problems.len(),
        cases.len() * 2,
        problems.join("\n"),
        f.log_tail()
    );
    f.assert_nothing_fetched();
}

pub(crate) fn genuine_cases(f: &Fixture) -> Vec<Case> {
    let at_claims = claims(&[("iss", &json!(AT_ISS).to_string())]);
    vec![
        allow(
            "RS256 from corp",
            f.rs.mint(json!({"sub": "alice", "aud": AUD})),
        ),
        allow(
            "ES256 from corp",
            f.ec.mint(json!({"sub": "bob", "aud": [AUD, "x"]})),
        ),
        allow(
            "typ at+jwt",
            signed(
                &f.at.key,
                &header("ES256", Some("at-1"), r#","typ":"at+jwt""#),
                &at_claims,
            ),
        )
        .to(Route::AccessTokens),
        allow(
            "typ application/AT+JWT (RFC 7515 §4.1.9: case-insensitive, prefix optional)",
            signed(
                &f.at.key,
                &header("ES256", Some("at-1"), r#","typ":"application/AT+JWT""#),
                &at_claims,
            ),
        )
        .to(Route::AccessTokens),
    ]
}
