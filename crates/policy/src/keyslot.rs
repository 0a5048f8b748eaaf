//! The hand-over point between key sources (IO, in the background) and the
//! engine (pure): one atomically swapped, immutable [`KeySnapshot`] (the keys and
//! their generation together), a hook to ask for a refetch, and a way to wait for
//! the next snapshot ([`KeySlot::changed`]) without a runtime of our own. Next to
//! the keys, a slot holds what discovery said about the provider
//! ([`ProviderMetadata`]), for whatever needs its endpoints.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use portcullis_jose::KeySet;

use crate::keystatus::KeyStatus;
use crate::provider_metadata::ProviderMetadata;

/// Called with the `kid` a token names when the keys do not have it; returns whether
/// the request should wait for a fetch (one in flight, or about to start).
pub type RefetchHook = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The keys of one provider as published at one moment, with the generation that
/// names them. Keys and generation are published together, so a reader that loads a
/// snapshot once sees keys and generation that belong to each other: a token verified
/// with these keys is cached under this generation, and only this one.
#[derive(Debug, Default)]
pub struct KeySnapshot {
    generation: u64,
    keys: Option<KeySet>,
}

impl KeySnapshot {
    /// Bumps on every store of a key set that differs from the last (0: nothing
    /// stored yet).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The keys, if any have been published.
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }
}

/// The current keys of one provider.
pub struct KeySlot {
    current: ArcSwap<KeySnapshot>,
    /// Tasks waiting in [`KeySlot::changed`]: woken, and the list emptied, by each store.
    waiters: ArcSwap<Vec<Waker>>,
    /// The provider's discovery metadata, when its source is discovery. Apart from the
    /// keys: a new document does not name new keys, so it bumps no generation.
    metadata: ArcSwapOption<ProviderMetadata>,
    refetch: OnceLock<RefetchHook>,
    /// Bumps each time the source ends a fetch, whatever it found (new keys, the
    /// same keys, nothing): what a request waiting on a refetch waits for.
    rounds: AtomicU64,
    /// What the source last said of itself (for people, not for deciding).
    status: ArcSwap<KeyStatus>,
}

impl KeySlot {
    /// A slot with no keys yet (requests for its provider are denied until keys arrive).
    pub fn empty() -> KeySlot {
        KeySlot {
            current: ArcSwap::from_pointee(KeySnapshot::default()),
            waiters: ArcSwap::from_pointee(Vec::new()),
            metadata: ArcSwapOption::empty(),
            refetch: OnceLock::new(),
            rounds: AtomicU64::new(0),
            status: ArcSwap::from_pointee(KeyStatus::default()),
        }
    }

    /// A slot holding fixed keys.
    pub fn with_keys(keys: KeySet) -> KeySlot {
        let slot = KeySlot::empty();
        slot.store(keys);
        slot
    }

    /// The snapshot in force: read it once per verification and use both its keys
    /// and its generation.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.current.load_full()
    }

    /// The snapshot in force, without touching its reference count (the hot path).
    pub(crate) fn current(&self) -> Guard<Arc<KeySnapshot>> {
        self.current.load()
    }

    /// The current keys, if any have been loaded.
    pub fn load(&self) -> Option<KeySet> {
        self.current.load().keys.clone()
    }

    /// Publishes a new key set as a new snapshot, one generation after the one it replaces.
    pub fn store(&self, keys: KeySet) {
        // `rcu` retries when another store won the race, so generations never repeat.
        self.current.rcu(|old| KeySnapshot {
            generation: old.generation.wrapping_add(1),
            keys: Some(keys.clone()),
        });
        // After the snapshot: a waiter that registers later sees the new generation.
        self.wake_all();
    }

    /// Notes that the source ended a fetch (its keys, if any, stored before), waking
    /// the requests waiting in [`KeySlot::next_round`]: a refetch that found
    /// nothing new ends their wait too, and bumps no generation.
    pub fn end_round(&self) {
        self.rounds.fetch_add(1, Ordering::AcqRel);
        self.wake_all();
    }

    /// How many fetches the source has ended.
    pub fn round(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Resolves once the source has ended a fetch after round `seen`
    /// ([`KeySlot::round`]). Bound it with the runtime's timeout.
    pub fn next_round(&self, seen: u64) -> Changed<'_> {
        Changed {
            slot: self,
            seen,
            by: Measure::Round,
        }
    }

    fn wake_all(&self) {
        let waiters = self.waiters.swap(Arc::new(Vec::new()));
        for waker in waiters.iter() {
            waker.wake_by_ref();
        }
    }

    /// Publishes the provider's discovery metadata (the keys are published apart,
    /// with [`KeySlot::store`]).
    pub fn store_metadata(&self, metadata: ProviderMetadata) {
        self.metadata.store(Some(Arc::new(metadata)));
    }

    /// The provider's discovery metadata, once its discovery document has been read
    /// (`None` for other key sources).
    pub fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        self.metadata.load_full()
    }

    /// Resolves, with the new generation, once the slot's generation differs from
    /// `seen`: a request waiting for an unknown-`kid` refetch is woken by the snapshot
    /// that refetch publishes. Bound it with the runtime's timeout.
    pub fn changed(&self, seen: u64) -> Changed<'_> {
        Changed {
            slot: self,
            seen,
            by: Measure::Generation,
        }
    }

    /// The generation of the snapshot in force: the token cache drops entries
    /// verified under an older one.
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// Whether keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.current.load().keys.is_some()
    }

    /// The key source's state, as last reported.
    pub fn status(&self) -> Arc<KeyStatus> {
        self.status.load_full()
    }

    /// Updates the key source's state.
    pub fn update_status(&self, update: impl Fn(&mut KeyStatus)) {
        self.status.rcu(|old| {
            let mut new = KeyStatus::clone(old);
            update(&mut new);
            new
        });
    }

    /// Installs the refetch hook (once; later calls are ignored).
    pub fn set_refetch_hook(&self, hook: RefetchHook) {
        let _ = self.refetch.set(hook);
    }

    /// Asks the source for fresh keys because a token names `kid`, which the keys do
    /// not have; `true` when the request should wait for the next fetch to end
    /// ([`KeySlot::next_round`]). The source decides (junk `kid`s wait for nothing;
    /// fetches are bounded).
    pub fn request_refetch(&self, kid: &str) -> bool {
        self.refetch.get().is_some_and(|hook| hook(kid))
    }
}

/// The future of [`KeySlot::changed`].
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Changed<'a> {
    slot: &'a KeySlot,
    seen: u64,
    by: Measure,
}

/// What a [`Changed`] waits for a change of.
#[derive(Clone, Copy, Debug)]
enum Measure {
    Generation,
    Round,
}

impl Changed<'_> {
    fn now(&self) -> u64 {
        match self.by {
            Measure::Generation => self.slot.generation(),
            Measure::Round => self.slot.round(),
        }
    }
}

// === impl Changed ===

impl Future for Changed<'_> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let now = self.now();
        if now != self.seen {
            return Poll::Ready(now);
        }
        let waker = cx.waker();
        self.slot.waiters.rcu(|list| {
            let mut list = Vec::clone(list);
            if !list.iter().any(|w| w.will_wake(waker)) {
                list.push(waker.clone());
            }
            list
        });
        // A store between the first check and the registration took the list before
        // this waker was in it; its snapshot is visible now.
        let now = self.now();
        if now == self.seen {
            Poll::Pending
        } else {
            Poll::Ready(now)
        }
    }
}

// === impl KeySlot ===

impl Default for KeySlot {
    fn default() -> KeySlot {
        KeySlot::empty()
    }
}

impl fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.load();
        f.debug_struct("KeySlot")
            .field("keys", &current.keys.as_ref().map(KeySet::len))
            .field("generation", &current.generation)
            .field("metadata", &self.metadata.load().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_its_keys_and_generation_together() {
        let slot = KeySlot::empty();
        assert_eq!(slot.generation(), 0);
        assert!(!slot.is_ready());
        slot.store(KeySet::default());
        let first = slot.snapshot();
        slot.store(KeySet::default());
        // The old snapshot still names its own generation; the slot moved on.
        assert_eq!(first.generation(), 1);
        assert_eq!(slot.generation(), 2);
        assert!(slot.is_ready());
    }

    #[derive(Default)]
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Issue 10, bug 3 (the waiters): a task waiting for new keys is woken by the
    /// store that publishes them, not by polling.
    #[test]
    fn a_store_wakes_the_tasks_waiting_for_it() {
        let slot = KeySlot::with_keys(KeySet::default());
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut changed = slot.changed(slot.generation());
        assert_eq!(Pin::new(&mut changed).poll(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut changed).poll(&mut cx), Poll::Pending);
        assert_eq!(slot.waiters.load().len(), 1, "registered once");
        slot.store(KeySet::default());
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(Pin::new(&mut changed).poll(&mut cx), Poll::Ready(2));
        assert!(slot.waiters.load().is_empty());
        // Already changed: ready at once.
        let mut stale = slot.changed(1);
        assert_eq!(Pin::new(&mut stale).poll(&mut cx), Poll::Ready(2));
    }
}
