//! `portcullis import --from istio` on a RequestAuthentication + AuthorizationPolicy
//! set written after Istio's JWT walkthroughs (`crates/import/tests/fixtures/istio.yaml`),
//! then END TO END: the imported config (its `jwksUri` pointed at a local JWKS server)
//! behind the real Envoy with gRPC ext_authz (`examples/envoy/grpc.yaml`, as Istio's
//! `envoyExtAuthzGrpc` provider calls it), and tokens Istio would accept (200) or refuse
//! (401/403).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;
#[path = "import_common.rs"]
mod import_common;

use std::time::Duration;

use envoy_common::Envoy;
use import_common::{BIN, Case, fixture, import, run_cases};
use portcullis_jose::Algorithm;
use portcullis_test_util::{EchoUpstream, Issuer, JwksServer, Portcullis};
use serde_json::json;

const ISSUER: &str = "testing@secure.istio.io";
const SAMPLE_JWKS: &str = "https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json";

#[test]
fn imports_istio_walkthrough_policies() {
    let path = fixture("istio.yaml");
    let out = import(&["--from", "istio", path.to_str().unwrap()]);
    let c = &out.config;
    for want in [
        "issuer: testing@secure.istio.io",
        "- httpbin.example.com",
        &format!("uri: {SAMPLE_JWKS}"),
        "- cookie: session",
        "forward_token: true",
        "header: x-jwt-claim-sub",
        "allow: deny",
        "- /group1/**",
        "- group1",
    ] {
        assert!(c.contains(want), "`{want}` missing from:\n{c}");
    }
    // DENY rules come before the ALLOW ones.
    assert!(
        c.find("allow: deny").unwrap() < c.find("- /healthz").unwrap(),
        "{c}"
    );
    out.assert_warns(&["exp"]);
    out.assert_warns(&["selector"]);
    out.assert_warns(&["anonymous", "invalid"]);
}

#[test]
fn istio_defaults_and_refusals() {
    let dir = portcullis_test_util::TempDir::new("import-istio-defaults");
    let file = dir.write(
        "ra.yaml",
        r#"apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: corp}
spec:
  jwtRules:
    - issuer: https://corp.example.com
      outputPayloadToHeader: x-payload
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: odd}
spec:
  rules:
    - from:
        - source:
            namespaces: ["prod"]
    - to:
        - operation:
            notPaths: ["/x"]
"#,
    );
    let out = import(&["--from", "istio", file.to_str().unwrap()]);
    // Istio's default token locations and its default of not forwarding the token.
    assert!(out.config.contains("prefix: \"Bearer \""), "{}", out.config);
    assert!(out.config.contains("query: access_token"), "{}", out.config);
    assert!(
        out.config.contains("forward_token: false"),
        "{}",
        out.config
    );
    // No jwksUri nor jwks: Istio discovers the keys from the issuer.
    assert!(
        out.config.contains("discovery: https://corp.example.com"),
        "{}",
        out.config
    );
    out.assert_warns(&["outputPayloadToHeader"]);
    out.assert_warns(&["rules[0] not carried over", "namespaces"]);
    out.assert_warns(&["rules[1] not carried over", "notPaths"]);
    // Neither rule was carried over: nothing is allowed (Istio: an ALLOW policy that
    // matches nothing allows nothing).
    assert!(!out.config.contains("allow: anonymous"), "{}", out.config);

    // Unreadable input: exit 2.
    let bad = dir.write("bad.yaml", "kind: [unclosed\n");
    let r = std::process::Command::new(BIN)
        .args(["import", "--from", "istio"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let r = std::process::Command::new(BIN)
        .args(["import", "--from", "istio", "/nonexistent/ra.yaml"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn reads_stdin() {
    use std::io::Write as _;
    let text = std::fs::read_to_string(fixture("istio.yaml")).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["import", "--from", "istio", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("issuer: testing@secure.istio.io"),
        "{stdout}"
    );
    import_common::assert_check_passes(&stdout);
}

#[test]
fn imported_istio_config_behind_envoy_grpc() {
    let path = fixture("istio.yaml");
    let out = import(&["--from", "istio", path.to_str().unwrap()]);
    let issuer = Issuer::new(Algorithm::RS256, "istio-test", ISSUER);
    let jwks = JwksServer::start(&issuer.jwks(), None);
    let config = out.replaced(SAMPLE_JWKS, &jwks.url());
    let portcullis = Portcullis::start(BIN, &config);
    portcullis.wait_ready(Duration::from_secs(10));
    let upstream = EchoUpstream::start();
    let envoy = Envoy::start(
        "grpc.yaml",
        &[
            ("__PORTCULLIS_GRPC_PORT__", portcullis.grpc),
            ("__UPSTREAM_PORT__", upstream.port),
        ],
    );

    let now = Issuer::now();
    let token = |extra: serde_json::Value| {
        let mut c = json!({"sub": ISSUER, "aud": "httpbin.example.com"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        issuer.mint(c)
    };
    let valid = token(json!({}));
    let group1 = token(json!({"groups": ["group1", "group2"]}));
    let group2 = token(json!({"groups": ["group2"]}));
    let other_sub = token(json!({"sub": "someone@else"}));
    let wrong_aud = token(json!({"aud": "other.example.com"}));
    let expired = token(json!({"iat": now - 7200, "exp": now - 3600}));
    let stranger = Issuer::new(Algorithm::RS256, "istio-test", ISSUER)
        .mint(json!({"sub": ISSUER, "aud": "httpbin.example.com"}));
    let wrong_iss = token(json!({"iss": "https://elsewhere.example.com"}));
    let cookie = format!("session={valid}");
    let cases = vec![
        Case::new("anonymous path", "GET", "/healthz", 200),
        Case::new("no token", "GET", "/headers", 401),
        Case::new("valid token", "GET", "/headers", 200).bearer(&valid),
        Case::new("valid token, sub-path", "GET", "/headers/x", 200).bearer(&valid),
        Case::new("token in the session cookie", "GET", "/headers", 200).header("Cookie", &cookie),
        Case::new("wrong audience", "GET", "/headers", 401).bearer(&wrong_aud),
        Case::new("expired", "GET", "/headers", 401).bearer(&expired),
        Case::new("wrong issuer", "GET", "/headers", 401).bearer(&wrong_iss),
        Case::new("signed by another key", "GET", "/headers", 401).bearer(&stranger),
        Case::new("group1 claim", "GET", "/group1/report", 200).bearer(&group1),
        Case::new("no group1 claim", "GET", "/group1/report", 403).bearer(&group2),
        Case::new("the sample principal", "GET", "/ip", 200).bearer(&valid),
        Case::new("another principal", "GET", "/ip", 403).bearer(&other_sub),
        Case::new("POST /ip (GET only)", "POST", "/ip", 403).bearer(&valid),
        Case::new("DELETE is denied", "DELETE", "/headers", 403).bearer(&valid),
        Case::new("no ALLOW rule for the path", "GET", "/status/200", 403).bearer(&valid),
    ];
    run_cases(
        &envoy.url(""),
        &cases,
        &|_, r| {
            let echo = r.json();
            let sub = echo["headers"]["x-jwt-claim-sub"].as_str();
            match r.status {
                200 if echo["path"] == "/healthz" => None,
                200 if sub != Some(ISSUER) => Some(format!("upstream saw x-jwt-claim-sub {sub:?}")),
                _ => None,
            }
        },
        &|| format!("portcullis:\n{}\nenvoy:\n{}", portcullis.log(), envoy.log()),
    );
}
