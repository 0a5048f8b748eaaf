//! Where `scripts/install-peers` put the real peers.

use std::path::PathBuf;

/// `$PORTCULLIS_PEERS`, or `<workspace>/.peers`.
pub fn peers_dir() -> PathBuf {
    match std::env::var_os("PORTCULLIS_PEERS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.peers"),
    }
}

/// The peers' Python (with pyjwt, jwcrypto, grpcio, xds-protos...).
pub fn python() -> PathBuf {
    let p = peers_dir().join("venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-peers",
        p.display()
    );
    p
}

/// A peer binary: from the peers' venv (`envoy`, `traefik`, `caddy`) or the system (`nginx`, `redis-server`).
pub fn peer_bin(name: &str) -> PathBuf {
    let venv = peers_dir().join("venv/bin").join(name);
    if venv.exists() {
        return venv;
    }
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("peer {name:?} is not installed: run scripts/install-peers");
}

/// Starts Traefik on `config` (its static config file), with `dir` as its home and
/// `dir/traefik.stdout.log` as its output; killed when the returned child drops.
pub fn spawn_traefik(config: &std::path::Path, dir: &std::path::Path) -> crate::Child {
    crate::Child::spawn(
        std::process::Command::new(peer_bin("traefik"))
            .arg(format!("--configFile={}", config.display()))
            .env("HOME", dir),
        &dir.join("traefik.stdout.log"),
    )
}

/// Starts Caddy on `config` (a Caddyfile), with its state (autosaved config,
/// certificates) under `dir` and `dir/caddy.stdout.log` as its output.
pub fn spawn_caddy(config: &std::path::Path, dir: &std::path::Path) -> crate::Child {
    crate::Child::spawn(
        std::process::Command::new(peer_bin("caddy"))
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(config)
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data")),
        &dir.join("caddy.stdout.log"),
    )
}
