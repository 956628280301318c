//! Sparse offset index of one segment (`<base>.index`), Kafka's format.
//!
//! Format: entries of 8 bytes, big-endian: `relative_offset: u32` (a batch's last offset
//! minus the segment's base offset), `position: u32` (the batch's byte position in the
//! `.log`). One entry is added whenever at least `index_interval_bytes` were appended since
//! the previous one, so a lookup is followed by a scan of at most about one interval.
//!
//! Invariants (re-checked on load; a violation means "rebuild from the log"): relative
//! offsets and positions both strictly increase; every position lies inside the log file.
//! Not checksummed: after an unclean shutdown the index of every recovered segment is
//! rebuilt from the log.

use std::io;
use std::path::Path;

use crate::entry_file::{Entry, EntryFile};
use crate::{Corruption, IndexKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }
}

pub(crate) struct OffsetIndex {
    base_offset: i64,
    entries_max: usize,
    file: EntryFile<OffsetEntry>,
}

impl OffsetIndex {
    pub fn create(path: &Path, base_offset: i64, index_bytes_max: u64) -> io::Result<Self> {
        let file = EntryFile::create(path)?;
        Ok(OffsetIndex { base_offset, entries_max: entries_max(index_bytes_max), file })
    }

    /// Loads the index and checks its invariants against the log size; `Err(reason)` in the
    /// inner result means the index must be rebuilt.
    pub fn load(
        path: &Path,
        base_offset: i64,
        index_bytes_max: u64,
        log_bytes: u64,
    ) -> io::Result<Result<Self, Corruption>> {
        let file = EntryFile::<OffsetEntry>::load(path)?;
        let index = OffsetIndex { base_offset, entries_max: entries_max(index_bytes_max), file };
        Ok(index.check(log_bytes).map(|()| index))
    }

    fn check(&self, log_bytes: u64) -> Result<(), Corruption> {
        let entries = self.file.entries();
        if entries.len() > self.entries_max {
            let (entries, entries_max) = (entries.len(), self.entries_max);
            return Err(Corruption::IndexTooLong { index: IndexKind::Offset, entries, entries_max });
        }
        for pair in entries.windows(2) {
            if pair[1].relative_offset <= pair[0].relative_offset || pair[1].position <= pair[0].position {
                return Err(Corruption::IndexNotIncreasing { index: IndexKind::Offset });
            }
        }
        match entries.last() {
            Some(last) if u64::from(last.position) >= log_bytes => {
                Err(Corruption::IndexPastLog { position: last.position, log_bytes })
            }
            _ => Ok(()),
        }
    }

    pub fn is_full(&self) -> bool {
        self.file.entries().len() >= self.entries_max
    }

    /// Records that the batch ending at `last_offset` starts at `position`.
    pub fn append(&mut self, last_offset: i64, position: u64) {
        assert!(!self.is_full(), "segment must roll before its offset index is full");
        let relative_offset = u32::try_from(last_offset - self.base_offset).expect("segment rolls before u32 overflow");
        let position = u32::try_from(position).expect("segment_bytes <= i32::MAX");
        if let Some(last) = self.file.last() {
            assert!(relative_offset > last.relative_offset && position > last.position, "offset index must grow");
        }
        self.file.push(OffsetEntry { relative_offset, position });
    }

    /// The last entry whose offset is <= `offset`, as (absolute offset, position).
    pub fn lookup(&self, offset: i64) -> Option<(i64, u64)> {
        let relative = offset - self.base_offset;
        let entries = self.file.entries();
        let count = entries.partition_point(|e| i64::from(e.relative_offset) <= relative);
        count.checked_sub(1).map(|i| self.absolute(entries[i]))
    }

    /// The last entry whose position is <= `position`, as (absolute offset, position).
    pub fn lookup_position(&self, position: u64) -> Option<(i64, u64)> {
        let entries = self.file.entries();
        let count = entries.partition_point(|e| u64::from(e.position) <= position);
        count.checked_sub(1).map(|i| self.absolute(entries[i]))
    }

    pub fn last(&self) -> Option<(i64, u64)> {
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

    fn absolute(&self, entry: OffsetEntry) -> (i64, u64) {
        (self.base_offset + i64::from(entry.relative_offset), u64::from(entry.position))
    }
}

fn entries_max(index_bytes_max: u64) -> usize {
    // A bound: beyond the address space it may as well be unbounded.
    usize::try_from(index_bytes_max / OffsetEntry::SIZE as u64).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_floor_entry_by_offset_and_by_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = OffsetIndex::create(&dir.path().join("0.index"), 100, 1024).unwrap();
        assert_eq!(index.lookup(150), None);
        index.append(110, 4096);
        index.append(120, 8192);
        assert_eq!(index.lookup(109), None);
        assert_eq!(index.lookup(110), Some((110, 4096)));
        assert_eq!(index.lookup(119), Some((110, 4096)));
        assert_eq!(index.lookup(500), Some((120, 8192)));
        assert_eq!(index.lookup_position(8191), Some((110, 4096)));
        assert_eq!(index.lookup_position(8192), Some((120, 8192)));
        index.truncate_to(120).unwrap();
        assert_eq!(index.last(), Some((110, 4096)));
    }

    #[test]
    fn load_rejects_entries_beyond_the_log_and_non_increasing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::create(&path, 0, 1024).unwrap();
        index.append(5, 100);
        index.append(9, 200);
        index.persist().unwrap();
        assert!(OffsetIndex::load(&path, 0, 1024, 201).unwrap().is_ok());
        assert!(OffsetIndex::load(&path, 0, 1024, 200).unwrap().is_err());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&3u32.to_be_bytes());
        std::fs::write(&path, bytes).unwrap();
        assert!(OffsetIndex::load(&path, 0, 1024, 1000).unwrap().is_err());
    }

    #[test]
    fn is_full_at_max_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = OffsetIndex::create(&dir.path().join("0.index"), 0, 16).unwrap();
        index.append(1, 10);
        assert!(!index.is_full());
        index.append(2, 20);
        assert!(index.is_full());
    }
}
