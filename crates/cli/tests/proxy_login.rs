//! Browser login and certificate-bound tokens on the `proxy` listener.
//!
//! Login: the real npm `oidc-provider` (scripted login), portcullis serving a
//! `proxy` listener in front of test-util's echo upstream with
//! `sessions.public_url` = the proxy's own URL, and a cookie-keeping client that
//! follows redirects: 302 to `/oauth2/start` with `rd` = the original URL, the
//! login at the OP and back through `/oauth2/callback` on the proxy, the identity
//! and session token headers the upstream receives (never client-sent copies),
//! 401 for API clients, tampered cookies, sign-out.
//!
//! Certificates: `proxy_tls` with `client_ca` (openssl-made CA), a token with
//! `cnf.x5t#S256` passes with its certificate and gets 401 `certificate_mismatch`
//! with another one, without one, or with a forged `X-Forwarded-Client-Cert`.
//!
//! Run: `cargo test -p portcullis-cli --test proxy_login` (peers from
//! `scripts/install-peers`: node + oidc-provider, curl, openssl).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use portcullis_jose::Algorithm;
use portcullis_test_util::{
    Browser, EchoServer, Issuer, OidcProvider, Pki, Portcullis, TempDir, free_port, get,
    wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "portcullis-client-secret-0123456789";

fn seen(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not the echo ({e}): {body}"))
}

fn header<'v>(echo: &'v Value, name: &str) -> Option<&'v str> {
    echo["headers"][name].as_str()
}

fn keygen(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("signing.pem");
    let out = Command::new(BIN)
        .args(["keygen", "--alg", "ES256", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

fn cleared(r: &portcullis_test_util::Response) -> bool {
    r.headers.iter().any(|(n, v)| {
        n == "set-cookie" && v.starts_with("portcullis_session=;") && v.contains("Max-Age=0")
    })
}

#[test]
fn browser_login_on_the_proxy_listener() {
    let dir = TempDir::new("proxy-login");
    let (http, grpc, admin, proxy_port) = (free_port(), free_port(), free_port(), free_port());
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let op = OidcProvider::start(
        dir.path(),
        &json!([{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{proxy}/oauth2/callback")],
            "post_logout_redirect_uris": [format!("{proxy}/app/")],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }]),
    );
    let issuer = op.issuer();
    let key = keygen(dir.path());
    let secret = dir.write(
        "session.key",
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83v\n",
    );
    let echo = EchoServer::start(None);
    // Continues the `listen:` block test-util writes.
    let config = format!(
        r#"  proxy: 127.0.0.1:{proxy_port}
upstreams:
  - name: app
    urls: ["http://127.0.0.1:{up}"]
providers:
  - name: op
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    login:
      client_id: portcullis
      client_secret: {SECRET}
      scopes: [openid, email, profile]
    claims_to_headers:
      - {{header: x-user, claim: sub}}
      - {{header: x-email, claim: email}}
sessions:
  public_url: {proxy}
  secret_file: {secret}
  cookie: {{secure: false}}
  ttl: 1h
  token:
    key_file: {key}
    issuer: {proxy}
    audiences: [mesh]
    ttl: 5m
    claims: [sub, email]
    header: x-session-token
rules:
  - name: app
    match: {{path: /app/**}}
    login: op
    upstream: app
"#,
        up = echo.port,
        secret = secret.display(),
        key = key.display(),
    );
    let portcullis = Portcullis::start_on(BIN, &config, http, grpc, admin);
    portcullis.wait_ready(Duration::from_secs(20));
    wait_for_port(proxy_port, Duration::from_secs(20));
    let log = || format!("portcullis:\n{}\nOP:\n{}", portcullis.log(), op.log());

    // --- A navigation: 302 to public_url/oauth2/start, rd = the original URL. ---
    let mut b = Browser::navigating();
    b.headers
        .push(("x-op-account".to_owned(), "alice".to_owned()));
    let r = b.send("GET", &format!("{proxy}/app/page?x=1"), &[], "");
    assert_eq!(r.status, 302, "{r:?}\n{}", log());
    let location = r.header("location").unwrap().to_owned();
    assert_eq!(
        location,
        format!(
            "{proxy}/oauth2/start?rd=http%3A%2F%2F127.0.0.1%3A{proxy_port}%2Fapp%2Fpage%3Fx%3D1"
        )
    );
    assert_eq!(r.json()["reason"], "login_required");
    assert_eq!(echo.hits(), 0, "a deny never reaches the upstream");

    // --- Following redirects: the OP, /oauth2/callback on the proxy, back to rd. ---
    let (url, r) = b.get(&location);
    assert_eq!(r.status, 200, "{url}: {r:?}\n{}", log());
    assert_eq!(
        url,
        format!("{proxy}/app/page?x=1"),
        "back where it started"
    );
    assert!(
        b.trail
            .iter()
            .any(|(u, _)| u.starts_with(&format!("{proxy}/oauth2/callback?"))),
        "the callback came back through the proxy"
    );
    let e = seen(&r.body);
    assert_eq!(e["path"], "/app/page?x=1");
    assert_eq!(header(&e, "x-user"), Some("alice"), "{e}");
    assert_eq!(header(&e, "x-email"), Some("alice@example.com"), "{e}");
    // A named header other than `authorization` carries the bare token.
    let token = header(&e, "x-session-token").unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert!(!token.contains(' '), "{token}");
    assert_eq!(header(&e, "x-forwarded-proto"), Some("http"), "{e}");
    // Only the one request after the login reached the upstream: the login
    // endpoints are answered by the proxy, never forwarded.
    assert_eq!(echo.hits(), 1);
    let session = b.cookie("portcullis_session").unwrap().clone();
    assert!(session.http_only && session.same_site.as_deref() == Some("Lax"));
    assert!(
        !b.cookies
            .iter()
            .any(|c| c.name.starts_with("portcullis_session_state"))
    );

    // The session token's keys and metadata are served on the proxy listener too.
    let cfg = get(&format!("{proxy}/.well-known/openid-configuration"), &[]);
    assert_eq!(cfg.status, 200, "{cfg:?}");
    assert_eq!(cfg.json()["issuer"], proxy.as_str());
    let jwks = get(&format!("{proxy}/.well-known/jwks.json"), &[]);
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.json()["keys"].as_array().map(Vec::len), Some(1));

    // --- Client-sent copies of the identity headers never reach the upstream. ---
    let cookie = format!("portcullis_session={}", session.value);
    // The app's own cookies go through; Portcullis's session cookie does not.
    let with_app_cookie = format!("app_pref=dark; {cookie}");
    let r = get(
        &format!("{proxy}/app/forged"),
        &[
            ("Cookie", &with_app_cookie),
            ("X-User", "mallory"),
            ("X-Email", "mallory@evil.example"),
            ("X-Session-Token", "Bearer forged"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let e = seen(&r.body);
    assert_eq!(e["headers"]["x-user"], "alice", "{e}");
    assert_eq!(e["headers"]["x-email"], "alice@example.com", "{e}");
    let t = header(&e, "x-session-token").unwrap();
    assert!(t != "Bearer forged" && t.split('.').count() == 3, "{e}");
    assert_eq!(header(&e, "cookie"), Some("app_pref=dark"), "{e}");

    // --- An API request (no text/html) gets 401, never a redirect. ---
    let r = get(&format!("{proxy}/app/x"), &[("Accept", "application/json")]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "login_required");
    assert!(r.header("location").is_none());
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="portcullis""#)
    );

    // --- An untrusted peer's X-Forwarded-Proto/Host do not change rd. ---
    let r = get(
        &format!("{proxy}/app/y"),
        &[
            ("Accept", "text/html"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
        ],
    );
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(
            format!("{proxy}/oauth2/start?rd=http%3A%2F%2F127.0.0.1%3A{proxy_port}%2Fapp%2Fy")
                .as_str()
        )
    );

    // --- Tampered cookie: 302 for a navigation with the cookie cleared, 401 otherwise. ---
    let mut value = session.value.clone().into_bytes();
    let i = value.len() - 5;
    value[i] = if value[i] == b'A' { b'B' } else { b'A' };
    let tampered = format!("portcullis_session={}", String::from_utf8(value).unwrap());
    let r = get(
        &format!("{proxy}/app/x"),
        &[("Cookie", &tampered), ("Accept", "text/html")],
    );
    assert_eq!(r.status, 302, "{r:?}");
    assert!(
        r.header("location")
            .unwrap()
            .starts_with(&format!("{proxy}/oauth2/start?rd=")),
        "{r:?}"
    );
    assert_eq!(r.json()["reason"], "session_invalid");
    assert!(cleared(&r), "{r:?}");
    let r = get(&format!("{proxy}/app/x"), &[("Cookie", &tampered)]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "session_invalid");
    assert!(cleared(&r), "{r:?}");
    // A foreign rd is refused on the proxy's /oauth2/start.
    let r = get(
        &format!("{proxy}/oauth2/start?rd=https%3A%2F%2Fevil.example%2F"),
        &[],
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["reason"], "redirect_not_allowed");

    // Back-channel logout is answered on the proxy (its body read there): a logout
    // token that fails validation is 400, and nothing is forwarded.
    let hits = echo.hits();
    for body in ["logout_token=a.b.c", ""] {
        let r = portcullis_test_util::request(
            "POST",
            &format!("{proxy}/oauth2/backchannel_logout"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body,
        );
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["reason"], "logout_token_invalid");
    }
    assert_eq!(echo.hits(), hits);

    // --- Sign-out on the proxy: cookie cleared, RP-initiated logout, session over. ---
    let hits = echo.hits();
    let r = b.send(
        "GET",
        &format!("{proxy}/oauth2/sign_out?rd=http%3A%2F%2F127.0.0.1%3A{proxy_port}%2Fapp%2F"),
        &[],
        "",
    );
    assert_eq!(r.status, 302, "{r:?}\n{}", log());
    let end = r.header("location").unwrap();
    assert!(end.starts_with(&format!("{issuer}/session/end?")), "{end}");
    assert!(end.contains("id_token_hint=") && end.contains("post_logout_redirect_uri="));
    assert!(cleared(&r), "{r:?}");
    assert!(b.cookie("portcullis_session").is_none());
    assert_eq!(echo.hits(), hits, "sign-out is answered, never forwarded");
    let r = get(&format!("{proxy}/app/x"), &[("Cookie", &cookie)]);
    assert_eq!(r.status, 401, "the old cookie is no session: {r:?}");
    assert_eq!(r.json()["reason"], "session_invalid");
}

/// The RFC 8705 `x5t#S256` of a certificate, from openssl's fingerprint.
fn x5t_s256(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().rsplit('=').next().unwrap().replace(':', "");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    portcullis_jose::b64::encode(&bytes)
}

/// curl to the TLS proxy: status and body.
fn curl(ca: &Path, client: Option<(&Path, &Path)>, headers: &[String], url: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn certificate_bound_tokens_on_the_proxy_listener() {
    let dir = TempDir::new("proxy-cnf");
    let pki = Pki::new(dir.path(), "test-ca");
    let (server_cert, server_key) = pki.issue("proxy", "DNS:localhost,IP:127.0.0.1");
    let (alice, alice_key) = pki.issue("alice", "DNS:alice");
    let (bob, bob_key) = pki.issue("bob", "DNS:bob");
    let iss = "https://issuer.test";
    let issuer = Issuer::new(Algorithm::ES256, "k1", iss);
    let echo = EchoServer::start(None);
    let (http, grpc, admin, proxy_port) = (free_port(), free_port(), free_port(), free_port());
    let config = format!(
        r#"  proxy: 127.0.0.1:{proxy_port}
  proxy_tls: {{cert: {sc}, key: {sk}, client_ca: {ca}, client_auth: optional}}
upstreams:
  - name: app
    urls: ["http://127.0.0.1:{up}"]
providers:
  - name: corp
    issuer: {iss}
    audiences: [app]
    jwks: {{inline: {jwks}}}
    forward_token: false
    claims_to_headers:
      - {{header: x-user, claim: sub}}
rules:
  - {{name: api, match: {{path: "/api/**"}}, upstream: app}}
"#,
        sc = server_cert.display(),
        sk = server_key.display(),
        ca = pki.ca().display(),
        up = echo.port,
        jwks = issuer.jwks(),
    );
    let portcullis = Portcullis::start_on(BIN, &config, http, grpc, admin);
    portcullis.wait_ready(Duration::from_secs(20));
    wait_for_port(proxy_port, Duration::from_secs(20));
    let url = format!("https://127.0.0.1:{proxy_port}/api/orders");
    let ca = pki.ca();
    let alice_x5t = x5t_s256(&alice);
    let bound = issuer.mint(json!({
        "sub": "alice", "aud": "app", "cnf": {"x5t#S256": alice_x5t},
    }));
    let auth = format!("Authorization: Bearer {bound}");

    // With the certificate it is bound to: through, the upstream sees the identity.
    let (status, body) = curl(
        &ca,
        Some((&alice, &alice_key)),
        std::slice::from_ref(&auth),
        &url,
    );
    assert_eq!(status, 200, "{body}\n{}", portcullis.log());
    let e = seen(&body);
    assert_eq!(e["headers"]["x-user"], "alice", "{e}");
    assert!(e["headers"].get("authorization").is_none(), "{e}");

    // Another certificate of the same CA: 401 certificate_mismatch.
    let (status, body) = curl(
        &ca,
        Some((&bob, &bob_key)),
        std::slice::from_ref(&auth),
        &url,
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(seen(&body)["reason"], "certificate_mismatch", "{body}");

    // No client certificate (allowed by client_auth: optional): 401 certificate_mismatch.
    let (status, body) = curl(&ca, None, std::slice::from_ref(&auth), &url);
    assert_eq!(status, 401, "{body}");
    assert_eq!(seen(&body)["reason"], "certificate_mismatch", "{body}");

    // A client-sent X-Forwarded-Client-Cert naming alice's certificate is not the
    // connection's certificate: refused without one and with bob's.
    let hex: String = {
        let raw = portcullis_jose::b64::decode(alice_x5t.as_bytes()).unwrap();
        raw.iter().map(|b| format!("{b:02x}")).collect()
    };
    let xfcc = format!("X-Forwarded-Client-Cert: Hash={hex}");
    for client in [None, Some((bob.as_path(), bob_key.as_path()))] {
        let (status, body) = curl(&ca, client, &[auth.clone(), xfcc.clone()], &url);
        assert_eq!(status, 401, "forged XFCC, client {client:?}: {body}");
        assert_eq!(seen(&body)["reason"], "certificate_mismatch", "{body}");
    }
    // And the upstream never receives a client's XFCC.
    let (status, body) = curl(
        &ca,
        Some((&alice, &alice_key)),
        &[auth.clone(), xfcc.clone()],
        &url,
    );
    assert_eq!(status, 200, "{body}");
    let e = seen(&body);
    assert!(e["headers"].get("x-forwarded-client-cert").is_none(), "{e}");

    // An unbound token still passes without a certificate.
    let plain = issuer.mint(json!({"sub": "carol", "aud": "app"}));
    let (status, body) = curl(&ca, None, &[format!("Authorization: Bearer {plain}")], &url);
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen(&body)["headers"]["x-user"], "carol");

    // From a peer in trusted_proxies (a TLS-terminating proxy in front), its
    // X-Forwarded-Client-Cert names the client certificate; the connection's own
    // certificate, when there is one, still wins.
    portcullis.rewrite_config(&format!("{config}trusted_proxies: [127.0.0.1/32]\n"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = curl(&ca, None, &[auth.clone(), xfcc.clone()], &url);
        if status == 200 {
            assert_eq!(seen(&body)["headers"]["x-user"], "alice", "{body}");
            break;
        }
        assert_eq!(seen(&body)["reason"], "certificate_mismatch", "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "trusted_proxies never reloaded\n{}",
            portcullis.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = curl(
        &ca,
        Some((&bob, &bob_key)),
        &[auth.clone(), xfcc.clone()],
        &url,
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(seen(&body)["reason"], "certificate_mismatch", "{body}");
}
