//! The hand-over point between an injection source (IO, in the background: the
//! Workload API, a token endpoint, our own signer) and the engine (pure): the
//! current outbound token of one `inject` rule, swapped whole.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

mod exchange;

pub(crate) use exchange::exchange_key;
pub use exchange::{
    EXCHANGE_CACHE_ENTRIES, ExchangeError, ExchangeFuture, Exchanged, Exchanger,
    MAX_SUBJECT_TOKEN_BYTES, PendingExchange,
};

/// A token ready to be sent: `Bearer <token>` and when it expires.
#[derive(Clone)]
pub struct InjectedToken {
    authorization: HeaderValue,
    expires_at: i64,
}

impl InjectedToken {
    /// A token that expires at `expires_at` (seconds since the epoch).
    ///
    /// # Errors
    /// A token that cannot be a header value (control characters).
    pub fn try_new(token: &str, expires_at: i64) -> Result<InjectedToken, http::Error> {
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))?;
        value.set_sensitive(true);
        Ok(InjectedToken {
            authorization: value,
            expires_at,
        })
    }

    /// The `Authorization` value.
    pub fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }

    /// When it expires (seconds since the epoch).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

/// The current token of one `inject` rule (none until the source has one).
#[derive(Default)]
pub struct TokenSlot {
    current: ArcSwapOption<InjectedToken>,
    /// A `token_exchange` rule's exchanged tokens (set once its exchanger runs).
    exchange: OnceLock<exchange::ExchangeCache>,
}

impl TokenSlot {
    /// An empty slot.
    pub fn empty() -> TokenSlot {
        TokenSlot::default()
    }

    /// Publishes a new token.
    pub fn store(&self, token: InjectedToken) {
        self.current.store(Some(Arc::new(token)));
    }

    /// Forgets the token (its source lost it).
    pub fn clear(&self) {
        self.current.store(None);
    }

    /// The token, when there is one that is still valid at `now`.
    pub fn fresh(&self, now: i64) -> Option<Arc<InjectedToken>> {
        self.current.load_full().filter(|t| t.expires_at > now)
    }
}

// === impl InjectedToken ===

impl fmt::Debug for InjectedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

// === impl TokenSlot ===

impl fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSlot")
            .field(
                "expires_at",
                &self.current.load().as_ref().map(|t| t.expires_at),
            )
            .finish()
    }
}
