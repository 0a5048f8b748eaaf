//! The hand-over point between key sources (IO, in the background) and the
//! engine (pure): an atomically swapped key set, and a hook to ask for a refetch.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use portcullis_jose::KeySet;

/// Called when a token names a `kid` we do not have; returns whether a refetch started.
pub type RefetchHook = Box<dyn Fn() -> bool + Send + Sync>;

/// The current keys of one provider.
#[derive(Default)]
pub struct KeySlot {
    keys: ArcSwapOption<KeySet>,
    generation: AtomicU64,
    refetch: OnceLock<RefetchHook>,
}

impl KeySlot {
    /// A slot with no keys yet (requests for its provider are denied until keys arrive).
    pub fn empty() -> KeySlot {
        KeySlot::default()
    }

    /// A slot holding fixed keys.
    pub fn with_keys(keys: KeySet) -> KeySlot {
        let slot = KeySlot::default();
        slot.store(keys);
        slot
    }

    /// The current keys, if any have been loaded.
    pub fn load(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// Publishes a new key set.
    pub fn store(&self, keys: KeySet) {
        self.keys.store(Some(Arc::new(keys)));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Bumps on every store: the token cache drops entries verified under an older set.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.keys.load().is_some()
    }

    /// Installs the refetch hook (once; later calls are ignored).
    pub fn set_refetch_hook(&self, hook: RefetchHook) {
        let _ = self.refetch.set(hook);
    }

    /// Asks the source for fresh keys; `true` when a fetch started (it is rate-limited).
    pub fn request_refetch(&self) -> bool {
        self.refetch.get().is_some_and(|hook| hook())
    }
}

impl fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySlot")
            .field("keys", &self.load().map(|k| k.len()))
            .field("generation", &self.generation())
            .finish()
    }
}
