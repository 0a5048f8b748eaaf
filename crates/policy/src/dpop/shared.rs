//! DPoP replay detection shared across replicas: the `jti` of each proof that held
//! is claimed once in a store every replica sees (Redis `SET NX EX`); a proof
//! whose `jti` another replica already claimed is a replay. The engine keeps its
//! own bounded memory too; this is the async step after it, run by the decider.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use aws_lc_rs::digest;
use portcullis_jose::b64;
use serde_json::Value;

/// Why the shared store could not answer (the proof is then refused: fail closed).
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{why}")]
pub struct ReplayStoreError {
    /// What went wrong.
    pub why: String,
}

/// The future a [`ReplayStore`] returns: `true` when this was the first use.
pub struct ReplayFuture<'a>(
    /// The claim under way.
    pub Pin<Box<dyn Future<Output = Result<bool, ReplayStoreError>> + Send + 'a>>,
);

/// A store of used proofs shared by every replica.
pub trait ReplayStore: Send + Sync {
    /// Claims `key` for `ttl_secs` seconds; `true` when nobody had.
    fn first_use<'a>(&'a self, key: &'a str, ttl_secs: u64) -> ReplayFuture<'a>;
}

/// The shared-store key of a verified proof: its key's thumbprint and a digest
/// of its `jti` (bounded in size whatever the client sent), and how long it must
/// be kept (until `iat` + `window`, seen from `now`). `None`: no proof to claim.
pub fn replay_key(proof: &str, jkt: &str, window: i64, now: i64) -> Option<(String, u64)> {
    let payload = proof.split('.').nth(1)?;
    let claims = portcullis_jose::json::parse_object(&b64::decode(payload.as_bytes())?).ok()?;
    let jti = claims.get("jti").and_then(Value::as_str)?;
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite() && f.abs() < 1e15)? as i64;
    let ttl = (iat + window - now).max(1) as u64;
    let digest = digest::digest(&digest::SHA256, jti.as_bytes());
    Some((
        format!("portcullis:dpop:{jkt}:{}", b64::encode(digest.as_ref())),
        ttl,
    ))
}

impl fmt::Debug for ReplayFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplayFuture")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(claims: &str) -> String {
        format!("e30.{}.sig", b64::encode(claims.as_bytes()))
    }

    #[test]
    fn keys_name_the_key_and_a_digest_of_the_jti() {
        let (key, ttl) =
            replay_key(&proof(r#"{"jti":"abc","iat":1000}"#), "JKT", 120, 1010).unwrap();
        assert!(key.starts_with("portcullis:dpop:JKT:"));
        assert!(!key.contains("abc"));
        assert_eq!(ttl, 110);
        let (other, _) =
            replay_key(&proof(r#"{"jti":"abd","iat":1000}"#), "JKT", 120, 1010).unwrap();
        assert_ne!(key, other);
        // Past its window: kept a second at least.
        assert_eq!(
            replay_key(&proof(r#"{"jti":"a","iat":1000}"#), "J", 60, 5000)
                .unwrap()
                .1,
            1
        );
        assert!(replay_key(&proof(r#"{"iat":1000}"#), "J", 60, 1000).is_none());
        assert!(replay_key("nope", "J", 60, 1000).is_none());
    }
}
