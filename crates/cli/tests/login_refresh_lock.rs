//! The session refresh lock across replicas, for real: two Portcullis replicas
//! share one real `redis-server` session store; npm `oidc-provider` rotates
//! refresh tokens (a spent one is `invalid_grant` and revokes the grant, so a
//! second refresh would lose the session); access tokens last 2 s. Once one has
//! expired, a burst of concurrent requests through both replicas at once makes
//! exactly one refresh grant at the OP (counted by its `grant.success` events),
//! and no request and no session is lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Barrier;
use std::time::Duration;

use portcullis_test_util::{
    Browser, Child, Cookie, EchoUpstream, OidcProvider, Portcullis, TempDir, free_port, peer_bin,
    spawn_traefik, wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "portcullis-client-secret-0123456789";
/// Concurrent requests per burst, half through each replica.
const BURST: usize = 24;

/// `/verify` as Traefik asks it, for `/app/x`, with `cookie`.
fn verify(p: &Portcullis, cookie: &str) -> portcullis_test_util::Response {
    p.verify(&[
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "127.0.0.1"),
        ("X-Forwarded-Uri", "/app/x"),
        ("Cookie", cookie),
    ])
}

/// The sum of `portcullis_login_total{step="refresh",outcome=...}` on a replica.
fn refresh_count(p: &Portcullis, outcome: &str) -> u64 {
    let wanted = format!("outcome=\"{outcome}\"");
    p.metrics()
        .lines()
        .filter(|l| {
            l.starts_with("portcullis_login_total{")
                && l.contains("step=\"refresh\"")
                && l.contains(&wanted)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn two_replicas_refresh_a_session_once() {
    let dir = TempDir::new("login-refresh-lock");
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
    let stored = || -> Value {
        let cli = |args: &[&str]| {
            let out = Command::new(peer_bin("redis-cli"))
                .args(["-h", "127.0.0.1", "-p", &redis_port.to_string()])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let keys = cli(&["--scan", "--pattern", "portcullis:session:*"]);
        let keys: Vec<&str> = keys.lines().collect();
        assert_eq!(keys.len(), 1, "one stored session: {keys:?}");
        serde_json::from_str(&cli(&["GET", keys[0]])).unwrap()
    };
    let upstream = EchoUpstream::start();
    let rd = format!("http://127.0.0.1:{}/app/", upstream.port);
    let (h1, g1, a1) = (free_port(), free_port(), free_port());
    let public = format!("http://127.0.0.1:{h1}");
    let op = OidcProvider::start_with_env(
        dir.path(),
        &json!([{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{public}/oauth2/callback")],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        }]),
        2,
        &[("OP_ROTATE_REFRESH", "1")],
    );
    let issuer = op.issuer();
    let secret = dir.write(
        "session.key",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
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
        secret = secret.display(),
    );
    let one = Portcullis::start_on(BIN, &config, h1, g1, a1);
    let two = Portcullis::start(BIN, &config);
    one.wait_ready(Duration::from_secs(20));
    two.wait_ready(Duration::from_secs(20));
    let logs = || {
        format!(
            "one:\n{}\ntwo:\n{}\nop:\n{}",
            one.log(),
            two.log(),
            op.log()
        )
    };

    let mut b = Browser::navigating();
    let start = format!(
        "{public}/oauth2/start?rd={}",
        percent_encoding::utf8_percent_encode(&rd, percent_encoding::NON_ALPHANUMERIC)
    );
    let (url, r) = b.get(&start);
    assert_eq!(url, rd, "{r:?}\n{}", logs());
    let cookie = format!(
        "portcullis_session={}",
        b.cookie("portcullis_session").unwrap().value
    );
    let first_refresh_token = stored()["refresh_token"].as_str().unwrap().to_owned();

    let refreshes = || op.log().matches("grant.success refresh_token").count();
    let mut previous = first_refresh_token.clone();
    for round in 1..=2 {
        // The access token expires (2 s at the OP).
        std::thread::sleep(Duration::from_millis(2600));
        let before = refreshes();
        let gate = Barrier::new(BURST);
        let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..BURST)
                .map(|i| {
                    let (replica, gate, cookie) =
                        (if i % 2 == 0 { &one } else { &two }, &gate, &cookie);
                    s.spawn(move || {
                        gate.wait();
                        let r = verify(replica, cookie);
                        (r.status, r.header("x-user").map(str::to_owned))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // No request lost: every one of them passed, as alice.
        assert_eq!(
            statuses,
            vec![(200, Some("alice".to_owned())); BURST],
            "round {round}\n{}",
            logs()
        );
        // Exactly one refresh grant reached the OP, none was refused.
        assert_eq!(refreshes() - before, 1, "round {round}\n{}", logs());
        assert!(!op.log().contains("grant.error"), "{}", logs());
        // The OP rotated the refresh token and the store holds the new one.
        let now = stored()["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(now, previous, "round {round}: the refresh token rotated");
        previous = now;
        // No session lost: it still works on both replicas.
        for replica in [&one, &two] {
            assert_eq!(verify(replica, &cookie).status, 200, "{}", logs());
        }
    }
    // One replica refreshed each round; the other requests waited (on their replica's
    // lock, or polling the store for the other replica's result).
    let ok = refresh_count(&one, "ok") + refresh_count(&two, "ok");
    assert_eq!(ok, 2, "{}\n{}", one.metrics(), two.metrics());
    assert_eq!(
        refresh_count(&one, "refused") + refresh_count(&two, "refused"),
        0
    );

    // The OP really rotates: the spent first refresh token is refused (and, as
    // reuse detection, revokes the grant: the very loss the lock prevents).
    let discovery =
        portcullis_test_util::get(&format!("{issuer}/.well-known/openid-configuration"), &[])
            .json();
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    let r = portcullis_test_util::request(
        "POST",
        token_endpoint,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!(
            "grant_type=refresh_token&refresh_token={first_refresh_token}&client_id=portcullis&client_secret={SECRET}"
        ),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"], "invalid_grant", "{r:?}");
    // So the next refresh is refused and ends the session, on both replicas.
    std::thread::sleep(Duration::from_millis(2600));
    let r = verify(&two, &cookie);
    assert_eq!(r.status, 401, "{r:?}\n{}", logs());
    assert_eq!(r.json()["reason"], "session_invalid");
    assert_eq!(verify(&one, &cookie).status, 401);
    assert_eq!(refresh_count(&two, "refused"), 1, "{}", two.metrics());
    // The sessions series: begun at one, ended at two (the refused refresh).
    let series = |p: &Portcullis, name: &str| {
        p.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
    };
    assert_eq!(
        series(&one, r#"portcullis_sessions_created_total{store="redis"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        series(
            &two,
            r#"portcullis_sessions_ended_total{store="redis",cause="refresh_refused"}"#
        )
        .as_deref(),
        Some("1")
    );
}

/// The `portcullis_session` value a response sets, if any (not a clearing one).
fn set_session(r: &portcullis_test_util::Response) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with("portcullis_session=") && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// `store: cookie`: the refresh token travels sealed in the session cookie; an
/// expired access token is refreshed once for a burst of requests, every answer
/// carries the renewed cookie, and that cookie holds the rotated refresh token (the
/// other replica, which never saw the refresh, refreshes with it at the OP).
#[test]
fn cookie_sessions_refresh_and_renew_the_cookie() {
    let dir = TempDir::new("login-cookie-refresh");
    let upstream = EchoUpstream::start();
    let rd = format!("http://127.0.0.1:{}/app/", upstream.port);
    let (h1, g1, a1) = (free_port(), free_port(), free_port());
    let public = format!("http://127.0.0.1:{h1}");
    let op = OidcProvider::start_with_env(
        dir.path(),
        &json!([{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{public}/oauth2/callback")],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }]),
        2,
        &[("OP_ROTATE_REFRESH", "1")],
    );
    let issuer = op.issuer();
    let secret = dir.write(
        "session.key",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
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
    claims_to_headers:
      - {{header: x-user, claim: sub}}
sessions:
  public_url: {public}
  secret_file: {secret}
  cookie: {{secure: false}}
  allowed_redirect_hosts: ["127.0.0.1"]
rules:
  - name: app
    match: {{path: /app/**}}
    login: op
"#,
        secret = secret.display(),
    );
    let one = Portcullis::start_on(BIN, &config, h1, g1, a1);
    let two = Portcullis::start(BIN, &config);
    one.wait_ready(Duration::from_secs(20));
    two.wait_ready(Duration::from_secs(20));
    let logs = || {
        format!(
            "one:\n{}\ntwo:\n{}\nop:\n{}",
            one.log(),
            two.log(),
            op.log()
        )
    };
    let refreshes = || op.log().matches("grant.success refresh_token").count();

    let mut b = Browser::navigating();
    b.headers
        .push(("x-op-account".to_owned(), "bob".to_owned()));
    let start = format!(
        "{public}/oauth2/start?rd={}",
        percent_encoding::utf8_percent_encode(&rd, percent_encoding::NON_ALPHANUMERIC)
    );
    let (url, r) = b.get(&start);
    assert_eq!(url, rd, "{r:?}\n{}", logs());
    let old = format!(
        "portcullis_session={}",
        b.cookie("portcullis_session").unwrap().value
    );
    // Fresh: no refresh, no renewed cookie.
    let r = verify(&two, &old);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(set_session(&r), None, "{r:?}");

    std::thread::sleep(Duration::from_millis(2600));
    let gate = Barrier::new(8);
    let answers: Vec<portcullis_test_util::Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (gate, old, one) = (&gate, &old, &one);
                s.spawn(move || {
                    gate.wait();
                    verify(one, old)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let renewed: BTreeSet<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{r:?}\n{}", logs());
            assert_eq!(r.header("x-user"), Some("bob"));
            set_session(r).unwrap_or_else(|| panic!("no renewed cookie: {r:?}"))
        })
        .collect();
    assert_eq!(refreshes(), 1, "one refresh for the burst\n{}", logs());
    assert_eq!(renewed.len(), 1, "one renewed session: {renewed:?}");
    let new = renewed.into_iter().next().unwrap();
    assert_ne!(new, old);
    // The old cookie, still sent by a tab that has not seen the answer: served from
    // the renewed session on this replica, without another refresh.
    let r = verify(&one, &old);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(set_session(&r).as_deref(), Some(new.as_str()));
    // The renewed cookie holds fresh tokens: the other replica takes it as is.
    let r = verify(&two, &new);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(set_session(&r), None);
    assert_eq!(refreshes(), 1);
    // And the rotated refresh token: once expired again, the other replica (which
    // never saw the first refresh) refreshes with the token from the cookie; the
    // OP accepts it (the spent one would be invalid_grant).
    std::thread::sleep(Duration::from_millis(2600));
    let r = verify(&two, &new);
    assert_eq!(r.status, 200, "{r:?}\n{}", logs());
    assert_eq!(refreshes(), 2, "{}", logs());
    assert!(!op.log().contains("grant.error"), "{}", logs());
    let newer = set_session(&r).expect("renewed again");
    assert_ne!(newer, new);
    // Through real Traefik (forwardAuth to replica one, `addAuthCookiesToResponse`):
    // once expired again, the browser's request is refreshed and Traefik hands it
    // the renewed cookie, which it sends from then on.
    let traefik_port = free_port();
    let traefik_url = format!("http://127.0.0.1:{traefik_port}");
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
        address: "http://127.0.0.1:{verify}/verify"
        authResponseHeaders: [X-User]
        addAuthCookiesToResponse: [portcullis_session]
  services:
    app:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{up}"
"#,
            verify = one.http,
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
    let _traefik = spawn_traefik(&traefik_config, dir.path());
    wait_for_port(traefik_port, Duration::from_secs(20));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while portcullis_test_util::get(&format!("{traefik_url}/app/"), &[]).status == 404 {
        assert!(std::time::Instant::now() < deadline, "Traefik never routed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut tb = Browser::default();
    tb.cookies.push(Cookie {
        name: "portcullis_session".to_owned(),
        value: newer["portcullis_session=".len()..].to_owned(),
        domain: "127.0.0.1".to_owned(),
        domain_attr: false,
        path: "/".to_owned(),
        secure: false,
        http_only: true,
        same_site: Some("Lax".to_owned()),
    });
    std::thread::sleep(Duration::from_millis(2600));
    let r = tb.send("GET", &format!("{traefik_url}/app/x"), &[], "");
    assert_eq!(r.status, 200, "{r:?}\n{}", logs());
    let echo: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(echo["headers"]["x-user"], "bob", "{echo}");
    assert_eq!(refreshes(), 3, "{}", logs());
    let newest = format!(
        "portcullis_session={}",
        tb.cookie("portcullis_session").unwrap().value
    );
    assert_ne!(newest, newer, "Traefik passed the renewed cookie on");
    // The cookie Traefik handed over holds fresh tokens: no refresh for it.
    let r = verify(&two, &newest);
    assert_eq!((r.status, set_session(&r)), (200, None), "{r:?}");
    assert_eq!(refreshes(), 3);

    // Through real Envoy (gRPC ext_authz to replica two, `examples/envoy/grpc.yaml`):
    // the renewed cookie rides on the upstream's response (`response_headers_to_add`).
    let (envoy_port, envoy_admin) = (free_port(), free_port());
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/envoy/grpc.yaml"),
    )
    .unwrap();
    for (name, value) in [
        ("__LISTEN_PORT__", envoy_port),
        ("__ADMIN_PORT__", envoy_admin),
        ("__PORTCULLIS_GRPC_PORT__", two.grpc),
        ("__UPSTREAM_PORT__", upstream.port),
    ] {
        text = text.replace(name, &value.to_string());
    }
    let envoy_config = dir.write("envoy.yaml", &text);
    let _envoy = Child::spawn(
        Command::new(peer_bin("envoy"))
            .arg("--config-path")
            .arg(&envoy_config)
            .args(["--concurrency", "1", "--base-id", &envoy_admin.to_string()])
            .args(["--log-level", "warn", "--disable-hot-restart"]),
        &dir.path().join("envoy.log"),
    );
    wait_for_port(envoy_port, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(2600));
    let r = portcullis_test_util::get(
        &format!("http://127.0.0.1:{envoy_port}/app/e"),
        &[("Cookie", &newest)],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", logs());
    assert_eq!(refreshes(), 4, "{}", logs());
    let via_envoy = set_session(&r).unwrap_or_else(|| panic!("Envoy passed no cookie: {r:?}"));
    assert_ne!(via_envoy, newest);
    let r = verify(&one, &via_envoy);
    assert_eq!((r.status, set_session(&r)), (200, None), "{r:?}");

    // A tampered renewed cookie is no session.
    let mut tampered = newer.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let r = verify(&two, &String::from_utf8(tampered).unwrap());
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "session_invalid");
    // Sign-out with the renewed cookie ends the session on that replica, and the
    // old cookies of the same session with it.
    let r = portcullis_test_util::request(
        "POST",
        &format!("http://127.0.0.1:{}/oauth2/sign_out", two.http),
        &[("Cookie", &newer)],
        "",
    );
    assert!(matches!(r.status, 200 | 302), "{r:?}");
    for cookie in [&via_envoy, &newest, &newer, &new, &old] {
        let r = verify(&two, cookie);
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(r.json()["reason"], "session_invalid");
    }
    // Cookie sessions are counted as begun and ended; how many are active only
    // the browsers know (no such series).
    let scrape = format!("{}{}", one.metrics(), two.metrics());
    assert!(
        scrape.contains("portcullis_sessions_created_total{store=\"cookie\"} 1"),
        "{scrape}"
    );
    assert!(
        scrape.contains("portcullis_sessions_ended_total{store=\"cookie\",cause=\"sign_out\"} 1"),
        "{scrape}"
    );
    assert!(!scrape.contains("portcullis_sessions_active{"), "{scrape}");
}
