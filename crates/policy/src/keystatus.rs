//! How a provider's key source is doing, for people (the admin page, explain):
//! when its keys were last published, when it fetches next, its last error.
//! Written by key sources in the background; never read on the request path.

/// The key source's state, as last reported.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct KeyStatus {
    /// When the keys in force were published (seconds since the epoch).
    pub fetched_at: Option<i64>,
    /// When the source fetches next (remote sources only).
    pub next_refresh: Option<i64>,
    /// The last fetch or read error, with when it happened; cleared by a success.
    pub last_error: Option<(i64, String)>,
}
