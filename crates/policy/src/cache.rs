//! The verified-token cache: keyed by a secret-keyed 128-bit SipHash of the token's
//! exact bytes, bounded in memory, each entry valid only until the token's `exp` (plus
//! the same clock skew the verifier grants) and only for the key set generation it
//! was verified under.
//!
//! Why a digest and not the token: the token itself (~1 KB) was most of an entry's
//! memory (issue 17: 1.31 KB per cached ~1 KB RS256 token).
//!
//! Why it is still found only by the exact token bytes: the key is SipHash-1-3 with
//! 128-bit output over every byte of the token, under a 128-bit key drawn from the
//! system's random source (aws-lc-rs) when the cache is made and never shown to
//! anyone. SipHash is a pseudorandom function: without the key an attacker cannot
//! compute a token's digest, so the only way to reach another token's entry is to
//! guess online, one request per guess, each with a chance of about
//! entries / 2^128 (100,000 entries: below 2^-111). The attacker cannot steer a
//! guess either: outputs of a PRF for different tokens are independent, so learning
//! how close one guess came (timing) says nothing about the next. It is the
//! construction std's `HashMap` relies on against chosen keys, here with all 128
//! output bits compared (in constant time) instead of 64 bits folded into a bucket.
//!
//! Why not SHA-256 (which needs no secret): it costs 700 ns per ~940-byte token on
//! this machine's SHA-NI and 31,700 instructions in `bench/profile` (valgrind runs
//! aws-lc's AVX code), against 290 ns and 2,500 instructions for SipHash-1-3; the
//! cached path is about 21,000 instructions in all, so SHA-256 more than doubled it
//! (BENCHMARKS.md, "Profile"). SipHash-2-4 (about 1,700 instructions and 220 ns more
//! per token) would buy a wider margin against cryptanalysis that, for SipHash-1-x, is nowhere
//! near practical (internal-collision characteristics around 2^-167; Dobraunig,
//! Mendel, Schläffer, 2014).

use std::hash::Hasher;
use std::sync::Arc;

use siphasher::sip128::{Hasher128, SipHasher13};
use subtle::ConstantTimeEq;

use crate::decision::Identity;

mod negative;

pub(crate) use negative::NegativeCache;

/// The keyed digest of a token's exact bytes: the key of both token caches.
#[derive(Clone, Copy)]
pub(crate) struct TokenDigest([u8; 16]);

// Equal exactly when the bytes are (so hashing the bytes agrees with `eq`); the
// comparison takes the same time wherever the first difference is.
impl std::hash::Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for TokenDigest {
    fn eq(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenDigest {}

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

/// Makes [`TokenDigest`]s under one secret key (one per engine, so per config).
#[derive(Clone)]
pub(crate) struct TokenKeyer {
    hasher: SipHasher13,
}

impl TokenKeyer {
    /// A keyer with a fresh key from the system's random source; `None` when that
    /// source fails (the caller then runs without caches rather than with a
    /// predictable key).
    pub(crate) fn random() -> Option<TokenKeyer> {
        let mut key = [0_u8; 16];
        aws_lc_rs::rand::fill(&mut key).ok()?;
        Some(TokenKeyer::with_key(key))
    }

    fn with_key(key: [u8; 16]) -> TokenKeyer {
        TokenKeyer {
            hasher: SipHasher13::new_with_key(&key),
        }
    }

    /// The digest of every byte of `token`.
    pub(crate) fn digest(&self, token: &str) -> TokenDigest {
        let mut h = self.hasher;
        h.write(token.as_bytes());
        TokenDigest(h.finish128().as_bytes())
    }
}

impl std::fmt::Debug for TokenKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str("TokenKeyer")
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
    keyer: TokenKeyer,
}

impl TokenCache {
    /// A cache of about `entries` tokens using at most about `bytes` of memory,
    /// keyed under `keyer`.
    pub(crate) fn new(entries: usize, bytes: u64, keyer: TokenKeyer) -> TokenCache {
        TokenCache {
            inner: quick_cache::sync::Cache::with_weighter(
                entries.max(1),
                bytes.max(1),
                EntryBytes,
            ),
            keyer,
        }
    }

    /// The key of `token` in this cache (and in the negative cache made with it).
    pub(crate) fn digest(&self, token: &str) -> TokenDigest {
        self.keyer.digest(token)
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
