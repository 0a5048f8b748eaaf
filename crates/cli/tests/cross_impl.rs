//! Interoperability with other JOSE implementations, for every algorithm.
//!
//! Direction 1: `portcullis keygen` + `portcullis mint`, verified by PyJWT,
//! jwcrypto and npm `jose` with the JWKS that keygen printed.
//! Direction 2: PyJWT, jwcrypto and `jose` generate keys and mint tokens;
//! `portcullis verify --jwks` (with their JWKS, and with their SPKI PEM for
//! the public-key algorithms) must accept them with the same claims, and
//! reject their wrong-audience and expired tokens with the right reason code.
//! Also: `portcullis jwk` agrees with jwcrypto's RFC 7638 thumbprint.
//!
//! The peers are installed by `scripts/install-peers` into `$PORTCULLIS_PEERS`
//! (default `<workspace>/.peers`); the helper scripts are in `tests/peers/`.
//! Each peer process is started once per test with a JSON batch of jobs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

const ALGS: [&str; 13] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512",
];
const AUDIENCE: &str = "portcullis-api";
const INSTALL_HINT: &str = "run scripts/install-peers (tests find the peers through PORTCULLIS_PEERS, default <workspace>/.peers)";

// ---------------------------------------------------------------- plumbing

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    #[expect(clippy::disallowed_methods, reason = "tests mint with the wall clock")]
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "portcullis-cross-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.file(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Collects every mismatch so one run reports all of them, not just the first.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn assert_none(self, test: &str) {
        assert!(
            self.0.is_empty(),
            "{test}: {} failure(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
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

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf
}

/// The payload of a compact JWS, as JSON (no verification).
fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a compact JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---------------------------------------------------------------- portcullis

fn portcullis<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running portcullis")
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "`portcullis {}` exited {:?}; stdout: {}; stderr: {}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Runs portcullis, asserting exit 0; returns stdout.
fn portcullis_ok(args: &[&str]) -> String {
    let out = portcullis(args);
    assert!(out.status.success(), "{}", describe(args, &out));
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------- peers

#[derive(Clone, Copy, Debug)]
enum Peer {
    PyJwt,
    JwCrypto,
    Jose,
}

impl Peer {
    const fn name(self) -> &'static str {
        match self {
            Self::PyJwt => "pyjwt",
            Self::JwCrypto => "jwcrypto",
            Self::Jose => "jose",
        }
    }

    fn issuer(self) -> String {
        format!("https://{}.peer.example", self.name())
    }

    /// The command running this peer's helper script, after checking it is installed.
    fn command(self) -> Command {
        let peers = peers_dir();
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
        match self {
            Self::PyJwt | Self::JwCrypto => {
                let python = peers.join("venv/bin/python");
                assert!(
                    python.exists(),
                    "peer {}: Python venv not found at {}; {INSTALL_HINT}",
                    self.name(),
                    python.display()
                );
                let mut cmd = Command::new(python);
                cmd.arg(scripts.join(format!("{}_tool.py", self.name())));
                cmd
            }
            Self::Jose => {
                let jose = peers.join("node/node_modules/jose/package.json");
                assert!(
                    jose.exists(),
                    "peer jose: npm package not found at {}; {INSTALL_HINT}",
                    jose.display()
                );
                let mut cmd = Command::new("node");
                cmd.arg(scripts.join("jose_tool.mjs")).arg(&peers);
                cmd
            }
        }
    }

    /// Runs a batch of jobs in one peer process; one result per job.
    fn run(self, jobs: &[Value]) -> Vec<Value> {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("peer {}: cannot start: {e}; {INSTALL_HINT}", self.name()));
        let input = serde_json::to_vec(jobs).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "peer {} failed ({:?}); if a module is missing, {INSTALL_HINT}\nstderr:\n{}",
            self.name(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "peer {}: stdout is not a JSON list ({e}): {}",
                self.name(),
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(
            results.len(),
            jobs.len(),
            "peer {}: one result per job",
            self.name()
        );
        results
    }
}

fn peers_dir() -> PathBuf {
    std::env::var_os("PORTCULLIS_PEERS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.peers"),
        PathBuf::from,
    )
}

/// The non-registered claims every test token carries (nested, unicode, numbers).
fn custom_claims() -> [(&'static str, Value); 3] {
    [
        ("groups", json!(["admins", "ops"])),
        (
            "ctx",
            json!({"tenant": "acme", "level": 3, "ratio": 0.25, "beta": true, "none": null}),
        ),
        ("name", json!("Zoë ✓ 日本")),
    ]
}

// ---------------------------------------------------------------- direction 1

const PORTCULLIS_ISSUER: &str = "https://portcullis.example";

/// One verify job per algorithm (a `portcullis keygen` key and a `portcullis
/// mint` token), made once, in parallel, and shared by the direction-1 tests.
fn portcullis_tokens() -> &'static [Value] {
    static JOBS: OnceLock<Vec<Value>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let dir = TempDir::new("portcullis-tokens");
        std::thread::scope(|s| {
            let handles: Vec<_> = ALGS
                .iter()
                .map(|alg| s.spawn(|| portcullis_token(&dir, alg)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    })
}

fn portcullis_token(dir: &TempDir, alg: &str) -> Value {
    let key = dir.file(&format!("{alg}.key"));
    let key_arg = key.to_str().unwrap();
    let jwks: Value = if alg.starts_with("HS") {
        // keygen refuses HS*: a secret is just random bytes.
        let secret = random_bytes(64);
        std::fs::write(&key, &secret).unwrap();
        json!({"keys": [{"kty": "oct", "k": b64url(&secret), "alg": alg, "use": "sig"}]})
    } else {
        serde_json::from_str(&portcullis_ok(&["keygen", "--alg", alg, "--out", key_arg])).unwrap()
    };
    let sub = format!("alice-{alg}");
    let mut args = vec![
        "mint",
        "--key",
        key_arg,
        "--alg",
        alg,
        "--iss",
        PORTCULLIS_ISSUER,
        "--sub",
        &sub,
        "--aud",
        AUDIENCE,
        "--ttl",
        "10m",
    ];
    let claim_args: Vec<String> = custom_claims()
        .iter()
        .map(|(name, value)| match value {
            Value::String(s) => format!("{name}={s}"), // not JSON: taken as a string
            v => format!("{name}={v}"),
        })
        .collect();
    for c in &claim_args {
        args.extend(["--claim", c.as_str()]);
    }
    let token = portcullis_ok(&args).trim().to_owned();
    let claims = payload_of(&token);
    // What we asked mint for is what it put in the token.
    assert_eq!(claims["iss"], PORTCULLIS_ISSUER, "{alg}: {claims}");
    assert_eq!(claims["sub"], sub.as_str(), "{alg}: {claims}");
    assert_eq!(claims["aud"], AUDIENCE, "{alg}: {claims}");
    for (name, value) in custom_claims() {
        assert_eq!(claims[name], value, "{alg}: claim {name}");
    }
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 600, "{alg}: --ttl 10m");
    json!({
        "op": "verify", "token": token, "jwks": jwks, "alg": alg,
        "iss": PORTCULLIS_ISSUER, "aud": AUDIENCE,
    })
}

/// The shared portcullis tokens, verified by `peer` with keygen's JWKS.
fn portcullis_tokens_verify_in(peer: Peer) {
    let jobs = portcullis_tokens();
    let results = peer.run(jobs);
    let mut failures = Failures::default();
    for ((alg, result), job) in ALGS.iter().zip(&results).zip(jobs) {
        if result["ok"] != true {
            failures.0.push(format!(
                "{alg}: {} rejects a portcullis token: {}\n    token: {}\n    jwks: {}",
                peer.name(),
                result["error"],
                job["token"],
                job["jwks"]
            ));
            continue;
        }
        let claims = payload_of(job["token"].as_str().unwrap());
        failures.check(result["claims"] == claims, || {
            format!(
                "{alg}: {} returned claims {} != minted {claims}",
                peer.name(),
                result["claims"]
            )
        });
        failures.check(result["header"]["alg"] == *alg, || {
            format!("{alg}: header {}", result["header"])
        });
    }
    failures.assert_none(&format!("portcullis -> {}", peer.name()));
}

#[test]
fn pyjwt_verifies_portcullis_tokens() {
    portcullis_tokens_verify_in(Peer::PyJwt);
}

#[test]
fn jwcrypto_verifies_portcullis_tokens() {
    portcullis_tokens_verify_in(Peer::JwCrypto);
}

#[test]
fn jose_verifies_portcullis_tokens() {
    portcullis_tokens_verify_in(Peer::Jose);
}

// ---------------------------------------------------------------- direction 2

/// `peer` generates a key per algorithm and mints a valid, a wrong-audience and
/// an expired token; `portcullis verify` judges them with the peer's JWKS and,
/// for public-key algorithms, its SPKI PEM.
fn peer_tokens_verify_in_portcullis(peer: Peer) {
    let dir = TempDir::new(&format!("from-{}", peer.name()));
    let issuer = peer.issuer();
    let now = now();
    let payload = |i: usize, alg: &str, aud: Value, iat: i64, exp: i64| {
        let mut p = json!({
            "iss": issuer, "sub": format!("alice-{alg}"), "aud": aud,
            "iat": iat, "exp": exp, "jti": format!("{}-{alg}-{i}", peer.name()),
        });
        for (name, value) in custom_claims() {
            p[name] = value;
        }
        p
    };
    let mut jobs = Vec::new();
    let mut payloads = Vec::new();
    for (i, alg) in ALGS.iter().enumerate() {
        // Every other algorithm gets an audience array holding ours.
        let aud = if i % 2 == 0 {
            json!(AUDIENCE)
        } else {
            json!(["another-api", AUDIENCE])
        };
        let set = vec![
            payload(0, alg, aud, now, now + 600),
            payload(1, alg, json!("another-api"), now, now + 600),
            payload(2, alg, json!(AUDIENCE), now - 7200, now - 3600),
        ];
        jobs.push(json!({
            "op": "mint", "alg": alg, "kid": format!("{}-{alg}", peer.name()), "payloads": set,
        }));
        payloads.push(set);
    }
    let results = peer.run(&jobs);
    let mut failures = Failures::default();
    for ((alg, result), payloads) in ALGS.iter().zip(&results).zip(&payloads) {
        let mut sources = vec![(
            "jwks",
            dir.write(&format!("{alg}.jwks.json"), result["jwks"].to_string()),
        )];
        if let Some(pem) = result["spki_pem"].as_str() {
            sources.push(("pem", dir.write(&format!("{alg}.pub.pem"), pem)));
            // jwcrypto and jose use the RFC 7638 thumbprint as kid: portcullis must agree.
            if !matches!(peer, Peer::PyJwt) {
                let path = sources[1].1.to_str().unwrap();
                let jwk: Value = serde_json::from_str(&portcullis_ok(&["jwk", path])).unwrap();
                failures.check(jwk["kid"] == result["jwks"]["keys"][0]["kid"], || {
                    format!(
                        "{alg}: `portcullis jwk` of {}'s SPKI PEM gives kid {} but {} computes {}",
                        peer.name(),
                        jwk["kid"],
                        peer.name(),
                        result["jwks"]["keys"][0]["kid"]
                    )
                });
            }
        }
        let tokens: Vec<&str> = result["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let cases = [
            (tokens[0], None, &payloads[0]),
            (tokens[1], Some("audience_mismatch"), &payloads[1]),
            (tokens[2], Some("token_expired"), &payloads[2]),
        ];
        for (source, path) in &sources {
            let path = path.to_str().unwrap();
            for (token, reason, claims) in cases {
                let args = [
                    "verify",
                    "--jwks",
                    path,
                    "--issuer",
                    &issuer,
                    "--audience",
                    AUDIENCE,
                    token,
                ];
                let out = portcullis(args);
                let what = || {
                    format!(
                        "{alg} via {source}: {} token ({}): {}\n    jwks: {}",
                        peer.name(),
                        reason.unwrap_or("valid"),
                        describe(&args, &out),
                        result["jwks"]
                    )
                };
                match reason {
                    None => {
                        if !out.status.success() {
                            failures.0.push(what());
                            continue;
                        }
                        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
                        failures.check(printed == *claims, || {
                            format!("{} — printed claims differ from minted {claims}", what())
                        });
                    }
                    Some(reason) => {
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        failures.check(
                            out.status.code() == Some(1)
                                && stderr.starts_with(&format!("{reason}: ")),
                            what,
                        );
                    }
                }
            }
        }
    }
    failures.assert_none(&format!("{} -> portcullis", peer.name()));
}

#[test]
fn portcullis_verifies_pyjwt_tokens() {
    peer_tokens_verify_in_portcullis(Peer::PyJwt);
}

#[test]
fn portcullis_verifies_jwcrypto_tokens() {
    peer_tokens_verify_in_portcullis(Peer::JwCrypto);
}

#[test]
fn portcullis_verifies_jose_tokens() {
    peer_tokens_verify_in_portcullis(Peer::Jose);
}

// ---------------------------------------------------------------- thumbprints

/// `portcullis jwk` (of the private PEM and of jwcrypto's SPKI export) and the
/// JWKS printed by keygen carry jwcrypto's RFC 7638 thumbprint as kid and the
/// same public members.
#[test]
fn jwk_thumbprints_match_jwcrypto() {
    let dir = TempDir::new("thumbprint");
    let algs = ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"];
    let mut keygen_jwks = Vec::new();
    let mut jobs = Vec::new();
    for alg in algs {
        let key = dir.file(&format!("{alg}.pem"));
        let printed = portcullis_ok(&["keygen", "--alg", alg, "--out", key.to_str().unwrap()]);
        keygen_jwks.push(serde_json::from_str::<Value>(&printed).unwrap());
        jobs.push(json!({"op": "thumbprint", "pem": std::fs::read_to_string(&key).unwrap()}));
    }
    let results = Peer::JwCrypto.run(&jobs);
    let mut failures = Failures::default();
    for ((alg, result), keygen) in algs.iter().zip(&results).zip(&keygen_jwks) {
        let thumbprint = &result["thumbprint"];
        let expected = result["public_jwk"].as_object().unwrap();
        failures.check(keygen["keys"][0]["kid"] == *thumbprint, || {
            format!(
                "{alg}: keygen printed kid {} != jwcrypto {thumbprint}",
                keygen["keys"][0]["kid"]
            )
        });
        let public = dir.write(
            &format!("{alg}.pub.pem"),
            result["spki_pem"].as_str().unwrap(),
        );
        for (what, pem) in [
            ("private PEM", dir.file(&format!("{alg}.pem"))),
            ("SPKI PEM", public),
        ] {
            let jwk: Value =
                serde_json::from_str(&portcullis_ok(&["jwk", pem.to_str().unwrap()])).unwrap();
            failures.check(jwk["kid"] == *thumbprint, || {
                format!(
                    "{alg}: `portcullis jwk` ({what}) kid {} != jwcrypto thumbprint {thumbprint}",
                    jwk["kid"]
                )
            });
            for (member, value) in expected {
                failures.check(jwk[member] == *value, || {
                    format!(
                        "{alg}: `portcullis jwk` ({what}) {member} = {} but jwcrypto says {value}",
                        jwk[member]
                    )
                });
            }
        }
    }
    failures.assert_none("jwk thumbprints");
}

// ---------------------------------------------------------------- RFC 9864 names

/// RFC 9864's fully specified `Ed25519` (issue 10), both directions, with the peers
/// that implement the name: jwcrypto and npm `jose` (PyJWT 2.15 knows only `EdDSA`).
/// `portcullis keygen/mint --alg Ed25519` tokens verify in each peer, and each
/// peer's `Ed25519` tokens verify in `portcullis verify` with its JWKS (the JWK's
/// `alg` is `Ed25519`), with its SPKI PEM, and with `--alg EdDSA` (one allows the other).
#[test]
fn ed25519_alg_name_interoperates_with_jwcrypto_and_jose() {
    let dir = TempDir::new("ed25519-name");
    let key = dir.file("ed25519.pem");
    let key_arg = key.to_str().unwrap();
    let jwks: Value = serde_json::from_str(&portcullis_ok(&[
        "keygen", "--alg", "Ed25519", "--out", key_arg,
    ]))
    .unwrap();
    let token = portcullis_ok(&[
        "mint",
        "--key",
        key_arg,
        "--alg",
        "Ed25519",
        "--iss",
        PORTCULLIS_ISSUER,
        "--sub",
        "alice",
        "--aud",
        AUDIENCE,
    ])
    .trim()
    .to_owned();
    let mut failures = Failures::default();
    for peer in [Peer::JwCrypto, Peer::Jose] {
        let job = json!({
            "op": "verify", "token": token, "jwks": jwks, "alg": "Ed25519",
            "iss": PORTCULLIS_ISSUER, "aud": AUDIENCE,
        });
        let result = &peer.run(&[job])[0];
        failures.check(
            result["ok"] == true && result["header"]["alg"] == "Ed25519",
            || {
                format!(
                    "{} rejects a portcullis Ed25519 token: {result}",
                    peer.name()
                )
            },
        );

        let issuer = peer.issuer();
        let now = now();
        let payload =
            json!({"iss": issuer, "sub": "bob", "aud": AUDIENCE, "iat": now, "exp": now + 600});
        let minted =
            &peer.run(&[json!({"op": "mint", "alg": "Ed25519", "payloads": [payload]})])[0];
        let theirs = minted["tokens"][0].as_str().unwrap();
        failures.check(payload_of(theirs)["sub"] == "bob", || {
            format!("{}: minted {theirs}", peer.name())
        });
        let their_jwks = dir.write(
            &format!("{}.jwks.json", peer.name()),
            minted["jwks"].to_string(),
        );
        let their_pem = dir.write(
            &format!("{}.pub.pem", peer.name()),
            minted["spki_pem"].as_str().unwrap(),
        );
        for (source, path, alg) in [
            ("jwks", &their_jwks, None),
            ("jwks", &their_jwks, Some("EdDSA")),
            ("pem", &their_pem, Some("Ed25519")),
        ] {
            let path = path.to_str().unwrap();
            let mut args = vec![
                "verify",
                "--jwks",
                path,
                "--issuer",
                &issuer,
                "--audience",
                AUDIENCE,
            ];
            if let Some(alg) = alg {
                args.extend(["--alg", alg]);
            }
            args.push(theirs);
            let out = portcullis(&args);
            failures.check(out.status.success(), || {
                format!(
                    "{}'s Ed25519 token via {source} (--alg {alg:?}): {}",
                    peer.name(),
                    describe(&args, &out)
                )
            });
        }
    }
    failures.assert_none("Ed25519 name");
}
