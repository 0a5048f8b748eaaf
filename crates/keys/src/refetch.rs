//! The unknown-`kid` refetch gate of one remote source (issue 18).
//!
//! A token naming a `kid` we do not have asks its source for fresh keys through
//! the slot's refetch hook ([`Refetch::request`], lock-free: it runs on the request
//! path). The answer says whether the request should wait for a fetch: `true` for
//! every request while a kid-triggered fetch is in flight or about to start (not
//! only for the one that started it), so that requests with a just-rotated `kid`
//! arriving in the same milliseconds all get the new keys.
//!
//! The gate limits how often `kid`s may trigger a fetch: after one that brought new
//! keys, not again for [`UNKNOWN_KID_REFETCH_INTERVAL`]; after one that found
//! nothing new (junk `kid`s) or failed, for the shorter
//! [`UNKNOWN_KID_RETRY_INTERVAL`], so that an attacker's `kid`s cost the key server
//! at most one fetch per that interval and cannot hold back a real rotation for
//! longer. A request that comes within [`DEFER`] of the end of the interval
//! schedules the fetch for that end and waits for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{UNKNOWN_KID_REFETCH_INTERVAL, UNKNOWN_KID_RETRY_INTERVAL};

/// A request this close to the end of the interval waits for the fetch at its end
/// (requests wait at most 2 s in the decider).
pub(crate) const DEFER: Duration = Duration::from_secs(1);

/// One source's gate.
#[derive(Debug)]
pub(crate) struct Refetch {
    epoch: Instant,
    /// A kid-triggered fetch is asked for or running.
    in_flight: AtomicBool,
    /// Milliseconds since `epoch` before which no kid may trigger a fetch.
    next_allowed_ms: AtomicU64,
    wake: Notify,
}

impl Refetch {
    pub(crate) fn new() -> Refetch {
        Refetch {
            epoch: Instant::now(),
            in_flight: AtomicBool::new(false),
            next_allowed_ms: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// The hook: whether the asking request should wait for a fetch (one in flight,
    /// or one this call started or scheduled).
    pub(crate) fn request(&self) -> bool {
        if self.in_flight.load(Ordering::Acquire) {
            return true;
        }
        let wait = self
            .next_allowed_ms
            .load(Ordering::Acquire)
            .saturating_sub(self.now_ms());
        if wait > millis(DEFER) {
            return false;
        }
        if !self.in_flight.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
        true
    }

    /// Resolves when a request asked for a fetch.
    pub(crate) async fn requested(&self) {
        self.wake.notified().await;
    }

    /// Whether a kid-triggered fetch is asked for (read before fetching).
    pub(crate) fn is_requested(&self) -> bool {
        self.in_flight.load(Ordering::Acquire)
    }

    /// How long the asked-for fetch must wait for the interval to end (at most [`DEFER`]).
    pub(crate) fn delay(&self) -> Duration {
        let wait = self
            .next_allowed_ms
            .load(Ordering::Acquire)
            .saturating_sub(self.now_ms());
        Duration::from_millis(wait).min(DEFER)
    }

    /// The asked-for fetch ended, having `changed` the keys or not: the interval
    /// starts, and new requests may ask again once it ends.
    pub(crate) fn done(&self, changed: bool) {
        let interval = if changed {
            UNKNOWN_KID_REFETCH_INTERVAL
        } else {
            UNKNOWN_KID_RETRY_INTERVAL
        };
        self.next_allowed_ms.store(
            self.now_ms().saturating_add(millis(interval)),
            Ordering::Release,
        );
        self.in_flight.store(false, Ordering::Release);
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
