//! The pod's way of running Portcullis, as `deploy/` and the Dockerfile set it up:
//! `portcullis serve` with no flag, the config from `PORTCULLIS_CONFIG` (the ConfigMap
//! of `deploy/kubernetes/configmap.yaml`, its listeners moved to loopback ports and its
//! provider's keys to a local JWKS server), `/healthz` and `/readyz` for the probes,
//! JSON log lines, and SIGTERM: drained and exited 0 well within the 30 s grace period.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "deploy_common.rs"]
mod deploy_common;

use std::process::Command;
use std::time::{Duration, Instant};

use deploy_common::{BIN, docs, workspace};
use portcullis_jose::Algorithm;
use portcullis_test_util::{Child, Issuer, JwksServer, TempDir, free_port, get, wait_for_port};
use serde_json::json;

#[test]
fn serve_from_portcullis_config_probes_and_sigterm() {
    let text = std::fs::read_to_string(workspace("deploy/kubernetes/configmap.yaml")).unwrap();
    let config = docs(&text)[0]["data"]["portcullis.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://login.example.com");
    let jwks = JwksServer::start(&issuer.jwks(), None);
    let (http, grpc, admin) = (free_port(), free_port(), free_port());
    let replace_once = |text: String, from: &str, to: &str| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` once in the ConfigMap's config"
        );
        text.replace(from, to)
    };
    let config = replace_once(config, "0.0.0.0:8080", &format!("127.0.0.1:{http}"));
    let config = replace_once(config, "0.0.0.0:9001", &format!("127.0.0.1:{grpc}"));
    let config = replace_once(config, "0.0.0.0:9090", &format!("127.0.0.1:{admin}"));
    let config = replace_once(
        config,
        "discovery: https://login.example.com",
        &format!("uri: {}", jwks.url()),
    );
    let dir = TempDir::new("deploy-serve");
    let path = dir.write("portcullis.yaml", &config);
    let log = dir.path().join("serve.log");
    let mut child = Child::spawn(
        Command::new(BIN)
            .arg("serve")
            .env("PORTCULLIS_CONFIG", &path)
            .env("PORTCULLIS_WORKERS", "2"),
        &log,
    );
    wait_for_port(admin, Duration::from_secs(20));
    assert_eq!(
        get(&format!("http://127.0.0.1:{admin}/healthz"), &[]).status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&format!("http://127.0.0.1:{admin}/readyz"), &[]).status != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", child.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = issuer.mint(json!({"sub": "alice", "aud": "orders-api"}));
    let auth = format!("Bearer {token}");
    let r = get(
        &format!("http://127.0.0.1:{http}/verify"),
        &[("Authorization", &auth)],
    );
    assert_eq!(
        (r.status, r.header("x-user")),
        (200, Some("alice")),
        "{}",
        r.body
    );
    let r = get(&format!("http://127.0.0.1:{http}/verify"), &[]);
    assert_eq!(r.status, 401);

    let started = Instant::now();
    let status = child
        .stop(Duration::from_secs(30))
        .expect("exited within the grace period");
    assert!(
        status.success(),
        "SIGTERM: {status}\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "drained in {:?}",
        started.elapsed()
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = logged.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(!line.contains(&token), "the token was logged");
    }
}
