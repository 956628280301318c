//! The cleaner's key-to-latest-offset map (Kafka's `SkimpyOffsetMap`): a 128-bit digest of
//! each key and the offset of its latest record in the range being cleaned, bounded by
//! `log.cleaner.dedupe.buffer.size` at 24 bytes an entry (Kafka's accounting: a 16-byte
//! digest and an 8-byte offset). When the map is full, the range it covers ends at the last
//! offset it took in whole, and the rest of the dirty log waits for the next pass.
//!
//! Invariants: an entry's offset only grows; the map never holds more entries than its
//! byte bound allows (counted at Kafka's 24 bytes an entry; the hash table's own overhead
//! adds up to about half again in memory); two keys share an entry only if their 128-bit
//! digests collide.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;

/// Bytes Kafka counts per entry: a 16-byte digest and an 8-byte offset.
pub const ENTRY_BYTES: usize = 24;

/// Two SipHash digests under fixed, different keys: 128 bits, stable across runs (a map
/// is rebuilt on every pass, so stability only matters for reproducible tests).
fn digest(key: &[u8]) -> u128 {
    let half = |seed: u64| {
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(seed);
        hasher.write(key);
        hasher.finish()
    };
    (u128::from(half(0x7275_6e6e_656c_0001)) << 64) | u128::from(half(0x7275_6e6e_656c_0002))
}

#[derive(Debug)]
pub struct OffsetMap {
    entries: HashMap<u128, i64>,
    capacity: usize,
    /// The highest offset put in the map.
    latest: i64,
}

/// Why a key was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl OffsetMap {
    /// A map of at most `buffer_bytes / ENTRY_BYTES` keys (at least one).
    pub fn with_buffer(buffer_bytes: usize) -> Self {
        let capacity = (buffer_bytes / ENTRY_BYTES).max(1);
        OffsetMap { entries: HashMap::new(), capacity, latest: -1 }
    }

    /// Records `offset` as the latest of `key`; `Err(Full)` (and nothing recorded) for a
    /// new key once the map holds its capacity.
    pub fn put(&mut self, key: &[u8], offset: i64) -> Result<(), Full> {
        let digest = digest(key);
        let full = self.entries.len() >= self.capacity;
        match self.entries.get_mut(&digest) {
            Some(latest) => *latest = (*latest).max(offset),
            None if full => return Err(Full),
            None => {
                self.entries.insert(digest, offset);
            }
        }
        self.latest = self.latest.max(offset);
        Ok(())
    }

    /// The latest offset of `key` in the mapped range.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(&digest(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether one more new key fits.
    pub fn has_room(&self) -> bool {
        self.fits(1)
    }

    /// Whether `new_keys` more keys fit.
    pub fn fits(&self, new_keys: usize) -> bool {
        self.entries.len() + new_keys <= self.capacity
    }

    /// The highest offset put; -1 when empty.
    pub fn latest_offset(&self) -> i64 {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key_within_its_bound() {
        let mut map = OffsetMap::with_buffer(3 * ENTRY_BYTES);
        map.put(b"a", 1).unwrap();
        map.put(b"b", 2).unwrap();
        map.put(b"a", 5).unwrap();
        map.put(b"a", 3).unwrap();
        assert_eq!(map.get(b"a"), Some(5), "an entry's offset only grows");
        map.put(b"c", 6).unwrap();
        assert_eq!(map.put(b"d", 7), Err(Full));
        assert_eq!(map.get(b"d"), None);
        map.put(b"b", 8).unwrap();
        assert_eq!((map.len(), map.latest_offset(), map.has_room()), (3, 8, false));
        assert_eq!(OffsetMap::with_buffer(0).capacity, 1, "at least one key");
    }
}
