//! Sessions ended on this replica (sign-out, back-channel logout) and one-time
//! values already used (`state`, logout token `jti`), remembered until they would
//! have expired. Bounded: the oldest entries go first when full.

use quick_cache::sync::{Cache, GuardResult};

/// What this replica remembers, each entry with the time it may be forgotten.
#[derive(Debug)]
pub(crate) struct Ended {
    /// `id:<session id>`, `sid:<iss> <sid>`, `sub:<iss> <sub>` → (ended at, forget after).
    sessions: Cache<String, (i64, i64)>,
    /// One-time values → forget after.
    used: Cache<String, i64>,
}

impl Ended {
    /// Room for `capacity` entries of each kind.
    pub(crate) fn new(capacity: usize) -> Ended {
        Ended {
            sessions: Cache::new(capacity),
            used: Cache::new(capacity),
        }
    }

    /// Remembers that sessions matching `key` and begun no later than `now` ended.
    pub(crate) fn end(&self, key: String, now: i64, forget_after: i64) {
        self.sessions.insert(key, (now, forget_after));
    }

    /// Whether a session matching `key`, begun at `iat`, has ended.
    pub(crate) fn has_ended(&self, key: &str, iat: i64, now: i64) -> bool {
        self.sessions
            .get(key)
            .is_some_and(|(ended_at, forget)| forget >= now && iat <= ended_at)
    }

    /// Marks a one-time value used; `false` when it already was.
    pub(crate) fn use_once(&self, value: String, now: i64, forget_after: i64) -> bool {
        // The guard makes the first of two concurrent uses the only one that inserts.
        match self.used.get_value_or_guard(&value, None) {
            GuardResult::Guard(guard) => {
                let _ = guard.insert(forget_after);
                true
            }
            GuardResult::Value(forget) if forget < now => {
                self.used.insert(value, forget_after);
                true
            }
            _ => false,
        }
    }
}
