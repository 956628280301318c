//! Aborted transactions, per segment (Kafka's transaction index, `<base>.txnindex`): one
//! entry for each transaction aborted by a marker in the segment, so a read_committed
//! fetch can tell the consumer which producers' records in a range to drop.
//!
//! Format: 34-byte entries, big-endian: `version i16 = 0 | producer id i64 | first offset
//! i64 | last offset i64 (the marker) | last stable offset i64` (the LSO once the abort
//! completed). A file exists only for a segment that holds an abort marker.
//!
//! Invariants: an entry is written and fsynced before the marker's append returns (aborts
//! are rare: one entry per aborted transaction per partition), so every entry below the
//! point a crash recovery replays from is on disk; recovery drops the entries at or above
//! that point and derives them again from the replayed markers; truncation drops the
//! entries of the markers it removes; a segment's file goes with the segment. A torn last
//! entry (a crash mid-write) is ignored.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use runnel_protocol::batch::BatchView;
use runnel_protocol::control::Marker;

use crate::log::PartitionLog;
use crate::segment::segment_file_name;
use crate::StorageError;

const ENTRY_BYTES: usize = 34;
const VERSION: i16 = 0;
pub(crate) const EXTENSION: &str = "txnindex";

/// One aborted transaction of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub(crate) fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        (bytes.len() == ENTRY_BYTES && i16::from_be_bytes([bytes[0], bytes[1]]) == VERSION).then(|| AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// The aborted transactions of a log's segments, by segment base offset.
#[derive(Debug, Default)]
pub(crate) struct TxnIndexes {
    dir: PathBuf,
    by_segment: BTreeMap<i64, Vec<AbortedTxn>>,
}

impl TxnIndexes {
    /// Reads the index files of `bases` (the log's segments) and removes those of segments
    /// that no longer exist.
    pub fn load(dir: &Path, bases: &[i64]) -> Result<TxnIndexes, StorageError> {
        let mut by_segment = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(base) = name.strip_suffix(".txnindex").and_then(|b| b.parse::<i64>().ok()) else { continue };
            if bases.binary_search(&base).is_err() {
                std::fs::remove_file(&path)?;
                continue;
            }
            let bytes = std::fs::read(&path)?;
            let entries: Vec<AbortedTxn> = bytes.chunks_exact(ENTRY_BYTES).filter_map(AbortedTxn::decode).collect();
            if !entries.is_empty() {
                by_segment.insert(base, entries);
            }
        }
        Ok(TxnIndexes { dir: dir.to_path_buf(), by_segment })
    }

    fn path(&self, base: i64) -> PathBuf {
        self.dir.join(segment_file_name(base, EXTENSION))
    }

    /// Records an aborted transaction whose marker is in segment `base`, durably.
    pub fn add(&mut self, base: i64, entry: AbortedTxn) -> Result<(), StorageError> {
        let mut file = OpenOptions::new().create(true).append(true).open(self.path(base))?;
        file.write_all(&entry.encode())?;
        file.sync_data()?;
        self.by_segment.entry(base).or_default().push(entry);
        Ok(())
    }

    /// Forgets the entries whose marker is at or above `offset`, on disk too.
    pub fn truncate_from(&mut self, offset: i64) -> Result<(), StorageError> {
        let touched: Vec<i64> = self
            .by_segment
            .iter()
            .filter(|(_, entries)| entries.iter().any(|e| e.last_offset >= offset))
            .map(|(base, _)| *base)
            .collect();
        for base in touched {
            let entries = self.by_segment.get_mut(&base).expect("listed above");
            entries.retain(|e| e.last_offset < offset);
            let bytes: Vec<u8> = entries.iter().flat_map(AbortedTxn::encode).collect();
            if bytes.is_empty() {
                self.by_segment.remove(&base);
                remove_if_present(&self.path(base))?;
            } else {
                let mut file = OpenOptions::new().write(true).truncate(true).open(self.path(base))?;
                file.write_all(&bytes)?;
                file.sync_data()?;
            }
        }
        Ok(())
    }

    /// Keeps only the entries of `bases` (the segments left after retention).
    pub fn retain_segments(&mut self, bases: &[i64]) -> Result<(), StorageError> {
        let gone: Vec<i64> = self.by_segment.keys().copied().filter(|b| bases.binary_search(b).is_err()).collect();
        for base in gone {
            self.by_segment.remove(&base);
            remove_if_present(&self.path(base))?;
        }
        Ok(())
    }

    pub fn has_entries(&self, base: i64) -> bool {
        self.by_segment.get(&base).is_some_and(|entries| !entries.is_empty())
    }

    /// The entries of the segments based at `bases`, by segment.
    pub fn entries_of(&self, bases: &[i64]) -> BTreeMap<i64, Vec<AbortedTxn>> {
        bases.iter().filter_map(|b| self.by_segment.get(b).map(|entries| (*b, entries.clone()))).collect()
    }

    /// After a cleaned group replaced the segments `bases` (its files already swapped in):
    /// the group's segment, `bases[0]`, holds `entries`.
    pub fn replace_group(&mut self, bases: &[i64], entries: Vec<AbortedTxn>) {
        for base in bases {
            self.by_segment.remove(base);
        }
        if !entries.is_empty() {
            self.by_segment.insert(bases[0], entries);
        }
    }

    /// The aborted transactions that overlap `[from, upper)`: those whose marker is at or
    /// after `from` and whose first offset is below `upper`, in marker order.
    pub fn overlapping(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        // Entries are in marker order. A marker at or after `from` lies in the segment holding
        // `from` or a later one; and once an entry's LSO (as of its abort) reaches `upper`,
        // every transaction that began below `upper` had ended by then, so its marker came
        // before: the scan stops there (Kafka's `collectAbortedTxns`).
        let first = self.by_segment.range(..=from).next_back().map_or(i64::MIN, |(base, _)| *base);
        let mut found = Vec::new();
        for entry in self.by_segment.range(first..).flat_map(|(_, entries)| entries) {
            if entry.last_offset >= from && entry.first_offset < upper {
                found.push(*entry);
            }
            if entry.last_stable_offset >= upper {
                break;
            }
        }
        found
    }
}

/// The entries of a transaction index file's bytes (a torn last entry is ignored).
pub fn parse_entries(bytes: &[u8]) -> Vec<AbortedTxn> {
    bytes.chunks_exact(ENTRY_BYTES).filter_map(AbortedTxn::decode).collect()
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

impl PartitionLog {
    /// Records the marker `batch` (its records: a marker's type does not depend on the
    /// offsets stamped in its header) that ended `ended`, in the segment based at
    /// `segment_base`: an abort gets an entry in the transaction index.
    pub(crate) fn note_marker(
        &mut self,
        batch: &BatchView<'_>,
        ended: crate::producer_state::EndedTxn,
        segment_base: i64,
    ) -> Result<(), StorageError> {
        // A marker that does not parse (a newer writer) is taken as a commit: it still ends
        // the transaction, and nothing is hidden that should not be.
        let Ok(Some(marker)) = Marker::of(batch) else { return Ok(()) };
        if marker.commit {
            return Ok(());
        }
        let entry = AbortedTxn {
            producer_id: ended.producer_id,
            first_offset: ended.first_offset,
            last_offset: ended.marker_offset,
            last_stable_offset: ended.last_stable_offset,
        };
        self.txn_indexes.add(segment_base, entry)
    }

    /// The transaction index file of segment `base`, when it has aborted transactions
    /// (tiered storage uploads it with the segment).
    pub fn txn_index_file(&self, base: i64) -> Option<PathBuf> {
        self.txn_indexes.has_entries(base).then(|| self.txn_indexes.path(base))
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)` must report.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.txn_indexes.overlapping(from, upper)
    }

    /// The aborted transactions a read_committed fetch from `from` reports (Kafka's
    /// `collectAbortedTransactions`): those overlapping the segment the read starts in, up
    /// to the next segment's base and at most the last stable offset. A read returns batches
    /// of one segment only, so nothing it returns lies past that bound.
    pub fn aborted_for_read(&self, from: i64, last_stable_offset: i64) -> Vec<AbortedTxn> {
        let index = self.segment_index_for(from);
        let next_base = self.segments.get(index + 1).map_or(i64::MAX, |s| s.base_offset);
        self.txn_indexes.overlapping(from, next_base.min(last_stable_offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn { producer_id, first_offset, last_offset, last_stable_offset: last_offset + 1 }
    }

    #[test]
    fn entries_persist_truncate_and_go_with_their_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut indexes = TxnIndexes::load(dir.path(), &[0, 100]).unwrap();
        indexes.add(0, entry(1, 5, 20)).unwrap();
        indexes.add(0, entry(2, 10, 30)).unwrap();
        indexes.add(100, entry(3, 90, 120)).unwrap();
        assert_eq!(indexes.overlapping(0, 1000).len(), 3);
        assert_eq!(indexes.overlapping(21, 1000), vec![entry(2, 10, 30), entry(3, 90, 120)]);
        assert_eq!(indexes.overlapping(0, 10), vec![entry(1, 5, 20)], "first offsets below the upper bound");

        // Reloaded from disk, with a torn entry at the end of one file.
        let mut file =
            OpenOptions::new().append(true).open(dir.path().join(segment_file_name(100, EXTENSION))).unwrap();
        file.write_all(&[0, 0, 1, 2]).unwrap();
        let mut indexes = TxnIndexes::load(dir.path(), &[0, 100]).unwrap();
        assert_eq!(indexes.overlapping(0, 1000).len(), 3);

        indexes.truncate_from(30).unwrap();
        assert_eq!(indexes.overlapping(0, 1000), vec![entry(1, 5, 20)]);
        assert!(!dir.path().join(segment_file_name(100, EXTENSION)).exists(), "an emptied file is removed");
        let reloaded = TxnIndexes::load(dir.path(), &[0, 100]).unwrap();
        assert_eq!(reloaded.overlapping(0, 1000), vec![entry(1, 5, 20)]);

        // Retention removed segment 0; a file of a segment that is gone is removed at load.
        indexes.add(100, entry(4, 110, 130)).unwrap();
        indexes.retain_segments(&[100]).unwrap();
        assert_eq!(indexes.overlapping(0, 1000), vec![entry(4, 110, 130)]);
        assert!(!dir.path().join(segment_file_name(0, EXTENSION)).exists());
        std::fs::write(dir.path().join(segment_file_name(7, EXTENSION)), entry(9, 1, 2).encode()).unwrap();
        let reloaded = TxnIndexes::load(dir.path(), &[100]).unwrap();
        assert_eq!(reloaded.overlapping(0, 1000), vec![entry(4, 110, 130)]);
        assert!(!dir.path().join(segment_file_name(7, EXTENSION)).exists());
    }

    #[test]
    fn a_transaction_aborted_in_a_later_segment_is_found_and_the_scan_stops_at_the_lso() {
        let dir = tempfile::tempdir().unwrap();
        let mut indexes = TxnIndexes::load(dir.path(), &[0, 100, 200]).unwrap();
        let a = AbortedTxn { producer_id: 1, first_offset: 5, last_offset: 20, last_stable_offset: 10 };
        let b = AbortedTxn { producer_id: 2, first_offset: 10, last_offset: 120, last_stable_offset: 121 };
        let c = AbortedTxn { producer_id: 3, first_offset: 150, last_offset: 210, last_stable_offset: 211 };
        indexes.add(0, a).unwrap();
        indexes.add(100, b).unwrap();
        indexes.add(200, c).unwrap();
        // B began in range and was aborted in a later segment: reported; its LSO passed the
        // upper bound, so C (marker after B's) is not looked at.
        assert_eq!(indexes.overlapping(0, 50), vec![a, b]);
        assert_eq!(indexes.overlapping(130, 140), Vec::<AbortedTxn>::new());
        assert_eq!(indexes.overlapping(121, 300), vec![c]);
    }
}
