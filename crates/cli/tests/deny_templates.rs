//! `deny:` templates through the real proxies: Caddy (`forward_auth`, which passes
//! Portcullis's deny answer to the client) and Envoy (gRPC ext_authz, the
//! `DeniedHttpResponse`). The matched rule's template wins, then the token's
//! provider's, then the default JSON body; `{{ request_id }}` is the client's
//! `x-request-id` (or one made up), and what a client sends cannot split a header.
//!
//! Peers come from `scripts/install-peers` (`$PORTCULLIS_PEERS`, default `<workspace>/.peers`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;

use std::time::Duration;

use envoy_common::Envoy;
use portcullis_jose::Algorithm;
use portcullis_test_util::{
    EchoUpstream, Issuer, Portcullis, Response, TempDir, free_port, request, spawn_caddy,
    wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const CADDYFILE: &str = include_str!("../../../examples/caddy/Caddyfile");

fn config(issuer: &Issuer) -> String {
    format!(
        r#"providers:
  - name: corp
    issuer: {iss}
    audiences: [api]
    jwks:
      inline: {jwks}
    deny:
      body: '<p>{{{{ status }}}} {{{{ message }}}}</p>'
      content_type: text/html; charset=utf-8
rules:
  - name: admin
    match: {{path: "/admin/**"}}
    claims: {{groups: [admins]}}
    deny:
      body: |
        {{"type": "https://errors.example.com/{{{{ reason }}}}", "title": "{{{{ message }}}}", "status": {{{{ status }}}}, "instance": "{{{{ request_id }}}}"}}
      content_type: application/problem+json
      headers:
        x-deny-reason: "{{{{ reason }}}}"
        x-request-id: "{{{{ request_id }}}}"
  - name: default
    match: {{}}
"#,
        iss = issuer.iss,
        jwks = issuer.jwks()
    )
}

struct Stack {
    _caddy: portcullis_test_util::Child,
    caddy_port: u16,
    envoy: Envoy,
    _upstream: EchoUpstream,
    portcullis: Portcullis,
    issuer: Issuer,
    _dir: TempDir,
}

fn start() -> Stack {
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://idp.test");
    let portcullis = Portcullis::start(BIN, &config(&issuer));
    portcullis.wait_ready(Duration::from_secs(10));
    let upstream = EchoUpstream::start();
    let dir = TempDir::new("deny-caddy");
    let caddy_port = free_port();
    let caddyfile = CADDYFILE
        .replace("__LISTEN__", &format!("127.0.0.1:{caddy_port}"))
        .replace("__PORTCULLIS__", &format!("127.0.0.1:{}", portcullis.http))
        .replace("__UPSTREAM__", &format!("127.0.0.1:{}", upstream.port))
        .replace("__LOGS__", &dir.path().display().to_string());
    let path = dir.write("Caddyfile", &caddyfile);
    let caddy = spawn_caddy(&path, dir.path());
    wait_for_port(caddy_port, Duration::from_secs(20));
    let envoy = Envoy::start(
        "grpc.yaml",
        &[
            ("__PORTCULLIS_GRPC_PORT__", portcullis.grpc),
            ("__UPSTREAM_PORT__", upstream.port),
        ],
    );
    Stack {
        _caddy: caddy,
        caddy_port,
        envoy,
        _upstream: upstream,
        portcullis,
        issuer,
        _dir: dir,
    }
}

impl Stack {
    /// The same request through both proxies.
    fn both(&self, path: &str, headers: &[(&str, &str)]) -> [(&'static str, Response); 2] {
        [
            (
                "caddy",
                request(
                    "GET",
                    &format!("http://127.0.0.1:{}{path}", self.caddy_port),
                    headers,
                    "",
                ),
            ),
            ("envoy", request("GET", &self.envoy.url(path), headers, "")),
        ]
    }
}

#[test]
fn every_frontend_renders_the_rule_then_provider_then_default_body() {
    let s = start();
    let logs = || format!("{}\n{}", s.portcullis.log(), s.envoy.log());
    let dev = format!(
        "Bearer {}",
        s.issuer
            .mint(json!({"aud": "api", "sub": "bob", "groups": ["dev"]}))
    );

    // The rule's template: problem+json with the client's request ID.
    for (proxy, r) in s.both(
        "/admin/x",
        &[("authorization", &dev), ("x-request-id", "req-42")],
    ) {
        assert_eq!(r.status, 403, "{proxy}: {}\n{}", r.body, logs());
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{proxy}"
        );
        assert_eq!(r.header("x-deny-reason"), Some("claim_mismatch"), "{proxy}");
        let body: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{proxy}: not JSON ({e}): {}", r.body));
        assert_eq!(
            body,
            json!({"type": "https://errors.example.com/claim_mismatch", "title": "a required claim does not match", "status": 403, "instance": "req-42"}),
            "{proxy}"
        );
    }

    // A request ID that could inject is replaced, and nothing splits a header.
    for (proxy, r) in s.both(
        "/admin/x",
        &[
            ("authorization", &dev),
            ("x-request-id", "a\"}, \"x\": \"y"),
        ],
    ) {
        assert_eq!(r.status, 403, "{proxy}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let id = body["instance"].as_str().unwrap();
        assert_eq!(id.len(), 24, "{proxy}: {id}");
        assert_eq!(r.header("x-request-id"), Some(id), "{proxy}");
        assert!(body.get("x").is_none(), "{proxy}");
    }

    // No rule template, a token of a provider with one: the provider's.
    let expired = format!(
        "Bearer {}",
        s.issuer
            .mint(json!({"aud": "api", "exp": Issuer::now() - 3600}))
    );
    for (proxy, r) in s.both("/other", &[("authorization", &expired)]) {
        assert_eq!(r.status, 401, "{proxy}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{proxy}"
        );
        assert_eq!(r.body, "<p>401 the token has expired</p>", "{proxy}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token"),
            "{proxy}: the challenge stays"
        );
    }

    // No token, so no provider, and no rule template: the default body.
    for (proxy, r) in s.both("/other", &[]) {
        assert_eq!(r.status, 401, "{proxy}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{proxy}"
        );
        assert_eq!(
            r.body, r#"{"error":"unauthorized","reason":"token_missing"}"#,
            "{proxy}"
        );
    }

    // An allow is untouched.
    let ok = format!(
        "Bearer {}",
        s.issuer
            .mint(json!({"aud": "api", "sub": "ann", "groups": ["admins"]}))
    );
    for (proxy, r) in s.both("/admin/x", &[("authorization", &ok)]) {
        assert_eq!(r.status, 200, "{proxy}: {}", r.body);
    }
}
