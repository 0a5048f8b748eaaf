//! Why a fetch, a key document or a source cycle failed: context in fields, the
//! cause behind `source()`.

use std::time::Duration;

use portcullis_jose::{KeyError, SkipReason};
use portcullis_policy::InvalidProviderMetadata;

/// Why an HTTP fetch of a key or discovery document failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The HTTP client could not be set up (the TLS stack).
    #[error("cannot set up the HTTP client: {source}")]
    Client {
        /// The cause.
        source: reqwest::Error,
    },
    /// A status other than 200.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The status.
        status: u16,
    },
    /// The fetch took longer than its limit.
    #[error("{url}: transport: timed out after {after:?}")]
    TimedOut {
        /// What was fetched.
        url: String,
        /// The limit.
        after: Duration,
    },
    /// The body is over the size limit.
    #[error("{url}: document over {limit} bytes")]
    TooLarge {
        /// What was fetched.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The request could not be sent or its body not read.
    #[error("{url}: transport: {source}")]
    Transport {
        /// What was fetched.
        url: String,
        /// The cause (a `reqwest::Error` from [`Fetcher`](crate::Fetcher)).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a key document gave no keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKeys {
    /// The document itself is unusable (not strict JSON, no `keys`, a bad single key).
    #[error(transparent)]
    Document(#[from] KeyError),
    /// The document holds no key at all.
    #[error("no usable key")]
    Empty,
    /// Every key was left out; the first one's reason is the source.
    #[error("no usable key ({ignored} ignored; key {index}: {reason})")]
    NoUsableKey {
        /// How many keys were left out.
        ignored: usize,
        /// The index of the first one.
        index: usize,
        /// Why it was left out.
        #[source]
        reason: SkipReason,
    },
}

/// Why one cycle of a key source published nothing (the last good keys stay).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The discovery document is unusable.
    #[error("{url}: {source}")]
    Discovery {
        /// The discovery document's URL.
        url: String,
        /// What is wrong with it.
        source: InvalidProviderMetadata,
    },
    /// A fetch failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The key document gave no keys.
    #[error("{origin}: {source}")]
    Keys {
        /// Where the document came from (URL or path).
        origin: String,
        /// Why it gave no keys.
        source: InvalidKeys,
    },
}
