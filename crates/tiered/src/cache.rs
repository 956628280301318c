//! A least-recently-used map bounded in bytes: remote offset indexes and chunks of remote
//! `.log` objects, so that a consumer reading a remote segment in order asks the store for
//! each chunk once.
//!
//! Invariants: pure; the sum of the values' lengths never exceeds the bound (a value
//! larger than the bound is not kept); a lookup makes its entry the most recent.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use bytes::Bytes;

pub struct ByteLru<K> {
    bound: u64,
    used: u64,
    tick: u64,
    entries: HashMap<K, (Bytes, u64)>,
    /// Entries by last use, oldest first.
    order: BTreeMap<u64, K>,
}

impl<K: Eq + Hash + Clone> ByteLru<K> {
    pub fn new(bound: u64) -> Self {
        ByteLru { bound, used: 0, tick: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    pub fn get(&mut self, key: &K) -> Option<Bytes> {
        self.tick += 1;
        let tick = self.tick;
        let (value, last) = self.entries.get_mut(key)?;
        self.order.remove(last);
        *last = tick;
        self.order.insert(tick, key.clone());
        Some(value.clone())
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    pub fn insert(&mut self, key: K, value: Bytes) {
        self.remove(&key);
        let len = value.len() as u64;
        if len > self.bound {
            return;
        }
        while self.used + len > self.bound {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some((evicted, _)) = self.entries.remove(&oldest) {
                self.used -= evicted.len() as u64;
            }
        }
        self.tick += 1;
        self.used += len;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, (value, self.tick));
    }

    pub fn remove(&mut self, key: &K) {
        if let Some((value, last)) = self.entries.remove(key) {
            self.order.remove(&last);
            self.used -= value.len() as u64;
        }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_within_the_bound() {
        let mut cache = ByteLru::new(10);
        cache.insert(1, Bytes::from_static(b"aaaa"));
        cache.insert(2, Bytes::from_static(b"bbbb"));
        assert!(cache.get(&1).is_some(), "1 is now the most recent");
        cache.insert(3, Bytes::from_static(b"cccc"));
        assert!(!cache.contains(&2), "2 was the least recently used");
        assert!(cache.contains(&1) && cache.contains(&3));
        assert_eq!(cache.used(), 8);
        cache.insert(4, Bytes::from_static(b"too large for the bound"));
        assert!(!cache.contains(&4) && cache.used() == 8, "a value above the bound is not kept");
        cache.insert(1, Bytes::from_static(b"a"));
        assert_eq!(cache.used(), 5, "a replaced value gives its bytes back");
    }
}
