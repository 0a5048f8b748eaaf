//! DPoP (RFC 9449) replay detection shared across replicas: two `portcullis serve`
//! processes share one real `redis-server` (Debian) as `dpop.replay`; proofs are
//! made by an independent library, npm `jose` (`.peers/node`). A proof used at one
//! replica is refused at the other; with Redis down, DPoP requests are refused
//! (fail closed) while plain bearer tokens still pass.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::Command;
use std::time::Duration;

use portcullis_jose::Algorithm;
use portcullis_test_util::{
    Child, Issuer, Portcullis, Response, TempDir, free_port, peer_bin, peers_dir, run_json,
    wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const ISS: &str = "https://idp.test";

fn jose(jobs: &Value) -> Vec<Value> {
    let peers = peers_dir();
    assert!(
        peers.join("node/node_modules/jose/package.json").exists(),
        "npm jose missing under {}; run scripts/install-peers",
        peers.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dpop_jose.mjs");
    let out = run_json(
        Command::new("node").arg(script).arg(&peers),
        jobs,
        "npm jose (tests/peers/dpop_jose.mjs)",
    );
    serde_json::from_value(out).unwrap()
}

fn verify(p: &Portcullis, uri: &str, auth: &str, proof: Option<&str>) -> Response {
    let mut h = vec![
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.test"),
        ("x-forwarded-uri", uri),
        ("authorization", auth),
    ];
    if let Some(proof) = proof {
        h.push(("dpop", proof));
    }
    p.verify(&h)
}

fn dpop_invalid(r: &Response, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    assert_eq!(r.json()["reason"], "dpop_invalid", "{what}");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|w| w.starts_with("DPoP ")),
        "{what}"
    );
}

#[test]
fn replayed_proofs_are_refused_by_the_other_replica() {
    let dir = TempDir::new("dpop-redis");
    let redis_port = free_port();
    let mut redis = Child::spawn(
        Command::new(peer_bin("redis-server"))
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path()),
        &dir.path().join("redis.log"),
    );
    wait_for_port(redis_port, Duration::from_secs(10));
    let issuer = Issuer::new(Algorithm::ES256, "idp-1", ISS);
    let jwks = issuer.jwks();
    let config = format!(
        r#"dpop:
  replay: redis://127.0.0.1:{redis_port}/0
providers:
  - name: strict
    issuer: {ISS}
    audiences: [api]
    dpop: required
    jwks: {{inline: {jwks}}}
  - name: lenient
    issuer: {ISS}
    audiences: [api]
    dpop: allowed
    jwks: {{inline: {jwks}}}
rules:
  - name: strict
    match: {{path: /api/**}}
    providers: [strict]
  - name: lenient
    match: {{path: /mixed/**}}
    providers: [lenient]
"#
    );
    let a = Portcullis::start(BIN, &config);
    let b = Portcullis::start(BIN, &config);

    let keys = jose(&json!([{"op": "keygen"}]));
    let holder = &keys[0];
    let now = Issuer::now();
    let token = issuer.mint(json!({
        "aud": "api", "sub": "client-1", "exp": now + 300, "cnf": {"jkt": holder["jkt"]}
    }));
    let ath = jose(&json!([{"op": "ath", "token": token}]))[0]["ath"].clone();
    let url = "https://api.test/api/orders";
    let jtis: Vec<String> = (0..24).map(|i| format!("proof-{i}")).collect();
    let jobs: Vec<Value> = jtis
        .iter()
        .map(|jti| {
            json!({"op": "proof", "private": holder["private"], "public": holder["public"],
                   "claims": {"jti": jti, "htm": "GET", "htu": url, "iat": now, "ath": ath}})
        })
        .collect();
    let proofs: Vec<String> = jose(&Value::Array(jobs))
        .iter()
        .map(|r| r["proof"].as_str().unwrap().to_owned())
        .collect();
    let dpop = format!("DPoP {token}");

    // First use at A passes; the same proof at B is a replay.
    let r = verify(&a, "/api/orders", &dpop, Some(&proofs[0]));
    assert_eq!(r.status, 200, "{}\n{}", r.body, a.log());
    dpop_invalid(
        &verify(&b, "/api/orders", &dpop, Some(&proofs[0])),
        "replayed at B",
    );
    // And the other way round.
    let r = verify(&b, "/api/orders", &dpop, Some(&proofs[1]));
    assert_eq!(r.status, 200, "{}\n{}", r.body, b.log());
    dpop_invalid(
        &verify(&a, "/api/orders", &dpop, Some(&proofs[1])),
        "replayed at A",
    );
    dpop_invalid(
        &verify(&b, "/api/orders", &dpop, Some(&proofs[1])),
        "replayed at B again",
    );
    assert!(
        b.log().contains("seen by the shared replay store"),
        "{}",
        b.log()
    );

    // Redis down: a fresh proof is refused (fail closed), never allowed.
    redis.stop(Duration::from_secs(5));
    dpop_invalid(
        &verify(&a, "/api/orders", &dpop, Some(&proofs[2])),
        "redis down",
    );
    assert!(
        a.log().contains("replay store"),
        "the deny says why:\n{}",
        a.log()
    );
    // Plain bearer tokens need no replay store.
    let plain = issuer.mint(json!({"aud": "api", "sub": "c", "exp": now + 300}));
    let r = verify(&a, "/mixed/x", &format!("Bearer {plain}"), None);
    assert_eq!(r.status, 200, "{}", r.body);

    // Redis back on the same port: fresh proofs pass again.
    let _redis = Child::spawn(
        Command::new(peer_bin("redis-server"))
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path()),
        &dir.path().join("redis2.log"),
    );
    wait_for_port(redis_port, Duration::from_secs(10));
    // A proof refused for want of Redis stays used (each try is a fresh one);
    // the client reconnects by itself.
    let r = proofs[3..]
        .iter()
        .map(|proof| {
            let r = verify(&b, "/api/orders", &dpop, Some(proof));
            if r.status != 200 {
                std::thread::sleep(Duration::from_millis(250));
            }
            r
        })
        .find(|r| r.status == 200);
    assert!(
        r.is_some(),
        "no proof passed after Redis came back:\n{}",
        b.log()
    );
}

/// `dpop.replay` follows a reload: two replicas start without it (each keeps the
/// proofs it saw in its own memory, so a proof used at one passes at the other);
/// after both reload a config naming the shared Redis, a proof used at one is
/// refused at the other, without a restart.
#[test]
fn a_reload_that_names_the_replay_store_shares_it() {
    let dir = TempDir::new("dpop-redis-reload");
    let redis_port = free_port();
    let _redis = Child::spawn(
        Command::new(peer_bin("redis-server"))
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path()),
        &dir.path().join("redis.log"),
    );
    wait_for_port(redis_port, Duration::from_secs(10));
    let issuer = Issuer::new(Algorithm::ES256, "idp-1", ISS);
    let jwks = issuer.jwks();
    let rest = format!(
        r#"providers:
  - name: strict
    issuer: {ISS}
    audiences: [api]
    dpop: required
    jwks: {{inline: {jwks}}}
rules:
  - name: strict
    match: {{path: /api/**}}
    providers: [strict]
"#
    );
    let a = Portcullis::start(BIN, &rest);
    let b = Portcullis::start(BIN, &rest);

    let keys = jose(&json!([{"op": "keygen"}]));
    let holder = &keys[0];
    let now = Issuer::now();
    let token = issuer.mint(json!({
        "aud": "api", "sub": "client-1", "exp": now + 300, "cnf": {"jkt": holder["jkt"]}
    }));
    let ath = jose(&json!([{"op": "ath", "token": token}]))[0]["ath"].clone();
    let url = "https://api.test/api/orders";
    let jobs: Vec<Value> = (0..2)
        .map(|i| {
            json!({"op": "proof", "private": holder["private"], "public": holder["public"],
                   "claims": {"jti": format!("reload-{i}"), "htm": "GET", "htu": url, "iat": now, "ath": ath}})
        })
        .collect();
    let proofs: Vec<String> = jose(&Value::Array(jobs))
        .iter()
        .map(|r| r["proof"].as_str().unwrap().to_owned())
        .collect();
    let dpop = format!("DPoP {token}");

    // No shared store: each replica remembers only its own proofs.
    let r = verify(&a, "/api/orders", &dpop, Some(&proofs[0]));
    assert_eq!(r.status, 200, "{}\n{}", r.body, a.log());
    let r = verify(&b, "/api/orders", &dpop, Some(&proofs[0]));
    assert_eq!(
        r.status, 200,
        "without a shared store B has not seen it: {}",
        r.body
    );
    dpop_invalid(
        &verify(&a, "/api/orders", &dpop, Some(&proofs[0])),
        "replayed at A, in A's memory",
    );

    // Both reload a config that names the shared store.
    let shared = format!("dpop:\n  replay: redis://127.0.0.1:{redis_port}/0\n{rest}");
    for p in [&a, &b] {
        p.rewrite_config(&shared);
    }
    for p in [&a, &b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !p.log().contains("dpop.replay changed") {
            assert!(
                std::time::Instant::now() < deadline,
                "no reload seen:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let r = verify(&a, "/api/orders", &dpop, Some(&proofs[1]));
    assert_eq!(r.status, 200, "{}\n{}", r.body, a.log());
    dpop_invalid(
        &verify(&b, "/api/orders", &dpop, Some(&proofs[1])),
        "after the reload, a proof used at A is refused at B",
    );
    assert!(
        b.log().contains("seen by the shared replay store"),
        "{}",
        b.log()
    );
}
