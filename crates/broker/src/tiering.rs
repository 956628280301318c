//! Tiered storage's uploader (Kafka's `RLMCopyTask`): every
//! `remote.log.manager.task.interval.ms`, for each partition this node leads whose topic
//! has `remote.storage.enable`, it cleans up copies abandoned by earlier leaders or
//! crashes, then copies the closed segments wholly below the high watermark that remote
//! storage does not hold yet (`runnel_tiered::upload_plan`): `RemoteSegmentStarted` is
//! committed first (the fence), then the segment's `.log` (in parts), its indexes and its
//! leader epochs go to the store, then `CopyFinished` with their checksums.
//!
//! Status: copy only. Reads from remote storage and local retention by
//! `local.retention.*` are not built yet, so local segments are kept whatever is uploaded.
//!
//! Invariants: nothing local is changed or deleted; a copy is readable (FINISHED) only when
//! every object is in the store; a failure leaves a STARTED copy that the next round (of
//! this leader or the next) deletes; at most a few segments per partition and round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use runnel_metadata::remote_log::{RemoteSegment, RemoteSegmentState, RemoteStateChange};
use runnel_metadata::MetadataRecord;
use runnel_tiered::upload_plan::{self, LocalSegment, Upload};
use runnel_tiered::{ObjectKind, RemoteStore, SegmentKey};
use tokio::sync::watch;
use uuid::Uuid;

use crate::broker::Broker;
use crate::partition::Partition;

/// Segments one partition uploads per round at most.
const UPLOADS_PER_ROUND: usize = 32;
/// The part size of a `.log` upload (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 << 20;

/// Starts the uploader when the node has `remote.log.storage.system.enable`.
pub fn spawn(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let config = broker.config.tiered.clone();
    let store = broker.remote.as_ref()?.store().clone();
    let interval = Duration::from_millis(config.task_interval_ms);
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            for partition in broker.replicas.all_partitions() {
                if !partition.is_leader() || !partition.settings().remote_storage {
                    continue;
                }
                if let Err(error) = copy_round(&broker, &store, &config.prefix, &partition).await {
                    broker.stats.remote_copy_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "remote copy round failed; retried next round");
                }
            }
        }
    }))
}

fn commit(broker: &Broker, records: Vec<MetadataRecord>) -> Result<Arc<runnel_metadata::MetadataImage>, String> {
    tokio::task::block_in_place(|| broker.metadata.commit(|_| Ok::<_, ()>(records)))
        .map_err(|e| e.to_string())?
        .map_err(|()| "refused".to_string())
}

fn keys(prefix: &str, partition: &Partition, base_offset: i64, segment_id: Uuid) -> Vec<SegmentKey> {
    SegmentKey::all(prefix, partition.topic_id, partition.index, base_offset, segment_id)
}

async fn copy_round(broker: &Broker, store: &RemoteStore, prefix: &str, partition: &Partition) -> Result<(), String> {
    let (closed, log_start, epochs) = partition
        .with_log(|log| Ok((log.closed_segments(), log.log_start_offset(), log.epoch_entries().to_vec())))
        .map_err(|e| e.to_string())?;
    let uploader = (partition.leader_epoch(), broker.config.node_id, broker.incarnation_id);
    let image = broker.metadata.image();
    let remote = image.remote_logs.get(&(partition.topic_id, partition.index)).cloned();
    let summaries: Vec<LocalSegment> = closed
        .iter()
        .map(|s| LocalSegment {
            base_offset: s.base_offset,
            next_offset: s.next_offset,
            size_bytes: s.size_bytes,
            max_timestamp_ms: s.max_timestamp_ms,
        })
        .collect();
    let plan = upload_plan::plan(
        &summaries,
        partition.high_watermark(),
        log_start,
        remote.as_deref(),
        uploader,
        &BTreeSet::new(),
        UPLOADS_PER_ROUND,
    );
    for id in plan.clean_up {
        let Some(segment) = remote.as_ref().and_then(|r| r.segments.get(&id)).cloned() else { continue };
        let change = |change| MetadataRecord::RemoteSegmentChanged {
            topic_id: partition.topic_id,
            partition: partition.index,
            segment_id: id,
            change,
        };
        if segment.state != RemoteSegmentState::DeleteStarted {
            commit(broker, vec![change(RemoteStateChange::DeleteStarted)])?;
        }
        for key in keys(prefix, partition, segment.base_offset, id) {
            store.delete(&key.to_string()).await.map_err(|e| e.to_string())?;
        }
        commit(broker, vec![change(RemoteStateChange::DeleteFinished)])?;
        broker.stats.remote_abandoned_removed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(topic = %partition.topic, partition = partition.index, segment = %id, "abandoned remote copy removed");
    }
    for upload in plan.uploads {
        let Some(local) = closed.iter().find(|s| s.base_offset == upload.base_offset) else { continue };
        copy_segment(broker, store, prefix, partition, uploader, &upload, local, &epochs).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn copy_segment(
    broker: &Broker,
    store: &RemoteStore,
    prefix: &str,
    partition: &Partition,
    uploader: (i32, i32, Uuid),
    upload: &Upload,
    local: &runnel_storage::ClosedSegment,
    epochs: &[runnel_storage::leader_epoch::EpochEntry],
) -> Result<(), String> {
    let segment_id = Uuid::new_v4();
    let in_segment: Vec<(i32, i64)> = epochs
        .iter()
        .filter(|e| e.start_offset <= upload.end_offset)
        .map(|e| (e.epoch, e.start_offset.max(upload.start_offset)))
        .collect();
    let segment = RemoteSegment {
        segment_id,
        base_offset: upload.base_offset,
        start_offset: upload.start_offset,
        end_offset: upload.end_offset,
        max_timestamp_ms: upload.max_timestamp_ms,
        size_bytes: upload.size_bytes,
        leader_epochs: in_segment,
        leader_epoch: uploader.0,
        broker_id: uploader.1,
        incarnation_id: uploader.2,
        state: RemoteSegmentState::CopyStarted,
    };
    let started =
        MetadataRecord::RemoteSegmentStarted { topic_id: partition.topic_id, partition: partition.index, segment };
    let image = commit(broker, vec![started])?;
    let applied = image
        .remote_logs
        .get(&(partition.topic_id, partition.index))
        .is_some_and(|log| log.segments.contains_key(&segment_id));
    if !applied {
        return Err("the copy was not started (leadership moved)".into());
    }
    let mut checksums = BTreeMap::new();
    for key in keys(prefix, partition, upload.base_offset, segment_id) {
        let name = key.to_string();
        let crc = match key.kind {
            ObjectKind::Log => store.put_file(&name, local.log.clone(), local.size_bytes, PART_BYTES).await,
            ObjectKind::Index | ObjectKind::TimeIndex => {
                let path = if key.kind == ObjectKind::Index { &local.offset_index } else { &local.time_index };
                let bytes = tokio::fs::read(path).await.map_err(|e| format!("{}: {e}", path.display()))?;
                store.put(&name, Bytes::from(bytes)).await
            }
            ObjectKind::LeaderEpochs => {
                // Kafka's leader-epoch-checkpoint format, every entry up to the segment's end.
                let entries: Vec<_> = epochs.iter().filter(|e| e.start_offset <= upload.end_offset).collect();
                let mut text = format!("0\n{}\n", entries.len());
                for e in entries {
                    text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
                }
                store.put(&name, Bytes::from(text)).await
            }
            // Producer snapshots at segment ends are not all kept locally yet.
            ObjectKind::ProducerSnapshot => continue,
        };
        checksums.insert(key.kind.extension().to_string(), crc.map_err(|e| e.to_string())?);
    }
    let finished = MetadataRecord::RemoteSegmentChanged {
        topic_id: partition.topic_id,
        partition: partition.index,
        segment_id,
        change: RemoteStateChange::CopyFinished { checksums },
    };
    commit(broker, vec![finished])?;
    broker.stats.remote_copied_segments.fetch_add(1, Ordering::Relaxed);
    broker.stats.remote_copied_bytes.fetch_add(upload.size_bytes, Ordering::Relaxed);
    tracing::info!(
        topic = %partition.topic,
        partition = partition.index,
        start = upload.start_offset,
        end = upload.end_offset,
        bytes = upload.size_bytes,
        "segment copied to remote storage"
    );
    Ok(())
}
