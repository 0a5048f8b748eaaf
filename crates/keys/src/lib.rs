//! Key sources: the IO side of keys. Each source runs in the background and
//! publishes immutable key snapshots into the
//! [`KeySlot`](portcullis_policy::KeySlot)s it feeds; requests never
//! wait on it (but for a short, rate-limited refetch on an unknown `kid`, woken by
//! the snapshot that refetch publishes).
//!
//! A source is a [`KeySource`]: it is given a [`Publisher`] (one or more slots, and
//! a [`Report`] the application implements with its metrics) and runs until its
//! [`SourceHandle`] is dropped. [`start`] builds the source a provider's config
//! names; [`SourceId`] tells whether a reload may keep a running one.
//!
//! ```
//! use std::sync::Arc;
//!
//! use portcullis_keys::{NoReport, Publisher};
//! use portcullis_policy::KeySlot;
//!
//! let slot = Arc::new(KeySlot::empty());
//! let publisher = Publisher::single("corp", slot.clone(), Arc::new(NoReport));
//! publisher.publish(&portcullis_jose::KeySet::default());
//! assert!(slot.is_ready());
//! Ok::<(), portcullis_keys::FetchError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod fetch;
mod file;
mod id;
mod inject;
mod introspect;
mod publish;
mod refetch;
mod remote;
mod same;
mod spiffe;

use std::future::Future;

use portcullis_policy::config::spiffe::{BundleSource, SpiffeConfig};
use portcullis_policy::config::{JwksSource, JwksSpec};
use tokio::task::JoinHandle;

pub use error::{FetchError, InvalidKeys, SourceError};
pub use fetch::{Fetch, Fetched, Fetcher, MAX_DOCUMENT_BYTES};
pub use id::{SourceId, Tuning};
pub use inject::{InjectError, start_inject, start_inject_reporting};
pub use introspect::{
    CACHE_ENTRIES, Introspector, IntrospectorError, MAX_INTROSPECTION_BYTES, NEGATIVE_TTL,
};
pub use publish::{ExchangeOutcome, FetchOutcome, NoReport, Outlet, Publisher, Report};
pub use refetch::{
    ASKED_ENTRIES as UNKNOWN_KID_ASKED_ENTRIES, BURST as UNKNOWN_KID_BURST,
    DEFER as UNKNOWN_KID_DEFER, MIN_INTERVAL as UNKNOWN_KID_MIN_INTERVAL,
    NEGATIVE_TTL as UNKNOWN_KID_NEGATIVE_TTL, REFILL as UNKNOWN_KID_REFILL,
};

/// A background job that keeps slots filled with keys.
pub trait KeySource: Send + 'static {
    /// Runs until the task is aborted, publishing every new key set through
    /// `publisher` (into each slot it feeds) and keeping the last good one when a
    /// fetch fails.
    fn run(self, publisher: Publisher) -> impl Future<Output = ()> + Send + 'static;
}

/// A running source; dropping it stops the background task.
#[derive(Debug)]
pub struct SourceHandle {
    task: Option<JoinHandle<()>>,
}

impl SourceHandle {
    /// A handle with no task (static keys, already published).
    pub fn done() -> SourceHandle {
        SourceHandle { task: None }
    }

    /// Whether the background task is still running (`false` for static keys).
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

/// Runs `source` in the background (on the current tokio runtime), publishing
/// through `publisher`.
pub fn spawn<S: KeySource>(source: S, publisher: Publisher) -> SourceHandle {
    SourceHandle {
        task: Some(tokio::spawn(source.run(publisher))),
    }
}

/// Starts the source `spec` names, publishing through `publisher` and fetching
/// with `fetcher`. Static keys are published at once and need no task.
pub fn start<F: Fetch>(spec: &JwksSpec, publisher: Publisher, fetcher: F) -> SourceHandle {
    match &spec.source {
        JwksSource::Static(keys) => {
            publisher.publish(keys);
            SourceHandle::done()
        }
        JwksSource::File(path) => spawn(file::FileSource { path: path.clone() }, publisher),
        JwksSource::Uri(uri) => spawn(
            remote::RemoteSource {
                target: remote::Target::Jwks(uri.clone()),
                tuning: spec.tuning,
                fetcher,
            },
            publisher,
        ),
        JwksSource::Discovery(issuer) => spawn(
            remote::RemoteSource {
                target: remote::Target::Discovery(issuer.clone()),
                tuning: spec.tuning,
                fetcher,
            },
            publisher,
        ),
        JwksSource::Spiffe(SpiffeConfig {
            trust_domain,
            bundle,
        }) => match bundle {
            BundleSource::File(path) => spawn(file::FileSource { path: path.clone() }, publisher),
            BundleSource::WorkloadApi(endpoint) => spawn(
                spiffe::WorkloadApiBundles {
                    endpoint: endpoint.clone(),
                    trust_domain: trust_domain.clone(),
                },
                publisher,
            ),
        },
    }
}

// === impl SourceHandle ===

impl Drop for SourceHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

// === impl KeySource ===

impl<F: Fetch> KeySource for remote::RemoteSource<F> {
    fn run(self, publisher: Publisher) -> impl Future<Output = ()> + Send + 'static {
        self.feed(publisher)
    }
}

impl KeySource for spiffe::WorkloadApiBundles {
    fn run(self, publisher: Publisher) -> impl Future<Output = ()> + Send + 'static {
        self.feed(publisher)
    }
}

impl KeySource for file::FileSource {
    fn run(self, publisher: Publisher) -> impl Future<Output = ()> + Send + 'static {
        self.feed(publisher)
    }
}
