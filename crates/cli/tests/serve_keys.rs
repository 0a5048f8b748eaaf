//! `portcullis serve` with real key sources over HTTP (a JWKS server started here):
//! rotation, outage at start and mid-run, unknown-kid refetch limits, config
//! reloads, graceful shutdown; and `check` errors. Peers: none but Portcullis.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::time::{Duration, Instant};

use portcullis_jose::Algorithm;
use portcullis_test_util::{Issuer, JwksServer, Portcullis, TempDir};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const ISS: &str = "https://issuer.test";

fn config(jwks_url: &str, refresh: &str) -> String {
    format!(
        r#"
providers:
  - name: corp
    issuer: {ISS}
    audiences: [api]
    jwks:
      uri: {jwks_url}
      refresh: {refresh}
      min_refresh: 1s
      timeout: 2s
    claims_to_headers:
      - {{header: x-user, claim: sub}}
rules:
  - name: public
    match: {{path: /healthz}}
    allow: anonymous
  - name: default
    match: {{}}
"#
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn token(issuer: &Issuer, sub: &str) -> String {
    issuer.mint(json!({"sub": sub, "aud": "api"}))
}

fn jwks_of(issuers: &[&Issuer]) -> String {
    json!({ "keys": issuers.iter().map(|i| i.jwk()).collect::<Vec<_>>() }).to_string()
}

fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rotation_accepts_new_kid_without_restart_and_drops_removed_key() {
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let b = Issuer::new(Algorithm::RS256, "key-b", ISS);
    let jwks = JwksServer::start(&jwks_of(&[&a]), None);
    let p = Portcullis::start(BIN, &config(&jwks.url(), "2s"));
    p.wait_ready(Duration::from_secs(10));
    let ta = token(&a, "alice");
    assert_eq!(
        p.verify(&[("authorization", &bearer(&ta))]).status,
        200,
        "{}",
        p.log()
    );

    // A new key appears: the first request with its kid triggers a refetch and waits for it.
    jwks.set(&jwks_of(&[&a, &b]));
    let tb = token(&b, "bob");
    let r = p.verify(&[("authorization", &bearer(&tb))]);
    assert_eq!(
        r.status,
        200,
        "new kid must be accepted without restart: {}",
        p.log()
    );
    assert_eq!(r.header("x-user"), Some("bob"));

    // The old key leaves: after the next refresh its tokens are refused, cached or not.
    jwks.set(&jwks_of(&[&b]));
    eventually(Duration::from_secs(8), "removed key rejected", || {
        p.verify(&[("authorization", &bearer(&ta))]).status == 401
    });
    let r = p.verify(&[("authorization", &bearer(&ta))]);
    assert_eq!(r.json()["reason"], "key_not_found");
    assert_eq!(p.verify(&[("authorization", &bearer(&tb))]).status, 200);
}

#[test]
fn jwks_down_at_start_denies_then_serves_when_up() {
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let jwks = JwksServer::start(&jwks_of(&[&a]), None);
    jwks.set_down(true);
    let p = Portcullis::start(BIN, &config(&jwks.url(), "1s"));
    let ready = portcullis_test_util::get(&format!("http://127.0.0.1:{}/readyz", p.admin), &[]);
    assert_eq!(ready.status, 503, "not ready without keys");
    let t = token(&a, "alice");
    let r = p.verify(&[("authorization", &bearer(&t))]);
    assert_eq!(r.status, 401, "never allow without keys");
    assert_eq!(r.json()["reason"], "key_not_found");
    // Anonymous rules do not need keys.
    let anon =
        portcullis_test_util::get(&format!("http://127.0.0.1:{}/verify/healthz", p.http), &[]);
    assert_eq!(anon.status, 200);
    jwks.set_down(false);
    p.wait_ready(Duration::from_secs(10));
    assert_eq!(
        p.verify(&[("authorization", &bearer(&t))]).status,
        200,
        "{}",
        p.log()
    );
}

#[test]
fn outage_keeps_last_good_keys() {
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let jwks = JwksServer::start(&jwks_of(&[&a]), None);
    let p = Portcullis::start(BIN, &config(&jwks.url(), "1s"));
    p.wait_ready(Duration::from_secs(10));
    jwks.set_down(true);
    let hits = jwks.hits();
    eventually(Duration::from_secs(8), "failed refreshes", || {
        jwks.hits() >= hits + 2
    });
    // A token never seen before (so not cached) still verifies with the last good keys.
    let fresh = token(&a, "carol");
    assert_eq!(
        p.verify(&[("authorization", &bearer(&fresh))]).status,
        200,
        "{}",
        p.log()
    );
    let metrics = p.metrics();
    assert!(
        metrics.contains(r#"portcullis_jwks_fetches_total{provider="corp",outcome="error"}"#),
        "{metrics}"
    );
    assert!(p.log().contains("kept_last_good"), "{}", p.log());
}

/// Junk `kid`s cost refetches only within the per-source budget (a burst of
/// `UNKNOWN_KID_BURST`, 10, then one per `UNKNOWN_KID_REFILL`, 3 s), never one each,
/// and a `kid` a fetch did not bring costs none the second time.
#[test]
fn unknown_kids_refetch_within_the_budget() {
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let jwks = JwksServer::start(&jwks_of(&[&a]), None);
    let p = Portcullis::start(BIN, &config(&jwks.url(), "1h"));
    p.wait_ready(Duration::from_secs(10));
    let before = jwks.hits();
    let started = std::time::Instant::now();
    for i in 0..30 {
        let stranger = Issuer::new(Algorithm::ES256, &format!("random-kid-{i}"), ISS);
        let r = p.verify(&[("authorization", &bearer(&token(&stranger, "mallory")))]);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["reason"], "key_not_found");
    }
    let refetches = jwks.hits() - before;
    // UNKNOWN_KID_BURST (10), then one per UNKNOWN_KID_REFILL (3 s).
    let budget = 10 + started.elapsed().as_secs() as usize / 3 + 1;
    assert!(
        refetches <= budget,
        "30 unknown kids caused {refetches} refetches (budget {budget})"
    );
    // The same junk kids again: each was looked for by a fetch that did not bring
    // it, so they are refused without a fetch.
    let again = jwks.hits();
    let started = std::time::Instant::now();
    for i in 0..30 {
        let stranger = Issuer::new(Algorithm::ES256, &format!("random-kid-{i}"), ISS);
        let r = p.verify(&[("authorization", &bearer(&token(&stranger, "mallory")))]);
        assert_eq!(r.status, 401);
    }
    // At most what the budget refilled meanwhile (the last kids of the first pass
    // may not have been looked for yet).
    let refill = started.elapsed().as_secs() as usize / 3 + 1;
    assert!(
        jwks.hits() - again <= refill,
        "known junk kids caused {} more refetches (at most {refill})",
        jwks.hits() - again
    );
}

#[test]
fn bad_reload_is_refused_while_traffic_flows_and_good_reload_applies() {
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let jwks = JwksServer::start(&jwks_of(&[&a]), None);
    let good = config(&jwks.url(), "1h");
    let p = Portcullis::start(BIN, &good);
    p.wait_ready(Duration::from_secs(10));
    let t = token(&a, "alice");
    assert_eq!(p.verify(&[("authorization", &bearer(&t))]).status, 200);

    p.rewrite_config("providers:\n  - name: corp\n    jwks: {uri: nope}\n    bogus: 1\n");
    eventually(Duration::from_secs(5), "reload rejected", || {
        p.metrics()
            .contains(r#"portcullis_config_reloads_total{outcome="rejected"} 1"#)
    });
    assert_eq!(
        p.verify(&[("authorization", &bearer(&t))]).status,
        200,
        "old config keeps serving"
    );
    assert!(p.log().contains("config reload refused"), "{}", p.log());

    // A good config with a stricter rule takes effect, keys survive (same source).
    let stricter = good.replace(
        "  - name: default\n    match: {}\n",
        "  - name: default\n    match: {}\n    claims: {groups: [admins]}\n",
    );
    p.rewrite_config(&stricter);
    eventually(Duration::from_secs(5), "reload applied", || {
        p.verify(&[("authorization", &bearer(&t))]).status == 403
    });
    let admin = a.mint(json!({"sub": "root", "aud": "api", "groups": ["admins"]}));
    assert_eq!(p.verify(&[("authorization", &bearer(&admin))]).status, 200);
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let jwks = JwksServer::start(&jwks_of(&[&a]), None);
    let mut p = Portcullis::start(BIN, &config(&jwks.url(), "1h"));
    p.wait_ready(Duration::from_secs(10));
    let status = p
        .child
        .stop(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", p.log());
}

#[test]
fn istio_sample_tokens_pass_a_request_authentication_like_provider() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../jose/tests/data");
    let jwks = std::fs::read_to_string(format!("{data}/istio-jwks.json")).unwrap();
    let demo = std::fs::read_to_string(format!("{data}/istio-demo.jwt")).unwrap();
    let groups = std::fs::read_to_string(format!("{data}/istio-groups-scope.jwt")).unwrap();
    let yaml = format!(
        r#"
providers:
  - name: istio
    issuer: testing@secure.istio.io
    jwks:
      inline: {jwks}
rules:
  - name: group1-only
    match: {{path: "/group1/**"}}
    claims: {{groups: [group1]}}
  - name: any
    match: {{}}
"#,
        jwks = jwks.trim()
    );
    let p = Portcullis::start(BIN, &yaml);
    let url = |path: &str| format!("http://127.0.0.1:{}/verify{path}", p.http);
    let get = |path: &str, t: &str| {
        portcullis_test_util::get(&url(path), &[("authorization", &bearer(t.trim()))])
    };
    assert_eq!(get("/any", &demo).status, 200, "{}", p.log());
    assert_eq!(get("/any", &groups).status, 200);
    assert_eq!(get("/group1/x", &groups).status, 200);
    let r = get("/group1/x", &demo);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "claim_mismatch");
}

#[test]
fn check_names_file_line_and_field() {
    let dir = TempDir::new("check");
    let bad = dir.write(
        "bad.yaml",
        "providers:\n  - name: corp\n    jwks: {uri: https://x/jwks}\n    audience: [api]\n",
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:4: providers[0].audience: unknown key; did you mean `audiences`?",
            bad.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    // A listener: `check` refuses what `serve` refuses, a config with none (issue 14).
    let good = dir.write(
        "good.yaml",
        &format!(
            "listen:\n  admin: 127.0.0.1:9\n{}",
            config("https://x/jwks", "5m")
        ),
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // serve refuses a bad config before binding anything, with exit 2.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sighup_reloads_even_when_the_file_looks_unchanged() {
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let jwks = JwksServer::start(&jwks_of(&[&a]), None);
    let open = config(&jwks.url(), "1h");
    let p = Portcullis::start(BIN, &open);
    p.wait_ready(Duration::from_secs(10));
    let t = token(&a, "alice");
    assert_eq!(p.verify(&[("authorization", &bearer(&t))]).status, 200);

    // Same length and same mtime: the file watcher cannot tell; SIGHUP must.
    let before = std::fs::metadata(&p.config).unwrap().modified().unwrap();
    let other_audience = open.replace("audiences: [api]", "audiences: [xyz]");
    assert_eq!(other_audience.len(), open.len());
    let full = std::fs::read_to_string(&p.config)
        .unwrap()
        .replace(&open, &other_audience);
    std::fs::write(&p.config, full).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p.config)
        .unwrap()
        .set_modified(before)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        p.verify(&[("authorization", &bearer(&t))]).status,
        200,
        "no reload without a signal"
    );
    p.child.signal("HUP");
    eventually(Duration::from_secs(5), "SIGHUP reload", || {
        p.verify(&[("authorization", &bearer(&t))]).status == 401
    });
    assert_eq!(
        p.verify(&[("authorization", &bearer(&t))]).json()["reason"],
        "audience_mismatch"
    );
}
