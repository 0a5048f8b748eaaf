//! Where sources put what they find: key slots (through a [`Publisher`]) and a
//! [`Report`] (metrics, implemented by the application).

use std::fmt;
use std::sync::Arc;

use portcullis_jose::{KeyFormat, KeySet, Secrets};
use portcullis_policy::{Clock as _, KeySlot, ProviderMetadata, SystemClock};

use crate::error::InvalidKeys;

/// How one fetch or read of a key document ended.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum FetchOutcome {
    /// The fetch failed (network, status, timeout, unreadable file); the last good keys stay.
    Error,
    /// The document was unusable (not JSON, no usable key); the last good keys stay.
    Invalid,
    /// New keys published.
    Success,
}

/// How one token exchange (RFC 8693) of an `inject` rule ended.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ExchangeOutcome {
    /// The token endpoint could not be reached, failed (5xx, 429) or answered
    /// something unusable: nothing is remembered about the token.
    Error,
    /// The token endpoint issued a token.
    Exchanged,
    /// The token endpoint refused the inbound token (400, 401, 403): remembered
    /// in the negative cache.
    Refused,
    /// Refused again from the negative cache, without asking the token endpoint.
    RefusedCached,
}

impl ExchangeOutcome {
    /// Every outcome.
    pub const ALL: [ExchangeOutcome; 4] = [
        ExchangeOutcome::Error,
        ExchangeOutcome::Exchanged,
        ExchangeOutcome::Refused,
        ExchangeOutcome::RefusedCached,
    ];

    /// The metrics label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExchangeOutcome::Error => "error",
            ExchangeOutcome::Exchanged => "exchanged",
            ExchangeOutcome::Refused => "refused",
            ExchangeOutcome::RefusedCached => "refused_cached",
        }
    }
}

/// What key sources tell the outside world: the application implements it with its
/// metrics, so that `keys` needs no metrics of its own.
pub trait Report: Send + Sync + 'static {
    /// A fetch (or read) of `provider`'s key document ended with `outcome`.
    fn fetch(&self, provider: &str, outcome: FetchOutcome);

    /// `provider` now has `count` usable keys.
    fn keys(&self, provider: &str, count: usize);

    /// A token exchange of `inject` rule `rule` ended with `outcome` (default:
    /// not reported).
    fn exchange(&self, rule: &str, outcome: ExchangeOutcome) {
        let _ = (rule, outcome);
    }
}

/// A [`Report`] that reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReport;

/// One slot a source feeds, and the provider it belongs to (for logs and metrics).
#[derive(Clone)]
pub struct Outlet {
    provider: Arc<str>,
    scope: Option<Arc<str>>,
    slot: Arc<KeySlot>,
}

impl Outlet {
    /// The slot of `provider`.
    pub fn new(provider: &str, slot: Arc<KeySlot>) -> Outlet {
        Outlet {
            provider: provider.into(),
            scope: None,
            slot,
        }
    }

    /// The same outlet, fed only with what the source publishes for `scope` (a
    /// trust domain, for a source that streams several).
    pub fn scoped(mut self, scope: &str) -> Outlet {
        self.scope = Some(scope.into());
        self
    }

    /// Its provider.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Its slot.
    pub fn slot(&self) -> &Arc<KeySlot> {
        &self.slot
    }
}

/// Where a source publishes: one or more slots. A JWKS URI or file feeds its
/// provider's slot; a source that streams keys for several scopes (one SPIFFE
/// Workload API stream, several trust domains) publishes each scope's keys with
/// [`Publisher::publish_scoped`] into the outlets of that scope.
#[derive(Clone)]
pub struct Publisher {
    outlets: Arc<[Outlet]>,
    report: Arc<dyn Report>,
}

impl Publisher {
    /// Publishes into `outlets`, reporting to `report`.
    pub fn new(outlets: Vec<Outlet>, report: Arc<dyn Report>) -> Publisher {
        Publisher {
            outlets: outlets.into(),
            report,
        }
    }

    /// Publishes into the slot of `provider` alone.
    pub fn single(provider: &str, slot: Arc<KeySlot>, report: Arc<dyn Report>) -> Publisher {
        Publisher::new(vec![Outlet::new(provider, slot)], report)
    }

    /// The outlets.
    pub fn outlets(&self) -> &[Outlet] {
        &self.outlets
    }

    /// Whether every slot holds keys (the last good ones, during an outage).
    pub fn is_ready(&self) -> bool {
        self.outlets.iter().all(|o| o.slot.is_ready())
    }

    /// Publishes `keys` into every slot as a new snapshot, waking the requests that
    /// wait for one; a slot that already holds the same keys keeps its snapshot (and
    /// so its generation and its cached tokens). `true` when some slot changed.
    pub fn publish(&self, keys: &KeySet) -> bool {
        let mut changed = false;
        for outlet in self.outlets.iter() {
            changed |= self.publish_into(outlet, keys);
        }
        changed
    }

    /// Notes that a fetch ended (whatever it found), waking the requests waiting on
    /// it in [`KeySlot::next_round`].
    pub fn end_round(&self) {
        for outlet in self.outlets.iter() {
            outlet.slot.end_round();
        }
    }

    /// Publishes `keys` into the slots of `scope`; `false` when no outlet has that scope.
    pub fn publish_scoped(&self, scope: &str, keys: &KeySet) -> bool {
        let mut any = false;
        for outlet in self.outlets.iter() {
            if outlet.scope.as_deref() == Some(scope) {
                self.publish_into(outlet, keys);
                outlet.slot.end_round();
                any = true;
            }
        }
        any
    }

    /// Publishes the provider's discovery metadata next to its keys.
    pub fn publish_metadata(&self, metadata: &ProviderMetadata) {
        for outlet in self.outlets.iter() {
            for ignored in metadata.ignored() {
                tracing::warn!(
                    provider = &*outlet.provider,
                    member = ignored.member,
                    error = %ignored.problem,
                    "discovery member ignored"
                );
            }
            outlet.slot.store_metadata(metadata.clone());
        }
    }

    /// Reports a fetch outcome for every provider fed.
    pub fn report(&self, outcome: FetchOutcome) {
        for outlet in self.outlets.iter() {
            self.report.fetch(&outlet.provider, outcome);
        }
    }

    /// Installs `hook` as the refetch hook of every slot: a token naming an unknown
    /// `kid` in any of them asks this source for fresh keys.
    pub fn on_refetch(&self, hook: Arc<dyn Fn(&str) -> bool + Send + Sync>) {
        for outlet in self.outlets.iter() {
            let hook = hook.clone();
            outlet.slot.set_refetch_hook(Box::new(move |kid| hook(kid)));
        }
    }

    /// The provider names, for logs.
    pub(crate) fn providers(&self) -> impl fmt::Display + '_ {
        Providers(&self.outlets)
    }

    fn publish_into(&self, outlet: &Outlet, keys: &KeySet) -> bool {
        let now = SystemClock.now();
        let unchanged = outlet
            .slot
            .snapshot()
            .keys()
            .is_some_and(|old| crate::same::same_keys(old, keys));
        if unchanged {
            tracing::debug!(
                provider = &*outlet.provider,
                keys = keys.len(),
                "key set unchanged"
            );
            outlet.slot.update_status(|s| {
                s.fetched_at = Some(now);
                s.last_error = None;
            });
            return false;
        }
        let kids: Vec<&str> = keys
            .keys()
            .iter()
            .filter_map(|k| k.kid().map(|k| k.as_str()))
            .collect();
        // The kids as one comma-separated field, not a stringified array.
        let kids = kids.join(",");
        tracing::info!(
            provider = &*outlet.provider,
            keys = keys.len(),
            kids,
            "key set published"
        );
        self.report.keys(&outlet.provider, keys.len());
        outlet.slot.store(keys.clone());
        outlet.slot.update_status(|s| {
            s.fetched_at = Some(now);
            s.last_error = None;
        });
        true
    }

    /// Notes, for people, a failed fetch or read (the last good keys stay).
    pub fn note_error(&self, error: &dyn fmt::Display) {
        let now = SystemClock.now();
        let text = error.to_string();
        for outlet in self.outlets.iter() {
            outlet
                .slot
                .update_status(|s| s.last_error = Some((now, text.clone())));
        }
    }

    /// Notes, for people, when the source fetches next.
    pub fn note_next_refresh(&self, after: std::time::Duration) {
        let at = SystemClock
            .now()
            .saturating_add(i64::try_from(after.as_secs()).unwrap_or(i64::MAX));
        for outlet in self.outlets.iter() {
            outlet.slot.update_status(|s| s.next_refresh = Some(at));
        }
    }
}

struct Providers<'a>(&'a [Outlet]);

/// Parses a key document (JWKS/JWK JSON, or a PEM public key) through the one
/// import every source shares. Keys left out are logged (`key ignored`, with
/// their index, `kid` and why); a document with no usable key is an error, and
/// the caller keeps the last good set.
pub(crate) fn parse_keys(
    provider: &dyn fmt::Display,
    origin: &str,
    bytes: &[u8],
    secrets: Secrets,
) -> Result<KeySet, InvalidKeys> {
    let imported = portcullis_jose::import_keys(bytes, KeyFormat::Detect, secrets)?;
    for s in &imported.skipped {
        tracing::warn!(
            provider = %provider,
            origin,
            index = s.index,
            kid = s.kid.as_deref(),
            unsupported = s.reason.is_unsupported(),
            error = %s.reason,
            "key ignored"
        );
    }
    if imported.keys.is_empty() {
        let ignored = imported.skipped.len();
        return Err(match imported.skipped.into_iter().next() {
            Some(s) => InvalidKeys::NoUsableKey {
                ignored,
                index: s.index,
                reason: s.reason,
            },
            None => InvalidKeys::Empty,
        });
    }
    Ok(imported.keys)
}

// === impl NoReport ===

impl Report for NoReport {
    fn fetch(&self, _: &str, _: FetchOutcome) {}

    fn keys(&self, _: &str, _: usize) {}
}

// === impl Outlet ===

impl fmt::Debug for Outlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outlet")
            .field("provider", &self.provider)
            .field("scope", &self.scope)
            .field("slot", &self.slot)
            .finish()
    }
}

// === impl Publisher ===

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("outlets", &self.outlets)
            .finish_non_exhaustive()
    }
}

// === impl Providers ===

impl fmt::Display for Providers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, outlet) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&outlet.provider)?;
        }
        Ok(())
    }
}
