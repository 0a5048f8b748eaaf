//! `portcullis import --from nginx-subrequest-auth-jwt` on configs written after its
//! README (`crates/import/tests/fixtures/nginx-subrequest-auth-jwt*.yaml`), then END TO
//! END: the imported config (with the test's own EC key in place of the fixture's)
//! behind the real NGINX `auth_request` (`examples/nginx/nginx.conf`, where
//! nginx-subrequest-auth-jwt sits), with tokens it would accept (200) or refuse.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "import_common.rs"]
mod import_common;

use std::process::Command;
use std::time::Duration;

use import_common::{Case, Nginx, fixture, import, run_cases};
use portcullis_jose::{Algorithm, SigningKey};
use portcullis_test_util::{EchoUpstream, Issuer, Portcullis, TempDir};
use serde_json::json;

#[test]
fn imports_alternatives_with_warnings() {
    let path = fixture("nginx-subrequest-auth-jwt-alternatives.yaml");
    let out = import(&[
        "--from",
        "nginx-subrequest-auth-jwt",
        path.to_str().unwrap(),
    ]);
    assert!(out.config.contains("pem: |"), "{}", out.config);
    assert!(out.config.contains("clock_skew: 0s"), "{}", out.config);
    assert!(out.config.contains("- administrators"), "{}", out.config);
    assert!(!out.config.contains("deviceClass"), "{}", out.config);
    out.assert_warns(&["claims[1] not carried over", "OR"]);
    out.assert_warns(&["more validation keys", "first"]);
    out.assert_warns(&["exp"]);
}

#[test]
fn imports_query_string_mode() {
    let dir = TempDir::new("import-subrequest-query");
    let text = std::fs::read_to_string(fixture("nginx-subrequest-auth-jwt.yaml"))
        .unwrap()
        .replace("claimsSource: static", "claimsSource: queryString");
    let text = text.split("claims:\n").next().unwrap().to_owned();
    let file = dir.write("config.yaml", &text);
    let out = import(&[
        "--from",
        "nginx-subrequest-auth-jwt",
        file.to_str().unwrap(),
    ]);
    assert!(!out.config.contains("claims:"), "{}", out.config);
    out.assert_warns(&["queryString", "claims_"]);
}

#[test]
fn imported_subrequest_config_behind_nginx() {
    let dir = TempDir::new("import-subrequest");
    // The test's key, as the product's config holds it: an EC public key in PEM.
    let private = dir.path().join("key.pem");
    let keygen = Command::new(import_common::BIN)
        .args(["keygen", "--alg", "ES256", "--out"])
        .arg(&private)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .unwrap();
    assert!(public.status.success(), "openssl pkey -pubout");
    let public = String::from_utf8(public.stdout).unwrap();
    let issuer = Issuer {
        key: SigningKey::from_pem(&std::fs::read_to_string(&private).unwrap(), None).unwrap(),
        kid: "k1".to_owned(),
        iss: "https://issuer.test".to_owned(),
    };
    let original = std::fs::read_to_string(fixture("nginx-subrequest-auth-jwt.yaml")).unwrap();
    let begin = original.find("      -----BEGIN").unwrap();
    let end =
        original.find("-----END PUBLIC KEY-----").unwrap() + "-----END PUBLIC KEY-----\n".len();
    let indented: String = public.lines().map(|l| format!("      {l}\n")).collect();
    let text = format!("{}{indented}{}", &original[..begin], &original[end..]);
    let file = dir.write("config.yaml", &text);
    let out = import(&[
        "--from",
        "nginx-subrequest-auth-jwt",
        file.to_str().unwrap(),
    ]);

    let portcullis = Portcullis::start(import_common::BIN, &out.config);
    portcullis.wait_ready(Duration::from_secs(10));
    let upstream = EchoUpstream::start();
    let nginx = Nginx::start(portcullis.http, upstream.port);

    let now = Issuer::now();
    let dev_hq = issuer.mint(json!({"sub": "alice", "group": "developers", "location": "hq"}));
    let admin_hq = issuer.mint(json!({"sub": "bob", "group": "administrators", "location": "hq"}));
    let dev_remote =
        issuer.mint(json!({"sub": "carol", "group": "developers", "location": "remote"}));
    let guest_hq = issuer.mint(json!({"sub": "dave", "group": "guests", "location": "hq"}));
    let expired = issuer
        .mint(json!({"group": "developers", "location": "hq", "iat": now - 600, "exp": now - 10}));
    let other_key = Issuer::new(Algorithm::ES256, "k1", "https://issuer.test")
        .mint(json!({"group": "developers", "location": "hq"}));
    let cases = vec![
        Case::new("developer at hq", "GET", "/app", 200).bearer(&dev_hq),
        Case::new("administrator at hq", "GET", "/app/x", 200).bearer(&admin_hq),
        Case::new("developer elsewhere", "GET", "/app", 403).bearer(&dev_remote),
        Case::new("guest", "GET", "/app", 403).bearer(&guest_hq),
        Case::new("no token", "GET", "/app", 401),
        // jwt-go checks exp without leeway: 10 s late is expired (Portcullis' default skew is 60 s).
        Case::new("expired 10 s ago", "GET", "/app", 401).bearer(&expired),
        Case::new("another key", "GET", "/app", 401).bearer(&other_key),
    ];
    run_cases(
        &format!("http://127.0.0.1:{}", nginx.main),
        &cases,
        &|_, r| {
            (r.json()["path"] != "/app" && r.json()["path"] != "/app/x")
                .then(|| format!("upstream saw {}", r.body))
        },
        &|| {
            format!(
                "portcullis:\n{}\nnginx:\n{}",
                portcullis.log(),
                nginx.logs()
            )
        },
    );
}
