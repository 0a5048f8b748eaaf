//! The verified-token cache: keyed by the SHA-256 digest of the token's exact
//! bytes, bounded in memory, each entry valid only until the token's `exp` (plus the
//! same clock skew the verifier grants) and only for the key set generation it was
//! verified under.
//!
//! Why a digest and not the token: the token itself (~1 KB) was most of an entry's
//! memory (issue 17: 1.31 KB per cached ~1 KB RS256 token). Why it is still found
//! only by the exact token bytes: the digest is of every byte of the token, and all
//! 256 bits of it are the key (never truncated, and never below 128 bits), so
//! another token with the same key is a SHA-256 collision: about 2^128 work by the
//! birthday bound, far beyond any attacker. A lookup compares the whole digest; the
//! table's own hash is keyed per process (quick_cache's default hasher), so a flood
//! of chosen tokens cannot pile into one bucket either.

use std::sync::Arc;

use aws_lc_rs::digest;

use crate::decision::Identity;

mod negative;

pub(crate) use negative::NegativeCache;

/// SHA-256 of a token's exact bytes: the key of both token caches.
#[derive(Clone, Copy, Eq, Hash, PartialEq)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of every byte of `token`.
    pub(crate) fn of(token: &str) -> TokenDigest {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0_u8; 32];
        out.copy_from_slice(d.as_ref());
        TokenDigest(out)
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Enough to tell entries apart in a debug print; never the token.
        write!(
            f,
            "TokenDigest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A cached verification.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    /// The provider index that verified it.
    pub(crate) provider: usize,
    /// The provider's key set generation at verification.
    pub(crate) generation: u64,
    /// Last second (exclusive) at which the token is still valid; `None`: no `exp`.
    pub(crate) valid_until: Option<f64>,
    /// The identity.
    pub(crate) identity: Arc<Identity>,
    /// Bytes of memory the identity holds ([`Identity::estimated_bytes`], once).
    pub(crate) identity_bytes: u32,
}

impl CachedToken {
    /// An entry for `identity`, verified by `provider` under key set `generation`.
    pub(crate) fn new(
        provider: usize,
        generation: u64,
        valid_until: Option<f64>,
        identity: Arc<Identity>,
    ) -> CachedToken {
        let identity_bytes = u32::try_from(identity.estimated_bytes()).unwrap_or(u32::MAX);
        CachedToken {
            provider,
            generation,
            valid_until,
            identity,
            identity_bytes,
        }
    }
}

/// Estimated bytes an entry holds: the identity and 160 bytes for the key, the
/// entry itself, the cache's own bookkeeping and the allocator's rounding.
/// `bench/run --scenarios rss` measures what an entry really takes (BENCHMARKS.md,
/// "Memory"); the estimate stays above it so that the memory bound holds.
/// Kept cheap: the cache calls it while evicting.
#[derive(Clone, Copy, Debug)]
struct EntryBytes;

impl quick_cache::Weighter<TokenDigest, CachedToken> for EntryBytes {
    fn weight(&self, _key: &TokenDigest, value: &CachedToken) -> u64 {
        u64::from(value.identity_bytes).saturating_add(160)
    }
}

/// A cache of verified tokens, bounded in memory (and so in entries).
pub(crate) struct TokenCache {
    inner: quick_cache::sync::Cache<TokenDigest, CachedToken, EntryBytes>,
}

impl TokenCache {
    /// A cache of about `entries` tokens using at most about `bytes` of memory.
    pub(crate) fn new(entries: usize, bytes: u64) -> TokenCache {
        TokenCache {
            inner: quick_cache::sync::Cache::with_weighter(
                entries.max(1),
                bytes.max(1),
                EntryBytes,
            ),
        }
    }

    /// The entry for the token of `digest` if it is still valid at `now` under
    /// `generation_of(provider)`.
    pub(crate) fn get(
        &self,
        digest: &TokenDigest,
        now: i64,
        generation_of: impl Fn(usize) -> u64,
    ) -> Option<CachedToken> {
        let hit = self.inner.get(digest)?;
        let fresh = hit.valid_until.is_none_or(|until| (now as f64) < until)
            && generation_of(hit.provider) == hit.generation;
        if fresh {
            Some(hit)
        } else {
            self.inner.remove(digest);
            None
        }
    }

    /// Remembers a verified token by its digest.
    pub(crate) fn insert(&self, digest: TokenDigest, entry: CachedToken) {
        self.inner.insert(digest, entry);
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
