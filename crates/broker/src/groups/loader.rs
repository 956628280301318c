//! Start-up replay of one `__consumer_offsets` partition into its shard: every record read
//! back in offset order and applied, exactly as when it was written.

use super::codec;
use super::shard::ShardState;
use super::timers;
use crate::partition::Partition;

/// Why an offsets partition could not be replayed.
pub type GroupLoadError = crate::coordinator_runtime::ReplayError;

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
    let (topic, index) = (partition.topic.clone(), partition.index);
    let mut stats = ReplayStats::default();
    crate::coordinator_runtime::replay_batches(partition, |batch| {
        replay_batch(batch, state, &mut stats, &topic, index)
    })?;
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
    if batch.is_control() {
        // A transaction's end: its offsets count from here (commit) or never (abort).
        match runnel_protocol::control::Marker::of(batch) {
            Ok(Some(marker)) => state.transaction_ended(batch.producer_id(), marker.commit),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(topic, partition = index, offset = batch.base_offset(), %error, "skipping marker")
            }
        }
        return;
    }
    let transactional = batch.is_transactional();
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
            Ok((group_id, record)) if transactional => {
                state.pend(batch.producer_id(), group_id, record);
                stats.records += 1;
            }
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
