//! The admin page in real headless Chromium (Debian `chromium` and npm
//! `playwright-core` from scripts/install-peers): it loads under its CSP with no
//! console errors, lists providers with their keys, the rules in order and live
//! counters, and its token debugger shows the explanation `POST /explain` gives.
//! A screenshot is saved as `target/test-artifacts/admin-page.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use portcullis_jose::Algorithm;
use portcullis_test_util::{Issuer, Portcullis, get, peers_dir};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn admin_page_in_headless_chromium() {
    let issuer = Issuer::new(Algorithm::ES256, "page-key", "https://idp.test");
    let config = format!(
        r#"providers:
  - name: corp
    issuer: https://idp.test
    audiences: [api]
    jwks:
      inline: {}
rules:
  - name: health
    match: {{path: /healthz}}
    allow: anonymous
  - name: admin
    match: {{path: "/admin/**"}}
    claims: {{groups: [admins]}}
  - name: trial
    match: {{path: "/trial/**"}}
    mode: dry_run
"#,
        issuer.jwks()
    );
    let p = Portcullis::start(BIN, &config);
    p.wait_ready(Duration::from_secs(10));
    // Traffic, so the counters have something to show.
    for _ in 0..2 {
        let r = p.verify(&[("x-forwarded-uri", "/nowhere")]);
        assert_eq!(r.status, 403);
    }
    let admin = format!("http://127.0.0.1:{}", p.admin);
    let page = get(&format!("{admin}/"), &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some(portcullis_frontend_admin_csp())
    );
    assert!(!page.body.contains("<script>"), "no inline script");
    for asset in ["/admin.js", "/admin.css", "/favicon.svg"] {
        let r = get(&format!("{admin}{asset}"), &[]);
        assert_eq!(r.status, 200, "{asset}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    // The page's data names keys, never key material.
    let state = get(&format!("{admin}/state.json"), &[]).json();
    assert_eq!(state["providers"][0]["keys"][0]["kid"], "page-key");
    let jwk = issuer.jwk();
    assert!(!state.to_string().contains(jwk["x"].as_str().unwrap()));

    let token = issuer.mint(json!({"aud": "api", "sub": "pat", "groups": ["dev"]}));
    let screenshot = artifacts().join("admin-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let node_modules = peers_dir().join("node/node_modules");
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/admin_page.js"))
        .args([&admin, "https://api.example.com/admin/users", &token])
        .arg(&screenshot)
        .env("NODE_PATH", &node_modules)
        .output()
        .expect("node (scripts/install-peers)");
    assert!(
        out.status.success(),
        "the browser run failed (chromium and playwright-core come from scripts/install-peers):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["page_console"], json!([]), "console: {seen:#}");
    assert!(
        seen["console"][0]
            .as_str()
            .is_some_and(|m| m.contains("Content Security Policy")),
        "the injected script was refused by the CSP: {seen:#}"
    );
    assert_eq!(seen["failed_requests"], json!([]), "{seen:#}");
    assert_eq!(seen["csp"], portcullis_frontend_admin_csp());
    assert_eq!(seen["inline_ran"], false, "an injected inline script ran");
    assert_eq!(seen["storage"], 0, "the page stored something");
    assert_eq!(seen["ready"], "ready");

    let provider = &seen["providers"][0];
    assert_eq!(provider[0], "corp", "{seen:#}");
    assert_eq!(provider[1], "https://idp.test / api");
    assert_eq!(provider[2], "page-key ES256 EC");
    assert_eq!(provider[3], "inline (config)");
    assert!(
        provider[4].as_str().unwrap().starts_with("20"),
        "fetched at: {provider}"
    );
    assert_eq!(provider[6], "-", "no error");

    let rules: Vec<(&str, &str)> = seen["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[1].as_str().unwrap(), r[4].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [
            ("health", "enforce"),
            ("admin", "enforce"),
            ("trial", "dry_run")
        ]
    );
    assert!(
        seen["counters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c[0] == "deny" && c[1] == "no_rule" && c[5] == "2"),
        "counters: {:#}",
        seen["counters"]
    );

    // The debugger shows what POST /explain answers.
    assert_eq!(
        seen["verdict"], "DENY 403 claim_mismatch (rule admin, provider corp)",
        "{seen:#}"
    );
    let steps = seen["steps"].as_array().unwrap();
    let claim = steps.iter().find(|s| s[1] == "claim").unwrap();
    assert_eq!(claim[0], "FAIL");
    assert_eq!(
        claim[2],
        r#"groups: wants one of ["admins"], token has ["dev"]"#
    );
    assert_eq!(steps.last().unwrap()[1], "response");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot"
    );
    // The token the page sent was not logged.
    assert!(!p.log().contains(token.rsplit('.').next().unwrap()));
}

fn portcullis_frontend_admin_csp() -> &'static str {
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}
