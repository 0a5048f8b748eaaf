//! The unknown-`kid` refetch gate of one remote source (issue 18).
//!
//! A token naming a `kid` we do not have asks its source for fresh keys through
//! the slot's refetch hook ([`Refetch::request`]; it runs on the request path, so it
//! only touches atomics and a bounded concurrent map). The answer says whether the
//! request should wait for a fetch. The gate tells a `kid` that may be a real
//! rotation from junk by what the fetches said about it:
//!
//! - a `kid` that a fetch **started after it was first asked for** did not bring is
//!   junk (or a removed key): answered at once, no wait and no fetch, for
//!   [`NEGATIVE_TTL`] after the last fetch (any fetch refreshes that: it would have
//!   brought the key);
//! - a `kid` never seen (or whose verdict is older than that) may be a key just
//!   rotated in: it asks for a fetch. Requests wait while a fetch is in flight (it
//!   may bring the key), or when the next one starts within [`DEFER`]; never longer
//!   than the decider's bound, which re-asks after each fetch.
//!
//! The fetches `kid`s trigger are bounded per source: at most one in flight, one
//! start per [`MIN_INTERVAL`], and a token bucket of [`BURST`] refilled one per
//! [`REFILL`]. So an attacker's random `kid`s cost the key server at most that, and
//! each fetch they trigger also looks for every real `kid` asked before it: under a
//! sustained flood of never-seen `kid`s a rotation is found within [`REFILL`], and
//! without one within a fetch's time. Kids are remembered in a map of at most
//! [`ASKED_ENTRIES`] entries (evicted ones are simply asked again).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A request waits for a fetch that starts within this (besides one in flight).
pub const DEFER: Duration = Duration::from_millis(250);

/// Least time between the starts of two fetches triggered by unknown `kid`s.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// Fetches unknown `kid`s may trigger in a burst, per source.
pub const BURST: u64 = 10;

/// Once the burst is spent, one more kid-triggered fetch per this.
pub const REFILL: Duration = Duration::from_secs(3);

/// How long after the last fetch a `kid` that fetches did not bring is answered at
/// once (no wait, no fetch) before it may ask again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(15);

/// Most `kid`s remembered per source.
pub const ASKED_ENTRIES: usize = 4096;

/// One source's gate.
#[derive(Debug)]
pub(crate) struct Refetch {
    epoch: Instant,
    /// Per `kid`: milliseconds since `epoch` when it was first asked for since the
    /// last verdict on it.
    asked: quick_cache::sync::Cache<String, u64>,
    /// Start (ms since `epoch`, +1) of the fetch in flight; 0: none.
    in_flight: AtomicU64,
    /// Start and end (ms since `epoch`, +1) of the last fetch that ended; 0: none yet.
    last_start: AtomicU64,
    last_end: AtomicU64,
    /// A `kid` asked for a fetch that has not started yet.
    wanted: AtomicBool,
    /// Milliseconds since `epoch` before which no kid-triggered fetch may start.
    next_allowed: AtomicU64,
    /// The bucket, as GCRA's theoretical arrival time (ms since `epoch`); only the
    /// source's task updates it.
    tat: AtomicU64,
    wake: Notify,
}

impl Refetch {
    pub(crate) fn new() -> Refetch {
        Refetch {
            epoch: Instant::now(),
            asked: quick_cache::sync::Cache::new(ASKED_ENTRIES),
            in_flight: AtomicU64::new(0),
            last_start: AtomicU64::new(0),
            last_end: AtomicU64::new(0),
            wanted: AtomicBool::new(false),
            next_allowed: AtomicU64::new(0),
            tat: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// The hook: whether the request asking for `kid` (which the keys in force do
    /// not have) should wait for a fetch.
    pub(crate) fn request(&self, kid: &str) -> bool {
        let now = self.now_ms();
        match self.asked.get(kid) {
            Some(at) if self.looked_for(at) => {
                let end = self.last_end.load(Ordering::Acquire).saturating_sub(1);
                if now < end.saturating_add(millis(NEGATIVE_TTL)) {
                    // Junk, or a removed key: the fetches since it was asked did not
                    // bring it.
                    return false;
                }
                // The verdict is old: ask again.
                self.asked.insert(kid.to_owned(), now);
            }
            Some(_) => {}
            None => self.asked.insert(kid.to_owned(), now),
        }
        if self.in_flight.load(Ordering::Acquire) != 0 {
            // It may bring the key; if not, the decider asks again after it.
            return true;
        }
        if !self.wanted.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
        self.next_allowed
            .load(Ordering::Acquire)
            .saturating_sub(now)
            <= millis(DEFER)
    }

    /// Whether a fetch that started at or after `asked_at` has ended.
    fn looked_for(&self, asked_at: u64) -> bool {
        let start = self.last_start.load(Ordering::Acquire);
        // Stored +1: a start at or after the ask is `start > asked_at`.
        start > asked_at
    }

    /// Resolves when a request may have asked for a fetch (check [`Refetch::is_wanted`]).
    pub(crate) async fn requested(&self) {
        self.wake.notified().await;
    }

    /// Whether a kid-triggered fetch is asked for and not started.
    pub(crate) fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }

    /// How long the asked-for fetch must wait (the interval and the bucket).
    pub(crate) fn delay(&self) -> Duration {
        let wait = self
            .next_allowed
            .load(Ordering::Acquire)
            .saturating_sub(self.now_ms());
        Duration::from_millis(wait)
    }

    /// A fetch starts (periodic or asked for); `true` when a `kid` asked for it.
    pub(crate) fn start(&self) -> bool {
        let now = self.now_ms();
        self.in_flight
            .store(now.saturating_add(1), Ordering::Release);
        let by_kid = self.wanted.swap(false, Ordering::AcqRel);
        if by_kid {
            // Take a token: GCRA with emission interval REFILL, burst BURST.
            let e = millis(REFILL);
            let tau = e.saturating_mul(BURST.saturating_sub(1));
            let tat = self.tat.load(Ordering::Acquire).max(now).saturating_add(e);
            self.tat.store(tat, Ordering::Release);
            let bucket = tat.saturating_sub(tau);
            let next = bucket.max(now.saturating_add(millis(MIN_INTERVAL)));
            self.next_allowed.store(next, Ordering::Release);
        }
        by_kid
    }

    /// The fetch [`Refetch::start`] began has ended (whatever it found): every `kid`
    /// asked before its start and still unknown is junk from now on.
    pub(crate) fn end(&self) {
        // The verdict first, then "not in flight": a request in between sees the
        // fetch either still running or ended with its verdict.
        let start = self.in_flight.load(Ordering::Acquire);
        self.last_end
            .store(self.now_ms().saturating_add(1), Ordering::Release);
        if start != 0 {
            self.last_start.store(start, Ordering::Release);
        }
        self.in_flight.store(0, Ordering::Release);
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
