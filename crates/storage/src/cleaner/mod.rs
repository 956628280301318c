//! Log compaction's decisions, pure and tested without I/O (Kafka's `LogCleaner`,
//! `Cleaner.doClean` and `LogCleanerManager`): which log to clean next ([`choose`]), how far
//! one pass reaches (the offset map of the dirty range, [`build_map`]), and what each batch
//! keeps ([`filter::clean_batch`]). `pass.rs` applies them to a log's files (plan under
//! the log's lock, map and recopy into `.cleaned` files without it, commit under it again)
//! and `swap.rs` swaps cleaned segments in crash-safely; the broker's `log_cleaner` runs
//! the passes and keeps the `cleaner-offset-checkpoint`.
//!
//! Invariants: the active segment and anything at or above the first uncleanable offset
//! (the high watermark, `min.compaction.lag.ms`) are never cleaned; a pass maps at most
//! what its offset map holds and cleans everything below the end of what it mapped; a key's
//! latest record in the cleaned range always survives; offsets never change.

pub mod choose;
pub mod filter;
pub mod offset_map;
mod pass;
mod reader;
pub(crate) mod swap;
mod throttle;
mod txn;

use runnel_protocol::batch::{BatchError, BatchView};
use runnel_protocol::compression::RecordStream;

pub use filter::{clean_batch, CleanContext, Cleaned};
pub use offset_map::OffsetMap;
pub use pass::{clean, CleanPlan, CleanSettings, PassResult, PassStats};
pub use swap::CommitOutcome;
pub use throttle::Throttle;

/// Maps the keys of `dirty` (batches in offset order, from the first dirty offset) into
/// `map` until it is full; returns the offset after the last batch mapped whole (where
/// this pass's cleaning ends; the first dirty offset when not even one batch fit).
pub fn build_map<'a>(
    dirty: impl IntoIterator<Item = BatchView<'a>>,
    map: &mut OffsetMap,
    first_dirty: i64,
    decompressed_max_bytes: usize,
) -> Result<i64, BatchError> {
    let mut end = first_dirty;
    for batch in dirty {
        if !map_batch(&batch, map, decompressed_max_bytes)? {
            break;
        }
        end = batch.last_offset() + 1;
    }
    Ok(end)
}

/// Maps the keys of one batch into `map`, whole or not at all: `false` (and nothing
/// mapped) when its new keys do not fit. Control batches and keyless records carry no key
/// to map.
pub fn map_batch(
    batch: &BatchView<'_>,
    map: &mut OffsetMap,
    decompressed_max_bytes: usize,
) -> Result<bool, BatchError> {
    if batch.is_control() {
        return Ok(true);
    }
    let mut keys = Vec::new();
    let mut stream = RecordStream::new(
        batch.compression()?,
        &batch.bytes()[runnel_protocol::batch::HEADER_BYTES..],
        decompressed_max_bytes,
    )?;
    while let Some(record) = stream.next_record()? {
        if let Some(key) = record.key {
            keys.push((key, batch.base_offset() + record.offset_delta));
        }
    }
    let new_keys = {
        let mut distinct: Vec<&[u8]> =
            keys.iter().filter(|(k, _)| map.get(k).is_none()).map(|(k, _)| k.as_slice()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.len()
    };
    if !map.fits(new_keys) {
        return Ok(false);
    }
    for (key, offset) in keys {
        map.put(&key, offset).expect("room was checked");
    }
    Ok(true)
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod pass_tests;
