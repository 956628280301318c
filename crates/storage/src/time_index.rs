//! Time index of one segment (`<base>.timeindex`), Kafka's format.
//!
//! Format: entries of 12 bytes, big-endian: `timestamp: i64` (the largest batch max
//! timestamp in the segment so far), `relative_offset: u32` (last offset of the first batch
//! that reached that timestamp, minus the segment's base offset). An entry is added at the
//! same points as the offset index, only when the max timestamp grew, and once more when
//! the segment is closed (roll or clean shutdown) so the last entry holds the segment's
//! maximum. The last slot is reserved for that closing entry.
//!
//! Invariants (re-checked on load, else rebuilt): timestamps and offsets strictly increase.

use std::io;
use std::path::Path;

use crate::entry_file::{Entry, EntryFile};
use crate::{Corruption, IndexKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
        }
    }
}

pub(crate) struct TimeIndex {
    base_offset: i64,
    entries_max: usize,
    file: EntryFile<TimeEntry>,
}

impl TimeIndex {
    pub fn create(path: &Path, base_offset: i64, index_bytes_max: u64) -> io::Result<Self> {
        let file = EntryFile::create(path)?;
        Ok(TimeIndex { base_offset, entries_max: entries_max(index_bytes_max), file })
    }

    /// Loads and checks the index; `Err(reason)` in the inner result means rebuild it.
    pub fn load(path: &Path, base_offset: i64, index_bytes_max: u64) -> io::Result<Result<Self, Corruption>> {
        let file = EntryFile::<TimeEntry>::load(path)?;
        let index = TimeIndex { base_offset, entries_max: entries_max(index_bytes_max), file };
        Ok(index.check().map(|()| index))
    }

    fn check(&self) -> Result<(), Corruption> {
        let entries = self.file.entries();
        if entries.len() > self.entries_max {
            let (entries, entries_max) = (entries.len(), self.entries_max);
            return Err(Corruption::IndexTooLong { index: IndexKind::Time, entries, entries_max });
        }
        for pair in entries.windows(2) {
            if pair[1].timestamp <= pair[0].timestamp || pair[1].relative_offset <= pair[0].relative_offset {
                return Err(Corruption::IndexNotIncreasing { index: IndexKind::Time });
            }
        }
        Ok(())
    }

    /// Full one entry early: the last slot is kept for the entry added when the segment closes.
    pub fn is_full(&self) -> bool {
        self.file.entries().len() + 1 >= self.entries_max
    }

    /// Adds (timestamp, offset) if the timestamp grew past the last entry. `closing` may
    /// use the reserved last slot.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, closing: bool) {
        if timestamp <= self.last().map_or(-1, |(last_timestamp, _)| last_timestamp) {
            return;
        }
        assert!(closing || !self.is_full(), "segment must roll before its time index is full");
        assert!(self.file.entries().len() < self.entries_max, "closing slot is reserved");
        let relative_offset = u32::try_from(offset - self.base_offset).expect("segment rolls before u32 overflow");
        // Offsets grow with every entry Runnel adds itself; an entry loaded from a damaged
        // file after a clean shutdown can claim a lower timestamp for the same offset. Then
        // the newer maximum is dropped (a time lookup may land one entry early, which the
        // batch scan after it corrects) rather than the log stopping.
        if self.file.last().is_some_and(|last| relative_offset <= last.relative_offset) {
            return;
        }
        self.file.push(TimeEntry { timestamp, relative_offset });
    }

    /// The last entry whose timestamp is <= `timestamp`, as (timestamp, absolute offset).
    pub fn lookup(&self, timestamp: i64) -> Option<(i64, i64)> {
        let entries = self.file.entries();
        let count = entries.partition_point(|e| e.timestamp <= timestamp);
        count.checked_sub(1).map(|i| self.absolute(entries[i]))
    }

    /// The last entry as (timestamp, absolute offset): the segment's max timestamp so far.
    pub fn last(&self) -> Option<(i64, i64)> {
        self.file.last().map(|e| self.absolute(e))
    }

    /// Removes every entry for offsets >= `next_offset`.
    pub fn truncate_to(&mut self, next_offset: i64) -> io::Result<()> {
        let relative = next_offset - self.base_offset;
        let keep = self.file.entries().partition_point(|e| i64::from(e.relative_offset) < relative);
        self.file.truncate(keep)
    }

    /// See [`crate::entry_file::EntryFile::write_unsynced`].
    pub fn write_unsynced(&mut self) -> io::Result<Option<std::fs::File>> {
        self.file.write_unsynced()
    }

    pub fn persist(&mut self) -> io::Result<()> {
        self.file.persist()
    }

    fn absolute(&self, entry: TimeEntry) -> (i64, i64) {
        (entry.timestamp, self.base_offset + i64::from(entry.relative_offset))
    }
}

fn entries_max(index_bytes_max: u64) -> usize {
    // A bound: beyond the address space it may as well be unbounded.
    usize::try_from(index_bytes_max / TimeEntry::SIZE as u64).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_growing_timestamps_and_looks_up_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::create(&path, 50, 120).unwrap();
        index.maybe_append(1000, 55, false);
        index.maybe_append(900, 60, false);
        index.maybe_append(1000, 61, false);
        index.maybe_append(2000, 70, false);
        assert_eq!(index.lookup(999), None);
        assert_eq!(index.lookup(1500), Some((1000, 55)));
        assert_eq!(index.last(), Some((2000, 70)));
        index.persist().unwrap();
        let loaded = TimeIndex::load(&path, 50, 120).unwrap().unwrap();
        assert_eq!(loaded.last(), Some((2000, 70)));
    }

    #[test]
    fn last_slot_is_reserved_for_the_closing_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TimeIndex::create(&dir.path().join("0.timeindex"), 0, 24).unwrap();
        index.maybe_append(10, 1, false);
        assert!(index.is_full());
        index.maybe_append(20, 2, true);
        assert_eq!(index.last(), Some((20, 2)));
    }
}
