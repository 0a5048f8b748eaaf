//! `inject` rules whose token is not a JWT-SVID, through the forward-auth frontend:
//! `client_credentials` against the real npm `oidc-provider` (`.peers/node`; its
//! client credentials grant with RFC 8707 resource indicators issues JWT access
//! tokens for the audience), and `mint` with our own key. The injected token is then
//! checked by a second Portcullis (the receiving side) or by `portcullis verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_test_util::{Portcullis, Response, TempDir, free_port, peers_dir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const AUDIENCE: &str = "spiffe://example.org/backend";

/// The node process (killed on drop).
struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_oidc_provider(port: u16) -> Node {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/oidc_client_credentials.mjs");
    let peers = peers_dir();
    assert!(
        peers
            .join("node/node_modules/oidc-provider/package.json")
            .exists(),
        "npm oidc-provider missing under {}; run scripts/install-peers",
        peers.display()
    );
    let mut child = Command::new("node")
        .arg(script)
        .arg(&peers)
        .arg(port.to_string())
        .args(["egress", "egress-secret"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    // Keep reading what it prints later: with the pipe closed, its next notice would
    // kill it with EPIPE in the middle of the test.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Node(child)
}

/// `/verify` for the original request to `host`, with extra headers.
fn verify(p: &Portcullis, host: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", host),
        ("x-forwarded-uri", "/api/orders"),
    ];
    headers.extend_from_slice(extra);
    p.verify(&headers)
}

fn eventually_allowed(p: &Portcullis, host: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = verify(p, host, &[]);
        if r.status == 200 {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{host}: {} {}\n{}",
            r.status,
            r.body,
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn payload(authorization: &str) -> Value {
    let token = authorization.strip_prefix("Bearer ").unwrap();
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&portcullis_jose::b64::decode(part.as_bytes()).unwrap()).unwrap()
}

#[test]
fn client_credentials_tokens_from_oidc_provider_are_injected() {
    let port = free_port();
    let _provider = start_oidc_provider(port);
    let issuer = format!("http://127.0.0.1:{port}");
    let egress = Portcullis::start(
        BIN,
        &format!(
            r#"rules:
  - name: egress
    match: {{host: backend.example.org}}
    inject:
      audience: {AUDIENCE}
      source:
        client_credentials: {{token_url: "{issuer}/token", client_id: egress, client_secret: egress-secret, scopes: ["orders:read"]}}
  - name: wrong-secret
    match: {{host: other.example.org}}
    inject:
      audience: {AUDIENCE}
      source:
        client_credentials: {{token_url: "{issuer}/token", client_id: egress, client_secret: not-the-secret}}
"#
        ),
    );
    let r = eventually_allowed(&egress, "backend.example.org");
    let auth = r.header("authorization").unwrap().to_owned();
    let claims = payload(&auth);
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["client_id"], "egress");
    assert_eq!(claims["scope"], "orders:read");
    // Cached: the same token again.
    assert_eq!(
        verify(&egress, "backend.example.org", &[]).header("authorization"),
        Some(auth.as_str())
    );
    // Already carrying a token: 403 token_present.
    let r = verify(
        &egress,
        "backend.example.org",
        &[("authorization", "Bearer a.b.c")],
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (403, Some("token_present"))
    );
    // A client the token endpoint refuses never gets a token: denied, not allowed.
    let r = verify(&egress, "other.example.org", &[]);
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (403, Some("token_unavailable"))
    );
    assert!(r.header("authorization").is_none());

    // The receiving side accepts the token with the provider's own keys (discovery).
    let ingress = Portcullis::start(
        BIN,
        &format!(
            r#"providers:
  - name: idp
    issuer: "{issuer}"
    audiences: [{AUDIENCE}]
    typ: at+jwt
    jwks: {{discovery: "{issuer}"}}
rules:
  - name: api
    match: {{path: /api/**}}
    scopes: ["orders:read"]
"#
        ),
    );
    ingress.wait_ready(Duration::from_secs(10));
    let r = verify(&ingress, "backend.example.org", &[("authorization", &auth)]);
    assert_eq!(r.status, 200, "{}\n{}", r.body, ingress.log());
}

#[test]
fn minted_tokens_are_injected_and_verify() {
    let dir = TempDir::new("inject-mint");
    let key = dir.path().join("signer.pem");
    let out = Command::new(BIN)
        .args(["keygen", "--alg", "ES256", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let jwks = dir.write("jwks.json", &String::from_utf8(out.stdout).unwrap());
    let egress = Portcullis::start(
        BIN,
        &format!(
            r#"rules:
  - name: egress
    match: {{host: backend.example.org}}
    inject:
      audience: {AUDIENCE}
      replace: true
      source:
        mint: {{key_file: "{}", issuer: https://egress.example.org, subject: "spiffe://example.org/ns/default/sa/frontend", ttl: 2m}}
"#,
            key.display()
        ),
    );
    // replace: true overwrites what the caller sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = verify(
            &egress,
            "backend.example.org",
            &[("authorization", "Bearer a.b.c")],
        );
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(r.status, 200, "{}\n{}", r.body, egress.log());
    let auth = r.header("authorization").unwrap();
    assert_ne!(auth, "Bearer a.b.c");
    let token = auth.strip_prefix("Bearer ").unwrap();
    let out = Command::new(BIN)
        .args(["verify", "--jwks"])
        .arg(&jwks)
        .args([
            "--issuer",
            "https://egress.example.org",
            "--audience",
            AUDIENCE,
            token,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "spiffe://example.org/ns/default/sa/frontend");
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 120);
}

/// A JWT-SVID from the (test) Workload API is renewed at half its lifetime, in the
/// background: every answer carries an unexpired SVID, and a new one replaces it
/// before it expires. (SPIRE cannot be installed here: the Workload API is
/// `portcullis_test_util::WorkloadApi`, a tonic server of the official workload.proto.)
#[test]
fn workload_api_svids_are_renewed_before_expiry() {
    let dir = TempDir::new("inject-renew");
    let api = portcullis_test_util::WorkloadApi::start(
        dir.path(),
        "example.org",
        "spiffe://example.org/ns/default/sa/frontend",
        4,
    );
    let egress = Portcullis::start(
        BIN,
        &format!(
            "rules:\n  - name: egress\n    inject: {{audience: {AUDIENCE}, socket: \"{}\"}}\n",
            api.endpoint()
        ),
    );
    let first = eventually_allowed(&egress, "backend.example.org");
    let first = payload(first.header("authorization").unwrap());
    let deadline = Instant::now() + Duration::from_secs(8);
    let renewed = loop {
        let r = verify(&egress, "backend.example.org", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        let claims = payload(r.header("authorization").unwrap());
        let now = portcullis_test_util::Issuer::now();
        assert!(
            claims["exp"].as_i64().unwrap() > now,
            "an expired SVID was sent"
        );
        if claims["exp"] != first["exp"] {
            break claims;
        }
        assert!(Instant::now() < deadline, "no renewal");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(renewed["exp"].as_i64() > first["exp"].as_i64());
    assert!(api.svid_calls() >= 2);
    assert_eq!(
        renewed["sub"],
        "spiffe://example.org/ns/default/sa/frontend"
    );
    assert_eq!(renewed["aud"], serde_json::json!([AUDIENCE]));
}
