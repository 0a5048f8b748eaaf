//! OAuth 2.0 Token Exchange (RFC 8693) for `inject` rules: the inbound bearer token
//! is traded at a token endpoint for one with the rule's audience. Unlike the other
//! sources the token depends on the request, so it cannot be fetched ahead: the
//! engine (pure) looks it up here by a digest of (audience, inbound token) and, on a
//! miss, denies with a [`PendingExchange`] that the decider (async) runs once —
//! concurrent requests with the same token wait for the same exchange — before it
//! decides again. The raw token is never a key, and never logged.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_lc_rs::digest;
use quick_cache::sync::Cache;

use super::{InjectedToken, TokenSlot};

/// Longest inbound token exchanged.
pub const MAX_SUBJECT_TOKEN_BYTES: usize = 16 * 1024;

/// Most exchanged tokens one rule keeps.
pub const EXCHANGE_CACHE_ENTRIES: usize = 10_000;

/// Seconds before its expiry that an exchanged token is renewed, at most (a short
/// lifetime: a quarter of it).
const RENEW_MARGIN_SECS: i64 = 30;

/// A token the token endpoint issued, as the exchanger read it.
#[derive(Clone)]
pub struct Exchanged {
    /// The issued token (`access_token`).
    pub token: String,
    /// When it expires (seconds since the epoch).
    pub expires_at: i64,
}

/// Why an exchange failed (names no token).
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{why}")]
pub struct ExchangeError {
    /// What went wrong.
    pub why: String,
}

/// The future an [`Exchanger`] returns.
pub struct ExchangeFuture<'a>(
    /// The exchange under way.
    pub Pin<Box<dyn Future<Output = Result<Exchanged, ExchangeError>> + Send + 'a>>,
);

/// Trades an inbound token for an outbound one (the IO side, installed by the
/// process that runs the token endpoint client).
pub trait Exchanger: Send + Sync {
    /// Exchanges `subject_token`.
    fn exchange<'a>(&'a self, subject_token: &'a str) -> ExchangeFuture<'a>;
}

/// One rule's exchanged tokens and the exchanger that makes them.
pub(crate) struct ExchangeCache {
    entries: Cache<[u8; 32], Arc<Entry>>,
    exchanger: Arc<dyn Exchanger>,
}

struct Entry {
    token: Arc<InjectedToken>,
    /// Last second (exclusive) it is handed out: shortly before its expiry, and
    /// never after the inbound token's own `exp`.
    use_until: i64,
}

/// An exchange the engine wants before it can allow: run by the decider.
pub struct PendingExchange {
    slot: Arc<TokenSlot>,
    key: [u8; 32],
    subject: String,
    /// The inbound token's `exp` (unverified), when it has one.
    subject_exp: Option<i64>,
}

/// The cache key of `subject` for `audience`: SHA-256 of both.
pub(crate) fn exchange_key(audience: &str, subject: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(audience.as_bytes());
    ctx.update(&[0]);
    ctx.update(subject.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

impl ExchangeCache {
    fn new(exchanger: Arc<dyn Exchanger>, entries: usize) -> ExchangeCache {
        ExchangeCache {
            entries: Cache::new(entries.max(1)),
            exchanger,
        }
    }
}

impl TokenSlot {
    /// Makes this the slot of a `token_exchange` rule: `exchanger` trades inbound
    /// tokens, whose results are kept (at most `entries`). The first call wins.
    pub fn set_exchanger(&self, exchanger: Arc<dyn Exchanger>, entries: usize) {
        let _ = self
            .exchange
            .get_or_init(|| ExchangeCache::new(exchanger, entries));
    }

    /// The exchanged token for `key`, when one is kept and still to be used at `now`.
    pub(crate) fn exchanged(&self, key: &[u8; 32], now: i64) -> Option<Arc<InjectedToken>> {
        let entry = self.exchange.get()?.entries.get(key)?;
        (entry.use_until > now).then(|| entry.token.clone())
    }

    /// Whether an exchanger is installed.
    pub(crate) fn has_exchanger(&self) -> bool {
        self.exchange.get().is_some()
    }
}

impl PendingExchange {
    /// An exchange of `subject` (whose unverified `exp` is `subject_exp`) for `slot`.
    pub(crate) fn new(
        slot: Arc<TokenSlot>,
        key: [u8; 32],
        subject: &str,
        subject_exp: Option<i64>,
    ) -> PendingExchange {
        PendingExchange {
            slot,
            key,
            subject: subject.to_owned(),
            subject_exp,
        }
    }

    /// Runs the exchange (or waits for the one another request started for the
    /// same token) and keeps its token; `now` reads the clock. The engine then
    /// finds it.
    ///
    /// # Errors
    /// No exchanger, or the token endpoint's failure.
    pub async fn run(self, now: impl Fn() -> i64) -> Result<(), ExchangeError> {
        let Some(cache) = self.slot.exchange.get() else {
            return Err(ExchangeError {
                why: "no token exchanger is running".to_owned(),
            });
        };
        for _ in 0..2 {
            match cache.entries.get_value_or_guard_async(&self.key).await {
                Ok(entry) if entry.use_until > now() => return Ok(()),
                Ok(_) => {
                    cache.entries.remove(&self.key);
                }
                Err(guard) => {
                    let got = cache.exchanger.exchange(&self.subject).0.await?;
                    let at = now();
                    let lifetime = got.expires_at - at;
                    let margin = RENEW_MARGIN_SECS.min(lifetime / 4);
                    let mut use_until = got.expires_at - margin;
                    if let Some(exp) = self.subject_exp {
                        use_until = use_until.min(exp);
                    }
                    if use_until <= at {
                        return Err(ExchangeError {
                            why: format!("the issued token expires at once ({lifetime}s)"),
                        });
                    }
                    let token =
                        InjectedToken::try_new(&got.token, got.expires_at).map_err(|_| {
                            ExchangeError {
                                why: "the issued token cannot be a header value".to_owned(),
                            }
                        })?;
                    let _ = guard.insert(Arc::new(Entry {
                        token: Arc::new(token),
                        use_until,
                    }));
                    return Ok(());
                }
            }
        }
        Err(ExchangeError {
            why: "the exchanged token went stale at once".to_owned(),
        })
    }
}

// === impl Exchanged ===

impl fmt::Debug for Exchanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchanged")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

// === impl ExchangeCache ===

impl fmt::Debug for ExchangeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeCache")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

// === impl ExchangeFuture ===

impl fmt::Debug for ExchangeFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExchangeFuture")
    }
}

// === impl PendingExchange ===

impl fmt::Debug for PendingExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingExchange")
            .field("subject_exp", &self.subject_exp)
            .finish_non_exhaustive()
    }
}
