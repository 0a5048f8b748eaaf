//! The verified-token cache: full token bytes as the key (no truncated hash
//! decides), bounded in entries, each entry valid only until the token's `exp`
//! (plus the same clock skew the verifier grants) and only for the key set
//! generation it was verified under.

use std::sync::Arc;

use crate::decision::Identity;

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

/// Estimated bytes an entry holds: the token itself (the key, shared with the
/// identity), the identity and 320 bytes for the cache's own bookkeeping and the
/// allocator's rounding. `bench/run --scenarios rss` measures 1.3 KB per ~1 KB RS256
/// token (estimated 1.4 KB) and 2.1 KB with a `scopes` rule (estimated 2.3 KB).
/// Kept cheap: the cache calls it while evicting.
#[derive(Clone, Copy, Debug)]
struct EntryBytes;

impl quick_cache::Weighter<Arc<str>, CachedToken> for EntryBytes {
    fn weight(&self, key: &Arc<str>, value: &CachedToken) -> u64 {
        (key.len() as u64)
            .saturating_add(u64::from(value.identity_bytes))
            .saturating_add(320)
    }
}

/// A cache of verified tokens, bounded in memory (and so in entries).
pub(crate) struct TokenCache {
    inner: quick_cache::sync::Cache<Arc<str>, CachedToken, EntryBytes>,
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

    /// The entry for `token` if it is still valid at `now` under `generation_of(provider)`.
    pub(crate) fn get(
        &self,
        token: &str,
        now: i64,
        generation_of: impl Fn(usize) -> u64,
    ) -> Option<CachedToken> {
        let hit = self.inner.get(token)?;
        let fresh = hit.valid_until.is_none_or(|until| (now as f64) < until)
            && generation_of(hit.provider) == hit.generation;
        if fresh {
            Some(hit)
        } else {
            self.inner.remove(token);
            None
        }
    }

    /// Remembers a verified token (shared with its identity when that keeps it).
    pub(crate) fn insert(&self, token: Arc<str>, entry: CachedToken) {
        self.inner.insert(token, entry);
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
