//! The leader epoch cache: for each leader epoch of a partition, the first offset written in
//! it, persisted in `leader-epoch-checkpoint` (Kafka's format). A follower that meets a new
//! leader asks it where its own latest epoch ends (OffsetsForLeaderEpoch) and truncates
//! there, which removes exactly the suffix the new leader does not hold (KIP-101, KIP-279).
//!
//! Format (text): a line `0` (version), a line with the entry count, then `<epoch> <start
//! offset>` per entry, epochs and offsets strictly increasing. Replaced atomically (tmp file,
//! fsync, rename, directory fsync) on every change; changes happen once per leader change.

use std::path::{Path, PathBuf};

use crate::{CheckpointFault, StorageError};

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's marker for "no such epoch" and "no such offset" in OffsetsForLeaderEpoch.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the cache of the log in `dir`; `None` when the file does not exist (a log
    /// written before the cache existed: the caller rebuilds it from batch headers).
    pub fn load(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let Some(text) = runnel_fs::read_optional_string(&path)? else { return Ok(None) };
        let entries = parse(&text).map_err(|fault| StorageError::InvalidCheckpoint { path: path.clone(), fault })?;
        Ok(Some(LeaderEpochCache { path, entries }))
    }

    /// An empty cache for the log in `dir` (written on the first change).
    pub fn empty(dir: &Path) -> Self {
        LeaderEpochCache { path: dir.join(LEADER_EPOCH_CHECKPOINT), entries: Vec::new() }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Only a newer epoch changes anything
    /// (batches of the current epoch arrive all the time); an entry that would not keep the
    /// offsets increasing replaces the entries it conflicts with. Returns whether it changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// The epoch `offset` was written in: that of the last entry starting at or before it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries.iter().rev().find(|e| e.start_offset <= offset).map(|e| e.epoch)
    }

    /// Like [`assign`](Self::assign), and persists the change.
    pub fn assign_and_flush(&mut self, epoch: i32, start_offset: i64) -> Result<(), StorageError> {
        if self.assign(epoch, start_offset) {
            self.flush()?;
        }
        Ok(())
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` this log knows and the
    /// offset where it ends (the start of the next epoch, or `log_end` for the latest).
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)` when `requested` is newer than anything
    /// here or undefined; `(requested, first start offset)` when it is older than all.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The log was truncated to end at `end_offset`: epochs starting at or after it go.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), StorageError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.flush()?;
        }
        Ok(())
    }

    /// Forgets everything (the log was emptied and restarts elsewhere).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.entries.clear();
        self.flush()
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        runnel_fs::write_atomically(&self.path, text.as_bytes())?;
        Ok(())
    }
}

fn parse(text: &str) -> Result<Vec<EpochEntry>, CheckpointFault> {
    let mut lines = text.lines();
    match lines.next() {
        Some("0") => {}
        other => return Err(CheckpointFault::Version(other.unwrap_or_default().to_string())),
    }
    let count: usize =
        lines.next().ok_or(CheckpointFault::Count)?.trim().parse().map_err(|_| CheckpointFault::Count)?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for line in lines.by_ref().take(count) {
        let malformed = || CheckpointFault::Entry(line.to_string());
        let mut parts = line.split(' ');
        let epoch = parts.next().and_then(|p| p.parse().ok()).ok_or_else(malformed)?;
        let start_offset = parts.next().and_then(|p| p.parse().ok()).ok_or_else(malformed)?;
        if parts.next().is_some() {
            return Err(malformed());
        }
        if entries.last().is_some_and(|last: &EpochEntry| last.epoch >= epoch || last.start_offset > start_offset) {
            return Err(CheckpointFault::OutOfOrder);
        }
        entries.push(EpochEntry { epoch, start_offset });
    }
    if entries.len() != count {
        return Err(CheckpointFault::EntryCount { expected: count, found: entries.len() });
    }
    if lines.next().is_some() {
        return Err(CheckpointFault::TrailingLines);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::empty(Path::new("/nonexistent"));
        for (epoch, offset) in entries {
            assert!(cache.assign(*epoch, *offset));
        }
        cache
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(c.end_offset_for(4, 40), (4, 40), "latest epoch ends at the log end");
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(c.end_offset_for(2, 40), (1, 10), "an unknown epoch answers the floor epoch");
        assert_eq!(c.end_offset_for(0, 40), (0, 0), "older than all: the first start offset");
        assert_eq!(c.end_offset_for(5, 40), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, 40), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
        assert_eq!(
            (c.epoch_for_offset(0), c.epoch_for_offset(24), c.epoch_for_offset(25)),
            (Some(1), Some(3), Some(4))
        );
    }

    #[test]
    fn only_newer_epochs_are_assigned_and_truncation_drops_later_ones() {
        let mut c = cache(&[(1, 0), (2, 10)]);
        assert!(!c.assign(2, 15), "same epoch");
        assert!(!c.assign(1, 20), "older epoch");
        assert!(c.assign(5, 8), "a newer epoch below an entry replaces it");
        assert_eq!(c.entries(), &[EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 5, start_offset: 8 }]);
    }

    #[test]
    fn round_trips_through_the_file_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LeaderEpochCache::load(dir.path()).unwrap().is_none());
        let mut c = LeaderEpochCache::empty(dir.path());
        c.assign_and_flush(0, 0).unwrap();
        c.assign_and_flush(3, 17).unwrap();
        let loaded = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.entries(), c.entries());
        let mut truncated = loaded;
        truncated.truncate_from_end(17).unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().unwrap().latest_epoch(), Some(0));
        std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), "0\n2\n3 5\n1 9\n").unwrap();
        assert!(LeaderEpochCache::load(dir.path()).is_err());
    }
}
