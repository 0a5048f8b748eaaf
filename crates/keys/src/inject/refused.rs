//! The negative cache of token exchange: an inbound token the token endpoint
//! refused (a 400, 401 or 403 answer: `invalid_grant`, `invalid_request`,
//! `invalid_target`, ...) is not sent again for `negative_ttl`, so a flood of bad
//! tokens is answered here instead of becoming a flood at the identity provider.
//!
//! Entries are keyed by SHA-256 of (audience, token), length-prefixed so that no
//! other pair can share a key: only the very token refused for the very audience
//! hits. The cache is bounded in entries (the least used go first); an entry is
//! good until its own expiry, read against the injected clock. Outages (transport
//! errors, 5xx, 429, unusable answers) are never cached: they say nothing about
//! the token.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use quick_cache::sync::Cache;

/// Most refused tokens one rule remembers.
pub(crate) const REFUSED_ENTRIES: usize = 10_000;

/// Why the token endpoint refused a token, as remembered.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) struct Refusal {
    /// Its HTTP status.
    pub(crate) status: u16,
    /// Its RFC 6749 §5.2 `error` code (clipped), or `none`.
    pub(crate) code: Arc<str>,
    /// When it was answered (seconds since the epoch).
    pub(crate) at: i64,
    /// Last second (exclusive) it is answered from here.
    until: i64,
}

/// One rule's refused tokens.
pub(crate) struct Refused {
    entries: Cache<[u8; 32], Refusal>,
    ttl_secs: i64,
}

/// Whether a token endpoint's status is a refusal of the request (so of the
/// token), not an outage.
pub(crate) fn is_refusal(status: u16) -> bool {
    matches!(status, 400 | 401 | 403)
}

impl Refused {
    /// Remembers at most `entries` refusals, each for `ttl`.
    pub(crate) fn new(entries: usize, ttl: Duration) -> Refused {
        Refused {
            entries: Cache::new(entries.max(1)),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1),
        }
    }

    /// The refusal of `token` for `audience` still remembered at `now`.
    pub(crate) fn get(&self, audience: &str, token: &str, now: i64) -> Option<Refusal> {
        let key = key(audience, token);
        let refusal = self.entries.get(&key)?;
        if refusal.until > now {
            Some(refusal)
        } else {
            self.entries.remove(&key);
            None
        }
    }

    /// Remembers that `token` was refused for `audience` at `now`.
    pub(crate) fn insert(&self, audience: &str, token: &str, status: u16, code: &str, now: i64) {
        self.entries.insert(
            key(audience, token),
            Refusal {
                status,
                code: Arc::from(code),
                at: now,
                until: now.saturating_add(self.ttl_secs),
            },
        );
    }

    /// Refusals held (expired ones included until they are read or evicted).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// SHA-256 of the audience and the token, each preceded by its length.
fn key(audience: &str, token: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"portcullis token exchange refusal\0");
    ctx.update(&(audience.len() as u64).to_be_bytes());
    ctx.update(audience.as_bytes());
    ctx.update(&(token.len() as u64).to_be_bytes());
    ctx.update(token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

// === impl Refused ===

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refused")
            .field("entries", &self.entries.len())
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_refusal_is_remembered_for_its_window_only() {
        let r = Refused::new(10, Duration::from_secs(30));
        r.insert("aud", "tok", 400, "invalid_grant", NOW);
        let got = r.get("aud", "tok", NOW + 29).unwrap();
        assert_eq!(
            (got.status, &*got.code, got.at),
            (400, "invalid_grant", NOW)
        );
        assert!(r.get("aud", "tok", NOW + 30).is_none());
        // Read past its window, it is gone.
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn only_the_same_token_for_the_same_audience_hits() {
        let r = Refused::new(10, Duration::from_secs(30));
        r.insert("aud", "tok", 400, "invalid_grant", NOW);
        for (aud, tok) in [
            ("aud", "tok2"),
            ("aud", "to"),
            ("aud2", "tok"),
            ("au", "dtok"),
            ("", "audtok"),
            ("audtok", ""),
        ] {
            assert!(r.get(aud, tok, NOW).is_none(), "{aud:?} {tok:?}");
        }
        assert_ne!(key("a", "bc"), key("ab", "c"));
    }

    #[test]
    fn is_bounded_in_entries() {
        let r = Refused::new(100, Duration::from_secs(30));
        for i in 0..1_000 {
            r.insert("aud", &format!("tok{i}"), 400, "invalid_grant", NOW);
        }
        assert!(r.len() <= 100, "{}", r.len());
        // The newest is kept.
        assert!(r.get("aud", "tok999", NOW).is_some());
    }

    #[test]
    fn outages_are_not_refusals() {
        for s in [400, 401, 403] {
            assert!(is_refusal(s), "{s}");
        }
        for s in [200, 302, 404, 408, 429, 500, 502, 503] {
            assert!(!is_refusal(s), "{s}");
        }
    }
}
