//! Step-up, per-login state cookies and login metrics against the real npm
//! `oidc-provider` (scripted login; `x-op-acr`/`x-op-amr` choose what the login
//! reports), Portcullis's `proxy` listener in front of test-util's echo upstream,
//! and a cookie-keeping client that follows redirects:
//! - step-up (RFC 9470): a `urn:basic` session on an `acr_values: [urn:mfa]` rule is
//!   sent back to log in with `acr_values` (browser) or gets 401
//!   `insufficient_user_authentication` (API); an ID token whose `acr` is not the one
//!   asked for is refused at the callback; an `amr` rule refuses without a redirect;
//! - two logins started in two tabs both complete, each with its own state cookie;
//!   the pending ones are bounded (oldest dropped); replayed and forged state fail;
//! - `portcullis_login_total{step,outcome}` counts each of these exactly, and the
//!   body passes `promtool check metrics`.
//!
//! Run: `cargo test -p portcullis-cli --test login_stepup` (peers: node +
//! oidc-provider, promtool).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::time::Duration;

use portcullis_test_util::{
    Browser, EchoServer, OidcProvider, Portcullis, TempDir, free_port, get, promtool_check,
    wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "portcullis-client-secret-0123456789";

/// The count of `portcullis_login_total{step,outcome}` in a scrape (0 when absent).
fn login_count(metrics: &str, step: &str, outcome: &str) -> u64 {
    let want = format!("portcullis_login_total{{step=\"{step}\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn state_cookies(b: &Browser) -> Vec<String> {
    b.cookies
        .iter()
        .filter(|c| c.name.starts_with("portcullis_session_state_"))
        .map(|c| c.name.clone())
        .collect()
}

/// Forgets the OP's own cookies (its login session), so the next authorization
/// request logs in again (as a real step-up re-authenticates).
fn forget_op_session(b: &mut Browser) {
    b.cookies.retain(|c| c.name.starts_with("portcullis_"));
}

#[test]
fn step_up_state_cookies_and_metrics() {
    let dir = TempDir::new("login-stepup");
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
    login: {{client_id: portcullis, client_secret: {SECRET}}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
      - {{header: x-acr, claim: acr}}
sessions:
  public_url: {proxy}
  secret_file: {secret}
  cookie: {{secure: false}}
  ttl: 1h
rules:
  - name: pay
    match: {{path: /pay/**}}
    login: op
    acr_values: [urn:mfa]
    upstream: app
  - name: keys
    match: {{path: /keys/**}}
    login: op
    amr: [hwk]
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
    let before = portcullis.metrics();

    // --- A basic login. ---
    let mut b = Browser::navigating();
    let (url, r) = b.get(&format!("{proxy}/app/x"));
    assert_eq!(r.status, 200, "{url}: {r:?}\n{}", log());
    let e: Value = serde_json::from_str(&r.body).unwrap();
    // No acr asked for: the OP reports none (or the basic one).
    assert!(
        e["headers"]["x-acr"].is_null() || e["headers"]["x-acr"] == "urn:basic",
        "{e}"
    );
    let session = b.cookie("portcullis_session").unwrap().value.clone();
    let cookie = format!("portcullis_session={session}");

    // --- Too weak for `pay`: an API client gets the RFC 9470 challenge. ---
    let r = get(&format!("{proxy}/pay/x"), &[("Cookie", &cookie)]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "step_up_required");
    assert_eq!(r.json()["error"], "insufficient_user_authentication");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(r#"error="insufficient_user_authentication""#)
            && challenge.contains(r#"acr_values="urn:mfa""#),
        "{challenge}"
    );
    // A browser is sent to log in again, asking for urn:mfa; the session is kept.
    let r = b.send("GET", &format!("{proxy}/pay/x?y=1"), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.json()["reason"], "step_up_required");
    let start = r.header("location").unwrap().to_owned();
    assert_eq!(
        start,
        format!(
            "{proxy}/oauth2/start?rd=http%3A%2F%2F127.0.0.1%3A{proxy_port}%2Fpay%2Fx%3Fy%3D1&acr_values=urn%3Amfa"
        )
    );
    assert!(b.cookie("portcullis_session").is_some(), "not cleared");
    let r = b.send("GET", &start, &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    let auth = r.header("location").unwrap().to_owned();
    assert!(auth.contains("&acr_values=urn%3Amfa"), "{auth}");
    assert_eq!(echo.hits(), 1, "no deny reached the upstream");

    // --- The OP answers with a weaker acr than asked for: refused at the callback. ---
    forget_op_session(&mut b);
    b.headers
        .push(("x-op-acr".to_owned(), "urn:basic".to_owned()));
    let (url, r) = b.get(&auth);
    assert!(
        url.starts_with(&format!("{proxy}/oauth2/callback?")),
        "{url}"
    );
    assert_eq!(r.status, 403, "{r:?}\n{}", log());
    assert_eq!(r.json()["reason"], "acr_not_satisfied");
    assert_eq!(r.json()["error"], "insufficient_user_authentication");
    assert!(state_cookies(&b).is_empty(), "its state cookie is cleared");
    assert_eq!(
        b.cookie("portcullis_session").unwrap().value,
        session,
        "the old session stays as it was"
    );
    b.headers.retain(|(n, _)| n != "x-op-acr");

    // --- Stepped up: urn:mfa asked and given; back at /pay with the new session. ---
    forget_op_session(&mut b);
    let (url, r) = b.get(&format!("{proxy}/pay/x?y=1"));
    assert_eq!(r.status, 200, "{url}: {r:?}\n{}", log());
    assert_eq!(url, format!("{proxy}/pay/x?y=1"));
    let e: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(e["headers"]["x-acr"], "urn:mfa", "{e}");
    assert_eq!(e["headers"]["x-user"], "alice", "{e}");
    let strong = format!(
        "portcullis_session={}",
        b.cookie("portcullis_session").unwrap().value
    );
    assert_ne!(strong, cookie);
    let r = get(&format!("{proxy}/pay/z"), &[("Cookie", &strong)]);
    assert_eq!(r.status, 200, "{r:?}");

    // --- amr [hwk]: the login said pwd+otp; refused, and never a redirect (no loop). ---
    let r = b.send("GET", &format!("{proxy}/keys/x"), &[], "");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "step_up_required");
    assert!(r.header("location").is_none());
    assert!(
        !r.header("www-authenticate").unwrap().contains("acr_values"),
        "no acr to ask for"
    );

    // --- Two tabs: two logins started before either callback both complete. ---
    let mut tabs = Browser::navigating();
    let r1 = tabs.send("GET", &format!("{proxy}/oauth2/start?rd=/app/one"), &[], "");
    let r2 = tabs.send("GET", &format!("{proxy}/oauth2/start?rd=/app/two"), &[], "");
    assert_eq!((r1.status, r2.status), (302, 302));
    assert_eq!(state_cookies(&tabs).len(), 2, "{:?}", tabs.cookies);
    let auth1 = r1.header("location").unwrap().to_owned();
    let auth2 = r2.header("location").unwrap().to_owned();
    let (url, r) = tabs.get(&auth2);
    assert_eq!(
        (url.as_str(), r.status),
        (format!("{proxy}/app/two").as_str(), 200),
        "{r:?}\n{}",
        log()
    );
    assert_eq!(
        state_cookies(&tabs).len(),
        1,
        "the second callback took only its own"
    );
    let (url, r) = tabs.get(&auth1);
    assert_eq!(
        (url.as_str(), r.status),
        (format!("{proxy}/app/one").as_str(), 200),
        "{r:?}\n{}",
        log()
    );
    assert!(state_cookies(&tabs).is_empty());
    // Replayed: the first tab's callback again, with its state cookie put back.
    let (callback, _) = tabs
        .trail
        .iter()
        .rev()
        .find(|(u, _)| u.starts_with(&format!("{proxy}/oauth2/callback?")))
        .unwrap()
        .clone();
    let state_before = tabs
        .trail
        .iter()
        .rev()
        .find_map(|(u, r)| {
            (u.starts_with(&format!("{proxy}/oauth2/start")))
                .then(|| {
                    r.headers
                        .iter()
                        .find(|(n, v)| {
                            n == "set-cookie" && v.contains("_state_") && !v.contains("Max-Age=0")
                        })
                        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
                })
                .flatten()
        })
        .unwrap();
    let r = get(&callback, &[("Cookie", &state_before)]);
    assert_eq!(r.status, 400, "replayed: {r:?}");
    assert_eq!(r.json()["reason"], "state_invalid");
    // Forged: a state of our own making has no cookie.
    let r = get(
        &format!("{proxy}/oauth2/callback?code=abc&state=forged"),
        &[("Cookie", &state_before)],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "state_invalid");

    // --- Bounded: six logins pending; four state cookies kept, the oldest dropped. ---
    let mut many = Browser::navigating();
    let mut auths = Vec::new();
    for i in 0..6 {
        let r = many.send("GET", &format!("{proxy}/oauth2/start?rd=/app/{i}"), &[], "");
        assert_eq!(r.status, 302);
        auths.push(r.header("location").unwrap().to_owned());
        assert!(
            state_cookies(&many).len() <= 4,
            "{i}: {:?}",
            state_cookies(&many)
        );
    }
    assert_eq!(state_cookies(&many).len(), 4);
    let (_, r) = many.get(&auths[0]);
    assert_eq!(r.status, 400, "the oldest login was dropped: {r:?}");
    assert_eq!(r.json()["reason"], "state_invalid");
    let (url, r) = many.get(&auths[5]);
    assert_eq!(
        (url.as_str(), r.status),
        (format!("{proxy}/app/5").as_str(), 200),
        "{r:?}"
    );

    // --- Every login step counted exactly; the scrape passes promtool. ---
    let after = portcullis.metrics();
    let delta = |step: &str, outcome: &str| {
        login_count(&after, step, outcome) - login_count(&before, step, outcome)
    };
    // start: basic login, step-up twice (refused, then given), two tabs, six pending.
    assert_eq!(delta("start", "ok"), 1 + 2 + 2 + 6, "{after}");
    // callback ok: basic, stepped up, two tabs, the newest pending one.
    assert_eq!(delta("callback", "ok"), 1 + 1 + 2 + 1, "{after}");
    assert_eq!(delta("callback", "acr_not_satisfied"), 1, "{after}");
    // replayed, forged, the dropped one.
    assert_eq!(delta("callback", "state_invalid"), 3, "{after}");
    assert_eq!(delta("sign_out", "ok"), 0);
    promtool_check(&after);
}
