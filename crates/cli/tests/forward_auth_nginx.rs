//! NGINX (Debian's nginx, `auth_request`) in front of the echo upstream, with Portcullis
//! answering `/verify`: the forward-auth matrix through `examples/nginx/nginx.conf`.
//!
//! - `auth_request`: the first server of the example (X-Original-Method/-URI, the deny
//!   answer fetched again from Portcullis by the error page, so the client gets the JSON
//!   body; `/dev/` adds `claims_group=developers&claims_group=admins`).
//! - `ingress_nginx_style`: the second server (X-Original-URL like ingress-nginx's
//!   `auth-url`, one decision per request, a static deny body: the reason is checked
//!   through `/metrics`).
//! - `ingress_nginx_as_generated`: the second server without the lines ingress-nginx does
//!   not generate (clearing client-sent X-Forwarded-* and X-Original-URI).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use portcullis_test_util::{
    Child, Matrix, MatrixEnv, ProxyUnderTest, assert_forged_client_cert_refused, free_port,
    peer_bin,
};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const NGINX_CONF: &str = include_str!("../../../examples/nginx/nginx.conf");
const VERIFY_CONF: &str = include_str!("../../../examples/nginx/portcullis-verify.conf");

struct Nginx {
    _child: Child,
    /// The `auth_request` server.
    main: u16,
    /// The ingress-nginx style server.
    ingress: u16,
}

/// Writes `conf` (and `portcullis-verify.conf`) with the ports into the scratch folder and
/// starts NGINX there.
fn start_nginx(env: &MatrixEnv, conf: &str) -> Nginx {
    let (main, ingress) = (free_port(), free_port());
    let listen = [
        ("__LISTEN_INGRESS__", format!("127.0.0.1:{ingress}")),
        ("__LISTEN__", format!("127.0.0.1:{main}")),
    ];
    let dir = env.dir.path();
    let conf_path = env.dir.write("nginx.conf", &env.substitute(conf, &listen));
    env.dir
        .write("portcullis-verify.conf", &env.substitute(VERIFY_CONF, &[]));
    let child = Child::spawn(
        std::process::Command::new(peer_bin("nginx"))
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log")),
        &dir.join("nginx.stdout.log"),
    );
    Nginx {
        _child: child,
        main,
        ingress,
    }
}

fn proxy(
    env: &MatrixEnv,
    name: &str,
    port: u16,
    passes_deny_body: bool,
    calls: u64,
) -> ProxyUnderTest {
    let dir = env.dir.path();
    let p = ProxyUnderTest {
        name: name.to_owned(),
        base_url: format!("http://127.0.0.1:{port}"),
        passes_deny_body,
        verify_calls_per_deny: calls,
        logs: vec![
            dir.join("nginx.stdout.log"),
            dir.join("error.log"),
            dir.join("access.log"),
        ],
    };
    p.wait_routed(env);
    p
}

#[test]
fn auth_request() {
    let env = MatrixEnv::start(BIN, "nginx");
    let nginx = start_nginx(&env, NGINX_CONF);
    // The error page asks Portcullis again: two decisions per denied request.
    let p = proxy(&env, "nginx auth_request", nginx.main, true, 2);
    Matrix::new(&env, &p)
        .standard()
        .claims_query("/dev")
        .finish();
    // A certificate-bound token (RFC 8705 `cnf.x5t#S256`) with a client-sent
    // X-Forwarded-Client-Cert: NGINX passes every client header to the auth subrequest, so
    // the example clears that one (else it met the binding without the certificate's key:
    // 200 as alice before the fix). One NGINX for both checks: fewer ports to race for.
    assert_forged_client_cert_refused(&env, &p);
    let bound = env.token(serde_json::json!({
        "cnf": {"x5t#S256": portcullis_jose::b64::encode(&[7u8; 32])}
    }));
    let auth = format!("Bearer {bound}");
    let forged = format!("Hash={}", "07".repeat(32));
    // The same token straight at /verify with that header (no proxy to clear it) is the
    // documented forward-auth reading: the header names the certificate.
    let direct = env.portcullis.verify(&[
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "127.0.0.1"),
        ("x-forwarded-uri", "/api/items"),
        ("authorization", &auth),
        ("x-forwarded-client-cert", &forged),
    ]);
    assert_eq!(direct.status, 200, "{}", direct.body);
}

#[test]
fn ingress_nginx_style() {
    let env = MatrixEnv::start(BIN, "nginx-ingress");
    let nginx = start_nginx(&env, NGINX_CONF);
    // auth_request discards the deny body and this server answers with a static one:
    // the reason code is asserted through /metrics only.
    let p = proxy(&env, "nginx ingress-style", nginx.ingress, false, 1);
    Matrix::new(&env, &p).standard().finish();
}

/// The ingress server exactly as ingress-nginx generates it for `auth-url` (no snippets):
/// NGINX sets X-Original-URL and X-Original-Method, and passes every other client header
/// to the auth service, so client-sent X-Forwarded-Method/-Host/-Uri and X-Original-URI
/// reach Portcullis next to them. They must not decide: the contract reads the original
/// request from X-Original-URL for ingress-nginx. Portcullis reads every family and
/// refuses (403 `request_invalid`) when they disagree, so the forgery is denied.
/// (Regression test: before, it preferred X-Forwarded-*/X-Original-URI, and a client
/// without a token reached a protected path by naming a public one.)
#[test]
fn ingress_nginx_as_generated() {
    let begin = "# BEGIN not generated by ingress-nginx";
    let end = "# END not generated by ingress-nginx";
    let (head, rest) = NGINX_CONF.split_once(begin).expect("BEGIN marker");
    let (_, tail) = rest.split_once(end).expect("END marker");
    let conf = format!("{head}{tail}");
    assert!(
        !conf.contains("X-Forwarded-Uri \"\""),
        "the block was not removed"
    );
    let env = MatrixEnv::start(BIN, "nginx-ingress-generated");
    let nginx = start_nginx(&env, &conf);
    let p = proxy(&env, "ingress-nginx as generated", nginx.ingress, false, 1);
    Matrix::new(&env, &p).standard().finish();
}
