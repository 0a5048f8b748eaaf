//! One state cookie per login in progress: `<cookie>_state_<tag>`, where the tag is
//! derived from the login's `state` (a SHA-256 prefix), so two logins started in two
//! tabs each keep their own, and a callback reads and clears only its own. At most
//! [`MAX_PENDING`] are kept: a new login drops the oldest (and any that no longer
//! open or have expired).

use aws_lc_rs::digest::{SHA256, digest};
use http::HeaderMap;

use crate::record::StateRecord;
use crate::{Login, STATE, cookies};

/// The most logins in progress one browser keeps.
pub(crate) const MAX_PENDING: usize = 4;
/// The most state cookies looked at in one request (a request cannot make us open
/// more than this).
const MAX_SCANNED: usize = 32;

impl Login {
    /// The state cookie of the login whose `state` this is.
    pub(crate) fn state_cookie_name(&self, state: &str) -> String {
        let hash = digest(&SHA256, state.as_bytes());
        let tag = portcullis_jose::b64::encode(&hash.as_ref()[..12]);
        format!("{}{tag}", self.state_prefix)
    }

    /// Whether `name` is one of our state cookies (or the older single one).
    pub(crate) fn is_state_cookie(&self, name: &str) -> bool {
        name == self.state_cookie || name.starts_with(&self.state_prefix)
    }

    /// `Set-Cookie` values that clear the state cookies a new login makes room by:
    /// those that do not open or have expired, the older single state cookie, and the
    /// oldest pending ones beyond `MAX_PENDING - 1`.
    pub(crate) fn drop_stale_states(&self, headers: &HeaderMap, now: i64) -> Vec<String> {
        let mut clear = Vec::new();
        let mut pending: Vec<(i64, String)> = Vec::new();
        for (name, value) in cookies::all(headers)
            .filter(|(n, _)| self.is_state_cookie(n))
            .take(MAX_SCANNED)
        {
            let record: Option<StateRecord> = self
                .sealer
                .open(STATE, value)
                .ok()
                .and_then(|plain| serde_json::from_slice(&plain).ok());
            match record {
                Some(r)
                    if r.exp > now
                        && name != self.state_cookie
                        && self.state_cookie_name(&r.state) == name =>
                {
                    pending.push((r.exp, name.to_owned()));
                }
                _ => clear.push(name.to_owned()),
            }
        }
        // Oldest first: by expiry, and within one second by the order browsers send
        // cookies in (creation time, RFC 6265 §5.4); the sort is stable.
        pending.sort_by_key(|(exp, _)| *exp);
        let excess = (pending.len() + 1).saturating_sub(MAX_PENDING);
        clear.extend(pending.into_iter().take(excess).map(|(_, n)| n));
        clear.sort();
        clear.dedup();
        clear
            .iter()
            .map(|n| cookies::set(&self.sessions.cookie, n, "", None))
            .collect()
    }
}
