//! Tiered storage's uploader and expirer (Kafka's `RLMCopyTask` and `RLMExpirationTask`): every
//! `remote.log.manager.task.interval.ms`, for each partition this node leads whose topic
//! has `remote.storage.enable`, it cleans up copies abandoned by earlier leaders or
//! crashes, then copies the closed segments wholly below the high watermark that remote
//! storage does not hold yet (`runnel_tiered::upload_plan`): `RemoteSegmentStarted` is
//! committed first (the fence), then the segment's `.log` (in parts), its indexes and its
//! leader epochs go to the store, then `CopyFinished` with their checksums. Then total
//! retention (`retention.ms`, `retention.bytes` counting local-only and remote bytes, and
//! the log start DeleteRecords sets) deletes the oldest remote segments
//! (`runnel_tiered::expiry_plan`): the new remote log start is committed first, then each
//! segment is DELETE_STARTED, its objects deleted, and DELETE_FINISHED. Local segments are
//! deleted by local retention (`local.retention.*`, in the retention pass) once uploaded.
//!
//! The remote data of a deleted topic stays in the image (its remote logs outlive the
//! topic: a durable intent) until one node, the lowest-id unfenced broker, deletes every
//! object under the partition's prefix and commits `RemoteLogDeleted`.
//!
//! Invariants: nothing local is changed or deleted here; a copy is readable (FINISHED) only
//! when every object is in the store; a failure leaves a STARTED (or DELETE_STARTED) segment
//! that the next round (of this leader or the next) deletes; a segment stops being readable
//! before its objects are deleted; at most a few segments per partition and round.

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
                if !partition.is_leader() || !partition.remote_storage() {
                    continue;
                }
                if let Err(error) = copy_round(&broker, &store, &config.prefix, &partition).await {
                    broker.stats.remote_copy_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "remote copy round failed; retried next round");
                    continue;
                }
                if let Err(error) = expire_round(&broker, &store, &config.prefix, &partition).await {
                    broker.stats.remote_copy_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "remote retention round failed; retried next round");
                }
            }
            if let Err(error) = sweep_deleted_topics(&broker, &store, &config.prefix).await {
                tracing::warn!(%error, "deleting a deleted topic's remote data failed; retried next round");
            }
        }
    }))
}

/// For a partition whose segments go to remote storage on this node, the highest offset
/// remote storage holds (-1: none): its local segments may go only up to there (local
/// retention, DeleteRecords). `None` for every other partition.
pub fn uploaded_through(broker: &Broker, image: &runnel_metadata::MetadataImage, partition: &Partition) -> Option<i64> {
    (broker.remote.is_some() && partition.remote_storage()).then(|| {
        image
            .remote_logs
            .get(&(partition.topic_id, partition.index))
            .and_then(|log| log.highest_remote_offset())
            .unwrap_or(-1)
    })
}

/// What `partition` has locally and remotely, when this node tiers and its topic has
/// `remote.storage.enable` (DescribeLogDirs' Runnel tag and the metrics).
pub fn partition_state(broker: &Broker, partition: &Partition) -> Option<runnel_protocol::runnel_tags::TieredState> {
    broker.remote.as_ref()?;
    if !partition.remote_storage() {
        return None;
    }
    let image = broker.metadata.image();
    let remote = image.remote_logs.get(&(partition.topic_id, partition.index));
    let highest = remote.and_then(|r| r.highest_remote_offset()).unwrap_or(-1);
    let (local_start, lag_segments, lag_bytes) = partition
        .inspect_log(|log| {
            let lagging: Vec<_> = log.closed_segments().into_iter().filter(|s| s.next_offset - 1 > highest).collect();
            Ok((log.log_start_offset(), lagging.len() as u64, lagging.iter().map(|s| s.size_bytes).sum::<u64>()))
        })
        .ok()?;
    let readable = || remote.into_iter().flat_map(|r| r.readable.values().filter_map(|id| r.segments.get(id)));
    Some(runnel_protocol::runnel_tags::TieredState {
        local_log_start: local_start,
        remote_log_start: remote.and_then(|r| r.start_offset()).unwrap_or(-1),
        highest_remote_offset: highest,
        remote_segments: readable().count() as u64,
        remote_bytes: readable().map(|s| s.size_bytes).sum(),
        upload_lag_segments: lag_segments,
        upload_lag_bytes: lag_bytes,
    })
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
    // Below the last stable offset, as Kafka copies: a segment goes up once every
    // transaction in it has ended.
    let plan = upload_plan::plan(
        &summaries,
        partition.last_stable_offset(),
        log_start,
        remote.as_deref(),
        uploader,
        &BTreeSet::new(),
        UPLOADS_PER_ROUND,
    );
    for id in plan.clean_up {
        let Some(segment) = remote.as_ref().and_then(|r| r.segments.get(&id)).cloned() else { continue };
        delete_segment(broker, store, prefix, partition, &segment).await?;
        broker.stats.remote_abandoned_removed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(topic = %partition.topic, partition = partition.index, segment = %id, "abandoned remote copy removed");
    }
    for upload in plan.uploads {
        let Some(local) = closed.iter().find(|s| s.base_offset == upload.base_offset) else { continue };
        copy_segment(broker, store, prefix, partition, uploader, &upload, local, &epochs).await?;
    }
    Ok(())
}

/// Deletes one remote segment: DELETE_STARTED (no longer readable), its objects, then
/// DELETE_FINISHED.
async fn delete_segment(
    broker: &Broker,
    store: &RemoteStore,
    prefix: &str,
    partition: &Partition,
    segment: &RemoteSegment,
) -> Result<(), String> {
    let change = |change| MetadataRecord::RemoteSegmentChanged {
        topic_id: partition.topic_id,
        partition: partition.index,
        segment_id: segment.segment_id,
        change,
    };
    if segment.state != RemoteSegmentState::DeleteStarted {
        commit(broker, vec![change(RemoteStateChange::DeleteStarted)])?;
    }
    for key in keys(prefix, partition, segment.base_offset, segment.segment_id) {
        store.delete(&key.to_string()).await.map_err(|e| e.to_string())?;
    }
    commit(broker, vec![change(RemoteStateChange::DeleteFinished)])?;
    Ok(())
}

/// Total retention of one led partition's remote segments (see the module doc).
async fn expire_round(broker: &Broker, store: &RemoteStore, prefix: &str, partition: &Partition) -> Result<(), String> {
    let image = broker.metadata.image();
    let Some(remote) = image.remote_logs.get(&(partition.topic_id, partition.index)).cloned() else { return Ok(()) };
    let uploaded = remote.highest_remote_offset().unwrap_or(-1);
    let local_only = partition
        .with_log(|log| {
            let closed = log.closed_segments();
            let uploaded_bytes: u64 =
                closed.iter().filter(|s| s.next_offset - 1 <= uploaded).map(|s| s.size_bytes).sum();
            Ok(log.size_bytes().saturating_sub(uploaded_bytes))
        })
        .map_err(|e| e.to_string())?;
    let log = &partition.settings().log;
    let plan = runnel_tiered::expiry_plan::plan(
        &remote,
        log.retention_ms,
        log.retention_bytes,
        local_only,
        crate::clock::now_ms(),
    );
    if plan.delete.is_empty() {
        return Ok(());
    }
    if let Some(start) = plan.new_start {
        commit(
            broker,
            vec![MetadataRecord::RemoteLogStart {
                topic_id: partition.topic_id,
                partition: partition.index,
                offset: start,
            }],
        )?;
    }
    for id in &plan.delete {
        let Some(segment) = remote.segments.get(id) else { continue };
        delete_segment(broker, store, prefix, partition, segment).await?;
        broker.stats.remote_expired_segments.fetch_add(1, Ordering::Relaxed);
        tracing::info!(topic = %partition.topic, partition = partition.index, start = segment.start_offset, end = segment.end_offset, "remote segment deleted by retention");
    }
    Ok(())
}

/// Deletes the remote data of partitions whose topic is gone, on the lowest-id unfenced
/// broker only (every node decides alike from the image).
async fn sweep_deleted_topics(broker: &Broker, store: &RemoteStore, prefix: &str) -> Result<(), String> {
    let image = broker.metadata.image();
    let sweeper = image.brokers.iter().filter(|(_, b)| !b.fenced).map(|(id, _)| *id).min();
    if sweeper != Some(broker.config.node_id) {
        return Ok(());
    }
    let orphaned: Vec<(Uuid, i32)> =
        image.remote_logs.keys().filter(|(topic_id, _)| image.topic_by_id(topic_id).is_none()).copied().collect();
    for (topic_id, partition) in orphaned {
        let folder = runnel_tiered::layout::partition_prefix(prefix, topic_id, partition);
        for (key, _) in store.list(&folder).await.map_err(|e| e.to_string())? {
            store.delete(&key).await.map_err(|e| e.to_string())?;
        }
        commit(broker, vec![MetadataRecord::RemoteLogDeleted { topic_id, partition }])?;
        tracing::info!(%topic_id, partition, "a deleted topic's remote data deleted");
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
    // The epoch in effect at the segment's start, then those that begin inside it.
    let at_start = epochs.iter().rev().find(|e| e.start_offset <= upload.start_offset);
    let inside = epochs.iter().filter(|e| e.start_offset > upload.start_offset && e.start_offset <= upload.end_offset);
    let in_segment: Vec<(i32, i64)> = at_start
        .map(|e| (e.epoch, upload.start_offset))
        .into_iter()
        .chain(inside.map(|e| (e.epoch, e.start_offset)))
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
            // The aborted transactions whose markers are in the segment, when it has any.
            ObjectKind::TransactionIndex => {
                let file = partition.with_log(|log| Ok(log.txn_index_file(upload.base_offset)));
                let Ok(Some(path)) = file else { continue };
                let Ok(bytes) = tokio::fs::read(&path).await else { continue };
                store.put(&name, Bytes::from(bytes)).await
            }
            // The producer state at the segment's end (kept locally until uploaded; a
            // segment rolled before its topic was tiered may have none).
            ObjectKind::ProducerSnapshot => {
                let file = partition.with_log(|log| Ok(log.producer_snapshot_file(local.next_offset)));
                let Ok(Some(path)) = file else { continue };
                let Ok(bytes) = tokio::fs::read(&path).await else { continue };
                store.put(&name, Bytes::from(bytes)).await
            }
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
