//! Fixtures for integration tests that start real peers (NGINX, Envoy, Traefik,
//! Caddy, OpenID providers) on 127.0.0.1: child processes killed on drop, free
//! ports, a header-echoing upstream, a JWKS server whose keys can rotate or go
//! down, token minting, a tiny blocking HTTP client, and the raw-request confusion
//! suite (a recording upstream, a raw-socket client, a corpus and a strict checker).
//!
//! Peers are installed by `scripts/install-peers` under `$PORTCULLIS_PEERS`
//! (default `<workspace>/.peers`); a missing peer is a test failure naming that script.
#![warn(missing_docs)]
#![expect(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "test fixtures: plain std locks and the wall clock, off the request path"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a panic is a test failure"
)]

mod browser;
mod chromium;
mod confusion;
mod envoy;
mod http;
mod issuer;
mod matrix;
mod oidc_provider;
mod peers;
mod process;
mod proxy;
mod servers;
mod token_exchange;
mod workload_api;

pub use browser::{Browser, Cookie, resolve};
pub use chromium::chromium_visit;
pub use confusion::{
    Answer, Check, ClassCount, Confusion, Credential, Failure, H2cRequest, Outcome, Probe,
    Received, RecordingUpstream, Tokens, corpus, escape, proxy_corpus, send_h2c, send_raw,
};
pub use envoy::{AuthzEnvoy, AuthzEnvoyOptions};
pub use http::{Response, get, request};
pub use issuer::Issuer;
pub use matrix::{Matrix, MatrixEnv, ProxyUnderTest, assert_forged_client_cert_refused};
pub use oidc_provider::OidcProvider;
pub use peers::{peer_bin, peers_dir, python, spawn_caddy, spawn_traefik};
pub use process::{Child, free_port, promtool_check, run_json, run_with_input, wait_for_port};
pub use proxy::{EchoServer, EchoTls, Pki};
pub use servers::{EchoUpstream, JwksServer};
pub use token_exchange::{TOKEN_EXCHANGE_GRANT, TokenExchangeServer, jwt_payload};
pub use workload_api::WorkloadApi;

/// A unique scratch folder under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates `portcullis-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "portcullis-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Writes a file in it and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Portcullis config without its `listen:` block, ready for [`Portcullis::start`]
/// (which chooses the ports): how tests run the configs under `examples/`.
pub fn without_listen(text: &str) -> String {
    let mut out = String::new();
    let mut in_listen = false;
    for line in text.lines() {
        if line == "listen:" {
            in_listen = true;
            continue;
        }
        if in_listen && (line.starts_with(' ') || line.is_empty()) {
            continue;
        }
        in_listen = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A running `portcullis serve` with its listeners on free loopback ports.
#[derive(Debug)]
pub struct Portcullis {
    /// The process.
    pub child: Child,
    /// Forward-auth port.
    pub http: u16,
    /// ext_authz gRPC port.
    pub grpc: u16,
    /// Admin port.
    pub admin: u16,
    /// The config file.
    pub config: std::path::PathBuf,
    /// Its scratch folder (holds the config and the log).
    pub dir: TempDir,
}

impl Portcullis {
    /// Starts `bin serve` with `providers_and_rules` (YAML without `listen:`), and waits
    /// for `/healthz`. Ports are chosen here.
    pub fn start(bin: &str, providers_and_rules: &str) -> Portcullis {
        Portcullis::start_with_port(bin, |_| providers_and_rules.to_owned()).0
    }

    /// As [`Portcullis::start`], with one more free port that `config_for(port)`
    /// writes into the config (a `proxy:` listener, say), chosen anew on each try
    /// like the others.
    pub fn start_with_port(bin: &str, config_for: impl Fn(u16) -> String) -> (Portcullis, u16) {
        // A port picked free can be taken by another test's server before Portcullis
        // binds it (CI saw such starts fail): then pick new ones and start again.
        for _ in 0..3 {
            let (http, grpc, admin, extra) = (free_port(), free_port(), free_port(), free_port());
            match Portcullis::try_start_on(bin, &config_for(extra), http, grpc, admin) {
                Ok(p) => return (p, extra),
                Err(log) if log.contains("in use") => continue,
                Err(log) => panic!("portcullis exited at start; log:\n{log}"),
            }
        }
        panic!("portcullis could not bind free ports three times");
    }

    /// As [`Portcullis::start`] on given ports (to restart on the same ones).
    pub fn start_on(
        bin: &str,
        providers_and_rules: &str,
        http: u16,
        grpc: u16,
        admin: u16,
    ) -> Portcullis {
        Portcullis::try_start_on(bin, providers_and_rules, http, grpc, admin)
            .unwrap_or_else(|log| panic!("portcullis exited at start; log:\n{log}"))
    }

    /// As [`Portcullis::start_on`], but an exit before the admin port listens is
    /// returned as its log instead of a panic.
    fn try_start_on(
        bin: &str,
        providers_and_rules: &str,
        http: u16,
        grpc: u16,
        admin: u16,
    ) -> Result<Portcullis, String> {
        let dir = TempDir::new("serve");
        let config = dir.write(
            "portcullis.yaml",
            &Portcullis::config_text(providers_and_rules, http, grpc, admin),
        );
        let log = dir.path().join("portcullis.log");
        let child = Child::spawn(
            std::process::Command::new(bin)
                .args(["serve", "--config"])
                .arg(&config)
                .args(["--workers", "2"]),
            &log,
        );
        let mut p = Portcullis {
            child,
            http,
            grpc,
            admin,
            config,
            dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
            if p.child.has_exited() {
                return Err(p.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing listens on 127.0.0.1:{admin}; log:\n{}",
                p.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let r = get(&format!("http://127.0.0.1:{admin}/healthz"), &[]);
        assert_eq!(r.status, 200, "portcullis /healthz; log:\n{}", p.log());
        Ok(p)
    }

    /// The full config text for the given ports.
    /// Unless the text sets `shutdown_grace`, it is 0s: tests stop at once.
    pub fn config_text(providers_and_rules: &str, http: u16, grpc: u16, admin: u16) -> String {
        let grace = if providers_and_rules.contains("shutdown_grace:") {
            ""
        } else {
            "shutdown_grace: 0s\n"
        };
        format!(
            // The grace goes last: callers may continue the `listen:` block (`  proxy: ...`).
            "listen:\n  http: 127.0.0.1:{http}\n  grpc: 127.0.0.1:{grpc}\n  admin: 127.0.0.1:{admin}\n{providers_and_rules}\n{grace}"
        )
    }

    /// Rewrites the config file (the server reloads it on change).
    pub fn rewrite_config(&self, providers_and_rules: &str) {
        // Write to a temp file and rename, so the watcher never reads half a file.
        let tmp = self.dir.path().join("portcullis.yaml.tmp");
        std::fs::write(
            &tmp,
            Portcullis::config_text(providers_and_rules, self.http, self.grpc, self.admin),
        )
        .unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    /// Waits until `/readyz` answers 200 (or panics after `timeout`).
    pub fn wait_ready(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let r = get(&format!("http://127.0.0.1:{}/readyz", self.admin), &[]);
            if r.status == 200 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready: {}\nlog:\n{}",
                r.body,
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `GET /verify` with headers.
    pub fn verify(&self, headers: &[(&str, &str)]) -> Response {
        get(&format!("http://127.0.0.1:{}/verify", self.http), headers)
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        get(&format!("http://127.0.0.1:{}/metrics", self.admin), &[]).body
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.child.log()
    }
}
