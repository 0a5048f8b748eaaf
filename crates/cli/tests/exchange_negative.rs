//! Token exchange (RFC 8693) against the real npm `oidc-provider`: its negative
//! cache, its metrics, and `verify_with`.
//!
//! ```text
//!   /verify (inbound token) ─► Portcullis (inject: token_exchange) ─► oidc-provider /token
//! ```
//!
//! oidc-provider has no token exchange grant of its own: its custom grant API
//! carries one (`tests/peers/oidc_token_exchange.mjs`) while the OP does client
//! authentication, parameters, errors and JWT access tokens itself. Subject tokens
//! are real OP access tokens (client credentials for the frontend resource). The OP
//! logs every request to its token endpoint; the test counts them:
//!
//! - a good token is exchanged once, then served from the exchange cache;
//! - a refused token is asked once, then answered from the negative cache (also
//!   under a concurrent flood), until `negative_ttl` has passed; another token is
//!   asked for itself;
//! - with `verify_with`, a token the provider refuses is denied with the provider's
//!   reason and never reaches the token endpoint; a good one is exchanged;
//! - `portcullis_token_exchange_total{rule, outcome}` counts all of it and passes
//!   `promtool check metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use portcullis_jose::{Algorithm, SigningKey};
use portcullis_test_util::{
    Issuer, Portcullis, Response, TempDir, free_port, jwt_payload, peers_dir, request,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const FRONTEND: &str = "https://frontend.example.org";
const BACKEND: &str = "https://backend.example.org";

/// The OP process (killed on drop) and its log of token endpoint requests.
struct Op {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Op {
    fn start(dir: &Path) -> Op {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/oidc_token_exchange.mjs");
        let peers = peers_dir();
        assert!(
            peers
                .join("node/node_modules/oidc-provider/package.json")
                .exists(),
            "npm oidc-provider missing under {}; run scripts/install-peers",
            peers.display()
        );
        let port = free_port();
        let log = dir.join("op.log");
        std::fs::write(&log, "").unwrap();
        let mut child = Command::new("node")
            .arg(script)
            .arg(&peers)
            .arg(port.to_string())
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("op.stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        // Keep reading what the OP prints (its notices): a closed pipe would kill it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Op { child, port, log }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Requests its token endpoint has received so far.
    fn token_requests(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| *l == "token-endpoint")
            .count()
    }

    /// A real access token of this OP (client credentials of `frontend`): a JWT for
    /// `resource`, or an opaque one without.
    fn subject_token(&self, resource: &str) -> String {
        let basic = base64::engine::general_purpose::STANDARD.encode("frontend:frontend-secret");
        let mut body = "grant_type=client_credentials&scope=orders%3Aread".to_owned();
        if !resource.is_empty() {
            body.push_str("&resource=");
            body.push_str(
                &percent_encoding::utf8_percent_encode(
                    resource,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
            );
        }
        let r = request(
            "POST",
            &format!("{}/token", self.issuer()),
            &[
                ("authorization", &format!("Basic {basic}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &body,
        );
        assert_eq!(r.status, 200, "client credentials: {}", r.body);
        r.json()["access_token"].as_str().unwrap().to_owned()
    }
}

fn config(op: &Op, closed: u16) -> String {
    let iss = op.issuer();
    format!(
        r#"providers:
  - name: op
    issuer: "{iss}"
    jwks: {{discovery: "{iss}"}}
    audiences: [{FRONTEND}]
  - name: op-opaque
    issuer: "{iss}"
    jwks: {{discovery: "{iss}"}}
    introspection: {{client_id: egress, client_secret: egress-secret}}
rules:
  - name: exchange
    match: {{host: backend.example.org}}
    inject:
      audience: {BACKEND}
      source:
        token_exchange: {{token_url: "{iss}/token", client_id: egress, client_secret: egress-secret, negative_ttl: 3s}}
  - name: checked
    match: {{host: checked.example.org}}
    inject:
      audience: {BACKEND}
      source:
        token_exchange: {{token_url: "{iss}/token", client_id: egress, client_secret: egress-secret, verify_with: op}}
  - name: checked-opaque
    match: {{host: opaque.example.org}}
    inject:
      audience: {BACKEND}
      source:
        token_exchange: {{token_url: "{iss}/token", client_id: egress, client_secret: egress-secret, verify_with: op-opaque}}
  - name: closed
    match: {{host: closed.example.org}}
    inject:
      audience: {BACKEND}
      source:
        token_exchange: {{token_url: "http://127.0.0.1:{closed}/token", client_id: egress, client_secret: egress-secret}}
"#
    )
}

/// The outbound request to `host` with `token` as its bearer token.
fn outbound(p: &Portcullis, host: &str, token: &str) -> Response {
    let bearer = format!("Bearer {token}");
    p.verify(&[
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", host),
        ("x-forwarded-uri", "/orders"),
        ("authorization", &bearer),
    ])
}

fn reason(r: &Response) -> String {
    serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The exchanged token an allowed outbound request leaves with.
fn exchanged(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

/// The value of one sample line of `/metrics`.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

fn exchanges(p: &Portcullis, rule: &str, outcome: &str) -> u64 {
    sample(
        &p.metrics(),
        &format!("portcullis_token_exchange_total{{rule=\"{rule}\",outcome=\"{outcome}\"}} "),
    )
}

/// A token that claims the OP but is signed by another key under the OP's `kid`.
fn forged(op: &Op, n: u32) -> String {
    let (key, _) = SigningKey::generate(Algorithm::ES256).unwrap();
    let now = Issuer::now();
    let claims = json!({"iss": op.issuer(), "aud": FRONTEND, "sub": format!("mallory-{n}"), "client_id": "frontend", "iat": now, "exp": now + 300});
    key.encode(
        Some("op-1"),
        &serde_json::Map::new(),
        claims.to_string().as_bytes(),
    )
    .unwrap()
}

#[test]
fn refused_tokens_are_asked_once_and_verify_with_refuses_before_the_token_endpoint() {
    let dir = TempDir::new("exchange-negative");
    let op = Op::start(dir.path());
    // Nothing listens there: an outage, not a refusal.
    let closed = free_port();
    let p = Portcullis::start(BIN, &config(&op, closed));
    p.wait_ready(Duration::from_secs(10));
    let good = op.subject_token(FRONTEND);
    let foreign = op.subject_token("https://other.example.org");
    let base = op.token_requests();

    // A good token is exchanged at the OP once, then served from the exchange cache.
    let first = exchanged(&outbound(&p, "backend.example.org", &good));
    assert_ne!(first, good);
    let claims = jwt_payload(&first);
    assert_eq!(claims["aud"], BACKEND, "{claims}");
    assert_eq!(claims["iss"], op.issuer().as_str());
    assert_eq!(claims["exchanged_sub"], "frontend", "{claims}");
    assert_eq!(op.token_requests(), base + 1, "{}", op.log());
    let again = exchanged(&outbound(&p, "backend.example.org", &good));
    assert_eq!(again, first);
    assert_eq!(op.token_requests(), base + 1);

    // A forged token is refused by the OP once; 20 more tries are answered from
    // the negative cache, the OP never asked again.
    let bad = forged(&op, 1);
    let r = outbound(&p, "backend.example.org", &bad);
    assert_eq!(
        (r.status, reason(&r)),
        (403, "token_unavailable".to_owned())
    );
    assert_eq!(op.token_requests(), base + 2, "{}", op.log());
    assert!(op.log().contains("token-exchange refused"), "{}", op.log());
    for _ in 0..20 {
        let r = outbound(&p, "backend.example.org", &bad);
        assert_eq!(
            (r.status, reason(&r)),
            (403, "token_unavailable".to_owned())
        );
        assert!(r.header("authorization").is_none());
    }
    assert_eq!(op.token_requests(), base + 2, "{}", op.log());
    assert!(
        p.log().contains("negative cache"),
        "the deny log says why: {}",
        p.log()
    );
    assert!(!p.log().contains(&bad), "the token is never logged");

    // Another bad token is its own entry: asked once.
    let bad2 = forged(&op, 2);
    assert_eq!(
        reason(&outbound(&p, "backend.example.org", &bad2)),
        "token_unavailable"
    );
    assert_eq!(op.token_requests(), base + 3);
    // A real OP token for another resource: the OP refuses it too (its audience).
    assert_eq!(
        reason(&outbound(&p, "backend.example.org", &foreign)),
        "token_unavailable"
    );
    assert_eq!(op.token_requests(), base + 4);

    // A concurrent flood of one new bad token: one request reaches the OP.
    let flood = forged(&op, 3);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| outbound(&p, "backend.example.org", &flood)))
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert_eq!(
                (r.status, reason(&r)),
                (403, "token_unavailable".to_owned())
            );
        }
    });
    assert_eq!(op.token_requests(), base + 5, "{}", op.log());

    // The good token is still served while bad ones are refused.
    assert_eq!(
        exchanged(&outbound(&p, "backend.example.org", &good)),
        first
    );

    // After negative_ttl (3s) the refused token is asked again, once.
    std::thread::sleep(Duration::from_millis(3_500));
    assert_eq!(
        reason(&outbound(&p, "backend.example.org", &bad)),
        "token_unavailable"
    );
    assert_eq!(
        reason(&outbound(&p, "backend.example.org", &bad)),
        "token_unavailable"
    );
    assert_eq!(op.token_requests(), base + 6, "{}", op.log());

    // verify_with: tokens the provider refuses are denied with its reason, and
    // the OP is not asked at all.
    for (token, status, why) in [
        (&bad, 401, "signature_invalid"),
        (&foreign, 401, "audience_mismatch"),
    ] {
        for _ in 0..3 {
            let r = outbound(&p, "checked.example.org", token);
            assert_eq!(
                (r.status, reason(&r)),
                (status, why.to_owned()),
                "{}",
                r.body
            );
        }
    }
    let r = outbound(&p, "checked.example.org", "not-a-jwt");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(op.token_requests(), base + 6, "{}", op.log());
    // ...and a good one is exchanged (its own cache: once).
    let checked = exchanged(&outbound(&p, "checked.example.org", &good));
    assert_eq!(jwt_payload(&checked)["aud"], BACKEND);
    assert_eq!(
        exchanged(&outbound(&p, "checked.example.org", &good)),
        checked
    );
    assert_eq!(op.token_requests(), base + 7, "{}", op.log());

    // verify_with an introspecting provider: an opaque token is introspected at
    // the OP first; an inactive one is denied without reaching the token
    // endpoint, an active one is exchanged.
    let opaque = op.subject_token("");
    assert!(!opaque.contains('.'), "{opaque}");
    let before = op.token_requests();
    let r = outbound(&p, "opaque.example.org", "not-an-issued-token");
    assert_eq!(
        (r.status, reason(&r)),
        (401, "token_inactive".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(op.token_requests(), before, "{}", op.log());
    let r = outbound(&p, "opaque.example.org", &opaque);
    assert_eq!(
        r.status,
        200,
        "{}\n{}",
        r.body,
        std::fs::read_to_string(dir.path().join("op.stderr")).unwrap_or_default()
    );
    let exchanged_opaque = exchanged(&r);
    assert_eq!(jwt_payload(&exchanged_opaque)["aud"], BACKEND);
    assert_eq!(op.token_requests(), before + 1, "{}", op.log());
    assert_eq!(exchanges(&p, "checked-opaque", "exchanged"), 1);

    // An unreachable token endpoint is an outage: never negatively cached, each
    // request tries again.
    for _ in 0..2 {
        let r = outbound(&p, "closed.example.org", &good);
        assert_eq!(
            (r.status, reason(&r)),
            (403, "token_unavailable".to_owned())
        );
    }
    assert_eq!(exchanges(&p, "closed", "error"), 2, "{}", p.metrics());
    assert_eq!(exchanges(&p, "closed", "refused_cached"), 0);

    // The counters say the same, and pass promtool.
    assert_eq!(exchanges(&p, "exchange", "exchanged"), 1);
    assert_eq!(exchanges(&p, "exchange", "refused"), 5);
    assert_eq!(exchanges(&p, "exchange", "error"), 0);
    let cached = exchanges(&p, "exchange", "refused_cached");
    // 20 retries, 15 of the flood, 1 after the window.
    assert_eq!(cached, 36, "{}", p.metrics());
    assert_eq!(exchanges(&p, "checked", "exchanged"), 1);
    assert_eq!(exchanges(&p, "checked", "refused"), 0);
    promtool_check(&p.metrics());
}

fn promtool_check(text: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus): run scripts/install-peers");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
