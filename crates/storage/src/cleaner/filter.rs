//! What the cleaner keeps of one batch (Kafka's `LogCleaner.shouldRetainRecord` and
//! `MemoryRecords.filterTo`): a record survives unless a later record of its key is in the
//! offset map, it has no key, or it is a tombstone past its batch's delete horizon.
//!
//! Invariants: offsets never change (a rewritten batch keeps its base offset and last
//! offset delta, so the log has gaps, never renumbered records); a batch whose records all
//! go is kept empty when it is its producer's last (so idempotent producers continue with
//! their sequence numbers, as in Kafka); a batch with a tombstone that stays gets a delete
//! horizon of `now + delete.retention.ms` (KIP-534) the first time it is cleaned, and its
//! tombstones go once that time has passed; record timestamps are kept (deltas are
//! recomputed against the new base timestamp).

use runnel_protocol::batch::{rewrite_batch, BatchError, BatchView, Rewrite};
use runnel_protocol::compression::RecordStream;

use super::offset_map::OffsetMap;

/// What one cleaning pass knows besides the batch.
#[derive(Debug, Clone, Copy)]
pub struct CleanContext<'a> {
    pub map: &'a OffsetMap,
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// The most a compressed batch may decompress to.
    pub decompressed_max_bytes: usize,
}

/// The cleaner's verdict on one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    /// Keep the batch's bytes as they are.
    Unchanged,
    /// Replace it with these bytes (fewer records, or a delete horizon set).
    Rewritten(Vec<u8>),
    /// Nothing of it stays.
    Dropped,
}

/// Cleans one batch. `producer_last`: it is the last batch its producer wrote to the log,
/// which must stay (empty if need be). Control batches (transaction markers) are kept as
/// they are.
pub fn clean_batch(batch: &BatchView<'_>, ctx: &CleanContext<'_>, producer_last: bool) -> Result<Cleaned, BatchError> {
    if batch.is_control() {
        return Ok(Cleaned::Unchanged);
    }
    let base_offset = batch.base_offset();
    let horizon = batch.delete_horizon();
    let tombstones_expire = horizon.is_some_and(|h| ctx.now_ms >= h);
    let original_base_timestamp = batch.base_timestamp();
    let mut stream = RecordStream::new(
        batch.compression()?,
        &batch.bytes()[runnel_protocol::batch::HEADER_BYTES..],
        ctx.decompressed_max_bytes,
    )?;
    // Kept records with their absolute timestamps.
    let mut kept = Vec::new();
    let mut removed = 0usize;
    while let Some(record) = stream.next_record()? {
        let offset = base_offset + record.offset_delta;
        let superseded = match &record.key {
            None => true,
            Some(key) => ctx.map.get(key).is_some_and(|latest| latest > offset),
        };
        let expired_tombstone = record.value.is_none() && tombstones_expire;
        if superseded || expired_tombstone {
            removed += 1;
            continue;
        }
        let timestamp = original_base_timestamp.saturating_add(record.timestamp_delta);
        kept.push((timestamp, record));
    }
    let keeps_tombstone = kept.iter().any(|(_, r)| r.value.is_none());
    let needs_horizon = keeps_tombstone && horizon.is_none();
    debug_assert!(!(tombstones_expire && keeps_tombstone), "expired tombstones were all removed");
    if removed == 0 && !needs_horizon {
        return Ok(Cleaned::Unchanged);
    }
    if kept.is_empty() && !producer_last {
        return Ok(Cleaned::Dropped);
    }
    // A horizon stays while the batch holds a tombstone; the first cleaning that keeps one
    // sets it.
    let horizon_after = keeps_tombstone.then(|| horizon.unwrap_or(ctx.now_ms.saturating_add(ctx.delete_retention_ms)));
    let base_timestamp =
        horizon_after.unwrap_or_else(|| kept.first().map_or(original_base_timestamp, |(timestamp, _)| *timestamp));
    let max_timestamp = if batch.is_log_append_time() {
        batch.max_timestamp()
    } else {
        kept.iter().map(|(t, _)| *t).max().unwrap_or(batch.max_timestamp())
    };
    let mut plain = Vec::new();
    for (timestamp, record) in &kept {
        record.encode(timestamp.saturating_sub(base_timestamp), record.offset_delta, &mut plain);
    }
    let rewrite = Rewrite {
        record_count: i32::try_from(kept.len()).expect("fewer records than the batch held"),
        base_timestamp,
        max_timestamp,
        delete_horizon: horizon_after.is_some(),
    };
    Ok(Cleaned::Rewritten(rewrite_batch(batch, rewrite, &plain)?))
}
