//! Step-up `max_age` against the real npm `oidc-provider` (scripted login) through
//! Portcullis's `proxy` listener, with a cookie-keeping client that follows
//! redirects: a rule that wants a login no older than 3 s sends the browser to log
//! in with `max_age=3`; the ID token's `auth_time` makes the session; once the login
//! is older, an API client gets 401 `step_up_required` with `max_age="3"` in the
//! RFC 9470 challenge and a browser is sent to log in again (the OP re-authenticates
//! because of `max_age`), coming back with a fresh session; `max_age` at
//! `/oauth2/start` is checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::time::Duration;

use portcullis_test_util::{
    Browser, EchoServer, OidcProvider, Portcullis, TempDir, free_port, get, wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "portcullis-client-secret-0123456789";

#[test]
fn max_age_asks_for_a_recent_login() {
    let dir = TempDir::new("login-max-age");
    let (http, grpc, admin, proxy_port) = (free_port(), free_port(), free_port(), free_port());
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let op = OidcProvider::start(
        dir.path(),
        &json!([{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{proxy}/oauth2/callback")],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }]),
    );
    let issuer = op.issuer();
    let secret = dir.write(
        "session.key",
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83v\n",
    );
    let echo = EchoServer::start(None);
    let config = format!(
        r#"  proxy: 127.0.0.1:{proxy_port}
upstreams:
  - name: app
    urls: ["http://127.0.0.1:{up}"]
providers:
  - name: op
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    clock_skew: 0s
    login: {{client_id: portcullis, client_secret: {SECRET}}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
      - {{header: x-auth-time, claim: auth_time}}
sessions:
  public_url: {proxy}
  secret_file: {secret}
  cookie: {{secure: false}}
  ttl: 1h
rules:
  - name: recent
    match: {{path: /recent/**}}
    login: op
    max_age: 3s
    upstream: app
  - name: app
    match: {{path: /app/**}}
    login: op
    upstream: app
"#,
        up = echo.port,
        secret = secret.display(),
    );
    let portcullis = Portcullis::start_on(BIN, &config, http, grpc, admin);
    portcullis.wait_ready(Duration::from_secs(20));
    wait_for_port(proxy_port, Duration::from_secs(20));
    let log = || format!("portcullis:\n{}\nOP:\n{}", portcullis.log(), op.log());

    // --- No session: the login is asked for with max_age at once. ---
    let mut b = Browser::navigating();
    let r = b.send("GET", &format!("{proxy}/recent/x"), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.json()["reason"], "login_required");
    let start = r.header("location").unwrap().to_owned();
    assert!(start.ends_with("&max_age=3"), "{start}");
    let r = b.send("GET", &start, &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    let auth = r.header("location").unwrap().to_owned();
    assert!(
        auth.starts_with(&issuer) && auth.contains("&max_age=3"),
        "{auth}"
    );
    let (url, r) = b.get(&auth);
    assert_eq!(url, format!("{proxy}/recent/x"), "{r:?}\n{}", log());
    assert_eq!(r.status, 200, "{r:?}\n{}", log());
    let e: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(e["headers"]["x-user"], "alice", "{e}");
    let first_auth_time: u64 = e["headers"]["x-auth-time"]
        .as_str()
        .expect("the session holds auth_time")
        .parse()
        .unwrap();
    let cookie = format!(
        "portcullis_session={}",
        b.cookie("portcullis_session").unwrap().value
    );
    assert_eq!(
        get(&format!("{proxy}/recent/x"), &[("Cookie", &cookie)]).status,
        200
    );

    // --- The login grows older than 3 s. ---
    std::thread::sleep(Duration::from_millis(4200));
    // An API client: the RFC 9470 challenge names max_age.
    let r = get(&format!("{proxy}/recent/x"), &[("Cookie", &cookie)]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "step_up_required");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#)
            && challenge.contains(r#"max_age="3""#),
        "{challenge}"
    );
    // A rule without max_age still takes the session.
    assert_eq!(
        get(&format!("{proxy}/app/x"), &[("Cookie", &cookie)]).status,
        200
    );
    let hits = echo.hits();
    // A browser is sent to log in again with max_age; the OP re-authenticates (its
    // own session is older than max_age) and the new session is recent.
    let r = b.send("GET", &format!("{proxy}/recent/x"), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.json()["reason"], "step_up_required");
    let start = r.header("location").unwrap().to_owned();
    assert!(
        start.contains("/oauth2/start?rd=") && start.ends_with("&max_age=3"),
        "{start}"
    );
    let (url, r) = b.get(&start);
    assert_eq!(url, format!("{proxy}/recent/x"), "{r:?}\n{}", log());
    assert_eq!(r.status, 200, "{r:?}\n{}", log());
    assert_eq!(echo.hits(), hits + 1, "no deny reached the upstream");
    let e: Value = serde_json::from_str(&r.body).unwrap();
    let second_auth_time: u64 = e["headers"]["x-auth-time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        second_auth_time >= first_auth_time + 4,
        "a new login: {first_auth_time} then {second_auth_time}"
    );
    let fresh = format!(
        "portcullis_session={}",
        b.cookie("portcullis_session").unwrap().value
    );
    assert_ne!(fresh, cookie);
    assert_eq!(
        get(&format!("{proxy}/recent/x"), &[("Cookie", &fresh)]).status,
        200
    );

    // --- max_age at /oauth2/start is a number of seconds, or refused. ---
    for bad in ["abc", "0", "-1", "1e3", "99999999999", "3%20", "%2B3"] {
        let r = get(
            &format!("{proxy}/oauth2/start?rd=%2Fapp%2F&max_age={bad}"),
            &[],
        );
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert_eq!(r.json()["reason"], "request_invalid", "{bad}");
    }
}
