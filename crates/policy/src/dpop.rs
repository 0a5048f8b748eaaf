//! DPoP (RFC 9449) at the resource server: the `DPoP` proof of a request, checked
//! against the request as the canonical reader reads it and against the access
//! token it comes with, and a bounded memory of the proofs already used.
//!
//! The proof's header `jwk` is the one place a key from a token is used: only to
//! verify that proof, whose key must then be the one the access token is bound to
//! (`cnf.jkt`, the RFC 7638 thumbprint).

use std::time::Duration;

use aws_lc_rs::digest;
use portcullis_jose::{
    Algorithm, AlgorithmSet, Family, KeySet, b64, verify_jws, verifying_key_from_jwk,
};
use quick_cache::sync::{Cache, GuardResult};
use serde_json::Value;

use crate::canonical::{EscapedSlashes, canonical_host, canonical_path};

mod shared;

pub use shared::{ReplayFuture, ReplayStore, ReplayStoreError, replay_key};

/// `providers[].dpop`: whether the provider's tokens may, or must, be DPoP-bound.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum DpopMode {
    /// Bearer tokens, and DPoP-bound ones with their proof.
    Allowed,
    /// Only DPoP-bound tokens with their proof.
    Required,
}

/// How far a proof's `iat` may be from now, beyond the provider's clock skew.
pub const PROOF_WINDOW_SECS: i64 = 60;

/// Longest proof read.
const MAX_PROOF_BYTES: usize = 8 * 1024;

/// Why a DPoP proof is refused.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidProof {
    /// No `DPoP` header, or several.
    #[error("exactly one DPoP header is required")]
    Count,
    /// The proof is no JWS we can verify (encoding, header, signature).
    #[error("the proof does not verify: {why}")]
    Signature {
        /// Why.
        why: String,
    },
    /// `typ` is not `dpop+jwt`.
    #[error("typ is not dpop+jwt")]
    Type,
    /// The header has no usable public `jwk` (missing, private, symmetric).
    #[error("the proof's jwk is unusable: {why}")]
    Key {
        /// Why.
        why: String,
    },
    /// A claim is missing or of the wrong type.
    #[error("claim {name} is missing or malformed")]
    Claim {
        /// The claim.
        name: &'static str,
    },
    /// `htm` is not the request's method.
    #[error("htm is not the request method")]
    Method,
    /// `htu` is not the request's URL.
    #[error("htu is not the request URL")]
    Url,
    /// `iat` is outside the accepted window.
    #[error("iat {iat} is more than {window}s from now ({now})")]
    Stale {
        /// The proof's `iat`.
        iat: i64,
        /// Now.
        now: i64,
        /// The window.
        window: i64,
    },
    /// `ath` is not the hash of the access token.
    #[error("ath is not the hash of the access token")]
    AccessTokenHash,
    /// The proof's key is not the one the access token is bound to.
    #[error("the proof's key is not the token's cnf.jkt")]
    KeyMismatch,
    /// This proof (`jti`) was seen before.
    #[error("the proof was used before")]
    Replayed,
}

/// A proof that held: its key's thumbprint and its `jti`, and until when it counts.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// When the proof leaves the window (`iat` + window).
    pub valid_until: i64,
}

/// The request a proof must be for: method, canonical host and path, and the
/// scheme when the proxy said (`X-Forwarded-Proto`).
#[derive(Clone, Copy, Debug)]
pub struct ProofTarget<'a> {
    /// `http` or `https`, when known; `None`: either.
    pub scheme: Option<&'a str>,
    /// The method.
    pub method: &'a str,
    /// The canonical host.
    pub host: &'a str,
    /// The canonical path (no query).
    pub path: &'a str,
}

/// Verifies `proof` for `target` and `access_token` at `now`: signature by its own
/// `jwk`, `typ`, `htm`, `htu` (host and path as the canonical reader reads them;
/// query and fragment ignored, RFC 9449 §4.3; the target's scheme when known, else
/// http or https), `iat` within
/// `window` seconds, `jti`, `ath`, and the key's thumbprint equal to `jkt`.
///
/// # Errors
/// The first check that fails.
pub fn verify_proof(
    proof: &str,
    access_token: &str,
    jkt: &str,
    target: ProofTarget<'_>,
    now: i64,
    window: i64,
) -> Result<Proof, InvalidProof> {
    let header = proof_header(proof)?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(InvalidProof::Type);
    }
    let jwk = match header.get("jwk") {
        Some(Value::Object(jwk)) => jwk,
        _ => {
            return Err(InvalidProof::Key {
                why: "no jwk".to_owned(),
            });
        }
    };
    if jwk.contains_key("d") || jwk.contains_key("k") || jwk.contains_key("p") {
        return Err(InvalidProof::Key {
            why: "the jwk holds private or secret material".to_owned(),
        });
    }
    let key = verifying_key_from_jwk(jwk).map_err(|e| InvalidProof::Key { why: e.to_string() })?;
    if key.material().family() == Family::Hmac {
        return Err(InvalidProof::Key {
            why: "a symmetric key".to_owned(),
        });
    }
    let thumbprint = key.material().thumbprint().ok_or(InvalidProof::Key {
        why: "no thumbprint".to_owned(),
    })?;
    let asymmetric: AlgorithmSet = Algorithm::ALL
        .iter()
        .copied()
        .filter(|a| a.family() != Family::Hmac)
        .collect();
    let keys = KeySet::new(vec![key]);
    let verified = verify_jws(proof, &keys, asymmetric, MAX_PROOF_BYTES)
        .map_err(|e| InvalidProof::Signature { why: e.to_string() })?;
    let claims: serde_json::Map<String, Value> =
        match portcullis_jose::json::parse_object(&verified.payload) {
            Ok(m) => m,
            Err(_) => return Err(InvalidProof::Claim { name: "payload" }),
        };
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(InvalidProof::Claim { name })
    };
    let jti = text("jti")?;
    if jti.len() > 256 {
        return Err(InvalidProof::Claim { name: "jti" });
    }
    if text("htm")? != target.method {
        return Err(InvalidProof::Method);
    }
    if !htu_matches(text("htu")?, target) {
        return Err(InvalidProof::Url);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite())
        .ok_or(InvalidProof::Claim { name: "iat" })? as i64;
    if (now - iat).abs() > window {
        return Err(InvalidProof::Stale { iat, now, window });
    }
    let ath = b64::encode(digest::digest(&digest::SHA256, access_token.as_bytes()).as_ref());
    if !constant_eq(text("ath")?, &ath) {
        return Err(InvalidProof::AccessTokenHash);
    }
    if !constant_eq(&thumbprint, jkt) {
        return Err(InvalidProof::KeyMismatch);
    }
    Ok(Proof {
        jkt: thumbprint,
        jti: jti.to_owned(),
        valid_until: iat + window,
    })
}

/// The proof's header, decoded (before its signature is checked, only to find the key).
fn proof_header(proof: &str) -> Result<serde_json::Map<String, Value>, InvalidProof> {
    let bad = |why: &str| InvalidProof::Signature {
        why: why.to_owned(),
    };
    if proof.len() > MAX_PROOF_BYTES {
        return Err(bad("too long"));
    }
    let first = proof.split('.').next().ok_or_else(|| bad("not a JWS"))?;
    let bytes = b64::decode(first.as_bytes()).ok_or_else(|| bad("header is no base64url"))?;
    portcullis_jose::json::parse_object(&bytes).map_err(|_| bad("header is no JSON object"))
}

/// Whether `htu` names the target: http(s), the same host (port and case aside, as
/// the canonical reader drops them) and the same canonical path.
fn htu_matches(htu: &str, target: ProofTarget<'_>) -> bool {
    let rest = match htu.split_once("://") {
        Some((scheme, rest))
            if (scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"))
                && target.scheme.is_none_or(|s| s.eq_ignore_ascii_case(scheme)) =>
        {
            rest
        }
        _ => return false,
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return false;
    }
    let (Ok(host), Ok(path)) = (
        canonical_host(authority),
        canonical_path(path, EscapedSlashes::Reject),
    ) else {
        return false;
    };
    host == target.host && path == target.path
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The proofs already used, bounded: a `jti` (per key) counts once while its proof
/// is in its window. When full, the least used entries go first (a replay then
/// needs that many fresh proofs in between, all within the window).
pub struct ReplayCache {
    seen: Cache<String, i64>,
}

impl ReplayCache {
    /// A cache of at most `entries` proofs.
    pub fn new(entries: usize) -> ReplayCache {
        ReplayCache {
            seen: Cache::new(entries.max(1)),
        }
    }

    /// Records `proof`; `false` when it was already used (and is still in its window).
    pub fn first_use(&self, proof: &Proof, now: i64) -> bool {
        let key = format!("{}.{}", proof.jkt, proof.jti);
        match self
            .seen
            .get_value_or_guard(&key, Some(Duration::from_millis(100)))
        {
            GuardResult::Value(until) if until >= now => false,
            GuardResult::Value(_) => {
                self.seen.insert(key, proof.valid_until);
                true
            }
            GuardResult::Guard(guard) => {
                let _ = guard.insert(proof.valid_until);
                true
            }
            GuardResult::Timeout => false,
        }
    }
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("entries", &self.seen.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
