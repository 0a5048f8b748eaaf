//! `portcullis import --from ambassador` on an Edge Stack JWT `Filter` + `FilterPolicy`
//! written after its docs (`crates/import/tests/fixtures/ambassador.yaml`), then END TO
//! END: the imported config (its `jwksURI` pointed at a local JWKS server) behind the
//! real Envoy in HTTP ext_authz mode (`examples/envoy/http.yaml`; Edge Stack is Envoy
//! with an external auth service too), with tokens Edge Stack would accept (200) or
//! refuse (401/403).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;
#[path = "import_common.rs"]
mod import_common;

use std::time::Duration;

use envoy_common::Envoy;
use import_common::{BIN, Case, fixture, import, run_cases};
use portcullis_jose::Algorithm;
use portcullis_test_util::{EchoUpstream, Issuer, JwksServer, Portcullis, TempDir};
use serde_json::json;

const ISSUER: &str = "https://getambassador-demo.auth0.com/";
const AUDIENCE: &str = "https://api.example.com";
const JWKS: &str = "https://getambassador-demo.auth0.com/.well-known/jwks.json";

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn imports_edge_stack_filter_and_policy() {
    let out = import(&[
        "--from",
        "ambassador",
        fixture("ambassador.yaml").to_str().unwrap(),
    ]);
    let c = &out.config;
    for want in [
        &format!("issuer: {ISSUER}"),
        "- RS256",
        "clock_skew: 0s",
        "header: x-user",
        "- /public/**",
        "allow: anonymous",
        "- orders:read",
        "x-rule: jwt",
    ] {
        assert!(c.contains(want), "`{want}` missing:\n{c}");
    }
    assert!(!c.contains("- none"), "{c}");
    out.assert_warns(&["validAlgorithms: none refused"]);
    out.assert_warns(&["X-Token-String"]);
    // requireExpiresAt/requireAudience/requireIssuer are all true: no warning about them.
    assert!(!out.warns(&["requireExpiresAt"]), "{:?}", out.warnings);

    // The defaults (nothing required) are looser than Portcullis: each one said.
    let dir = TempDir::new("import-ambassador-defaults");
    let text = std::fs::read_to_string(fixture("ambassador.yaml"))
        .unwrap()
        .replace("    requireAudience: true\n", "")
        .replace("    requireExpiresAt: true\n", "")
        .replace("    requireIssuer: true\n", "    leewayForExpiresAt: 30s\n");
    let file = dir.write("filter.yaml", &text);
    let out = import(&["--from", "ambassador", file.to_str().unwrap()]);
    out.assert_warns(&["requireExpiresAt", "exp"]);
    out.assert_warns(&["requireAudience", "aud"]);
    out.assert_warns(&["requireIssuer", "iss"]);
    assert!(out.config.contains("clock_skew: 30s"), "{}", out.config);
}

#[test]
fn imported_edge_stack_config_behind_envoy_http() {
    let out = import(&[
        "--from",
        "ambassador",
        fixture("ambassador.yaml").to_str().unwrap(),
    ]);
    let issuer = Issuer::new(Algorithm::RS256, "edge", ISSUER);
    let jwks = JwksServer::start(&issuer.jwks(), None);
    let config = out.replaced(JWKS, &jwks.url());
    let portcullis = Portcullis::start(BIN, &config);
    portcullis.wait_ready(Duration::from_secs(10));
    let upstream = EchoUpstream::start();
    let envoy = Envoy::start(
        "http.yaml",
        &[
            ("__PORTCULLIS_HTTP_PORT__", portcullis.http),
            ("__UPSTREAM_PORT__", upstream.port),
        ],
    );

    let now = Issuer::now();
    let token = |extra: serde_json::Value| {
        let mut c = json!({"sub": "alice", "aud": AUDIENCE});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        issuer.mint(c)
    };
    let valid = token(json!({}));
    let reader = token(json!({"scope": "orders:read profile"}));
    let reader_array = token(json!({"scope": ["orders:read"]}));
    let wrong_aud = token(json!({"aud": "https://other.example.com"}));
    let wrong_iss = token(json!({"iss": "https://evil.example.com/"}));
    let late = token(json!({"iat": now - 600, "exp": now - 10}));
    let no_exp = {
        let c = json!({"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "iat": now});
        issuer
            .key
            .encode(
                Some(&issuer.kid),
                &Default::default(),
                c.to_string().as_bytes(),
            )
            .unwrap()
    };
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(
            json!({"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 600})
                .to_string()
                .as_bytes()
        )
    );
    let cases = vec![
        Case::new("public path, no token", "GET", "/public/docs", 200),
        Case::new("valid token", "GET", "/home", 200).bearer(&valid),
        Case::new("no token", "GET", "/home", 401),
        Case::new("scope orders:read on /api", "GET", "/api/orders", 200).bearer(&reader),
        Case::new("scope as a JSON array", "GET", "/api/orders", 200).bearer(&reader_array),
        Case::new("no scope on /api", "GET", "/api/orders", 403).bearer(&valid),
        Case::new("alg none (validAlgorithms listed it)", "GET", "/home", 401).bearer(&unsigned),
        Case::new("wrong audience", "GET", "/home", 401).bearer(&wrong_aud),
        Case::new("wrong issuer", "GET", "/home", 401).bearer(&wrong_iss),
        Case::new("no exp (requireExpiresAt)", "GET", "/home", 401).bearer(&no_exp),
        Case::new("expired 10 s ago (no leeway)", "GET", "/home", 401).bearer(&late),
    ];
    run_cases(
        &envoy.url(""),
        &cases,
        &|case, r| {
            let echo = r.json();
            if case.path.starts_with("/public/") {
                return None;
            }
            let (user, rule) = (&echo["headers"]["x-user"], &echo["headers"]["x-rule"]);
            (user != "alice" || rule != "jwt")
                .then(|| format!("upstream saw x-user {user} x-rule {rule}"))
        },
        &|| format!("portcullis:\n{}\nenvoy:\n{}", portcullis.log(), envoy.log()),
    );
}
