//! Start-up replay of one `__consumer_offsets` partition into its shard: every record read
//! back in offset order and applied, exactly as when it was written.

use std::os::unix::fs::FileExt;

use runnel_protocol::batch::{BatchError, BatchIter};

use super::codec;
use super::shard::ShardState;
use super::timers;
use crate::partition::{Partition, PartitionError};

/// Bytes read per step while replaying.
const REPLAY_READ_BYTES: usize = 1 << 20;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum GroupLoadError {
    #[error("reading {topic}-{partition}: {source}")]
    Partition { topic: String, partition: i32, source: PartitionError },
    #[error("reading {topic}-{partition}: {source}")]
    Io { topic: String, partition: i32, source: std::io::Error },
    #[error("{topic}-{partition} holds a batch that does not frame: {source}")]
    Batch { topic: String, partition: i32, source: BatchError },
}

/// What a replay found, for the start-up log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    pub records: u64,
    /// Records that could not be decoded (a newer format, a foreign writer) and were skipped.
    pub skipped: u64,
}

/// Replays `partition` from its log start to its log end into `state`, then gives every
/// loaded member a full session. To the log end, not the high watermark: a new leader is
/// in the ISR and holds every committed write, but learns the high watermark only as its
/// followers fetch (Kafka's coordinator also loads to the log end).
pub fn replay(partition: &Partition, state: &mut ShardState, now_ms: i64) -> Result<ReplayStats, GroupLoadError> {
    let topic = partition.topic.clone();
    let index = partition.index;
    let partition_error = |source| GroupLoadError::Partition { topic: topic.clone(), partition: index, source };
    let mut stats = ReplayStats::default();
    let mut offset = partition.with_log(|log| Ok(log.log_start_offset())).map_err(partition_error)?;
    let end = partition.log_end_offset();
    while offset < end {
        let read = partition.with_log(|log| log.read(offset, REPLAY_READ_BYTES, end, true)).map_err(partition_error)?;
        let Some(slice) = read.slice else { break };
        let mut bytes = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut bytes, slice.position).map_err(|source| GroupLoadError::Io {
            topic: topic.clone(),
            partition: index,
            source,
        })?;
        let before = offset;
        for item in BatchIter::new(&bytes) {
            let (_, batch) =
                item.map_err(|source| GroupLoadError::Batch { topic: topic.clone(), partition: index, source })?;
            if batch.last_offset() < offset {
                continue;
            }
            replay_batch(&batch, state, &mut stats, &topic, index);
            offset = batch.last_offset() + 1;
        }
        assert!(offset > before, "a read that returns whole batches makes progress");
    }
    let ids: Vec<String> = state.groups.keys().cloned().collect();
    for group_id in ids {
        let outcome = timers::on_loaded(&state.groups[&group_id], now_ms);
        for record in &outcome.records {
            state.replay(&group_id, record);
        }
    }
    state.reindex_all();
    Ok(stats)
}

fn replay_batch(
    batch: &runnel_protocol::batch::BatchView,
    state: &mut ShardState,
    stats: &mut ReplayStats,
    topic: &str,
    index: i32,
) {
    let records = match batch.records() {
        Ok(records) => records,
        Err(error) => {
            // Runnel writes uncompressed batches; anything else was not written by us.
            tracing::warn!(topic, partition = index, offset = batch.base_offset(), %error, "skipping batch");
            stats.skipped += u64::from(batch.record_count().max(0) as u32);
            return;
        }
    };
    for record in records {
        let decoded = record.key.ok_or(codec::CodecError::Invalid("record without a key"));
        match decoded.and_then(|key| codec::decode(key, record.value)) {
            Ok((group_id, record)) => {
                state.replay(&group_id, &record);
                stats.records += 1;
            }
            Err(error) => {
                let offset = batch.base_offset() + record.offset_delta;
                tracing::warn!(topic, partition = index, offset, %error, "skipping undecodable group record");
                stats.skipped += 1;
            }
        }
    }
}
