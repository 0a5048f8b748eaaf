//! Browser login against a real OpenID Provider (npm `oidc-provider`, scripted
//! login) through real Traefik (302 to log in) and NGINX `auth_request` (401 +
//! `error_page`), with a cookie-keeping client that follows redirects: the full
//! login, the session as a credential (claims, headers, the minted session token
//! checked by PyJWT against our JWKS), tampered cookies, forged and replayed
//! `state`, foreign `rd`, sign-out with RP-initiated logout, back-channel logout.
//! One OP, one Portcullis, one Traefik and one NGINX serve every case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::process::Command;
use std::time::Duration;

use portcullis_test_util::{
    Browser, Child, EchoUpstream, OidcProvider, Portcullis, TempDir, free_port, peer_bin, python,
    resolve, spawn_traefik, wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "portcullis-client-secret-0123456789";

struct World {
    _op: OidcProvider,
    op: String,
    portcullis: Portcullis,
    public: String,
    traefik_url: String,
    nginx_url: String,
    _traefik: Child,
    _nginx: Child,
    _upstream: EchoUpstream,
    _dir: TempDir,
}

fn start() -> World {
    let dir = TempDir::new("login");
    let (http, grpc, admin) = (free_port(), free_port(), free_port());
    let (traefik_port, nginx_port) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{http}");
    let traefik_url = format!("http://127.0.0.1:{traefik_port}");
    let nginx_url = format!("http://127.0.0.1:{nginx_port}");
    let op = OidcProvider::start(
        dir.path(),
        &json!([{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{public}/oauth2/callback")],
            "post_logout_redirect_uris": [format!("{traefik_url}/app/"), format!("{nginx_url}/app/")],
            "backchannel_logout_uri": format!("{public}/oauth2/backchannel_logout"),
            "backchannel_logout_session_required": true,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }]),
    );
    let issuer = op.issuer();
    let key = dir.path().join("signing.pem");
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
    // 32 random-looking bytes, URL-safe base64 without padding (as the contract allows).
    let secret = dir.write(
        "session.key",
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83v\n",
    );
    let config = format!(
        r#"
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
  public_url: {public}
  secret_file: {secret}
  cookie: {{secure: false}}
  ttl: 1h
  allowed_redirect_hosts: ["127.0.0.1"]
  token:
    key_file: {key}
    issuer: {public}
    audiences: [mesh]
    ttl: 5m
    claims: [sub, email, groups]
    header: x-session-token
rules:
  - name: admins
    match: {{path: /admins/**}}
    login: op
    claims: {{groups: [admins]}}
  - name: app
    match: {{path: /app/**}}
    login: op
"#,
        secret = secret.display(),
        key = key.display(),
    );
    let portcullis = Portcullis::start_on(BIN, &config, http, grpc, admin);
    portcullis.wait_ready(Duration::from_secs(20));
    let upstream = EchoUpstream::start();

    let dynamic = dir.write(
        "dynamic.yml",
        &format!(
            r#"
http:
  routers:
    app:
      entryPoints: [web]
      rule: "PathPrefix(`/`)"
      middlewares: [portcullis]
      service: app
  middlewares:
    portcullis:
      forwardAuth:
        address: "{public}/verify"
        authResponseHeaders: [X-User, X-Email, X-Session-Token]
  services:
    app:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{up}"
"#,
            up = upstream.port
        ),
    );
    let traefik_config = dir.write(
        "traefik.yml",
        &format!(
            r#"
global: {{checkNewVersion: false, sendAnonymousUsage: false}}
entryPoints:
  web: {{address: "127.0.0.1:{traefik_port}"}}
providers:
  file: {{filename: "{dynamic}"}}
log: {{level: INFO, filePath: "{logs}/traefik.log"}}
"#,
            dynamic = dynamic.display(),
            logs = dir.path().display()
        ),
    );
    let traefik = spawn_traefik(&traefik_config, dir.path());
    wait_for_port(traefik_port, Duration::from_secs(20));
    // The file provider's routers arrive a moment after the port opens.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while portcullis_test_util::get(&format!("{traefik_url}/app/"), &[]).status == 404 {
        assert!(std::time::Instant::now() < deadline, "Traefik never routed");
        std::thread::sleep(Duration::from_millis(50));
    }

    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let nginx_conf = nginx_dir.join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        format!(
            r#"
daemon off;
worker_processes 1;
pid nginx.pid;
error_log error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    server {{
        listen 127.0.0.1:{nginx_port};
        auth_request /_portcullis;
        auth_request_set $portcullis_user $upstream_http_x_user;
        auth_request_set $portcullis_token $upstream_http_x_session_token;
        # ingress-nginx auth-signin: a 401 sends the browser to log in.
        error_page 401 = @login;
        location / {{
            proxy_pass http://127.0.0.1:{up};
            proxy_set_header X-User $portcullis_user;
            proxy_set_header X-Session-Token $portcullis_token;
        }}
        location = /_portcullis {{
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_pass {public}/verify;
        }}
        location @login {{
            return 302 {public}/oauth2/start?rd=$scheme://$http_host$request_uri;
        }}
    }}
}}
"#,
            up = upstream.port
        ),
    )
    .unwrap();
    let nginx = Child::spawn(
        Command::new(peer_bin("nginx"))
            .arg("-p")
            .arg(&nginx_dir)
            .arg("-c")
            .arg(&nginx_conf),
        &nginx_dir.join("stdout.log"),
    );
    wait_for_port(nginx_port, Duration::from_secs(10));
    World {
        op: issuer,
        _op: op,
        portcullis,
        public,
        traefik_url,
        nginx_url,
        _traefik: traefik,
        _nginx: nginx,
        _upstream: upstream,
        _dir: dir,
    }
}

/// What the echo upstream saw, from its JSON answer.
fn seen(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not the echo ({e}): {body}"))
}

fn header<'v>(echo: &'v Value, name: &str) -> Option<&'v str> {
    echo["headers"][name].as_str()
}

/// Logs `account` in through `base` (Traefik or NGINX) at `path`; returns the browser.
fn login(w: &World, base: &str, path: &str, account: &str) -> Browser {
    let mut b = Browser::navigating();
    b.headers
        .push(("x-op-account".to_owned(), account.to_owned()));
    let (url, r) = b.get(&format!("{base}{path}"));
    assert_eq!(r.status, 200, "{url}: {r:?}\nlog:\n{}", w.portcullis.log());
    assert_eq!(url, format!("{base}{path}"), "back where it started");
    let echo = seen(&r.body);
    assert_eq!(header(&echo, "x-user"), Some(account), "{echo}");
    b
}

#[test]
fn login_through_traefik_and_nginx() {
    let w = start();
    let public = &w.public;

    // --- The full login through Traefik: 302 to /oauth2/start, the OP, back. ---
    let mut first = Browser::navigating();
    let r = first.send("GET", &format!("{}/app/page?x=1", w.traefik_url), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    let location = r.header("location").unwrap().to_owned();
    let traefik_port = w.traefik_url.rsplit(':').next().unwrap();
    let want = format!(
        "{public}/oauth2/start?rd=http%3A%2F%2F127.0.0.1%3A{traefik_port}%2Fapp%2Fpage%3Fx%3D1"
    );
    assert_eq!(location, want);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["reason"], "login_required");
    // /oauth2/start: to the OP with PKCE S256, state and nonce; state cookie set.
    let r = first.send("GET", &location, &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    let auth = r.header("location").unwrap().to_owned();
    assert!(auth.starts_with(&format!("{}/auth?", w.op)), "{auth}");
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "client_id=portcullis",
        "scope=openid%20email%20profile",
    ] {
        assert!(auth.contains(part), "{part} in {auth}");
    }
    // One state cookie per login, named after its state.
    let state_cookie = first
        .cookies
        .iter()
        .find(|c| c.name.starts_with("portcullis_session_state_"))
        .unwrap()
        .clone();
    assert!(state_cookie.http_only && state_cookie.same_site.as_deref() == Some("Lax"));
    let (url, r) = first.get(&auth);
    assert_eq!(r.status, 200, "{url}: {r:?}\n{}", w.portcullis.log());
    let echo = seen(&r.body);
    assert_eq!(echo["path"], "/app/page?x=1");
    assert_eq!(header(&echo, "x-user"), Some("alice"));
    assert_eq!(header(&echo, "x-email"), Some("alice@example.com"));
    let session = first.cookie("portcullis_session").unwrap().clone();
    assert!(session.http_only && session.same_site.as_deref() == Some("Lax"));
    assert!(
        first.cookie(&state_cookie.name).is_none(),
        "state cookie is single use"
    );

    // The minted session token, verified by PyJWT against /.well-known/jwks.json.
    let token = header(&echo, "x-session-token")
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    let script = r#"
import json, sys, jwt
url, token, iss = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(__import__('urllib.request').request.urlopen(url + "/.well-known/openid-configuration"))
assert cfg["issuer"] == iss, cfg
key = jwt.PyJWKClient(cfg["jwks_uri"]).get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=cfg["id_token_signing_alg_values_supported"], audience="mesh", issuer=iss)
print(json.dumps(claims))
"#;
    let out = Command::new(python())
        .args(["-c", script, public, &token, public])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyJWT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], json!(["admins"]));
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 300);

    // An answer for a session is not to be cached (the session can end before it expires).
    let verify = verify_as_traefik(
        &w.portcullis,
        "/app/page",
        &format!("portcullis_session={}", session.value),
    );
    assert_eq!(verify.status, 200);
    assert_eq!(verify.header("cache-control"), Some("no-store"));
    // The session is a credential for other login rules too (claims read from it).
    let (_, r) = first.get(&format!("{}/admins/x", w.traefik_url));
    assert_eq!(r.status, 200, "{r:?}");

    // --- A client that is not a browser gets 401, never a redirect. ---
    let r = portcullis_test_util::get(&format!("{}/app/x", w.traefik_url), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "login_required");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="portcullis""#)
    );

    // --- Tampered cookie: no session; a navigation is sent to log in with the cookie cleared. ---
    let mut tampered = Browser::navigating();
    let mut value = session.value.clone().into_bytes();
    let i = value.len() - 5;
    value[i] = if value[i] == b'A' { b'B' } else { b'A' };
    let cookie = format!("portcullis_session={}", String::from_utf8(value).unwrap());
    let r = tampered.send(
        "GET",
        &format!("{}/app/x", w.traefik_url),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(r.status, 302, "{r:?}");
    assert!(
        r.header("location")
            .unwrap()
            .starts_with(&format!("{public}/oauth2/start?rd="))
    );
    assert_eq!(r.json()["reason"], "session_invalid");
    assert!(
        r.headers.iter().any(|(n, v)| n == "set-cookie"
            && v.starts_with("portcullis_session=;")
            && v.contains("Max-Age=0")),
        "{r:?}"
    );
    let r = portcullis_test_util::get(&format!("{}/app/x", w.traefik_url), &[("Cookie", &cookie)]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "session_invalid");
    // A cookie sealed for another purpose (the state cookie) is no session either.
    let state_as_session = format!("portcullis_session={}", state_cookie.value);
    let r = portcullis_test_util::get(
        &format!("{}/app/x", w.traefik_url),
        &[("Cookie", &state_as_session)],
    );
    assert_eq!(r.json()["reason"], "session_invalid");
    // A bearer token that fails is not rescued by a valid session.
    let cookie_ok = format!("portcullis_session={}", session.value);
    let r = portcullis_test_util::get(
        &format!("{}/app/x", w.traefik_url),
        &[("Cookie", &cookie_ok), ("Authorization", "Bearer a.b.c")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "token_malformed");

    // --- Replayed and forged state. ---
    let (callback_url, _) = first
        .trail
        .iter()
        .find(|(u, _)| u.starts_with(&format!("{public}/oauth2/callback")))
        .unwrap()
        .clone();
    let state_pair = format!("{}={}", state_cookie.name, state_cookie.value);
    let r = portcullis_test_util::get(&callback_url, &[("Cookie", &state_pair)]);
    assert_eq!(r.status, 400, "replayed: {r:?}");
    assert_eq!(r.json()["reason"], "state_invalid");
    let mut fresh = Browser::navigating();
    let r = fresh.send("GET", &format!("{public}/oauth2/start?rd=/x"), &[], "");
    assert_eq!(r.status, 302);
    let forged = fresh.send(
        "GET",
        &format!("{public}/oauth2/callback?code=abc&state=forged"),
        &[],
        "",
    );
    assert_eq!(forged.status, 400, "forged: {forged:?}");
    assert_eq!(forged.json()["reason"], "state_invalid");
    let no_cookie =
        portcullis_test_util::get(&format!("{public}/oauth2/callback?code=abc&state=x"), &[]);
    assert_eq!(no_cookie.status, 400);
    let provider_error = portcullis_test_util::get(
        &format!("{public}/oauth2/callback?error=access_denied&state=x"),
        &[],
    );
    assert_eq!(provider_error.status, 400);
    assert_eq!(provider_error.json()["reason"], "provider_error");

    // --- Foreign rd. ---
    for rd in [
        "https://evil.example/",
        "http://127.0.0.1.evil.example/",
        "//evil.example/",
        "http://evil.example%09@127.0.0.1/",
        "http://127.0.0.1@evil.example/",
        "/\\evil.example",
    ] {
        let url = format!(
            "{public}/oauth2/start?rd={}",
            percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let r = portcullis_test_util::get(&url, &[]);
        assert_eq!(r.status, 400, "rd {rd:?}: {r:?}");
        assert_eq!(r.json()["reason"], "redirect_not_allowed", "rd {rd:?}");
    }

    // --- Claims read from the session: bob is not an admin. ---
    let bob_browser = login(&w, &w.traefik_url, "/app/", "bob");
    let mut bob = bob_browser;
    let r = bob.send("GET", &format!("{}/admins/", w.traefik_url), &[], "");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["reason"], "claim_mismatch");

    // --- NGINX auth_request: 401 (never 302), then error_page sends the browser to log in. ---
    let mut n = Browser::navigating();
    let r = n.send("GET", &format!("{}/app/n", w.nginx_url), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    let loc = r.header("location").unwrap().to_owned();
    assert!(
        loc.starts_with(&format!("{public}/oauth2/start?rd=")),
        "{loc}"
    );
    let verify = w.portcullis.verify(&[
        ("X-Original-Method", "GET"),
        ("X-Original-URI", "/app/n"),
        ("Host", "127.0.0.1"),
        ("Accept", "text/html"),
    ]);
    assert_eq!(verify.status, 401, "NGINX only passes 401/403: {verify:?}");
    assert_eq!(verify.json()["reason"], "login_required");
    let (url, r) = n.get(&loc);
    assert_eq!(r.status, 200, "{url}: {r:?}");
    let echo = seen(&r.body);
    assert_eq!(header(&echo, "x-user"), Some("alice"));
    assert_eq!(
        header(&echo, "x-session-token").unwrap().split('.').count(),
        3
    );

    // --- Back-channel logout: the OP ends session A (by sid); B is untouched. ---
    let mut a = login(&w, &w.traefik_url, "/app/", "alice");
    let b = login(&w, &w.traefik_url, "/app/", "alice");
    let a_cookie = format!(
        "portcullis_session={}",
        a.cookie("portcullis_session").unwrap().value
    );
    let b_cookie = format!(
        "portcullis_session={}",
        b.cookie("portcullis_session").unwrap().value
    );
    op_logout(
        &mut a,
        &format!("{}/session/end?client_id=portcullis", w.op),
    );
    let r = portcullis_test_util::get(&format!("{}/app/", w.traefik_url), &[("Cookie", &a_cookie)]);
    assert_eq!(
        r.status,
        401,
        "A ended by back-channel logout: {r:?}\n{}\nOP:\n{}",
        w.portcullis.log(),
        w._op.log()
    );
    assert_eq!(r.json()["reason"], "session_invalid");
    let r = portcullis_test_util::get(&format!("{}/app/", w.traefik_url), &[("Cookie", &b_cookie)]);
    assert_eq!(r.status, 200, "B still signed in: {r:?}");
    // A logout token that fails validation: 400.
    for body in [
        "logout_token=a.b.c",
        "",
        "logout_token=eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.",
    ] {
        let r = portcullis_test_util::request(
            "POST",
            &format!("{public}/oauth2/backchannel_logout"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body,
        );
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["reason"], "logout_token_invalid");
    }

    // --- Sign-out: cookie cleared, RP-initiated logout at the OP, back to rd. ---
    let before = format!(
        "portcullis_session={}",
        first.cookie("portcullis_session").unwrap().value
    );
    let rd = format!("{}/app/", w.traefik_url);
    let r = first.send(
        "GET",
        &format!(
            "{public}/oauth2/sign_out?rd={}",
            percent_encoding::utf8_percent_encode(&rd, percent_encoding::NON_ALPHANUMERIC)
        ),
        &[],
        "",
    );
    assert_eq!(r.status, 302, "{r:?}");
    let end = r.header("location").unwrap().to_owned();
    assert!(end.starts_with(&format!("{}/session/end?", w.op)), "{end}");
    assert!(
        end.contains("id_token_hint=") && end.contains("post_logout_redirect_uri="),
        "{end}"
    );
    assert!(
        first.cookie("portcullis_session").is_none(),
        "cookie cleared"
    );
    // The OP's ID token (the hint) is also a bearer token of this provider: on an allow
    // by a token, a client-sent session token header is named for removal.
    let hint = between(&format!("{end}&"), "id_token_hint=", "&").unwrap();
    let id_token = percent_encoding::percent_decode_str(&hint)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let bearer = format!("Bearer {id_token}");
    let r = w.portcullis.verify(&[
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Host", "127.0.0.1"),
        ("X-Forwarded-Uri", "/app/x"),
        ("Authorization", &bearer),
        ("X-Session-Token", "forged"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-session-token"), None);
    assert!(
        r.header("x-envoy-auth-headers-to-remove")
            .is_some_and(|v| v.split(',').any(|h| h == "x-session-token")),
        "{r:?}"
    );
    let last = op_logout(&mut first, &end);
    assert_eq!(last.0, rd, "back at rd after the OP's logout");
    assert!(matches!(last.1.status, 302 | 303), "{:?}", last.1);
    // The old cookie is no session any more.
    let r = portcullis_test_util::get(&format!("{}/app/", w.traefik_url), &[("Cookie", &before)]);
    assert_eq!(r.json()["reason"], "session_invalid", "{r:?}");
    // An rd outside the allowed hosts is refused at sign-out too.
    let r = portcullis_test_util::get(
        &format!("{public}/oauth2/sign_out?rd=https%3A%2F%2Fevil.example%2F"),
        &[],
    );
    assert_eq!(r.status, 400);
    // Without rd and without a session: 200.
    let r = portcullis_test_util::get(&format!("{public}/oauth2/sign_out"), &[]);
    assert_eq!(r.status, 200);
}

/// Follows the OP's logout page: GET it, submit its form (xsrf, logout=yes), then
/// follow redirects; returns the last URL and response (without following it).
fn op_logout(b: &mut Browser, url: &str) -> (String, portcullis_test_util::Response) {
    let r = b.send("GET", url, &[], "");
    assert_eq!(r.status, 200, "OP logout page: {r:?}");
    let action = between(&r.body, "action=\"", "\"").expect("logout form");
    let xsrf = between(&r.body, "name=\"xsrf\" value=\"", "\"").expect("xsrf");
    let action = resolve(url, &action);
    let mut r = b.send(
        "POST",
        &action,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("xsrf={xsrf}&logout=yes"),
    );
    let mut at = action;
    // Follow the OP's own redirects, stop at the first one that leaves it.
    while matches!(r.status, 302 | 303) {
        let next = resolve(&at, r.header("location").unwrap());
        if !next.starts_with(&url[..url.find("/session").unwrap()]) {
            return (next, r);
        }
        at = next;
        r = b.send("GET", &at, &[], "");
    }
    (at, r)
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(text[from..to].to_owned())
}

/// `/verify` as Traefik asks it, for `path` on the app, with `cookie`.
fn verify_as_traefik(p: &Portcullis, path: &str, cookie: &str) -> portcullis_test_util::Response {
    p.verify(&[
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "127.0.0.1"),
        ("X-Forwarded-Uri", path),
        ("Cookie", cookie),
    ])
}

#[test]
fn redis_sessions_are_shared_by_two_replicas() {
    let dir = TempDir::new("login-redis");
    let redis_port = free_port();
    let start_redis = || {
        let redis = Child::spawn(
            Command::new(peer_bin("redis-server"))
                .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path()),
            &dir.path().join("redis.log"),
        );
        wait_for_port(redis_port, Duration::from_secs(10));
        redis
    };
    let mut redis = start_redis();
    let upstream = EchoUpstream::start();
    let rd = format!("http://127.0.0.1:{}/app/", upstream.port);
    let (h1, g1, a1) = (free_port(), free_port(), free_port());
    let public = format!("http://127.0.0.1:{h1}");
    let op = OidcProvider::start_with(
        dir.path(),
        &json!([{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{public}/oauth2/callback")],
            "post_logout_redirect_uris": [rd.clone()],
            "backchannel_logout_uri": format!("{public}/oauth2/backchannel_logout"),
            "backchannel_logout_session_required": true,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        }]),
        // Access tokens of 2 s: sessions refresh during the test.
        2,
    );
    let issuer = op.issuer();
    let secret = dir.write(
        "session.key",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
    );
    let client_secret = dir.write("client.secret", &format!("{SECRET}\n"));
    let config = format!(
        r#"
providers:
  - name: op
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    login:
      client_id: portcullis
      client_secret_file: {client_secret}
      token_endpoint_auth: client_secret_post
    claims_to_headers:
      - {{header: x-user, claim: sub}}
sessions:
  public_url: {public}
  secret_file: {secret}
  cookie: {{secure: false}}
  store: redis://127.0.0.1:{redis_port}/0
  allowed_redirect_hosts: ["127.0.0.1"]
rules:
  - name: app
    match: {{path: /app/**}}
    login: op
"#,
        client_secret = client_secret.display(),
        secret = secret.display(),
    );
    let one = Portcullis::start_on(BIN, &config, h1, g1, a1);
    let two = Portcullis::start(BIN, &config);
    one.wait_ready(Duration::from_secs(20));
    two.wait_ready(Duration::from_secs(20));

    let log_in = || {
        let mut b = Browser::navigating();
        let start = format!(
            "{public}/oauth2/start?rd={}",
            percent_encoding::utf8_percent_encode(&rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let (url, r) = b.get(&start);
        assert_eq!(url, rd, "{r:?}\n{}", one.log());
        let cookie = format!(
            "portcullis_session={}",
            b.cookie("portcullis_session").unwrap().value
        );
        (b, cookie)
    };
    let (mut first, cookie) = log_in();
    // The cookie holds a sealed id, not the session.
    assert!(cookie.len() < 200, "{cookie}");
    for replica in [&one, &two] {
        let r = verify_as_traefik(replica, "/app/x", &cookie);
        assert_eq!(r.status, 200, "{r:?}\n{}", replica.log());
        assert_eq!(r.header("x-user"), Some("alice"));
    }
    // Sign-out at one replica ends the session at the other at once.
    let r = first.send("POST", &format!("{public}/oauth2/sign_out"), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    let r = verify_as_traefik(&two, "/app/x", &cookie);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "session_invalid");

    // Back-channel logout reaches one replica; the session is gone for both.
    let (mut second, cookie) = log_in();
    assert_eq!(verify_as_traefik(&two, "/app/x", &cookie).status, 200);
    let (_, third_cookie) = log_in();
    op_logout(
        &mut second,
        &format!("{issuer}/session/end?client_id=portcullis"),
    );
    let r = verify_as_traefik(&two, "/app/x", &cookie);
    assert_eq!(r.status, 401, "{r:?}\n{}\n{}", one.log(), op.log());
    assert_eq!(r.json()["reason"], "session_invalid");
    // Another OP session of the same user is untouched (the logout named a sid).
    assert_eq!(verify_as_traefik(&two, "/app/x", &third_cookie).status, 200);
    // Refresh: once the access token has expired, a burst of requests on one replica
    // refreshes the session once (the others wait and read its result), and all pass.
    std::thread::sleep(Duration::from_millis(2600));
    let refreshes = |log: &str| log.matches("grant.success refresh_token").count();
    let before = refreshes(&op.log());
    let oks: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| verify_as_traefik(&two, "/app/x", &third_cookie).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        oks,
        vec![200; 8],
        "{}
{}",
        two.log(),
        op.log()
    );
    assert_eq!(
        refreshes(&op.log()) - before,
        1,
        "one refresh for the burst:
{}",
        op.log()
    );
    assert!(!op.log().contains("grant.error"), "{}", op.log());
    // A session id that was never stored is no session, even sealed with our key.
    let r = verify_as_traefik(&two, "/app/x", "portcullis_session=v1.x.AAAA");
    assert_eq!(r.json()["reason"], "session_invalid");

    // Redis stops (issue 18's fault harness found requests held until it came back):
    // a session request is answered at once and fails closed, on both replicas, also
    // while the store reconnects (before the fix the third request here waited 9.5 s).
    redis.stop(Duration::from_secs(5));
    for replica in [&one, &two, &one, &two, &one, &two] {
        let asked = std::time::Instant::now();
        let r = verify_as_traefik(replica, "/app/x", &third_cookie);
        assert_eq!(r.status, 401, "{r:?}\n{}", replica.log());
        assert_eq!(r.json()["reason"], "session_invalid");
        // Not a timing claim: the store's bound is 1 s; a held request waited for the
        // manager's whole reconnect back-off (many seconds) before this fix.
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "held {:?} while Redis was down",
            asked.elapsed()
        );
    }
    // Redis returns (empty: no persistence here): without a restart of Portcullis, a
    // new login works and is shared again.
    let _redis = start_redis();
    let mut recovered = None;
    for _ in 0..50 {
        let (_, cookie) = log_in();
        if verify_as_traefik(&two, "/app/x", &cookie).status == 200 {
            recovered = Some(cookie);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cookie = recovered.unwrap_or_else(|| panic!("no recovery\n{}", two.log()));
    assert_eq!(verify_as_traefik(&one, "/app/x", &cookie).status, 200);
}

/// One end-to-end run in real headless Chromium: the protected page through
/// Traefik, the OP's (scripted) login and back, with a screenshot of the page kept
/// in `target/test-artifacts/login-chromium.png`.
#[test]
fn chromium_logs_in_through_traefik() {
    let w = start();
    let artifacts =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("login-chromium.png");
    let _ = std::fs::remove_file(&shot);
    let scratch = TempDir::new("chromium");
    let url = format!("{}/app/welcome", w.traefik_url);
    let page = portcullis_test_util::chromium_visit(&url, &shot, scratch.path());
    assert_eq!(page["url"], url.as_str(), "{page}\n{}", w.portcullis.log());
    assert_eq!(page["status"], 200, "{page}");
    let echo: Value = serde_json::from_str(page["text"].as_str().unwrap()).unwrap();
    assert_eq!(echo["path"], "/app/welcome");
    assert_eq!(header(&echo, "x-user"), Some("alice"));
    assert_eq!(header(&echo, "x-email"), Some("alice@example.com"));
    let cookies = page["cookies"].as_array().unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "portcullis_session")
        .expect("session cookie in the browser");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Lax");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "screenshot saved"
    );
}

/// Envoy's gRPC ext_authz (`examples/envoy/grpc.yaml`): a browser is sent to log in
/// with a denied response of status 302 and `Location`, and comes back with a
/// session that the gRPC frontend reads as a credential; an API client gets 401.
#[test]
fn envoy_grpc_redirects_and_reads_sessions() {
    let w = start();
    let (port, admin) = (free_port(), free_port());
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/envoy/grpc.yaml"),
    )
    .unwrap();
    for (name, value) in [
        ("__LISTEN_PORT__", port),
        ("__ADMIN_PORT__", admin),
        ("__PORTCULLIS_GRPC_PORT__", w.portcullis.grpc),
        ("__UPSTREAM_PORT__", w._upstream.port),
    ] {
        text = text.replace(name, &value.to_string());
    }
    let dir = TempDir::new("login-envoy");
    let config = dir.write("envoy.yaml", &text);
    let _envoy = Child::spawn(
        Command::new(peer_bin("envoy"))
            .arg("--config-path")
            .arg(&config)
            .args(["--concurrency", "1", "--base-id", &admin.to_string()])
            .args(["--log-level", "warn", "--disable-hot-restart"]),
        &dir.path().join("envoy.log"),
    );
    wait_for_port(port, Duration::from_secs(20));
    let envoy = format!("http://127.0.0.1:{port}");

    let r = portcullis_test_util::get(&format!("{envoy}/app/e"), &[]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "login_required");

    let mut b = Browser::navigating();
    let r = b.send("GET", &format!("{envoy}/app/e?q=1"), &[], "");
    assert_eq!(r.status, 302, "{r:?}\n{}", w.portcullis.log());
    let location = r.header("location").unwrap().to_owned();
    assert_eq!(
        location,
        format!(
            "{}/oauth2/start?rd=http%3A%2F%2F127.0.0.1%3A{port}%2Fapp%2Fe%3Fq%3D1",
            w.public
        )
    );
    let (url, r) = b.get(&location);
    assert_eq!(url, format!("{envoy}/app/e?q=1"));
    assert_eq!(r.status, 200, "{r:?}");
    let echo = seen(&r.body);
    assert_eq!(header(&echo, "x-user"), Some("alice"));
    assert_eq!(
        header(&echo, "x-session-token").unwrap().split('.').count(),
        3
    );

    // A tampered session through Envoy: 302 again, the cookie cleared.
    let cookie = b.cookie("portcullis_session").unwrap().value.clone();
    let last = if cookie.ends_with('A') { 'B' } else { 'A' };
    let tampered = format!("portcullis_session={}{last}", &cookie[..cookie.len() - 1]);
    let r = portcullis_test_util::get(
        &format!("{envoy}/app/e"),
        &[("Cookie", &tampered), ("Accept", "text/html")],
    );
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.json()["reason"], "session_invalid");
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| n == "set-cookie" && v.starts_with("portcullis_session=;")),
        "{r:?}"
    );
}

/// The Istio session-token recipe (`examples/k8s-istio-session-token`): the mesh checks
/// Portcullis's minted session token with a plain `RequestAuthentication`. Istio compiles
/// one into Envoy's `jwt_authn` filter (issuer, audiences, `remote_jwks` from `jwksUri`,
/// `forward` from `forwardOriginalToken`, `claim_to_headers` from
/// `outputClaimToHeaders`); this runs a real Envoy with that filter, built from the
/// recipe's `jwtRules` (the issuer and the JWKS host are the test's), in front of the echo
/// upstream. `requires` stands for the recipe's ALLOW policy on `requestPrincipals`
/// (Istio answers a missing token 403 there, `jwt_authn` alone 401).
#[test]
fn session_token_passes_envoy_jwt_authn_as_the_istio_recipe_configures_it() {
    let w = start();
    let recipe = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/k8s-istio-session-token/request-authentication.yaml"),
    )
    .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&recipe).unwrap();
    let rule = &docs[0]["spec"]["jwtRules"][0];
    let jwks_path = rule["jwksUri"]
        .as_str()
        .unwrap()
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap();
    assert_eq!(jwks_path, "/.well-known/jwks.json");
    assert_eq!(
        rule["audiences"],
        json!(["mesh"]),
        "the test config's audience"
    );
    let claim_header = rule["outputClaimToHeaders"][0]["header"].as_str().unwrap();
    let claim = rule["outputClaimToHeaders"][0]["claim"].as_str().unwrap();
    assert_eq!(rule["forwardOriginalToken"], true);

    let (port, admin) = (free_port(), free_port());
    let config = format!(
        r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
    - address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: mesh
                route_config:
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes:
                        - match: {{prefix: /}}
                          route: {{cluster: app}}
                http_filters:
                  - name: envoy.filters.http.jwt_authn
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
                      providers:
                        portcullis-session-token:
                          issuer: {issuer}
                          audiences: {audiences}
                          forward: true
                          claim_to_headers: [{{header_name: {claim_header}, claim_name: {claim}}}]
                          remote_jwks:
                            http_uri:
                              uri: {public}{jwks_path}
                              cluster: portcullis
                              timeout: 2s
                      rules:
                        - match: {{prefix: /}}
                          requires: {{provider_name: portcullis-session-token}}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: app
      type: STATIC
      load_assignment:
        cluster_name: app
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}}}]}}]
    - name: portcullis
      type: STATIC
      load_assignment:
        cluster_name: portcullis
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {http}}}}}}}}}]}}]
"#,
        issuer = w.public,
        audiences = rule["audiences"],
        public = w.public,
        upstream = w._upstream.port,
        http = w.portcullis.http,
    );
    let dir = TempDir::new("session-token-envoy");
    let path = dir.write("envoy.yaml", &config);
    let _envoy = Child::spawn(
        Command::new(peer_bin("envoy"))
            .arg("--config-path")
            .arg(&path)
            .args(["--concurrency", "1", "--base-id", &admin.to_string()])
            .args(["--log-level", "warn", "--disable-hot-restart"]),
        &dir.path().join("envoy.log"),
    );
    wait_for_port(port, Duration::from_secs(20));
    let mesh = format!("http://127.0.0.1:{port}");

    // A real login; the upstream behind Traefik receives the minted session token.
    let mut b = login(&w, &w.traefik_url, "/app/mesh", "alice");
    let (_, r) = b.get(&format!("{}/app/mesh", w.traefik_url));
    let token = header(&seen(&r.body), "x-session-token")
        .unwrap()
        .to_owned();

    // The mesh's sidecar accepts it; the claim header and the original token go on.
    let bearer = format!("Bearer {token}");
    let mut ok = None;
    for _ in 0..50 {
        // The first requests may race Envoy's first JWKS fetch from Portcullis.
        let r = portcullis_test_util::get(&format!("{mesh}/orders"), &[("Authorization", &bearer)]);
        if r.status == 200 {
            ok = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = ok.unwrap_or_else(|| {
        panic!(
            "Envoy jwt_authn never accepted the session token\n{}",
            std::fs::read_to_string(dir.path().join("envoy.log")).unwrap_or_default()
        )
    });
    let echo = seen(&r.body);
    assert_eq!(header(&echo, claim_header), Some("alice"), "{echo}");
    assert_eq!(header(&echo, "authorization"), Some(bearer.as_str()));

    // Tampered, or missing: refused by the sidecar, the upstream never asked.
    let mut forged = token.clone().into_bytes();
    let at = token.rfind('.').unwrap() + 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let r = portcullis_test_util::get(
        &format!("{mesh}/orders"),
        &[("Authorization", &format!("Bearer {forged}"))],
    );
    assert_eq!(r.status, 401, "{r:?}");
    let r = portcullis_test_util::get(&format!("{mesh}/orders"), &[]);
    assert_eq!(r.status, 401, "{r:?}");
    // Not a signed token at all: refused.
    let r = portcullis_test_util::get(
        &format!("{mesh}/orders"),
        &[("Authorization", "Bearer e30.e30.e30")],
    );
    assert_eq!(r.status, 401, "{r:?}");
}
