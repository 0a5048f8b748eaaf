//! `portcullis verify --config` and `portcullis explain --config` apply the JWT-SVID
//! rules of a `spiffe` provider exactly as a running server does: a good JWT-SVID
//! verifies, and every rule it can break (asymmetric algorithms only, `typ`
//! JWT/JOSE when present, `sub` a SPIFFE ID of the trust domain, `aud` and `exp`
//! required, plus the ordinary signature, key and time checks) is refused by both
//! commands with the reason code `/verify` answers.
//!
//! The bundle comes from the SPIFFE Workload API in one config and from a bundle
//! file in the other. SPIRE itself cannot be installed here, so the SPIRE Agent is
//! stood in for by `portcullis_test_util::WorkloadApi`, a tonic server of the
//! official SPIFFE `workload.proto` on a Unix socket. The JWT-SVIDs are signed with
//! the trust domain's key by our signer (headers and claims chosen per case).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use portcullis_jose::{Algorithm, SigningKey};
use portcullis_test_util::{Issuer, Portcullis, TempDir, WorkloadApi};
use serde_json::{Map, Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const FRONTEND: &str = "spiffe://example.org/ns/default/sa/frontend";
const BACKEND_AUD: &str = "spiffe://example.org/backend";

/// Bundle from the Workload API; `audiences` set (a missing `aud` is then an
/// audience mismatch, as for any provider).
fn workload_api_config(endpoint: &str) -> String {
    format!(
        r#"providers:
  - name: mesh
    spiffe:
      trust_domain: example.org
      bundle: {{workload_api: "{endpoint}"}}
    audiences: [{BACKEND_AUD}]
rules:
  - name: api
    match: {{path: /api/**}}
    providers: [mesh]
"#
    )
}

/// Bundle from a file; no `audiences` (the JWT-SVID rule itself requires `aud`).
fn bundle_file_config(bundle: &Path) -> String {
    format!(
        r#"providers:
  - name: mesh-file
    spiffe:
      trust_domain: example.org
      bundle: {{file: "{}"}}
rules:
  - name: api
    match: {{path: /api/**}}
    providers: [mesh-file]
"#,
        bundle.display()
    )
}

/// A token signed by `key` under `kid`, with this header (beside `alg`/`kid`) and payload.
fn sign(key: &SigningKey, kid: &str, header: &Value, claims: &Value) -> String {
    let header: Map<String, Value> = header.as_object().cloned().unwrap_or_default();
    key.encode(Some(kid), &header, claims.to_string().as_bytes())
        .unwrap()
}

/// The claims of a good JWT-SVID for `sub`.
fn claims(sub: &str) -> Value {
    let now = Issuer::now();
    json!({"sub": sub, "aud": [BACKEND_AUD], "iat": now, "exp": now + 300})
}

fn without(mut v: Value, name: &str) -> Value {
    v.as_object_mut().unwrap().remove(name);
    v
}

fn with(mut v: Value, name: &str, value: Value) -> Value {
    v[name] = value;
    v
}

/// What one of the three judges said: `None` for allow, else the reason code.
type Verdict = Option<String>;

/// `portcullis verify --config`: exit 0 with the claims, or exit 1 with the reason
/// code first on stderr.
fn verify_cli(config: &Path, token: &str) -> (Verdict, String) {
    let out = Command::new(BIN)
        .args(["verify", "--config"])
        .arg(config)
        .arg(token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => (None, stdout),
        Some(1) => {
            let line = stderr.trim_start_matches("portcullis: ");
            let code = line.split(':').next().unwrap().trim().to_owned();
            (Some(code), stderr)
        }
        other => panic!("verify exited {other:?}: {stderr}"),
    }
}

/// `portcullis explain --config --json` on `/api/orders` with the token.
fn explain_cli(config: &Path, token: &str) -> (Verdict, Value) {
    let out = Command::new(BIN)
        .args([
            "explain",
            "--json",
            "--url",
            "https://backend.example.org/api/orders",
            "--config",
        ])
        .arg(config)
        .arg(token)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "explain printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    match (out.status.code(), v["decision"].as_str()) {
        (Some(0), Some("allow")) => (None, v),
        (Some(1), Some("deny")) => (Some(v["reason"].as_str().unwrap().to_owned()), v),
        other => panic!("explain: {other:?}: {v}"),
    }
}

/// `GET /verify` on the running server.
fn verify_server(p: &Portcullis, token: &str) -> (Verdict, u16) {
    let bearer = format!("Bearer {token}");
    let r = p.verify(&[
        ("x-forwarded-host", "backend.example.org"),
        ("x-forwarded-uri", "/api/orders"),
        ("x-forwarded-method", "GET"),
        ("authorization", &bearer),
    ]);
    if r.status == 200 {
        return (None, 200);
    }
    let reason = r.json()["reason"].as_str().unwrap_or_default().to_owned();
    (Some(reason), r.status)
}

#[test]
fn verify_and_explain_apply_the_jwt_svid_rules_as_the_server_does() {
    let dir = TempDir::new("spiffe-verify");
    let api = WorkloadApi::start(dir.path(), "example.org", FRONTEND, 300);
    let bundle = dir.write("bundle.json", &api.jwks());
    let from_api = dir.write("api.yaml", &workload_api_config(&api.endpoint()));
    let from_file = dir.write("file.yaml", &bundle_file_config(&bundle));
    let server_api = Portcullis::start(BIN, &workload_api_config(&api.endpoint()));
    let server_file = Portcullis::start(BIN, &bundle_file_config(&bundle));
    server_api.wait_ready(Duration::from_secs(10));
    server_file.wait_ready(Duration::from_secs(10));

    let (pem, kid) = api.current_key_pem();
    let td_key = SigningKey::from_pem(&pem, Some(Algorithm::ES256)).unwrap();
    let (other_key, _) = SigningKey::generate(Algorithm::ES256).unwrap();
    let (rsa_key, _) = SigningKey::generate(Algorithm::RS256).unwrap();
    let hmac = SigningKey::from_secret(&[7u8; 48], Algorithm::HS256).unwrap();
    let jwt = json!({"typ": "JWT"});
    let good = claims(FRONTEND);
    let now = Issuer::now();
    // No signature at all: `alg: none`.
    let unsigned = format!(
        "{}.{}.",
        portcullis_jose::b64::encode(br#"{"alg":"none","typ":"JWT"}"#),
        portcullis_jose::b64::encode(good.to_string().as_bytes())
    );

    // (case, token, reason with the Workload API config (audiences set),
    //  reason with the bundle file config (no audiences)); None = allowed.
    let cases: Vec<(&str, String, Option<&str>, Option<&str>)> = vec![
        ("good", sign(&td_key, &kid, &jwt, &good), None, None),
        (
            "typ JOSE",
            sign(&td_key, &kid, &json!({"typ": "JOSE"}), &good),
            None,
            None,
        ),
        ("no typ", sign(&td_key, &kid, &json!({}), &good), None, None),
        (
            "typ at+jwt",
            sign(&td_key, &kid, &json!({"typ": "at+jwt"}), &good),
            Some("token_malformed"),
            Some("token_malformed"),
        ),
        (
            "no aud",
            sign(&td_key, &kid, &jwt, &without(good.clone(), "aud")),
            Some("audience_mismatch"),
            Some("token_malformed"),
        ),
        (
            "empty aud",
            sign(&td_key, &kid, &jwt, &with(good.clone(), "aud", json!([]))),
            Some("audience_mismatch"),
            Some("token_malformed"),
        ),
        (
            "no exp",
            sign(&td_key, &kid, &jwt, &without(good.clone(), "exp")),
            Some("token_malformed"),
            Some("token_malformed"),
        ),
        (
            "expired",
            sign(
                &td_key,
                &kid,
                &jwt,
                &with(good.clone(), "exp", json!(now - 600)),
            ),
            Some("token_expired"),
            Some("token_expired"),
        ),
        (
            "no sub",
            sign(&td_key, &kid, &jwt, &without(good.clone(), "sub")),
            Some("token_malformed"),
            Some("token_malformed"),
        ),
        (
            "sub not a SPIFFE ID",
            sign(
                &td_key,
                &kid,
                &jwt,
                &with(good.clone(), "sub", json!("alice")),
            ),
            Some("token_malformed"),
            Some("token_malformed"),
        ),
        (
            "sub with an upper-case trust domain",
            sign(
                &td_key,
                &kid,
                &jwt,
                &with(
                    good.clone(),
                    "sub",
                    json!("spiffe://Example.org/ns/default/sa/frontend"),
                ),
            ),
            Some("token_malformed"),
            Some("token_malformed"),
        ),
        (
            "sub of another trust domain",
            sign(
                &td_key,
                &kid,
                &jwt,
                &claims("spiffe://other.org/ns/default/sa/frontend"),
            ),
            Some("issuer_mismatch"),
            Some("issuer_mismatch"),
        ),
        (
            "HS256 under the trust domain's kid",
            sign(&hmac, &kid, &jwt, &good),
            Some("algorithm_not_allowed"),
            Some("algorithm_not_allowed"),
        ),
        (
            // No RSA key has that kid: the bundle's key is EC.
            "RS256 under the trust domain's kid",
            sign(&rsa_key, &kid, &jwt, &good),
            Some("key_not_found"),
            Some("key_not_found"),
        ),
        (
            "alg none",
            unsigned,
            Some("algorithm_not_allowed"),
            Some("algorithm_not_allowed"),
        ),
        (
            "another key under the trust domain's kid",
            sign(&other_key, &kid, &jwt, &good),
            Some("signature_invalid"),
            Some("signature_invalid"),
        ),
        (
            "an unknown kid",
            sign(&other_key, "not-in-the-bundle", &jwt, &good),
            Some("key_not_found"),
            Some("key_not_found"),
        ),
    ];

    for (case, token, want_api, want_file) in &cases {
        for (what, config, server, want) in [
            ("workload API", &from_api, &server_api, want_api),
            ("bundle file", &from_file, &server_file, want_file),
        ] {
            let want = want.map(str::to_owned);
            let (server_says, status) = verify_server(server, token);
            assert_eq!(server_says, want, "{case} ({what}): /verify {status}");
            let (cli_says, out) = verify_cli(config, token);
            assert_eq!(cli_says, want, "{case} ({what}): verify --config: {out}");
            let (explained, v) = explain_cli(config, token);
            assert_eq!(explained, want, "{case} ({what}): explain --config: {v}");
            match &want {
                None => {
                    let claims: Value = serde_json::from_str(&out).unwrap();
                    assert_eq!(claims["sub"], FRONTEND, "{case}: {out}");
                    assert_eq!(v["status"], 200, "{case}: {v}");
                    assert_eq!(status, 200);
                }
                Some(_) => {
                    // Invalid tokens are 401 on the server and in explain.
                    assert_eq!(status, 401, "{case} ({what})");
                    assert_eq!(v["status"], 401, "{case} ({what}): {v}");
                    assert!(out.contains("(provider mesh"), "{case}: {out}");
                }
            }
        }
    }

    // explain names the broken JWT-SVID rule as its own step.
    let (_, v) = explain_cli(
        &from_api,
        &sign(&td_key, &kid, &json!({"typ": "at+jwt"}), &good),
    );
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "jwt_svid")
        .unwrap_or_else(|| panic!("no jwt_svid step: {v}"));
    assert_eq!(step["ok"], false);
    assert!(
        step["detail"].as_str().unwrap().contains("JWT or JOSE"),
        "{step}"
    );
    let (_, out) = verify_cli(
        &from_file,
        &sign(&td_key, &kid, &jwt, &claims("spiffe://other.org/x")),
    );
    assert!(
        out.contains("trust domain \"other.org\", not \"example.org\""),
        "{out}"
    );
}
