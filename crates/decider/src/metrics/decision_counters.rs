//! The decision counters already resolved, found without a lock.
//!
//! `Family::get_or_create` takes a read lock and hashes the labels' text (the rule's
//! and provider's names included) with SipHash on every decision: about 950 of the
//! 23,500 instructions of a cached `/verify` (`bench/profile --scenarios 1`). The
//! labels of a decision are few and come from the config: the rule and provider
//! names are `Arc<str>`s the engine hands out by clone. So a decision's counter is
//! found here by the names' addresses, in a map read through `ArcSwap` (no lock, no
//! shared write), and the family is asked only the first time a key is seen.
//!
//! The counter found is the family's own (a `Counter` clone shares its atomic), so
//! `/metrics` reads the same series either way.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_policy::DenyReason;
use prometheus_client::metrics::counter::Counter;
use rustc_hash::FxBuildHasher;

use crate::Frontend;

/// At most this many keys are kept. When full, new keys are counted through the
/// family (as before this map): starting over instead would make a config with
/// more live keys than this copy the map on every miss. An applied reload empties
/// the map ([`DecisionCounters::clear`]), so old names do not pile up.
const CAPACITY: usize = 1024;

/// A decision's labels by identity: the names by address, which is unique while
/// the entry holds the names (an address cannot be reused by another name while
/// the map keeps its `Arc`).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub(super) struct Key {
    frontend: Frontend,
    /// `None` for an allow.
    reason: Option<DenyReason>,
    rule: usize,
    provider: usize,
}

impl Key {
    pub(super) fn new(
        frontend: Frontend,
        reason: Option<DenyReason>,
        rule: Option<&Arc<str>>,
        provider: Option<&Arc<str>>,
    ) -> Key {
        // The address of the name's allocation; 0 for no name (never an address).
        let address =
            |name: Option<&Arc<str>>| name.map_or(0, |n| Arc::as_ptr(n).cast::<u8>() as usize);
        Key {
            frontend,
            reason,
            rule: address(rule),
            provider: address(provider),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    counter: Counter,
    /// Held so the addresses in the key stay these names'.
    _names: [Option<Arc<str>>; 2],
}

// Keys are addresses and enum values from the config, never a client's bytes: a
// fast, unkeyed hash cannot be steered to collide.
type Map = HashMap<Key, Entry, FxBuildHasher>;

#[derive(Debug, Default)]
pub(super) struct DecisionCounters {
    map: ArcSwap<Map>,
}

impl DecisionCounters {
    /// Counts one decision of `key`; false when it was not resolved before.
    pub(super) fn inc(&self, key: &Key) -> bool {
        // `load` is a guard, not a clone of the map's Arc, and the counter is
        // incremented where it is: no shared reference count is written.
        match self.map.load().get(key) {
            Some(entry) => {
                entry.counter.inc();
                true
            }
            None => false,
        }
    }

    /// Remembers the family's counter of `key` (for the names it was made from).
    /// A name held by nothing but the decision (made for it, as a dry run's empty
    /// rule name) is not remembered: no later decision can have its address, and
    /// each would copy the map for nothing.
    pub(super) fn insert(
        &self,
        key: Key,
        counter: &Counter,
        rule: Option<&Arc<str>>,
        provider: Option<&Arc<str>>,
    ) {
        if [rule, provider]
            .into_iter()
            .flatten()
            .any(|name| Arc::strong_count(name) < 2)
        {
            return;
        }
        if self.map.load().len() >= CAPACITY {
            return;
        }
        let names = [rule.cloned(), provider.cloned()];
        self.map.rcu(|map| {
            let mut next = Map::clone(map);
            next.insert(
                key,
                Entry {
                    counter: counter.clone(),
                    _names: names.clone(),
                },
            );
            next
        });
    }

    /// Forgets every key: the config changed, its names are new allocations.
    pub(super) fn clear(&self) {
        self.map.store(Arc::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_finds_the_counter_it_was_given_and_no_other() {
        let counters = DecisionCounters::default();
        // Each name also held by "the config", as the engine's are.
        let rule: Arc<str> = Arc::from("api");
        let _config_rule = rule.clone();
        let same_text: Arc<str> = Arc::from("api");
        let provider: Arc<str> = Arc::from("idp");
        let _config_provider = provider.clone();
        let key = Key::new(Frontend::ForwardAuth, None, Some(&rule), Some(&provider));
        assert!(!counters.inc(&key));
        let counter = Counter::default();
        counters.insert(key, &counter, Some(&rule), Some(&provider));
        assert!(counters.inc(&key));
        assert_eq!(counter.get(), 1, "the family's own atomic");
        // Same text, another allocation: another key (the family resolves it to
        // the same series by text).
        let other = Key::new(
            Frontend::ForwardAuth,
            None,
            Some(&same_text),
            Some(&provider),
        );
        assert!(!counters.inc(&other));
        let denied = Key::new(
            Frontend::ForwardAuth,
            Some(DenyReason::TokenExpired),
            Some(&rule),
            Some(&provider),
        );
        assert!(!counters.inc(&denied));
        let grpc = Key::new(Frontend::ExtAuthzGrpc, None, Some(&rule), Some(&provider));
        assert!(!counters.inc(&grpc));
    }

    #[test]
    fn the_map_keeps_the_names_alive_stops_growing_when_full_and_clears() {
        let counters = DecisionCounters::default();
        let rule: Arc<str> = Arc::from("r");
        let config = rule.clone();
        let key = Key::new(Frontend::ForwardAuth, None, Some(&rule), None);
        counters.insert(key, &Counter::default(), Some(&rule), None);
        assert_eq!(Arc::strong_count(&rule), 3, "the entry holds the name");
        let mut names = Vec::new();
        for i in 0..CAPACITY {
            let name: Arc<str> = Arc::from(format!("rule-{i}"));
            names.push(name.clone());
            let k = Key::new(Frontend::ForwardAuth, None, Some(&name), None);
            counters.insert(k, &Counter::default(), Some(&name), None);
        }
        assert_eq!(counters.map.load().len(), CAPACITY);
        assert!(counters.inc(&key), "the keys already there stay");
        let last = Key::new(Frontend::ForwardAuth, None, names.last(), None);
        assert!(!counters.inc(&last), "one past the capacity is not kept");
        counters.clear();
        assert!(!counters.inc(&key), "a reload forgets every key");
        assert_eq!(Arc::strong_count(&rule), 2, "and releases its names");
        drop(config);
    }

    #[test]
    fn a_name_made_for_one_decision_is_not_remembered() {
        let counters = DecisionCounters::default();
        let fresh: Arc<str> = Arc::from("");
        let key = Key::new(Frontend::ForwardAuth, None, Some(&fresh), None);
        counters.insert(key, &Counter::default(), Some(&fresh), None);
        assert!(!counters.inc(&key));
        assert_eq!(counters.map.load().len(), 0);
    }
}
