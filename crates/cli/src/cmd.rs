//! One module per command, each a thin layer over the libraries.

pub(crate) mod docs;
pub(crate) mod explain;
pub(crate) mod import;
pub(crate) mod inspect;
pub(crate) mod jwk;
pub(crate) mod keygen;
pub(crate) mod mint;
pub(crate) mod schema;
pub(crate) mod server;
pub(crate) mod verify;

use anyhow::{Result, anyhow};
use portcullis_jose::{Algorithm, KeyMaterial};
use serde_json::{Map, Value};

/// Parses a JWA name strictly (case-sensitive, as in tokens). `Ed25519` (RFC 9864)
/// and `EdDSA` are both accepted; `Ed448` is refused as unsupported.
pub(crate) fn algorithm(name: &str) -> Result<Algorithm> {
    Algorithm::try_from_name(name).map_err(|e| anyhow!("--alg: {e}"))
}

/// The public JWK of `material` with `kid` (default: thumbprint), `alg` and `use`.
pub(crate) fn public_jwk(
    material: &KeyMaterial,
    kid: Option<&str>,
    alg: Option<Algorithm>,
) -> Result<Map<String, Value>> {
    let mut jwk = material
        .public_jwk()
        .ok_or_else(|| anyhow!("an HMAC secret has no public JWK"))?;
    let kid = match kid {
        Some(k) => k.to_owned(),
        None => material
            .thumbprint()
            .ok_or_else(|| anyhow!("no thumbprint for this key"))?,
    };
    jwk.insert("kid".into(), Value::from(kid));
    if let Some(alg) = alg {
        jwk.insert("alg".into(), Value::from(alg.name()));
    }
    jwk.insert("use".into(), Value::from("sig"));
    Ok(jwk)
}

/// Pretty JSON for stdout.
pub(crate) fn pretty(value: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}
