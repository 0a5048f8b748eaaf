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
}

/// A bounded cache of verified tokens.
pub(crate) struct TokenCache {
    inner: quick_cache::sync::Cache<Box<str>, CachedToken>,
}

impl TokenCache {
    /// A cache of at most `entries` tokens.
    pub(crate) fn new(entries: usize) -> TokenCache {
        TokenCache {
            inner: quick_cache::sync::Cache::new(entries.max(1)),
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

    /// Remembers a verified token.
    pub(crate) fn insert(&self, token: &str, entry: CachedToken) {
        self.inner.insert(Box::from(token), entry);
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
