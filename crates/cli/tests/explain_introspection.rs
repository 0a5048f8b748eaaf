//! `portcullis explain --config` and admin `POST /explain` on opaque tokens,
//! introspected (RFC 7662) at a real OpenID Provider (npm `oidc-provider` with
//! `introspection` and `clientCredentials`): an active token is explained as
//! allowed, a made-up one as `token_inactive`, a wrong client secret as
//! `introspection_unavailable`; the CLI and the API give the same JSON (but for
//! where the answer came from), the API reads the live introspector's cache, and
//! neither the token nor the client secret is ever shown. One OP and one
//! Portcullis serve every case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use portcullis_test_util::{OidcProvider, Portcullis, TempDir, request};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const HOST: &str = "api.example.com";
const M2M_SECRET: &str = "m2m-client-secret-0123456789abcdef";
const RS_SECRET: &str = "resource-server-secret-0123456789";
const WRONG_SECRET: &str = "not-the-secret-0123456789";

/// A client-credentials access token from the OP (opaque: no resource indicator).
fn client_credentials(op: &str) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("m2m:{M2M_SECRET}"));
    let r = request(
        "POST",
        &format!("{op}/token"),
        &[
            ("authorization", &format!("Basic {basic}")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "grant_type=client_credentials&scope=orders%3Aread",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.matches('.').count(), 0, "an opaque token: {token}");
    token
}

fn cli(config: &std::path::Path, path: &str, token: &str) -> (i32, Value, String) {
    let out = Command::new(BIN)
        .args(["explain", "--json", "--config"])
        .arg(config)
        .args(["--url", &format!("https://{HOST}{path}"), token])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn api(p: &Portcullis, path: &str, token: &str) -> Value {
    let body = json!({"method": "GET", "url": format!("https://{HOST}{path}"), "token": token});
    let r = request(
        "POST",
        &format!("http://127.0.0.1:{}/explain", p.admin),
        &[("content-type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step: {v:#}"))
}

/// The explanation without what depends on when it was asked: relative times,
/// and where the introspection answer came from (the CLI has a fresh cache).
fn timeless(mut v: Value) -> Value {
    for s in v["steps"].as_array_mut().unwrap() {
        if matches!(s["step"].as_str(), Some("exp" | "nbf" | "iat")) {
            s["detail"] = Value::Null;
        }
        if s["step"] == "introspection" {
            let detail = s["detail"].as_str().unwrap();
            s["detail"] = Value::from(detail.split("; answer ").next().unwrap());
        }
    }
    v
}

fn failed_steps(v: &Value) -> Vec<String> {
    v["steps"].as_array().unwrap()[..v["steps"].as_array().unwrap().len() - 1]
        .iter()
        .filter(|s| s["ok"] == false && s["step"] != "rule")
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn explain_introspects_opaque_tokens_in_cli_and_api_alike() {
    let dir = TempDir::new("explain-introspection");
    let op = OidcProvider::start(
        dir.path(),
        &json!([
            {
                "client_id": "m2m",
                "client_secret": M2M_SECRET,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "response_types": [],
                "scope": "orders:read",
            },
            {
                "client_id": "portcullis-rs",
                "client_secret": RS_SECRET,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_post",
            },
        ]),
    );
    let issuer = op.issuer();
    let config = format!(
        r#"
providers:
  - name: corp
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    introspection:
      endpoint: {issuer}/token/introspection
      client_id: portcullis-rs
      client_secret: {RS_SECRET}
      auth: client_secret_post
      cache_ttl: 60s
  - name: wrong
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    introspection:
      client_id: portcullis-rs
      client_secret: {WRONG_SECRET}
rules:
  - name: orders
    match: {{path: /orders/**}}
    providers: [corp]
    scopes: [orders:read]
    claims: {{client_id: [m2m]}}
  - name: wrong
    match: {{path: /wrong/**}}
    providers: [wrong]
"#
    );
    let p = Portcullis::start(BIN, &config);
    p.wait_ready(Duration::from_secs(20));
    let token = client_credentials(&issuer);
    let made_up = "made-up-opaque-token-0123456789";

    // (path, token, decision, status, reason, failed steps)
    #[expect(clippy::type_complexity, reason = "a table of cases")]
    let cases: [(&str, &str, &str, u16, Option<&str>, &[&str]); 3] = [
        ("/orders/1", &token, "allow", 200, None, &[]),
        (
            "/orders/1",
            made_up,
            "deny",
            401,
            Some("token_inactive"),
            &["active"],
        ),
        (
            "/wrong/1",
            &token,
            "deny",
            503,
            Some("introspection_unavailable"),
            &["introspection"],
        ),
    ];
    for (path, t, decision, status, reason, failed) in cases {
        let what = format!("{path} {}", reason.unwrap_or("allow"));
        let (code, from_cli, stderr) = cli(&p.config, path, t);
        assert_eq!(
            code,
            if decision == "allow" { 0 } else { 1 },
            "{what}: {stderr}"
        );
        let from_api = api(&p, path, t);
        assert_eq!(
            timeless(from_cli.clone()),
            timeless(from_api.clone()),
            "{what}: CLI and API differ"
        );
        for v in [&from_cli, &from_api] {
            assert_eq!(v["decision"], decision, "{what}: {v:#}");
            assert_eq!(v["status"], status, "{what}");
            assert_eq!(v["reason"].as_str(), reason, "{what}");
            assert_eq!(failed_steps(v), failed, "{what}: {v:#}");
            let shown = v.to_string();
            assert!(!shown.contains(t), "{what}: the token is shown");
            assert!(!shown.contains(RS_SECRET) && !shown.contains(WRONG_SECRET));
        }
        // The CLI's cache is new: its answer was asked just now.
        let asked = step(&from_cli, "introspection")["detail"].as_str().unwrap();
        assert!(
            asked.ends_with("; answer asked of the provider just now"),
            "{asked}"
        );
        // The real decision is the explained one.
        let auth = format!("Bearer {t}");
        let real = p.verify(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", HOST),
            ("x-forwarded-uri", path),
            ("authorization", &auth),
        ]);
        assert_eq!(real.status, status, "{what}: {}", real.body);
    }

    // The steps show the endpoint, the client (not its secret), `active` and each
    // check of the answer with expected and actual values.
    let allowed = api(&p, "/orders/1", &token);
    let intro = step(&allowed, "introspection")["detail"].as_str().unwrap();
    assert!(
        intro.starts_with(&format!(
            "an opaque token for provider \"corp\", introspected at {issuer}/token/introspection, client \"portcullis-rs\" by client_secret_post: active true"
        )),
        "{intro}"
    );
    // /verify asked before: the live introspector's cache answers the API.
    assert!(
        intro.ends_with("; answer from the introspection cache"),
        "{intro}"
    );
    assert_eq!(
        step(&allowed, "active")["detail"],
        "expected true, the answer says true"
    );
    assert_eq!(
        step(&allowed, "issuer")["detail"],
        format!("expected {issuer:?}, answer iss {issuer:?}")
    );
    assert!(
        step(&allowed, "exp")["detail"]
            .as_str()
            .unwrap()
            .contains("clock skew 60s"),
        "{allowed:#}"
    );
    assert_eq!(
        step(&allowed, "scopes")["ok"],
        true,
        "the rule's checks follow: {allowed:#}"
    );
    let inactive = api(&p, "/orders/1", made_up);
    assert!(
        step(&inactive, "introspection")["detail"]
            .as_str()
            .unwrap()
            .contains(": active false"),
        "{inactive:#}"
    );
    let wrong = api(&p, "/wrong/1", &token);
    let detail = step(&wrong, "introspection")["detail"].as_str().unwrap();
    assert!(
        detail.contains("(from discovery)")
            && detail.contains("refused Portcullis's client credentials (HTTP 401)"),
        "{detail}"
    );
    // Never the token in the server's log either.
    std::thread::sleep(Duration::from_millis(200));
    let log = p.log();
    assert!(!log.contains(token.as_str()), "a token in the log");
    assert!(!log.contains(RS_SECRET), "the client secret in the log");
}
