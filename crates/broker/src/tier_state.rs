//! A follower whose leader holds the offsets it lacks only in remote storage (the leader
//! answered OFFSET_MOVED_TO_TIERED_STORAGE; Kafka's `TierStateMachine`): the replica keeps
//! only the local part, so it starts past the highest offset remote storage holds (the
//! leader deletes nothing locally that is not uploaded, so it still has what follows), with
//! the producer state and leader epochs that remote storage recorded at that point.
//!
//! Invariants: the start comes from the metadata image, never from the leader's word; the
//! producer snapshot is checked against its recorded CRC32C before it is installed; a
//! replica never moves backwards (nothing happens when its log already reaches the start).

use runnel_metadata::remote_log::RemoteSegmentState;
use runnel_tiered::{ObjectKind, SegmentKey};

use crate::broker::Broker;
use crate::partition::Partition;

/// Starts `partition`'s replica above remote storage; the new start, or `None` when there
/// is nothing to do yet (an image that does not show the uploads yet: retried next fetch).
pub async fn start_above_remote(
    broker: &Broker,
    partition: &Partition,
    following: (i32, i32),
) -> Result<Option<i64>, String> {
    let image = broker.metadata.image();
    let Some(remote) = image.remote_logs.get(&(partition.topic_id, partition.index)) else { return Ok(None) };
    let Some(high) = remote.highest_remote_offset() else { return Ok(None) };
    let start = high + 1;
    if start <= partition.log_end_offset() {
        return Ok(None);
    }
    // The segment that ends there holds the producer state at the start (retention may
    // have deleted it: the replica then starts without).
    let segment = remote.segment_for(high).filter(|s| s.end_offset == high);
    let recorded = segment.and_then(|s| match &s.state {
        RemoteSegmentState::CopyFinished { checksums } => {
            Some((s, *checksums.get(ObjectKind::ProducerSnapshot.extension())?))
        }
        _ => None,
    });
    let mut snapshot = None;
    if let (Some(reader), Some((segment, crc))) = (&broker.remote, recorded) {
        let key = SegmentKey {
            prefix: broker.config.tiered.prefix.clone(),
            topic_id: partition.topic_id,
            partition: partition.index,
            base_offset: segment.base_offset,
            segment_id: segment.segment_id,
            kind: ObjectKind::ProducerSnapshot,
        };
        snapshot = Some(reader.store().get(&key.to_string(), Some(crc)).await.map_err(|e| e.to_string())?);
    }
    // Every epoch up to the start: those of the remote segments, oldest first.
    let mut epochs: Vec<(i32, i64)> = remote
        .readable
        .values()
        .filter_map(|id| remote.segments.get(id))
        .flat_map(|s| s.leader_epochs.iter().copied())
        .collect();
    epochs.dedup_by_key(|(epoch, _)| *epoch);
    let installed =
        tokio::task::block_in_place(|| partition.install_tiered_start(following, start, snapshot.as_deref(), &epochs))
            .map_err(|e| e.to_string())?;
    Ok(installed.then_some(start))
}
