//! The negative cache (issue 17, target 6): denials that cannot change while the
//! provider's key set does not, remembered so that a flood of one bad token costs a
//! digest and a lookup, not a signature verify per request.
//!
//! Keyed like the token cache (its keyed digest of the token's exact bytes), per
//! provider, and valid only under the key set generation it was decided under: a
//! new key set (rotation, refetch) makes every entry stale. What is cached is only
//! what the token and the config decide for good ([`is_final`]): a bad signature
//! under these keys, a malformed token, a wrong issuer, audience, algorithm or
//! `typ`, and an expired token (time only moves on). Never cached: an unknown `kid`
//! (a fetch may bring the key), `nbf` or `iat` in the future (the token becomes
//! valid later), a provider without keys, or anything decided after the signature
//! and claims verified (workload rules, claims, scopes). Bounded in entries: a flood
//! of distinct bad tokens evicts older entries, and quick_cache keeps the ones asked
//! for again.

use portcullis_jose::TokenError;

use super::TokenDigest;
use crate::decision::TokenHints;

/// Most entries of the negative cache (about 200 bytes each, plus the hints' text).
pub(crate) const NEGATIVE_ENTRIES_MAX: usize = 16_384;

/// A remembered rejection.
#[derive(Clone, Debug)]
pub(crate) struct Rejection {
    /// The key set generation it was decided under.
    generation: u64,
    /// When it was decided (an `Expired` holds from then on, not before: a clock
    /// stepped back asks the verifier again).
    decided_at: i64,
    /// Why.
    pub(crate) error: TokenError,
    /// What the deny log names (`kid`, `iss`, `sub`), as found the first time.
    pub(crate) hints: TokenHints,
}

/// Rejections by (token digest, provider index).
pub(crate) struct NegativeCache {
    pub(super) inner: quick_cache::sync::Cache<(TokenDigest, usize), Rejection>,
}

impl NegativeCache {
    /// A cache of at most `entries` rejections (at least one).
    pub(crate) fn new(entries: usize) -> NegativeCache {
        NegativeCache {
            inner: quick_cache::sync::Cache::new(entries.clamp(1, NEGATIVE_ENTRIES_MAX)),
        }
    }

    /// The rejection of the token of `digest` by `provider` under key set
    /// `generation`, if one is remembered; an entry of another generation is
    /// dropped. An `Expired` error is given the caller's `now`.
    pub(crate) fn get(
        &self,
        digest: &TokenDigest,
        provider: usize,
        generation: u64,
        now: i64,
    ) -> Option<Rejection> {
        let key = (*digest, provider);
        let mut hit = self.inner.get(&key)?;
        let expired = matches!(hit.error, TokenError::Expired { .. });
        if hit.generation != generation || (expired && now < hit.decided_at) {
            self.inner.remove(&key);
            return None;
        }
        if let TokenError::Expired { now: then, .. } = &mut hit.error {
            *then = now;
        }
        Some(hit)
    }

    /// Remembers `error` for the token of `digest` and `provider` under
    /// `generation`, decided at `now`, when it is final ([`is_final`]); else does
    /// nothing.
    pub(crate) fn insert(
        &self,
        digest: TokenDigest,
        provider: usize,
        generation: u64,
        now: i64,
        error: &TokenError,
        hints: &TokenHints,
    ) {
        if !is_final(error) {
            return;
        }
        self.inner.insert(
            (digest, provider),
            Rejection {
                generation,
                decided_at: now,
                error: error.clone(),
                hints: hints.clone(),
            },
        );
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }
}

/// Whether `error` holds for this token for as long as the provider's config and
/// key set stay as they are, whatever the time from now on.
pub(crate) fn is_final(error: &TokenError) -> bool {
    match error {
        // Fixed by the token, the config and the key set.
        TokenError::AlgorithmNotAllowed { .. }
        | TokenError::AudienceMismatch
        | TokenError::UnsupportedAlgorithm { .. }
        | TokenError::InvalidClaim { .. }
        | TokenError::InvalidBase64 { .. }
        | TokenError::InvalidJson { .. }
        | TokenError::IssuerMismatch
        | TokenError::MissingExp
        | TokenError::SegmentCount
        | TokenError::SignatureInvalid
        | TokenError::TooLarge { .. }
        | TokenError::TypeMismatch { .. }
        | TokenError::UnsupportedHeader { .. }
        // Time only moves on: an expired token never becomes valid again (and a
        // clock stepped back is asked again, see `NegativeCache::get`).
        | TokenError::Expired { .. } => true,
        // A fetch may bring the key; the token may become valid later.
        TokenError::KeyNotFound { .. }
        | TokenError::NotYetValid { .. }
        | TokenError::IssuedInFuture { .. } => false,
        // An error the token core adds later: not cached until classified here.
        _ => false,
    }
}

impl std::fmt::Debug for NegativeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NegativeCache")
            .field("len", &self.len())
            .finish()
    }
}
