//! DPoP (RFC 9449) with proofs made by an independent library, npm `jose`
//! (`.peers/node`), checked by `portcullis serve` through forward auth: a good proof
//! passes once; replayed, wrong-method, wrong-URL, stale and key-mismatched proofs,
//! a DPoP-bound token sent as a bearer token, and a missing proof fail with 401
//! `dpop_invalid` and `WWW-Authenticate: DPoP`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::Command;

use portcullis_jose::Algorithm;
use portcullis_test_util::{Issuer, Portcullis, Response, peers_dir, run_json};
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

fn verify(p: &Portcullis, method: &str, uri: &str, auth: &str, proof: Option<&str>) -> Response {
    let mut h = vec![
        ("x-forwarded-method", method),
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

#[test]
fn dpop_proofs_from_npm_jose() {
    let issuer = Issuer::new(Algorithm::ES256, "idp-1", ISS);
    let jwks = issuer.jwks();
    let p = Portcullis::start(
        BIN,
        &format!(
            r#"providers:
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
        ),
    );
    let keys = jose(&json!([{"op": "keygen"}, {"op": "keygen"}]));
    let (holder, other) = (&keys[0], &keys[1]);
    let now = Issuer::now();
    let token = issuer.mint(json!({
        "iss": ISS, "aud": "api", "sub": "client-1", "exp": now + 300,
        "cnf": {"jkt": holder["jkt"]}
    }));
    let ath = jose(&json!([{"op": "ath", "token": token}]))[0]["ath"].clone();
    let claims = |jti: &str, htm: &str, htu: &str, iat: i64| json!({"jti": jti, "htm": htm, "htu": htu, "iat": iat, "ath": ath});
    let url = "https://api.test/api/orders";
    let jobs = json!([
        {"op": "proof", "private": holder["private"], "public": holder["public"], "claims": claims("good", "GET", url, now)},
        {"op": "proof", "private": holder["private"], "public": holder["public"], "claims": claims("post", "POST", url, now)},
        {"op": "proof", "private": holder["private"], "public": holder["public"], "claims": claims("url", "GET", "https://api.test/api/other", now)},
        {"op": "proof", "private": holder["private"], "public": holder["public"], "claims": claims("stale", "GET", url, now - 600)},
        {"op": "proof", "private": other["private"], "public": other["public"], "claims": claims("other", "GET", url, now)},
        {"op": "proof", "private": holder["private"], "public": holder["public"], "claims": claims("query", "GET", "https://api.test/api/orders?page=2", now)},
        {"op": "proof", "private": holder["private"], "public": holder["public"], "claims": claims("mixed", "GET", "https://api.test/mixed/x", now)},
    ]);
    let proofs: Vec<String> = jose(&jobs)
        .iter()
        .map(|r| r["proof"].as_str().unwrap().to_owned())
        .collect();
    let dpop = format!("DPoP {token}");

    let r = verify(&p, "GET", "/api/orders", &dpop, Some(&proofs[0]));
    assert_eq!(r.status, 200, "{}\n{}", r.body, p.log());
    let denied = |r: &Response, what: &str| {
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(r.json()["reason"], "dpop_invalid", "{what}");
        assert!(
            r.header("www-authenticate").unwrap().starts_with("DPoP "),
            "{what}: {:?}",
            r.header("www-authenticate")
        );
    };
    denied(
        &verify(&p, "GET", "/api/orders", &dpop, Some(&proofs[0])),
        "replayed",
    );
    denied(
        &verify(&p, "GET", "/api/orders", &dpop, Some(&proofs[1])),
        "wrong method",
    );
    denied(
        &verify(&p, "GET", "/api/orders", &dpop, Some(&proofs[2])),
        "wrong URL",
    );
    denied(
        &verify(&p, "GET", "/api/orders", &dpop, Some(&proofs[3])),
        "stale",
    );
    denied(
        &verify(&p, "GET", "/api/orders", &dpop, Some(&proofs[4])),
        "key mismatch",
    );
    denied(&verify(&p, "GET", "/api/orders", &dpop, None), "no proof");
    denied(
        &verify(
            &p,
            "GET",
            "/api/orders",
            &format!("Bearer {token}"),
            Some(&proofs[5]),
        ),
        "DPoP-bound token as a bearer token",
    );
    // htu ignores the query (RFC 9449 §4.3).
    let r = verify(&p, "GET", "/api/orders?page=2", &dpop, Some(&proofs[5]));
    assert_eq!(r.status, 200, "{}", r.body);
    // The POST proof is fine for a POST.
    let r = verify(&p, "POST", "/api/orders", &dpop, Some(&proofs[1]));
    assert_eq!(r.status, 200, "{}", r.body);
    // dpop: required refuses a plain bearer token; dpop: allowed takes it.
    let plain = issuer.mint(json!({"iss": ISS, "aud": "api", "sub": "c", "exp": now + 300}));
    denied(
        &verify(&p, "GET", "/api/orders", &format!("Bearer {plain}"), None),
        "bearer on required",
    );
    let r = verify(&p, "GET", "/mixed/x", &format!("Bearer {plain}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = verify(&p, "GET", "/mixed/x", &dpop, Some(&proofs[6]));
    assert_eq!(r.status, 200, "{}", r.body);
}
