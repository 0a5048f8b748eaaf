//! Issue 10: confusing raw requests through every proxy set-up in `examples/` (NGINX
//! `auth_request` and the ingress-nginx style server, Envoy gRPC and HTTP ext_authz,
//! Traefik, Caddy), and through Portcullis's own proxy listener (`listen.proxy`, with
//! the proxy-only probes of `proxy_corpus`: smuggling, hop-by-hop tricks, upgrades,
//! `CONNECT`, h2c `:authority` against `Host`), must never reach `/admin/...` or the
//! host-restricted route without an admin token, nor carry a client's identity header
//! to the upstream.
//!
//! Each test starts Portcullis with the matrix config (which has a host-restricted rule
//! for `ops.test`), the proxy from its example, and a recording upstream, then sends the
//! corpus of `portcullis_test_util::corpus` as exact bytes. What the upstream received
//! is read the strictest way an upstream might (every percent-decoding, `\` as `/`,
//! `;params` stripped, dot segments resolved before and after merging slashes, the host
//! lower-cased without trailing dot or port, an absolute-form target's host); any
//! protected reading, any spoofed `x-user` spelling, and any failed positive control is
//! a failure, printed in a table with the bytes sent and what the upstream got.
//!
//! Run: `cargo test -p portcullis-cli --test request_confusion` (peers from
//! `scripts/install-peers`, `$PORTCULLIS_PEERS`); `PORTCULLIS_CONFUSION_DUMP=1` prints every probe,
//! its status and what the upstream got.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

#[path = "envoy_common.rs"]
mod envoy_common;

use envoy_common::Envoy;
use portcullis_test_util::{
    Child, Confusion, MatrixEnv, Outcome, ProxyUnderTest, RecordingUpstream, free_port, peer_bin,
    spawn_caddy, spawn_traefik,
};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const NGINX_CONF: &str = include_str!("../../../examples/nginx/nginx.conf");
const VERIFY_CONF: &str = include_str!("../../../examples/nginx/portcullis-verify.conf");
const TRAEFIK_STATIC: &str = include_str!("../../../examples/traefik/traefik.yml");
const TRAEFIK_DYNAMIC: &str = include_str!("../../../examples/traefik/dynamic.yml");
const CADDYFILE: &str = include_str!("../../../examples/caddy/Caddyfile");

/// `template` with `__UPSTREAM__` pointing at the recording upstream, then the matrix's
/// placeholders.
fn render(
    env: &MatrixEnv,
    upstream: &RecordingUpstream,
    template: &str,
    extra: &[(&str, String)],
) -> String {
    env.substitute(
        &template.replace("__UPSTREAM__", &upstream.authority()),
        extra,
    )
}

fn proxy(env: &MatrixEnv, name: &str, port: u16, logs: &[&str]) -> ProxyUnderTest {
    let p = ProxyUnderTest {
        name: name.to_owned(),
        base_url: format!("http://127.0.0.1:{port}"),
        passes_deny_body: true,
        verify_calls_per_deny: 1,
        logs: logs.iter().map(|l| env.dir.path().join(l)).collect(),
    };
    p.wait_routed(env);
    p
}

/// NGINX with `conf` (`examples/nginx/nginx.conf`, or an edited copy); returns the child
/// and the two servers' ports.
fn start_nginx(env: &MatrixEnv, upstream: &RecordingUpstream, conf: &str) -> (Child, u16, u16) {
    let (main, ingress) = (free_port(), free_port());
    let listen = [
        ("__LISTEN_INGRESS__", format!("127.0.0.1:{ingress}")),
        ("__LISTEN__", format!("127.0.0.1:{main}")),
    ];
    let dir = env.dir.path();
    let conf = env
        .dir
        .write("nginx.conf", &render(env, upstream, conf, &listen));
    env.dir.write(
        "portcullis-verify.conf",
        &render(env, upstream, VERIFY_CONF, &[]),
    );
    let child = Child::spawn(
        std::process::Command::new(peer_bin("nginx"))
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log")),
        &dir.join("nginx.stdout.log"),
    );
    (child, main, ingress)
}

const NGINX_LOGS: [&str; 3] = ["nginx.stdout.log", "error.log", "access.log"];

#[test]
fn nginx_auth_request() {
    let env = MatrixEnv::start(BIN, "confusion-nginx");
    let upstream = RecordingUpstream::start();
    let (_nginx, main, _) = start_nginx(&env, &upstream, NGINX_CONF);
    let p = proxy(&env, "nginx auth_request", main, &NGINX_LOGS);
    Confusion::new(&env, &p, &upstream).run().finish();
}

#[test]
fn nginx_ingress_style() {
    let env = MatrixEnv::start(BIN, "confusion-nginx-ingress");
    let upstream = RecordingUpstream::start();
    let (_nginx, _, ingress) = start_nginx(&env, &upstream, NGINX_CONF);
    let p = proxy(&env, "nginx ingress-style", ingress, &NGINX_LOGS);
    Confusion::new(&env, &p, &upstream).run().finish();
}

/// Runs the corpus through Envoy with `examples/envoy/<example>` passed through `edit`.
fn envoy(
    example: &str,
    name: &str,
    portcullis_port: &str,
    edit: &dyn Fn(String) -> String,
) -> Outcome {
    let env = MatrixEnv::start(BIN, "confusion-envoy");
    let upstream = RecordingUpstream::start();
    let port = match portcullis_port {
        "__PORTCULLIS_GRPC_PORT__" => env.portcullis.grpc,
        _ => env.portcullis.http,
    };
    let envoy = Envoy::start_edited(
        example,
        &[
            (portcullis_port, port),
            ("__UPSTREAM_PORT__", upstream.port),
        ],
        edit,
    );
    let p = ProxyUnderTest {
        name: name.to_owned(),
        base_url: format!("http://127.0.0.1:{}", envoy.port),
        passes_deny_body: true,
        verify_calls_per_deny: 1,
        logs: vec![envoy.dir.path().join("envoy.log")],
    };
    p.wait_routed(&env);
    Confusion::new(&env, &p, &upstream).run()
}

#[test]
fn envoy_grpc() {
    envoy(
        "grpc.yaml",
        "envoy grpc",
        "__PORTCULLIS_GRPC_PORT__",
        &|t| t,
    )
    .finish();
}

#[test]
fn envoy_http() {
    envoy(
        "http.yaml",
        "envoy http",
        "__PORTCULLIS_HTTP_PORT__",
        &|t| t,
    )
    .finish();
}

#[test]
fn traefik() {
    let env = MatrixEnv::start(BIN, "confusion-traefik");
    let upstream = RecordingUpstream::start();
    let dir = env.dir.path();
    let port = free_port();
    let dynamic = env.dir.write(
        "dynamic.yml",
        &render(&env, &upstream, TRAEFIK_DYNAMIC, &[]),
    );
    let config = env.dir.write(
        "traefik.yml",
        &render(
            &env,
            &upstream,
            TRAEFIK_STATIC,
            &[
                ("__LISTEN__", format!("127.0.0.1:{port}")),
                ("__DYNAMIC__", dynamic.display().to_string()),
                ("__LOGS__", dir.display().to_string()),
            ],
        ),
    );
    let _traefik = spawn_traefik(&config, dir);
    let p = proxy(
        &env,
        "traefik",
        port,
        &["traefik.stdout.log", "traefik.log", "access.log"],
    );
    Confusion::new(&env, &p, &upstream).run().finish();
}

#[test]
fn caddy() {
    caddy_with("caddy", CADDYFILE).finish();
}

/// Runs the corpus through Caddy with `caddyfile` (the example, or an edited copy).
fn caddy_with(name: &str, caddyfile: &str) -> Outcome {
    let env = MatrixEnv::start(BIN, "confusion-caddy");
    let upstream = RecordingUpstream::start();
    let dir = env.dir.path();
    let port = free_port();
    // The example's site address is `http://127.0.0.1:PORT`, which makes Caddy serve
    // that host only; the host-restricted route (ops.test) and the host probes need the
    // site to answer for any host on its port, as a catch-all site does.
    let site = "http://__LISTEN__ {";
    assert_eq!(
        caddyfile.matches(site).count(),
        1,
        "the Caddyfile's site address"
    );
    let caddyfile = caddyfile.replace(site, &format!("http://:{port} {{"));
    let config = env.dir.write(
        "Caddyfile",
        &render(
            &env,
            &upstream,
            &caddyfile,
            &[
                ("__LISTEN__", format!("127.0.0.1:{port}")),
                ("__LOGS__", dir.display().to_string()),
            ],
        ),
    );
    let _caddy = spawn_caddy(&config, dir);
    let p = proxy(
        &env,
        name,
        port,
        &["caddy.stdout.log", "caddy.log", "access.log"],
    );
    Confusion::new(&env, &p, &upstream).run()
}

/// Portcullis's own proxy listener (`listen.proxy`, issue 19) in front of the recording
/// upstream, every matrix rule sending to it: the same corpus, plus the confusions only
/// a proxy meets (smuggling, hop-by-hop tricks, `Upgrade`, `CONNECT`, h2c `:authority`).
#[test]
fn portcullis_proxy_listener() {
    let upstream = RecordingUpstream::start();
    let (env, port) = MatrixEnv::start_proxy(BIN, "confusion-proxy", &upstream.authority());
    let log = env.portcullis.dir.path().join("portcullis.log");
    let p = ProxyUnderTest {
        name: "portcullis proxy".to_owned(),
        base_url: format!("http://127.0.0.1:{port}"),
        passes_deny_body: true,
        verify_calls_per_deny: 1,
        logs: vec![log],
    };
    p.wait_routed(&env);
    Confusion::new(&env, &p, &upstream)
        .with_proxy_probes()
        .run()
        .finish();
}

// === Each example setting that Portcullis cannot stand in for is needed ===
//
// Portcullis never sees these requests as they are: Caddy's forward_auth does not pass
// the client's `Connection`, NGINX builds `X-Original-URL` itself, and what an
// upstream reads from a client's `X-Forwarded-Host` is beyond any decision. Without the
// example's setting, the suite must fail in that class.

/// `text` with `from` (which must be there) replaced by `to`.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the example has no {from:?}");
    text.replace(from, to)
}

/// Asserts that the run failed in `class` (and shows the table).
fn assert_fails_in(outcome: &Outcome, class: &str) {
    eprint!("{}", outcome.table());
    let failing = outcome.classes.get(class).map_or(0, |c| c.failing);
    assert!(
        failing > 0,
        "{}: without the setting, class {class} should fail:\n{}",
        outcome.proxy,
        outcome.table()
    );
}

/// Envoy's HTTP mode forwards only its `allowed_headers` to Portcullis, so a client's
/// `x_user` is never shown to it. Portcullis names every other spelling of each
/// identity header in `x-envoy-auth-headers-to-remove` on every allow, so even with
/// Envoy's underscore setting removed (its default, ALLOW) no spoof gets through:
/// the setting is defence in depth, not the only line.
#[test]
fn envoy_http_without_the_underscore_setting_still_drops_spoofs() {
    let edit = |t: String| replaced(&t, "headers_with_underscores_action: REJECT_REQUEST", "");
    let outcome = envoy(
        "http.yaml",
        "envoy http (underscores allowed)",
        "__PORTCULLIS_HTTP_PORT__",
        &edit,
    );
    outcome.finish();
}

#[test]
fn envoy_grpc_needs_forwarded_host_removed() {
    let edit = |t: String| {
        replaced(
            &t,
            "request_headers_to_remove: [x-forwarded-host, forwarded]",
            "",
        )
    };
    let outcome = envoy(
        "grpc.yaml",
        "envoy grpc (client X-Forwarded-Host kept)",
        "__PORTCULLIS_GRPC_PORT__",
        &edit,
    );
    assert_fails_in(&outcome, "client-forwarded");
}

#[test]
fn caddy_needs_identity_names_out_of_connection() {
    let scrub = r#"request_header Connection "(?i)\bx[-_]user\b" """#;
    let outcome = caddy_with("caddy (Connection kept)", &replaced(CADDYFILE, scrub, ""));
    assert_fails_in(&outcome, "identity-dropped");
}

#[test]
fn nginx_ingress_needs_the_upstream_host_in_x_original_url() {
    let conf = replaced(
        NGINX_CONF,
        "X-Original-URL $scheme://$host$request_uri",
        "X-Original-URL $scheme://$http_host$request_uri",
    );
    let env = MatrixEnv::start(BIN, "confusion-nginx-http-host");
    let upstream = RecordingUpstream::start();
    let (_nginx, _, ingress) = start_nginx(&env, &upstream, &conf);
    let p = proxy(
        &env,
        "nginx ingress-style ($http_host)",
        ingress,
        &NGINX_LOGS,
    );
    assert_fails_in(&Confusion::new(&env, &p, &upstream).run(), "absolute-form");
}
