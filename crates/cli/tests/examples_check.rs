//! The examples stay true: every Portcullis config under `examples/` (`portcullis*.yaml`)
//! passes `portcullis check`; the Kubernetes-only ones (Istio, the SPIRE sidecar) also
//! run, with their JWKS source swapped for a local one, against the tokens they are
//! written for (Istio's sample tokens, JWT-SVID-shaped tokens); the SPIRE sidecar's
//! Envoy config passes `envoy --mode validate`. (`examples/envoy/` runs for real in
//! `envoy_grpc.rs` and `envoy_http.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use envoy_common::{BIN, Failures, examples_dir};
use portcullis_jose::Algorithm;
use portcullis_test_util::{Issuer, Portcullis, Response, TempDir, get, peer_bin};
use serde_json::{Map, Value, json};

fn portcullis_configs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            portcullis_configs(&path, out);
        } else if name.starts_with("portcullis")
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
        {
            out.push(path);
        }
    }
}

#[test]
fn every_portcullis_config_in_examples_passes_check() {
    let mut configs = Vec::new();
    portcullis_configs(&examples_dir(), &mut configs);
    configs.sort();
    let mut f = Failures::default();
    for dir in ["envoy", "istio", "spire-sidecar"] {
        let want = examples_dir().join(dir).join("portcullis.yaml");
        f.check(configs.contains(&want), || {
            format!("{} is missing", want.display())
        });
    }
    // This recipe names the pod's mounted secrets and `${ENV}`: deploy_recipes.rs checks
    // it with those in place.
    let with_secrets = examples_dir().join("k8s-istio-session-token/portcullis.yaml");
    f.check(configs.contains(&with_secrets), || {
        format!("{} is missing", with_secrets.display())
    });
    for config in configs.iter().filter(|c| **c != with_secrets) {
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(config)
            .output()
            .unwrap();
        f.check(out.status.success(), || {
            format!(
                "portcullis check --config {}: {}\n{}",
                config.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    }
    f.assert_none("examples/**/portcullis*.yaml", &format!("{configs:#?}"));
}

/// An example config without `listen:` (the fixture picks ports) and with `from`
/// replaced by `to` (exactly once).
fn adapt(example: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(examples_dir().join(example)).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{example}: `{from}` once");
    let text = text.replace(from, to);
    portcullis_test_util::without_listen(&text)
}

fn verify(p: &Portcullis, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {}", t.trim()));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    get(
        &format!("http://127.0.0.1:{}/verify{path}", p.http),
        &headers,
    )
}

#[test]
fn istio_example_accepts_istio_sample_tokens() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../jose/tests/data");
    let read = |name: &str| std::fs::read_to_string(format!("{data}/{name}")).unwrap();
    let (jwks, demo, groups) = (
        read("istio-jwks.json"),
        read("istio-demo.jwt"),
        read("istio-groups-scope.jwt"),
    );
    let config = adapt(
        "istio/portcullis.yaml",
        "uri: https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json",
        &format!("inline: {}", jwks.trim()),
    );
    let p = Portcullis::start(BIN, &config);
    p.wait_ready(Duration::from_secs(10));
    let mut f = Failures::default();
    let r = verify(&p, "/healthz", None);
    f.check(r.status == 200, || {
        format!("/healthz without a token: {}", r.status)
    });
    let r = verify(&p, "/api/orders", None);
    f.check(r.status == 401, || {
        format!("/api without a token: {}", r.status)
    });
    let r = verify(&p, "/api/orders", Some(&demo));
    f.check(
        r.status == 200
            && r.header("x-jwt-claim-sub") == Some("testing@secure.istio.io")
            && r.header("x-user") == Some("testing@secure.istio.io"),
        || format!("/api with the demo token: {} {:?}", r.status, r.headers),
    );
    let r = verify(&p, "/group1/report", Some(&demo));
    f.check(
        r.status == 403 && r.json()["reason"] == "claim_mismatch",
        || {
            format!(
                "/group1 with the demo token (no groups): {} {}",
                r.status, r.body
            )
        },
    );
    let r = verify(&p, "/group1/report", Some(&groups));
    f.check(r.status == 200, || {
        format!("/group1 with the groups token: {} {}", r.status, r.body)
    });
    f.assert_none("istio example", &p.log());
}

const SVID_AUDIENCE: &str = "spiffe://example.org/ns/default/sa/default/backend";

/// A JWT-SVID: `sub` the SPIFFE ID, `aud`, `exp`, `iat`, no `iss`, `typ: JWT`.
fn jwt_svid(key: &Issuer, sub: &str, aud: &str) -> String {
    let now = Issuer::now();
    let claims = json!({"sub": sub, "aud": [aud], "exp": now + 300, "iat": now});
    let mut header = Map::new();
    header.insert("typ".into(), Value::from("JWT"));
    key.key
        .encode(Some(&key.kid), &header, claims.to_string().as_bytes())
        .unwrap()
}

/// The trust bundle as `spire-server bundle show -format spiffe` prints it: the JWT
/// authority with `use: jwt-svid`, an X.509 authority with `use: x509-svid`.
fn spiffe_bundle(key: &Issuer) -> Value {
    let mut jwt = key.jwk();
    let jwk = jwt.as_object_mut().unwrap();
    jwk.remove("alg");
    jwk.insert("use".into(), Value::from("jwt-svid"));
    let mut x509 = key.jwk();
    let x509_jwk = x509.as_object_mut().unwrap();
    x509_jwk.remove("kid");
    x509_jwk.remove("alg");
    x509_jwk.insert("use".into(), Value::from("x509-svid"));
    x509_jwk.insert("x5c".into(), json!(["MIIBKjCB0aADAgECAgEB"]));
    json!({"keys": [jwt, x509], "spiffe_sequence": 7, "spiffe_refresh_hint": 300})
}

/// The same authorities as a plain JWKS (what the SPIRE OIDC Discovery Provider serves).
fn converted(bundle: &Value) -> Value {
    let keys: Vec<Value> = bundle["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["use"] == "jwt-svid")
        .map(|k| {
            let mut k = k.clone();
            k.as_object_mut().unwrap().remove("use");
            k
        })
        .collect();
    json!({ "keys": keys })
}

#[test]
fn spire_sidecar_example_accepts_jwt_svids_of_its_frontends() {
    let authority = Issuer::new(Algorithm::ES256, "spire-jwt-authority-1", "");
    let dir = TempDir::new("spire-bundle");
    let bundle = spiffe_bundle(&authority);
    let raw = dir.write("spiffe-bundle.json", &bundle.to_string());
    let jwks = dir.write("jwt-bundle.json", &converted(&bundle).to_string());
    let frontend = "spiffe://example.org/ns/default/sa/default/frontend";
    let svid = jwt_svid(&authority, frontend, SVID_AUDIENCE);
    let example_path = "file: /run/spire/bundle/jwt-bundle.json";
    let mut f = Failures::default();

    // The raw SPIFFE bundle, as SPIRE prints it: the JWT authority (`use: jwt-svid`)
    // verifies; the X.509 authority (`use: x509-svid`) is ignored, and says so.
    let raw_config = adapt(
        "spire-sidecar/portcullis.yaml",
        example_path,
        &format!("file: {}", raw.display()),
    );
    let p = Portcullis::start(BIN, &raw_config);
    p.wait_ready(Duration::from_secs(10));
    let r = verify(&p, "/api/accounts", Some(&svid));
    f.check(r.status == 200, || {
        format!(
            "raw SPIFFE bundle: expected 200, got {} {}",
            r.status, r.body
        )
    });
    f.check(p.log().contains("not meant for signatures"), || {
        format!(
            "raw SPIFFE bundle: no log line about the ignored X.509 authority:\n{}",
            p.log()
        )
    });
    drop(p);

    // A plain JWKS (the bundle converted, or the OIDC Discovery Provider's keys).
    let config = adapt(
        "spire-sidecar/portcullis.yaml",
        example_path,
        &format!("file: {}", jwks.display()),
    );
    let p = Portcullis::start(BIN, &config);
    p.wait_ready(Duration::from_secs(10));
    let r = verify(&p, "/api/accounts", Some(&svid));
    f.check(
        r.status == 200 && r.header("x-spiffe-id") == Some(frontend),
        || {
            format!(
                "frontend's JWT-SVID: {} {:?} {}",
                r.status, r.headers, r.body
            )
        },
    );
    // forward_token: false -> Envoy is told to drop the token.
    let removed = r.header("x-envoy-auth-headers-to-remove").unwrap_or("");
    f.check(
        removed.split(',').any(|h| h.trim() == "authorization"),
        || format!("forward_token false: x-envoy-auth-headers-to-remove is {removed:?}"),
    );
    let other = jwt_svid(
        &authority,
        "spiffe://example.org/ns/default/sa/default/frontend-3",
        SVID_AUDIENCE,
    );
    let r = verify(&p, "/api/accounts", Some(&other));
    f.check(
        r.status == 403 && r.json()["reason"] == "claim_mismatch",
        || format!("an unlisted workload: {} {}", r.status, r.body),
    );
    let wrong_aud = jwt_svid(
        &authority,
        frontend,
        "spiffe://example.org/ns/default/sa/default/other",
    );
    let r = verify(&p, "/api/accounts", Some(&wrong_aud));
    f.check(
        r.status == 401 && r.json()["reason"] == "audience_mismatch",
        || format!("a JWT-SVID for another audience: {} {}", r.status, r.body),
    );
    let stranger = Issuer::new(Algorithm::ES256, "spire-jwt-authority-1", "");
    let r = verify(
        &p,
        "/api/accounts",
        Some(&jwt_svid(&stranger, frontend, SVID_AUDIENCE)),
    );
    f.check(
        r.status == 401 && r.json()["reason"] == "signature_invalid",
        || {
            format!(
                "a JWT-SVID from another trust domain's key: {} {}",
                r.status, r.body
            )
        },
    );
    f.assert_none("spire sidecar example", &p.log());
}

#[test]
fn spire_sidecar_envoy_config_validates() {
    let config = examples_dir().join("spire-sidecar/envoy.yaml");
    let out = Command::new(peer_bin("envoy"))
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "--log-level",
            "warn",
            "-c",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy --mode validate {}: {}\n{}{}",
        config.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
