//! One cleaning pass over a log's files (Kafka's `Cleaner.doClean`), in three steps so
//! that appends and reads never wait for it:
//! 1. [`PartitionLog::plan_clean`], under the log's lock: the closed segments below the
//!    first uncleanable offset (their files stay readable whatever happens to the log),
//!    where the dirty part starts, and each idempotent producer's last batch.
//! 2. [`clean`], with no lock: maps the keys of the dirty part (as many batches as the
//!    offset map holds), then recopies every segment from the log start to the end of the
//!    mapped range into `.cleaned` files, in groups that fit one segment, keeping what
//!    [`clean_batch`] keeps. A group in which nothing changed is not rewritten.
//! 3. [`PartitionLog::commit_clean`] (`swap.rs`), under the lock again: each group
//!    replaces its segments, unless the log was truncated or lost one of them meanwhile.
//!
//! Transactions (`txn.rs`): the records of aborted transactions go, markers go once nothing
//! of their transaction stays and their delete horizon has passed, and a cleaned group's
//! transaction index keeps the aborted transactions whose markers stay.
//!
//! Invariants: only closed segments wholly below the first uncleanable offset are read
//! (the broker keeps that offset at or below the last stable offset, so no open
//! transaction is cleaned);
//! batches at or past the end of the mapped range are copied unchanged (their tombstones
//! get no delete horizon, their keys were not mapped); offsets never change; the cleaned
//! files are fsynced before a pass returns.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_protocol::batch::BatchView;

use super::choose::SegmentState;
use super::filter::{clean_batch, CleanContext, Cleaned};
use super::offset_map::OffsetMap;
use super::reader::BatchReader;
use super::throttle::Throttle;
use super::txn::{discard_records, expiring_marker, Transactions};
use crate::header::read_header;
use crate::log::PartitionLog;
use crate::segment::{segment_file_name, Segment};
use crate::txn_index::AbortedTxn;
use crate::{LogConfig, StorageError};

/// Cleaned batches are written to the new segment in writes of about this size.
const WRITE_BYTES: usize = 1 << 20;
/// The suffix of a cleaned segment's files until they replace the originals.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

/// One closed segment as a pass sees it.
#[derive(Clone, Debug)]
pub(crate) struct SegmentFile {
    pub base_offset: i64,
    pub file: Arc<File>,
    pub size_bytes: u64,
    /// The next segment's base offset.
    pub next_offset: i64,
}

/// What one pass will clean, taken under the log's lock.
pub struct CleanPlan {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) generation: u64,
    /// Closed segments from the log start up to the first uncleanable offset.
    pub(crate) segments: Vec<SegmentFile>,
    /// Where the dirty part starts: the first batch ending at or after the first dirty
    /// offset, as (index in `segments`, byte position); `None` when all of it is clean (a
    /// pass then only removes tombstones past their delete horizon).
    pub(crate) dirty_from: Option<(usize, u64)>,
    pub first_dirty: i64,
    pub first_uncleanable: i64,
    /// The base offsets of each idempotent producer's last batch.
    pub(crate) producer_last: HashSet<i64>,
    /// The aborted transactions of `segments`, by segment (the transaction indexes).
    pub(crate) aborted: BTreeMap<i64, Vec<AbortedTxn>>,
}

/// How a pass cleans.
#[derive(Clone, Copy, Debug)]
pub struct CleanSettings {
    /// This pass's share of `log.cleaner.dedupe.buffer.size`.
    pub dedupe_buffer_bytes: usize,
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// The most one compressed batch may decompress to.
    pub decompressed_max_bytes: usize,
}

/// What a pass did, for metrics and `topic describe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub keys_mapped: usize,
    pub batches_rewritten: u64,
    pub batches_dropped: u64,
    /// The earliest delete horizon of a batch the pass kept with tombstones (-1 if none):
    /// when it passes, a pass over the clean part removes them.
    pub earliest_delete_horizon: i64,
}

/// A cleaned group of segments, in `.cleaned` files until it is committed.
pub(crate) struct CleanedGroup {
    /// The base offsets of the segments it replaces; the first is its own.
    pub bases: Vec<i64>,
    pub segment: Option<Segment>,
    /// The aborted transactions whose markers stay in it, when the segments it replaces
    /// had any (its `.txnindex.cleaned` file then holds them).
    pub txn_entries: Option<Vec<AbortedTxn>>,
}

impl CleanedGroup {
    pub fn dir(&self) -> &Path {
        &self.segment.as_ref().expect("a group holds its segment until committed").dir
    }
}

impl Drop for CleanedGroup {
    /// A group that was not committed leaves no files behind.
    fn drop(&mut self) {
        if let Some(segment) = self.segment.take() {
            let (dir, base) = (segment.dir.clone(), segment.base_offset);
            drop(segment);
            for extension in ["log", "index", "timeindex", crate::txn_index::EXTENSION] {
                let _ = std::fs::remove_file(dir.join(cleaned_name(base, extension)));
            }
        }
    }
}

pub(crate) fn cleaned_name(base_offset: i64, extension: &str) -> String {
    segment_file_name(base_offset, &format!("{extension}{CLEANED_SUFFIX}"))
}

/// The outcome of [`clean`], to hand to [`PartitionLog::commit_clean`].
pub struct PassResult {
    pub(crate) generation: u64,
    pub(crate) groups: Vec<CleanedGroup>,
    /// Everything below it is clean once the pass is committed: the next first dirty offset.
    pub map_end: i64,
    /// Whether the plan had a dirty part to map (a pass without one only removes expired
    /// tombstones).
    pub had_dirty: bool,
    pub stats: PassStats,
}

impl PartitionLog {
    /// Each segment's base offset, size and the timestamps of its first and largest
    /// batches, for [`super::choose`]; the last is the active segment.
    pub fn segment_states(&self) -> Result<Vec<SegmentState>, StorageError> {
        let mut states = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let first_timestamp =
                if segment.is_empty() { -1 } else { read_header(&segment.log, 0, segment.size_bytes)?.max_timestamp };
            states.push(SegmentState {
                base_offset: segment.base_offset,
                bytes: segment.size_bytes,
                first_timestamp,
                max_timestamp: segment.max_timestamp,
            });
        }
        Ok(states)
    }

    /// The plan of a pass cleaning the dirty range `[first_dirty, first_uncleanable)`;
    /// `None` when no closed segment lies below `first_uncleanable`.
    pub fn plan_clean(&self, first_dirty: i64, first_uncleanable: i64) -> Result<Option<CleanPlan>, StorageError> {
        let (_, closed) = self.segments.split_last().expect("a log always has a segment");
        let segments: Vec<SegmentFile> = closed
            .iter()
            .zip(self.segments.iter().skip(1))
            .filter(|(_, next)| next.base_offset > self.log_start_offset)
            .take_while(|(_, next)| next.base_offset <= first_uncleanable)
            .map(|(segment, next)| SegmentFile {
                base_offset: segment.base_offset,
                file: Arc::clone(&segment.log),
                size_bytes: segment.size_bytes,
                next_offset: next.base_offset,
            })
            .collect();
        if segments.is_empty() {
            return Ok(None);
        }
        let dirty_from = match segments.iter().position(|s| s.next_offset > first_dirty) {
            Some(index) => {
                let in_memory = &self.segments[self.segment_index_for(segments[index].base_offset)];
                Some((index, in_memory.find_batch(first_dirty)?.map_or(in_memory.size_bytes, |h| h.position)))
            }
            None => None,
        };
        let producer_last = self.producers.last_batch_offsets().collect();
        let bases: Vec<i64> = segments.iter().map(|s| s.base_offset).collect();
        let aborted = self.txn_indexes.entries_of(&bases);
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            config: self.config.clone(),
            generation: self.generation,
            segments,
            dirty_from,
            first_dirty,
            first_uncleanable,
            producer_last,
            aborted,
        }))
    }
}

/// Runs a pass (step 2 of the module doc): no lock is held; every byte read and written is
/// counted by `throttle`.
pub fn clean(plan: &CleanPlan, settings: &CleanSettings, throttle: &Throttle) -> Result<PassResult, StorageError> {
    let mut stats = PassStats { earliest_delete_horizon: -1, ..PassStats::default() };
    let mut map = OffsetMap::with_buffer(settings.dedupe_buffer_bytes);
    let map_end = build_file_map(plan, &mut map, settings.decompressed_max_bytes, throttle, &mut stats)?;
    stats.keys_mapped = map.len();
    let mut groups = Vec::new();
    let ctx = CleanContext {
        map: &map,
        now_ms: settings.now_ms,
        delete_retention_ms: settings.delete_retention_ms,
        decompressed_max_bytes: settings.decompressed_max_bytes,
    };
    // Everything below the mapped range's end; with nothing dirty (an empty map), the clean
    // part, whose expired tombstones go.
    let cleaned: Vec<&SegmentFile> = plan.segments.iter().take_while(|s| s.base_offset < map_end).collect();
    let mut txns = Transactions::new(plan.aborted.values().flatten().copied().collect());
    for group in group_by_size(&cleaned, plan.config.segment_bytes) {
        if let Some(written) = clean_group(plan, group, &ctx, map_end, &mut txns, throttle, &mut stats)? {
            groups.push(written);
        }
    }
    Ok(PassResult { generation: plan.generation, groups, map_end, had_dirty: plan.dirty_from.is_some(), stats })
}

/// Maps the dirty part's keys; returns the end of the mapped range.
fn build_file_map(
    plan: &CleanPlan,
    map: &mut OffsetMap,
    decompressed_max_bytes: usize,
    throttle: &Throttle,
    stats: &mut PassStats,
) -> Result<i64, StorageError> {
    let mut end = plan.first_dirty;
    let Some((first_index, first_position)) = plan.dirty_from else { return Ok(end) };
    let txns = Transactions::new(plan.aborted.values().flatten().copied().collect());
    for (i, segment) in plan.segments.iter().enumerate().skip(first_index) {
        let start = if i == first_index { first_position } else { 0 };
        let mut reader = BatchReader::new(&segment.file, start, segment.size_bytes);
        while let Some(batch) = reader.next_batch()? {
            let (size, last_offset) = (batch.size() as u64, batch.last_offset());
            // An aborted transaction's keys are not mapped: its records go, and must not
            // take a committed record's place.
            if last_offset >= plan.first_dirty
                && !txns.is_aborted(&batch)
                && !super::map_batch(&batch, map, decompressed_max_bytes)?
            {
                return Ok(end);
            }
            account(throttle, stats, size, 0)?;
            end = end.max(last_offset + 1);
        }
        // Everything up to the next segment is mapped (a cleaned segment may end in a gap).
        end = end.max(segment.next_offset);
    }
    Ok(end)
}

/// Counts I/O against the throttle; an error once the cleaner is stopping.
fn account(throttle: &Throttle, stats: &mut PassStats, read: u64, written: u64) -> Result<(), StorageError> {
    stats.bytes_read += read;
    stats.bytes_written += written;
    throttle.account(read + written);
    if throttle.is_cancelled() {
        return Err(StorageError::CleaningCancelled);
    }
    Ok(())
}

/// Consecutive segments whose sizes add up to at most a segment and whose offsets fit one
/// segment's 32-bit relative offsets (Kafka's `groupSegmentsBySize`).
fn group_by_size<'a>(segments: &[&'a SegmentFile], segment_bytes: u64) -> Vec<Vec<&'a SegmentFile>> {
    let mut groups: Vec<Vec<&SegmentFile>> = Vec::new();
    for segment in segments {
        let joins = groups.last().is_some_and(|group| {
            let bytes: u64 = group.iter().map(|s| s.size_bytes).sum();
            bytes + segment.size_bytes <= segment_bytes
                && segment.next_offset - 1 - group[0].base_offset <= i64::from(u32::MAX)
        });
        match groups.last_mut() {
            Some(group) if joins => group.push(segment),
            _ => groups.push(vec![segment]),
        }
    }
    groups
}

/// What one batch becomes: [`clean_batch`]'s verdict, except that a batch of an aborted
/// transaction loses its records and a marker goes once nothing of its transaction stays
/// (`txn.rs`); batches at or past `map_end` are copied as they are.
fn verdict(
    plan: &CleanPlan,
    batch: &BatchView<'_>,
    ctx: &CleanContext<'_>,
    map_end: i64,
    txns: &mut Transactions,
) -> Result<Cleaned, StorageError> {
    if batch.last_offset() >= map_end {
        return Ok(Cleaned::Unchanged);
    }
    let producer_last = plan.producer_last.contains(&batch.base_offset());
    if batch.is_control() {
        if txns.on_marker(batch.producer_id()) {
            return Ok(expiring_marker(batch, ctx)?);
        }
        return Ok(Cleaned::Unchanged);
    }
    let verdict = match batch.is_transactional() && txns.on_data(batch) {
        true => discard_records(batch, producer_last)?,
        false => clean_batch(batch, ctx, producer_last)?,
    };
    if batch.is_transactional() && verdict != Cleaned::Dropped {
        txns.kept(batch.producer_id());
    }
    Ok(verdict)
}

/// Recopies one group into a `.cleaned` segment; `None` when it is one segment and nothing
/// in it changed.
fn clean_group(
    plan: &CleanPlan,
    group: Vec<&SegmentFile>,
    ctx: &CleanContext<'_>,
    map_end: i64,
    txns: &mut Transactions,
    throttle: &Throttle,
    stats: &mut PassStats,
) -> Result<Option<CleanedGroup>, StorageError> {
    let base = group[0].base_offset;
    let segment = Segment::create_named(&plan.dir, base, &plan.config, CLEANED_SUFFIX)?;
    let bases: Vec<i64> = group.iter().map(|s| s.base_offset).collect();
    let aborted: Vec<AbortedTxn> = bases.iter().filter_map(|b| plan.aborted.get(b)).flatten().copied().collect();
    let mut cleaned = CleanedGroup { bases, segment: Some(segment), txn_entries: None };
    let out = cleaned.segment.as_mut().expect("just created");
    let mut changed = group.len() > 1;
    let mut buffer = Vec::with_capacity(WRITE_BYTES);
    // The markers that stay: their aborted transactions stay in the index.
    let mut kept_markers = HashSet::new();
    for source in &group {
        let mut reader = BatchReader::new(&source.file, 0, source.size_bytes);
        while let Some(batch) = reader.next_batch()? {
            stats.bytes_read += batch.size() as u64;
            throttle.account(batch.size() as u64);
            let verdict = verdict(plan, &batch, ctx, map_end, txns)?;
            if batch.is_control() && verdict != Cleaned::Dropped {
                kept_markers.insert(batch.base_offset());
            }
            let kept_horizon = match &verdict {
                Cleaned::Unchanged => batch.delete_horizon(),
                Cleaned::Rewritten(bytes) => BatchView::parse(bytes)?.delete_horizon(),
                Cleaned::Dropped => None,
            };
            if let Some(horizon) = kept_horizon {
                let earliest = &mut stats.earliest_delete_horizon;
                *earliest = if *earliest < 0 { horizon } else { (*earliest).min(horizon) };
            }
            match verdict {
                Cleaned::Unchanged => buffer.extend_from_slice(batch.bytes()),
                Cleaned::Rewritten(bytes) => {
                    changed = true;
                    stats.batches_rewritten += 1;
                    check_rewritten(&batch, &bytes)?;
                    buffer.extend_from_slice(&bytes);
                }
                Cleaned::Dropped => {
                    changed = true;
                    stats.batches_dropped += 1;
                }
            }
            if buffer.len() >= WRITE_BYTES {
                account(throttle, stats, 0, buffer.len() as u64)?;
                out.append(&buffer, ctx.now_ms)?;
                buffer.clear();
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    if !buffer.is_empty() {
        account(throttle, stats, 0, buffer.len() as u64)?;
        out.append(&buffer, ctx.now_ms)?;
    }
    if out.size_bytes > i32::MAX as u64 {
        return Err(StorageError::InvalidConfig("a cleaned group grew past a segment's 32-bit positions"));
    }
    // The log and both indexes, durable before the group can be swapped in.
    for file in out.seal()? {
        file.sync_data()?;
    }
    if !aborted.is_empty() {
        let entries: Vec<AbortedTxn> = aborted.into_iter().filter(|a| kept_markers.contains(&a.last_offset)).collect();
        let path = plan.dir.join(cleaned_name(base, crate::txn_index::EXTENSION));
        let bytes: Vec<u8> = entries.iter().flat_map(AbortedTxn::encode).collect();
        let mut file = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.sync_data()?;
        cleaned.txn_entries = Some(entries);
    }
    out.next_offset = group.last().expect("a group holds a segment").next_offset;
    Ok(Some(cleaned))
}

/// A rewritten batch keeps its place: same base and last offsets.
fn check_rewritten(original: &BatchView<'_>, bytes: &[u8]) -> Result<(), StorageError> {
    let rewritten = BatchView::parse(bytes)?;
    assert_eq!(
        (rewritten.base_offset(), rewritten.last_offset()),
        (original.base_offset(), original.last_offset()),
        "the cleaner never moves offsets"
    );
    Ok(())
}
