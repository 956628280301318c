//! A partition log: an ordered list of segments, the last one active.
//!
//! Invariants: there is always at least one segment; segments are sorted by base offset and
//! each segment's offsets lie below the next segment's base offset; only the last segment
//! is written. A rolled segment is fsynced after the roll, off the append path
//! ([`RolledFlush`]); everything below the recovery point is durable. `log_start_offset`
//! lies in `[first segment base, log end offset]`, `recovery_point` in
//! `[0, log end offset]`.

use runnel_protocol::batch::{stamp_header, BatchError, BatchIter, BatchView, HEADER_BYTES};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::header::HeaderScan;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_snapshot;
use crate::producer_state::{ProducerBatch, ProducerStateManager, SequenceCheck};
use crate::retention::{deletable_segments, locally_deletable_segments, SegmentSummary};
use crate::rolled_flush::RolledFlush;
use crate::segment::{Segment, SegmentRead};
use crate::stamp::stamp_batches;
use crate::{LogConfig, StorageError};

/// The offsets an append assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp in the append, -1 if none.
    pub max_timestamp: i64,
    /// Last offset of the first batch that carries `max_timestamp` (batch granularity).
    pub offset_of_max_timestamp: i64,
    /// The broker time stamped into the batches with LogAppendTime, else -1.
    pub log_append_time_ms: i64,
}

/// A range of one segment file to send with sendfile(2); the file stays readable even if
/// the segment is deleted meanwhile (it is only unlinked).
#[derive(Clone, Debug)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u32,
}

/// The answer to a read.
#[derive(Clone, Debug)]
pub struct ReadInfo {
    /// Whole batches, `None` when there is nothing to return.
    pub slice: Option<FileSlice>,
    /// Base offset of the first batch in `slice` (may be below the requested offset), or the
    /// requested offset when `slice` is `None`.
    pub first_offset: i64,
}

pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    pub(crate) unflushed_messages: u64,
    pub(crate) last_flush_ms: i64,
    pub(crate) last_open_scanned_bytes: u64,
    /// Idempotent producers' recent batches; rebuilt at open from a snapshot and the tail.
    pub(crate) producers: ProducerStateManager,
    /// Aborted transactions per segment (`txn_index.rs`).
    pub(crate) txn_indexes: crate::txn_index::TxnIndexes,
    /// Where each leader epoch starts; rebuilt from batch headers when the file is missing.
    pub(crate) epochs: LeaderEpochCache,
    /// fsyncs owed by rolls, oldest first, not yet taken by [`PartitionLog::take_rolled_flushes`].
    pub(crate) rolled_flushes: Vec<RolledFlush>,
    /// Bumped by every truncation: a rolled flush of an older generation proves nothing.
    pub(crate) generation: u64,
    /// The lowest offset a truncation cut the log to since the cleaner last asked
    /// ([`PartitionLog::take_truncation`]): its checkpoint must not stay above it.
    pub(crate) truncated_to: Option<i64>,
    /// Producer snapshots above this offset are kept however many there are: tiered
    /// storage uploads the one at each segment's end ([`PartitionLog::keep_snapshots_above`]).
    pub(crate) snapshots_kept_above: i64,
}

impl PartitionLog {
    pub(crate) fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has a segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("a log always has a segment")
    }

    /// Index of the segment that would hold `offset`: the last one with base <= offset.
    pub(crate) fn segment_index_for(&self, offset: i64) -> usize {
        self.segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1)
    }

    /// Stamps offsets (and epoch, LogAppendTime) into `records` in place and appends them
    /// with one write to the active segment, rolling first if needed.
    pub fn append(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.check_fits_a_segment(records.len())?;
        let log_append_time_ms = log_append_time.then_some(now_ms);
        let stamped = stamp_batches(records, self.log_end_offset(), leader_epoch, log_append_time_ms)?;
        self.epochs.assign_and_flush(leader_epoch, stamped.base_offset)?;
        if self.active().should_roll(records.len() as u64, stamped.last_offset, now_ms, &self.config) {
            self.roll(now_ms)?;
        }
        self.active_mut().append(records, now_ms)?;
        debug_assert_eq!(self.log_end_offset(), stamped.last_offset + 1);
        // Batches appended whole (replication, internal logs) update the producer state
        // unchecked, as Kafka does for appends that did not come from a client.
        for (_, batch) in BatchIter::new(records).flatten() {
            if let Some(producer) = ProducerBatch::of(&batch) {
                let placed = (batch.base_offset(), batch.last_offset(), batch.max_timestamp());
                self.track_producer(&producer, &batch, placed)?;
            }
        }
        self.account_append(stamped.record_count, now_ms)?;
        Ok(AppendInfo {
            base_offset: stamped.base_offset,
            last_offset: stamped.last_offset,
            max_timestamp: stamped.max_timestamp,
            offset_of_max_timestamp: stamped.offset_of_max_timestamp,
            log_append_time_ms: log_append_time_ms.unwrap_or(-1),
        })
    }

    /// Appends one validated batch without copying it: its header is stamped in a 61-byte
    /// copy and written together with the rest of `batch` (the produce path's zero-copy
    /// append). Same effects as [`PartitionLog::append`] of that one batch.
    pub fn append_batch(
        &mut self,
        batch: &[u8],
        leader_epoch: i32,
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.check_fits_a_segment(batch.len())?;
        let view = BatchView::parse(batch)?;
        if view.last_offset_delta() < 0 {
            return Err(BatchError::Invalid("negative lastOffsetDelta").into());
        }
        let producer = ProducerBatch::of(&view);
        if let Some(producer) = &producer {
            if let SequenceCheck::Duplicate(original) = self.producers.check(producer)? {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    max_timestamp: original.max_timestamp,
                    offset_of_max_timestamp: original.last_offset,
                    log_append_time_ms: -1,
                });
            }
        }
        let base_offset = self.log_end_offset();
        let last_offset = base_offset + i64::from(view.last_offset_delta());
        if self.active().should_roll(batch.len() as u64, last_offset, now_ms, &self.config) {
            self.roll(now_ms)?;
        }
        self.epochs.assign_and_flush(leader_epoch, base_offset)?;
        let log_append_time_ms = log_append_time.then_some(now_ms);
        let (head, rest) = batch.split_at(HEADER_BYTES);
        let mut header: [u8; HEADER_BYTES] = head.try_into().expect("parsed batches hold a header");
        stamp_header(&mut header, rest, base_offset, leader_epoch, log_append_time_ms);
        self.active_mut().append_parts(&header, rest, now_ms)?;
        debug_assert_eq!(self.log_end_offset(), last_offset + 1);
        let max_timestamp = log_append_time_ms.unwrap_or(view.max_timestamp());
        if let Some(producer) = &producer {
            // `view` is the batch as the client sent it: its offsets are the stamped ones.
            self.track_producer(producer, &view, (base_offset, last_offset, max_timestamp))?;
        }
        self.account_append(u64::try_from(view.record_count()).unwrap_or(0), now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp: last_offset,
            log_append_time_ms: log_append_time_ms.unwrap_or(-1),
        })
    }

    /// Appends batches copied from the leader as they are: offsets, epochs and timestamps
    /// were assigned there. Every batch is checked whole (framing, CRC) and must continue
    /// the log exactly (a batch may start past the one before it: the leader's cleaner
    /// leaves gaps; it may hold fewer records than its offsets span, down to none); nothing is written unless all of them do. The epoch cache learns
    /// new epochs from the batches, and the producer state is updated unchecked (the
    /// leader checked sequences), so a follower that becomes leader deduplicates retries.
    pub fn append_as_follower(&mut self, records: &[u8], now_ms: i64) -> Result<Option<i64>, StorageError> {
        let mut expected = self.log_end_offset();
        let mut batches = Vec::new();
        for item in BatchIter::new(records) {
            let (_, batch) = item?;
            batch.validate_replicated()?;
            if batch.base_offset() < expected {
                return Err(StorageError::NonContiguous { expected, found: batch.base_offset() });
            }
            expected = batch.last_offset() + 1;
            batches.push(batch);
        }
        let Some(last) = batches.last() else { return Ok(None) };
        let last_offset = last.last_offset();
        // Append batch by batch, so a roll happens where the leader's size bound would put it.
        let mut records_appended = 0u64;
        for batch in &batches {
            self.check_fits_a_segment(batch.size())?;
            if self.active().should_roll(batch.size() as u64, batch.last_offset(), now_ms, &self.config) {
                self.roll(now_ms)?;
            }
            // A gap wider than a segment's 32-bit relative offsets (a cleaned leader): the
            // batch starts a segment of its own, as Kafka rolls at the batch's base offset.
            if batch.last_offset() - self.active().base_offset > i64::from(u32::MAX) {
                self.roll_to(batch.base_offset())?;
            }
            self.epochs.assign_and_flush(batch.partition_leader_epoch(), batch.base_offset())?;
            self.active_mut().append(batch.bytes(), now_ms)?;
            if let Some(producer) = ProducerBatch::of(batch) {
                let placed = (batch.base_offset(), batch.last_offset(), batch.max_timestamp());
                self.track_producer(&producer, batch, placed)?;
            }
            records_appended += u64::try_from(batch.record_count()).unwrap_or(0);
        }
        debug_assert_eq!(self.log_end_offset(), last_offset + 1);
        self.account_append(records_appended, now_ms)?;
        Ok(Some(last_offset))
    }

    /// Starts leader epoch `epoch` at the log end (this replica became its leader).
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        let end = self.log_end_offset();
        self.epochs.assign_and_flush(epoch, end)
    }

    /// The newest leader epoch this log holds, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// OffsetsForLeaderEpoch: the largest epoch <= `requested` and where it ends here.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.epochs.end_offset_for(requested, self.log_end_offset())
    }

    /// The leader epoch `offset` was written in, if the cache knows.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.epoch_for_offset(offset)
    }

    pub fn epoch_entries(&self) -> &[crate::leader_epoch::EpochEntry] {
        self.epochs.entries()
    }

    /// A record set larger than a segment could never be appended whole.
    fn check_fits_a_segment(&self, size_bytes: usize) -> Result<(), StorageError> {
        if size_bytes as u64 > self.config.segment_bytes {
            return Err(StorageError::RecordSetTooLarge { size_bytes, segment_bytes: self.config.segment_bytes });
        }
        Ok(())
    }

    /// Flush policy after an append of `record_count` records.
    fn account_append(&mut self, record_count: u64, now_ms: i64) -> Result<(), StorageError> {
        self.unflushed_messages = self.unflushed_messages.saturating_add(record_count);
        if self.unflushed_messages >= self.config.flush_messages || self.flush_due(now_ms) {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    fn flush_due(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
    }

    /// Whole batches from the one holding `offset`, within one segment, at most `max_bytes`
    /// (or one whole batch if `min_one_batch`), none with last offset >= `max_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, StorageError> {
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        // Bounded by the segment count: each step moves to the next segment.
        for segment in &self.segments[self.segment_index_for(offset)..] {
            if let SegmentRead::Found { slice, first_offset } =
                segment.read(offset, max_bytes, max_offset, min_one_batch)?
            {
                return Ok(ReadInfo { slice, first_offset });
            }
        }
        Ok(ReadInfo { slice: None, first_offset: offset })
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Replaces the configuration (e.g. after a topic config change); takes effect on the
    /// next append or retention pass. Index sizes apply to segments created afterwards.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), StorageError> {
        config.validate()?;
        if config.tiered && !self.config.tiered {
            self.snapshots_kept_above = -1; // until the retention pass says what is uploaded
        }
        self.config = config;
        Ok(())
    }
    /// ListOffsets v0's candidates, oldest first: each segment's base offset (not below the
    /// log start) with its file's modification time, then the log end at `now_ms` when the
    /// active segment holds anything (Kafka's `legacyFetchOffsetsBefore`).
    pub fn legacy_offset_times(&self, now_ms: i64) -> Result<Vec<crate::legacy_offsets::OffsetTime>, StorageError> {
        let mut times = Vec::with_capacity(self.segments.len() + 1);
        for segment in &self.segments {
            let time_ms = segment.last_modified_ms()?;
            times.push(crate::legacy_offsets::OffsetTime {
                offset: segment.base_offset.max(self.log_start_offset),
                time_ms,
            });
        }
        if !self.active().is_empty() {
            times.push(crate::legacy_offsets::OffsetTime { offset: self.log_end_offset(), time_ms: now_ms });
        }
        Ok(times)
    }
    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }
    /// Bytes checked (CRC) or re-indexed by the last `open`: 0 when nothing was scanned.
    pub fn last_open_scanned_bytes(&self) -> u64 {
        self.last_open_scanned_bytes
    }

    /// ListOffsets by timestamp: base offset and max timestamp of the first batch whose max
    /// timestamp is >= `timestamp` (offset clamped to the log start offset).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        for segment in &self.segments {
            if let Some((offset, found)) = segment.find_timestamp(timestamp)? {
                return Ok(Some((offset.max(self.log_start_offset), found)));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: (timestamp, offset) of the largest batch max timestamp,
    /// the offset being the last offset of the first batch that carries it.
    pub fn max_timestamp_and_offset(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for segment in self.segments.iter().filter(|s| !s.is_empty() && s.max_timestamp >= 0) {
            if best.is_none_or(|(timestamp, _)| segment.max_timestamp > timestamp) {
                best = Some((segment.max_timestamp, segment.offset_of_max_timestamp));
            }
        }
        best
    }

    /// fsyncs what rolls still owe, then the active segment and its indexes; the recovery
    /// point becomes the log end.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        for owed in std::mem::take(&mut self.rolled_flushes) {
            owed.run()?;
        }
        self.active_mut().flush(false)?;
        self.recovery_point = self.log_end_offset();
        self.unflushed_messages = 0;
        Ok(())
    }

    /// For group commit outside the log lock: the files whose `sync_data` makes everything
    /// below the returned offset durable (the active segment's, and those rolls still owe),
    /// and the directory to sync when a roll is owed. Then call [`PartitionLog::mark_flushed`].
    pub fn flush_target(&self) -> (Vec<Arc<File>>, Option<PathBuf>, i64) {
        let mut files: Vec<Arc<File>> = self.rolled_flushes.iter().flat_map(|f| f.files.iter().cloned()).collect();
        files.push(Arc::clone(&self.active().log));
        let dir = (!self.rolled_flushes.is_empty()).then(|| self.dir.clone());
        (files, dir, self.log_end_offset())
    }

    /// The fsyncs rolls owe, to run without the log's lock; then report each with
    /// [`PartitionLog::mark_rolled_flushed`].
    pub fn take_rolled_flushes(&mut self) -> Vec<RolledFlush> {
        std::mem::take(&mut self.rolled_flushes)
    }

    /// A rolled flush completed: the recovery point moves to its offset, unless the log was
    /// truncated since it was recorded.
    pub fn mark_rolled_flushed(&mut self, flushed: &RolledFlush) {
        if flushed.generation == self.generation {
            self.recovery_point = self.recovery_point.max(flushed.up_to.min(self.log_end_offset()));
        }
    }

    /// Records that everything below `offset` is durable (after a `flush_target` sync).
    pub fn mark_flushed(&mut self, offset: i64) {
        let log_end = self.log_end_offset();
        self.recovery_point = self.recovery_point.max(offset.min(log_end));
        // The group commit synced what these rolls owed.
        self.rolled_flushes.retain(|owed| owed.up_to > offset);
        if offset >= log_end {
            self.unflushed_messages = 0;
        }
    }

    /// Whether the time-based flush policy (`flush_ms`) wants a flush now: something is not
    /// durable and the last flush is older than `flush_ms`. The caller then syncs
    /// [`PartitionLog::flush_target`] without the log's lock and calls
    /// [`PartitionLog::mark_flushed_at`].
    pub fn flush_wanted(&self, now_ms: i64) -> bool {
        self.recovery_point < self.log_end_offset() && self.flush_due(now_ms)
    }

    /// [`PartitionLog::mark_flushed`], recording `now_ms` as the time of the flush.
    pub fn mark_flushed_at(&mut self, offset: i64, now_ms: i64) {
        self.mark_flushed(offset);
        self.last_flush_ms = now_ms;
    }

    /// The time-based flush policy (`flush_ms`); returns whether it flushed.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool, StorageError> {
        if self.recovery_point >= self.log_end_offset() || !self.flush_due(now_ms) {
            return Ok(false);
        }
        self.flush()?;
        self.last_flush_ms = now_ms;
        Ok(true)
    }

    /// Deletes closed segments by log start offset, age and size; returns how many.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        self.retain(now_ms, None)
    }

    /// Tiered storage's local retention (`local.retention.*`): segments go by age or size
    /// only once remote storage holds every offset of them (`uploaded_through`: the
    /// highest offset uploaded, -1 when none). The log start offset becomes the first
    /// local offset: remote storage serves what is below it.
    pub fn apply_local_retention(&mut self, now_ms: i64, uploaded_through: i64) -> Result<usize, StorageError> {
        self.retain(now_ms, Some(uploaded_through))
    }

    fn retain(&mut self, now_ms: i64, uploaded_through: Option<i64>) -> Result<usize, StorageError> {
        let closed = &self.segments[..self.segments.len() - 1];
        let mut summaries = Vec::with_capacity(closed.len());
        for segment in closed {
            summaries.push(SegmentSummary {
                next_offset: segment.next_offset,
                size_bytes: segment.size_bytes,
                largest_timestamp_ms: segment.largest_timestamp_ms()?,
            });
        }
        let (size, start) = (self.size_bytes(), self.log_start_offset);
        let count = match uploaded_through {
            None => deletable_segments(&summaries, size, start, &self.config, now_ms),
            Some(uploaded) => locally_deletable_segments(&summaries, size, start, &self.config, now_ms, uploaded),
        };
        for segment in self.segments.drain(..count) {
            tracing::info!(dir = %self.dir.display(), base_offset = segment.base_offset, "retention deletes segment");
            segment.delete_files()?;
        }
        let bases = self.segment_base_offsets();
        self.txn_indexes.retain_segments(&bases)?;
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        Ok(count)
    }

    /// Raises the log start offset (DeleteRecords); segments wholly below it go at the next
    /// retention pass. Clamped to the log end offset.
    pub fn advance_log_start_offset(&mut self, offset: i64) {
        self.log_start_offset = self.log_start_offset.max(offset.min(self.log_end_offset()));
    }

    /// Truncates so the log ends at `offset`, or at the start of the batch holding it.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.generation += 1;
        self.rolled_flushes.clear();
        self.note_truncation(offset);
        if offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        while self.segments.len() > 1 && self.active().base_offset > offset {
            let segment = self.segments.pop().expect("more than one segment");
            segment.delete_files()?;
        }
        self.active_mut().truncate_to(offset)?;
        self.recovery_point = self.recovery_point.min(self.log_end_offset());
        self.log_start_offset = self.log_start_offset.min(self.log_end_offset());
        let end = self.log_end_offset();
        self.epochs.truncate_from_end(end)?;
        self.rebuild_producer_state()
    }

    fn note_truncation(&mut self, offset: i64) {
        self.truncated_to = Some(self.truncated_to.map_or(offset, |t| t.min(offset)));
    }

    /// The lowest offset the log was truncated to since the last call, if it was: a
    /// cleaner checkpoint above it names data that is gone (and may be replaced).
    pub fn take_truncation(&mut self) -> Option<i64> {
        self.truncated_to.take()
    }

    /// Deletes every segment and starts an empty log at `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError::InvalidConfig("a log cannot start at a negative offset"));
        }
        self.generation += 1;
        self.rolled_flushes.clear();
        self.note_truncation(-1);
        for segment in self.segments.drain(..) {
            segment.delete_files()?;
        }
        self.segments.push(Segment::create(&self.dir, offset, &self.config)?);
        sync_dir(&self.dir)?;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        producer_snapshot::delete_above(&self.dir, -1)?;
        self.producers = ProducerStateManager::default();
        self.txn_indexes.retain_segments(&[])?;
        self.epochs.clear()
    }

    /// Rolls to a new active segment at the log end offset (no-op if the active one is
    /// empty). The old segment is sealed (indexes written) but not fsynced here: the fsyncs
    /// are owed as a [`RolledFlush`], so an append that rolls never waits for the disk.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let _ = now_ms; // segment_ms counts from the first append, recorded by Segment::append
        if self.active().is_empty() {
            return Ok(());
        }
        let end = self.log_end_offset();
        self.roll_to(end)
    }

    /// [`PartitionLog::roll`] to a new active segment based at `base_offset` (the log end,
    /// or past it when a follower copies a gap wider than a segment's 32-bit relative
    /// offsets). An empty active segment is moved to `base_offset` instead.
    fn roll_to(&mut self, base_offset: i64) -> Result<(), StorageError> {
        if self.active().is_empty() {
            if self.active().base_offset != base_offset {
                let empty = self.segments.pop().expect("a log always has a segment");
                empty.delete_files()?;
                self.segments.push(Segment::create(&self.dir, base_offset, &self.config)?);
                sync_dir(&self.dir)?;
            }
            return Ok(());
        }
        let mut files = self.active_mut().seal()?;
        self.segments.push(Segment::create(&self.dir, base_offset, &self.config)?);
        files.push(Arc::new(producer_snapshot::write_unsynced(
            &self.dir,
            base_offset,
            &self.producers,
            self.snapshots_kept_above,
        )?));
        self.rolled_flushes.push(RolledFlush {
            files,
            dir: self.dir.clone(),
            up_to: base_offset,
            generation: self.generation,
        });
        Ok(())
    }

    /// Flushes, closes the indexes with their final entry, and closes the files.
    pub fn close(mut self) -> Result<(), StorageError> {
        for owed in std::mem::take(&mut self.rolled_flushes) {
            owed.run()?;
        }
        self.active_mut().flush(true)?;
        self.recovery_point = self.log_end_offset();
        producer_snapshot::write(&self.dir, self.log_end_offset(), &self.producers, self.snapshots_kept_above)?;
        Ok(())
    }

    /// Records a batch just appended to the active segment at `(base, last offset, max
    /// timestamp)` in the producer state (and a marker that ended a transaction in the
    /// transaction index): the one way the three append paths do it. `batch` is read for
    /// its records only (a marker's type).
    fn track_producer(
        &mut self,
        producer: &ProducerBatch,
        batch: &BatchView<'_>,
        (base_offset, last_offset, max_timestamp): (i64, i64, i64),
    ) -> Result<(), StorageError> {
        if let Some(ended) = self.producers.apply(producer, base_offset, last_offset, max_timestamp) {
            let segment_base = self.active().base_offset;
            self.note_marker(batch, ended, segment_base)?;
        }
        Ok(())
    }

    /// The first offset of the oldest open transaction in this log, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset()
    }

    /// The last stable offset given the partition's `high_watermark`.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.producers.last_stable_offset(high_watermark)
    }

    /// The idempotent-producer state (for tests and tooling).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Tiered storage: keeps every producer snapshot above `offset` (the highest offset
    /// uploaded), so that each segment's end state can be uploaded with it.
    pub fn keep_snapshots_above(&mut self, offset: i64) {
        self.snapshots_kept_above = offset;
    }

    /// The producer snapshot file for `offset` (a segment's end), if it is kept.
    pub fn producer_snapshot_file(&self, offset: i64) -> Option<PathBuf> {
        Some(producer_snapshot::path(&self.dir, offset)).filter(|p| p.exists())
    }

    /// Tiered storage, on a replica whose leader holds older offsets only remotely (Kafka's
    /// tier state machine): an empty log starting at `offset`, with the producer state and
    /// leader epochs remote storage has for that point.
    pub fn install_tiered_start(
        &mut self,
        offset: i64,
        snapshot: Option<&[u8]>,
        epochs: &[(i32, i64)],
    ) -> Result<(), StorageError> {
        // Checked before anything changes: a snapshot that cannot be read leaves the log as it was.
        if let Some(bytes) = snapshot {
            ProducerStateManager::decode(bytes).map_err(|_| StorageError::UnreadableSnapshot)?;
        }
        self.truncate_fully_and_start_at(offset)?;
        if let Some(bytes) = snapshot {
            producer_snapshot::install(&self.dir, offset, bytes)?;
            self.rebuild_producer_state()?;
        }
        for (epoch, start) in epochs {
            self.epochs.assign(*epoch, *start);
        }
        self.epochs.flush()
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`).
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.expire(now_ms, expiration_ms)
    }

    /// Rebuilds the producer state: the newest snapshot at or below the log end, then every
    /// batch after it. Snapshots above the log end (left by a truncation) are removed.
    pub(crate) fn rebuild_producer_state(&mut self) -> Result<(), StorageError> {
        let end = self.log_end_offset();
        producer_snapshot::delete_above(&self.dir, end)?;
        let (from, state) =
            producer_snapshot::load_latest(&self.dir, end)?.unwrap_or((0, ProducerStateManager::default()));
        self.producers = state;
        let from = from.max(self.segments[0].base_offset);
        // The aborted transactions from here on are derived again from the markers replayed.
        self.txn_indexes.truncate_from(from)?;
        // Markers (rare) are read whole and noted once the scan, which borrows the
        // segments, is done.
        let mut markers = Vec::new();
        for segment in self.segments.iter().filter(|s| s.next_offset > from) {
            let start = if from <= segment.base_offset {
                0
            } else {
                segment.find_batch(from)?.map_or(segment.size_bytes, |h| h.position)
            };
            for header in HeaderScan::new(&segment.log, start, segment.size_bytes) {
                let header = header?;
                let Some(producer) = header.producer_batch() else { continue };
                let (base, last, max_timestamp) = (header.base_offset, header.last_offset, header.max_timestamp);
                if let Some(ended) = self.producers.apply(&producer, base, last, max_timestamp) {
                    let mut bytes = vec![0u8; header.size_bytes as usize];
                    std::os::unix::fs::FileExt::read_exact_at(&*segment.log, &mut bytes, header.position)?;
                    markers.push((bytes, ended, segment.base_offset));
                }
            }
        }
        for (bytes, ended, segment_base) in markers {
            self.note_marker(&BatchView::parse(&bytes)?, ended, segment_base)?;
        }
        Ok(())
    }

    /// Rebuilds the leader epoch cache from every batch header (a log written before the
    /// cache existed). Epochs only grow along a log, so the first batch of each is its start.
    pub(crate) fn rebuild_epoch_cache(&mut self) -> Result<(), StorageError> {
        let mut cache = LeaderEpochCache::empty(&self.dir);
        for segment in &self.segments {
            for header in HeaderScan::new(&segment.log, 0, segment.size_bytes) {
                let header = header?;
                cache.assign(header.leader_epoch, header.base_offset);
            }
        }
        cache.flush()?;
        self.epochs = cache;
        Ok(())
    }

    /// Closes the log and removes its directory.
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}

/// fsyncs a directory so that created or removed entries survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    runnel_fs::sync_dir(dir)?;
    Ok(())
}
