//! A real OpenID Provider: npm `oidc-provider` from the peers, with a small config
//! and a scripted login (`oidc_provider.js`), on an ephemeral loopback port.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Child, free_port, peers_dir, wait_for_port};

/// A running OP, stopped on drop.
#[derive(Debug)]
pub struct OidcProvider {
    child: Child,
    port: u16,
}

impl OidcProvider {
    /// Starts the OP with these clients (oidc-provider client metadata, a JSON
    /// array), its script and log in `dir`.
    pub fn start(dir: &Path, clients: &serde_json::Value) -> OidcProvider {
        OidcProvider::start_with(dir, clients, 3600)
    }

    /// As [`OidcProvider::start`], with access tokens (and so sessions' refreshes)
    /// lasting `access_ttl_secs`; refresh tokens go to clients allowed the grant.
    pub fn start_with(
        dir: &Path,
        clients: &serde_json::Value,
        access_ttl_secs: u64,
    ) -> OidcProvider {
        OidcProvider::start_with_env(dir, clients, access_ttl_secs, &[])
    }

    /// As [`OidcProvider::start_with`], with more environment for the script
    /// (`OP_ROTATE_REFRESH=1`: refresh tokens rotate, a spent one is refused).
    pub fn start_with_env(
        dir: &Path,
        clients: &serde_json::Value,
        access_ttl_secs: u64,
        env: &[(&str, &str)],
    ) -> OidcProvider {
        let module = peers_dir().join("node/node_modules/oidc-provider/lib/index.js");
        assert!(
            module.exists(),
            "{} is missing: run scripts/install-peers",
            module.display()
        );
        let script = dir.join("oidc_provider.mjs");
        std::fs::write(&script, include_str!("oidc_provider.js")).unwrap();
        let port = free_port();
        let child = Child::spawn(
            Command::new("node")
                .arg(&script)
                .env("OP_MODULE", format!("file://{}", module.display()))
                .env("OP_PORT", port.to_string())
                .env("OP_CLIENTS", clients.to_string())
                .env("OP_ACCESS_TTL", access_ttl_secs.to_string())
                .env("NODE_ENV", "test")
                .envs(env.iter().copied()),
            &dir.join("oidc-provider.log"),
        );
        wait_for_port(port, Duration::from_secs(20));
        OidcProvider { child, port }
    }

    /// `http://127.0.0.1:PORT` (its issuer).
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        self.child.log()
    }
}
