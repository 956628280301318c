//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges and offsets of its last [`BATCHES_KEPT`] batches, and, for a
//! transactional producer, the first offset of its open transaction (Kafka's
//! `currentTxnFirstOffset`). The lowest such offset is the partition's first unstable
//! offset, which bounds its last stable offset (LSO): a transaction opens with its first
//! transactional batch and ends with its marker (a control batch), commit or abort.
//!
//! The checks follow Kafka's `ProducerAppendInfo`: an older epoch is refused
//! (INVALID_PRODUCER_EPOCH); a newer epoch must start at sequence 0; within an epoch a batch
//! must continue the last sequence (wrapping at `i32::MAX`), unless it repeats one of the
//! cached batches exactly, in which case it is a duplicate answered with the original
//! offsets; a producer with no state (new, or expired) may start at any sequence. Pure: no
//! I/O, no clock; the log calls it under its lock.
//!
//! Snapshot file `<offset>.snapshot` (state as of log offset `offset`), big-endian:
//! ```text
//! magic "RNPS" | version u16 = 2 | crc32c u32 of everything after it | count u32
//! per producer: id i64 | epoch i16 | last timestamp i64 | open transaction's first offset i64 (-1: none) | batches u8
//!   per batch: first seq i32 | last seq i32 | first offset i64 | last offset i64 | max timestamp i64
//! ```
//! (Version 1, without the transaction's offset, is still read.)
//! ```text
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::SnapshotFault;

/// Kafka keeps the metadata of the last five batches per producer: a client has at most
/// five requests in flight, so any retry it sends is among them.
pub const BATCHES_KEPT: usize = 5;
const MAGIC: &[u8; 4] = b"RNPS";
const VERSION: u16 = 2;
const VERSION_WITHOUT_TRANSACTIONS: u16 = 1;

/// Where one batch of a producer landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    pub last_timestamp: i64,
    /// The first offset of the producer's open transaction, if one is open.
    pub txn_first_offset: Option<i64>,
}

/// The idempotence fields of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    /// Part of a transaction.
    pub transactional: bool,
    /// A transaction marker (commit or abort), not records.
    pub control: bool,
}

impl ProducerBatch {
    /// The idempotence fields of `batch`, when it has a producer id.
    pub fn of(batch: &runnel_protocol::batch::BatchView<'_>) -> Option<ProducerBatch> {
        (batch.producer_id() >= 0).then(|| ProducerBatch {
            producer_id: batch.producer_id(),
            epoch: batch.producer_epoch(),
            first_seq: batch.base_sequence(),
            last_seq: batch.base_sequence().wrapping_add(batch.last_offset_delta()),
            transactional: batch.is_transactional(),
            control: batch.is_control(),
        })
    }
}

/// What an append of a batch should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// The batch was appended before: answer with these offsets, append nothing.
    Duplicate(BatchMeta),
}

#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("producer {producer_id}: sequence {first_seq} does not follow {expected_after}")]
    OutOfOrderSequence { producer_id: i64, first_seq: i32, expected_after: i32 },
    /// A transactional batch that would open a transaction its coordinator has not
    /// confirmed includes the partition (KIP-890; decided by the broker, not here).
    #[error("producer {producer_id} epoch {epoch}: the partition is not in its transaction")]
    NotInTransaction { producer_id: i64, epoch: i16 },
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == last_seq.wrapping_add(1) || (next_seq == 0 && last_seq == i32::MAX)
}

/// A marker that ended a transaction, as the producer state saw it when it was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedTxn {
    pub producer_id: i64,
    /// The transaction's first offset.
    pub first_offset: i64,
    /// The marker's offset.
    pub marker_offset: i64,
    /// The LSO right after the marker (the log's end standing in for the high watermark).
    pub last_stable_offset: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    entries: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id (the first key is the first unstable
    /// offset).
    ongoing: BTreeMap<i64, i64>,
}

impl ProducerStateManager {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }

    /// Every producer and its state (in no particular order).
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> + '_ {
        self.entries.iter().map(|(id, entry)| (*id, entry))
    }

    /// The first offset of each producer's last batch: the batches log compaction keeps.
    pub fn last_batch_offsets(&self) -> impl Iterator<Item = i64> + '_ {
        self.entries.values().filter_map(|entry| entry.batches.back().map(|batch| batch.first_offset))
    }

    /// Decides whether `batch` may be appended. Pure.
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, ProducerError> {
        let Some(entry) = self.entries.get(&batch.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if batch.epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        if batch.control || batch.first_seq < 0 {
            // A marker carries no sequence, nor does a coordinator's transactional write
            // (TxnOffsetCommit); a marker may come with a bumped epoch (a fenced producer's
            // transaction aborted by the coordinator).
            return Ok(SequenceCheck::Append);
        }
        if batch.epoch > entry.epoch {
            if batch.first_seq != 0 {
                return Err(ProducerError::OutOfOrderSequence {
                    producer_id: batch.producer_id,
                    first_seq: batch.first_seq,
                    expected_after: -1,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(original) =
            entry.batches.iter().find(|b| b.first_seq == batch.first_seq && b.last_seq == batch.last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*original));
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, batch.first_seq) => Err(ProducerError::OutOfOrderSequence {
                producer_id: batch.producer_id,
                first_seq: batch.first_seq,
                expected_after: last.last_seq,
            }),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// The first offset of the oldest open transaction: the last stable offset is at most
    /// this.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The last stable offset given the `high_watermark`: it, or the first offset of the
    /// oldest open transaction when that is lower.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset().map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Records an appended batch (also used when replaying the log). A transactional batch
    /// opens its producer's transaction if none is open; a marker (control batch) ends it,
    /// and returns the transaction's first offset.
    pub fn update(
        &mut self,
        batch: &ProducerBatch,
        first_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
    ) -> Option<i64> {
        let entry = self.entries.entry(batch.producer_id).or_insert_with(|| ProducerEntry {
            epoch: batch.epoch,
            batches: VecDeque::with_capacity(BATCHES_KEPT),
            last_timestamp: max_timestamp,
            txn_first_offset: None,
        });
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(max_timestamp);
        if batch.control {
            // A marker carries no sequence: it only ends the open transaction.
            let first = entry.txn_first_offset.take();
            if let Some(first) = first {
                self.ongoing.remove(&first);
            }
            return first;
        }
        if batch.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, batch.producer_id);
        }
        if batch.first_seq < 0 {
            // No sequence to check later batches against.
            return None;
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            first_offset,
            last_offset,
            max_timestamp,
        });
        None
    }

    /// [`Self::update`] for a batch appended at `base_offset..=last_offset`; for a marker
    /// that ended a transaction, what it ended.
    pub fn apply(
        &mut self,
        batch: &ProducerBatch,
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
    ) -> Option<EndedTxn> {
        let first_offset = self.update(batch, base_offset, last_offset, max_timestamp)?;
        Some(EndedTxn {
            producer_id: batch.producer_id,
            first_offset,
            marker_offset: base_offset,
            last_stable_offset: self.last_stable_offset(last_offset + 1),
        })
    }

    /// Forgets producers whose last batch is older than `expiration_ms` and that have no
    /// open transaction (as Kafka); returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.entries.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 + self.entries.len() * 64);
        // Each producer takes memory: 2^32 of them would not fit in it.
        let producers = u32::try_from(self.entries.len()).expect("fewer than 2^32 producers");
        body.extend_from_slice(&producers.to_be_bytes());
        let mut ids: Vec<&i64> = self.entries.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.entries[id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.push(u8::try_from(e.batches.len()).expect("at most BATCHES_KEPT batches per producer"));
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(10 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot, checking magic, version, CRC and that nothing trails.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotFault> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(SnapshotFault::NotASnapshot);
        }
        let version = u16::from_be_bytes(r.take(2)?.try_into().expect("2"));
        if version != VERSION && version != VERSION_WITHOUT_TRANSACTIONS {
            return Err(SnapshotFault::Version(version));
        }
        let crc = r.u32()?;
        if crc32c::crc32c(&bytes[r.at..]) != crc {
            return Err(SnapshotFault::Checksum);
        }
        let mut entries = HashMap::new();
        let mut ongoing = BTreeMap::new();
        for _ in 0..r.u32()? {
            let id = r.i64()?;
            let epoch = i16::from_be_bytes(r.take(2)?.try_into().expect("2"));
            let last_timestamp = r.i64()?;
            let txn_first_offset = if version == VERSION { Some(r.i64()?).filter(|o| *o >= 0) } else { None };
            if let Some(first) = txn_first_offset {
                ongoing.insert(first, id);
            }
            let count = r.take(1)?[0] as usize;
            if count > BATCHES_KEPT {
                return Err(SnapshotFault::TooManyBatches { producer_id: id, count });
            }
            let mut batches = VecDeque::with_capacity(count);
            for _ in 0..count {
                let (first_seq, last_seq) = (r.u32()? as i32, r.u32()? as i32);
                let (first_offset, last_offset, max_timestamp) = (r.i64()?, r.i64()?, r.i64()?);
                batches.push_back(BatchMeta { first_seq, last_seq, first_offset, last_offset, max_timestamp });
            }
            entries.insert(id, ProducerEntry { epoch, batches, last_timestamp, txn_first_offset });
        }
        if r.at != bytes.len() {
            return Err(SnapshotFault::TrailingBytes);
        }
        Ok(ProducerStateManager { entries, ongoing })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotFault> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or(SnapshotFault::Truncated)?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32, SnapshotFault> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64, SnapshotFault> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first_seq: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_seq,
            last_seq: first_seq + count - 1,
            transactional: false,
            control: false,
        }
    }

    fn with(batches: &[(ProducerBatch, i64)]) -> ProducerStateManager {
        let mut state = ProducerStateManager::default();
        for (b, offset) in batches {
            state.update(b, *offset, offset + i64::from(b.last_seq - b.first_seq), 100);
        }
        state
    }

    #[test]
    fn a_new_producer_may_start_at_any_sequence() {
        let state = ProducerStateManager::default();
        assert_eq!(state.check(&batch(0, 0, 3)), Ok(SequenceCheck::Append));
        assert_eq!(state.check(&batch(0, 42, 3)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn the_next_batch_continues_the_sequence() {
        let state = with(&[(batch(0, 0, 3), 10)]);
        assert_eq!(state.check(&batch(0, 3, 2)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let state = with(&[(batch(0, 0, 3), 10)]);
        assert!(matches!(
            state.check(&batch(0, 4, 1)),
            Err(ProducerError::OutOfOrderSequence { expected_after: 2, .. })
        ));
    }

    #[test]
    fn a_retried_batch_is_a_duplicate_with_its_original_offsets() {
        let state = with(&[(batch(0, 0, 3), 10), (batch(0, 3, 2), 13)]);
        let SequenceCheck::Duplicate(original) = state.check(&batch(0, 0, 3)).unwrap() else { panic!("duplicate") };
        assert_eq!((original.first_offset, original.last_offset), (10, 12));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let batches: Vec<_> = (0..6).map(|i| (batch(0, i, 1), 100 + i64::from(i))).collect();
        let state = with(&batches);
        assert_eq!(state.entry(7).unwrap().batches.len(), BATCHES_KEPT);
        assert!(matches!(state.check(&batch(0, 0, 1)), Err(ProducerError::OutOfOrderSequence { .. })));
        assert!(matches!(state.check(&batch(0, 1, 1)), Ok(SequenceCheck::Duplicate(_))));
    }

    #[test]
    fn an_older_epoch_is_fenced() {
        let state = with(&[(batch(3, 0, 1), 0)]);
        assert!(matches!(state.check(&batch(2, 1, 1)), Err(ProducerError::InvalidEpoch { current: 3, .. })));
    }

    #[test]
    fn a_new_epoch_must_start_at_zero_and_resets_the_batches() {
        let mut state = with(&[(batch(0, 0, 5), 0)]);
        assert!(matches!(state.check(&batch(1, 5, 1)), Err(ProducerError::OutOfOrderSequence { .. })));
        assert_eq!(state.check(&batch(1, 0, 1)), Ok(SequenceCheck::Append));
        state.update(&batch(1, 0, 1), 5, 5, 200);
        assert_eq!(state.entry(7).unwrap().epoch, 1);
        assert_eq!(state.entry(7).unwrap().batches.len(), 1);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let state = with(&[(ProducerBatch { first_seq: i32::MAX - 1, last_seq: i32::MAX, ..batch(0, 0, 1) }, 0)]);
        assert_eq!(state.check(&batch(0, 0, 1)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn expiry_forgets_idle_producers() {
        let mut state = with(&[(batch(0, 0, 1), 0)]);
        assert_eq!(state.expire(150, 100), 0);
        assert_eq!(state.expire(200, 100), 1);
        assert!(state.is_empty());
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let state = with(&[
            (batch(0, 0, 3), 10),
            (ProducerBatch { producer_id: 9, epoch: 2, first_seq: 5, last_seq: 5, ..batch(0, 0, 1) }, 20),
        ]);
        let bytes = state.encode();
        assert_eq!(ProducerStateManager::decode(&bytes).unwrap(), state);
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(ProducerStateManager::decode(&damaged).is_err());
        assert!(ProducerStateManager::decode(&bytes[..bytes.len() - 3]).is_err());
    }

    fn txn(producer_id: i64, epoch: i16, first_seq: i32, count: i32) -> ProducerBatch {
        ProducerBatch { producer_id, transactional: true, ..batch(epoch, first_seq, count) }
    }

    fn marker(producer_id: i64, epoch: i16) -> ProducerBatch {
        ProducerBatch { producer_id, epoch, first_seq: -1, last_seq: -1, transactional: true, control: true }
    }

    #[test]
    fn transactions_open_at_their_first_batch_and_end_at_their_marker() {
        let mut state = ProducerStateManager::default();
        assert_eq!(state.first_unstable_offset(), None);
        state.update(&txn(1, 0, 0, 2), 10, 11, 100);
        state.update(&txn(2, 0, 0, 1), 12, 12, 100);
        state.update(&txn(1, 0, 2, 1), 13, 13, 100);
        assert_eq!(state.first_unstable_offset(), Some(10), "the oldest open transaction bounds the LSO");
        assert_eq!(state.update(&marker(1, 0), 14, 14, 100), Some(10));
        assert_eq!(state.first_unstable_offset(), Some(12));
        // A marker carries no sequence: the producer's next batch continues after 2.
        assert_eq!(state.check(&txn(1, 0, 3, 1)), Ok(SequenceCheck::Append));
        assert_eq!(state.update(&marker(2, 0), 15, 15, 100), Some(12));
        assert_eq!(state.update(&marker(2, 0), 16, 16, 100), None, "a second marker ends nothing");
        assert_eq!(state.first_unstable_offset(), None);
        // A plain idempotent batch opens nothing.
        state.update(&batch(0, 0, 1), 17, 17, 100);
        assert_eq!(state.first_unstable_offset(), None);
    }

    #[test]
    fn open_transactions_survive_snapshots_and_expiry() {
        let mut state = ProducerStateManager::default();
        state.update(&txn(1, 3, 0, 2), 10, 11, 100);
        state.update(&batch(0, 0, 1), 12, 12, 100);
        let decoded = ProducerStateManager::decode(&state.encode()).unwrap();
        assert_eq!(decoded, state);
        assert_eq!(decoded.first_unstable_offset(), Some(10));
        // Expiry forgets the idle idempotent producer, not the one with an open transaction.
        let mut expired = decoded.clone();
        assert_eq!(expired.expire(1_000_000, 1_000), 1);
        assert!(expired.entry(1).is_some() && expired.entry(7).is_none());
        // A version 1 snapshot (no transactions) still reads.
        let mut v1 = ProducerStateManager::default();
        v1.update(&batch(0, 0, 1), 5, 5, 100);
        let mut bytes = v1.encode();
        let body_v1 = {
            // Drop the transaction field (8 bytes after id, epoch and last timestamp).
            let body = &bytes[10..];
            let mut out = body[..4 + 8 + 2 + 8].to_vec();
            out.extend_from_slice(&body[4 + 8 + 2 + 8 + 8..]);
            out
        };
        bytes.truncate(4);
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&body_v1).to_be_bytes());
        bytes.extend_from_slice(&body_v1);
        assert_eq!(ProducerStateManager::decode(&bytes).unwrap(), v1);
    }
}
