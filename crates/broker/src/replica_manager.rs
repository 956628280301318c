//! The partitions this node hosts, kept in step with the metadata image.
//!
//! Owns the data directory's partition folders and the node-wide checkpoint files
//! (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`). Lookups by topic
//! name take a read lock on a map of topics, then index a vector: no allocation per lookup.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use runnel_metadata::MetadataImage;
use runnel_protocol::ResponseError;
use runnel_storage::{parse_partition_dir, partition_dir_name, OffsetCheckpoint, PartitionLog, StorageError};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::metadata_store::METADATA_DIR;
use crate::partition::Partition;
use crate::topic_config;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// High watermarks, so a restarted replica does not expose data it never knew committed.
pub const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";
const PARTITION_METADATA: &str = "partition.metadata";

pub struct TopicPartitions {
    pub topic_id: Uuid,
    /// Indexed by partition number; `None` where this node holds no replica.
    pub partitions: Vec<Option<Arc<Partition>>>,
}

pub struct ReplicaManager {
    data_dir: PathBuf,
    node_id: i32,
    topics: RwLock<HashMap<String, Arc<TopicPartitions>>>,
    /// `records_applied` of the newest image synced: an older one (from a task that raced
    /// the image follower) is ignored rather than undoing newer changes.
    synced_records: std::sync::atomic::AtomicU64,
}

type Checkpoints = HashMap<(String, i32), i64>;

/// The checkpoints read at start-up: recovery points, log starts, high watermarks.
#[derive(Default)]
struct StartCheckpoints {
    recovery: Checkpoints,
    starts: Checkpoints,
    high_watermarks: Checkpoints,
}

impl ReplicaManager {
    pub fn new(data_dir: &Path, node_id: i32) -> Self {
        ReplicaManager {
            data_dir: data_dir.to_path_buf(),
            node_id,
            topics: RwLock::new(HashMap::new()),
            synced_records: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read().expect("topics lock");
        topics.get(topic)?.partitions.get(usize::try_from(index).ok()?)?.clone()
    }

    /// The partition if this node leads it in `image`, else the error Kafka gives: unknown
    /// topic or partition, or NOT_LEADER_OR_FOLLOWER (the client refreshes its metadata).
    pub fn led_partition(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        let described = image
            .topic(topic)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if described.leader != self.node_id {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        // The image may be ahead of the partition by a moment: it serves once it has taken
        // the leadership (epoch assigned, followers reset).
        self.partition(topic, index).filter(|p| p.is_leader()).ok_or(ResponseError::NotLeaderOrFollower)
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        let topics = self.topics.read().expect("topics lock");
        topics.values().flat_map(|t| t.partitions.iter().flatten().cloned()).collect()
    }

    /// Opens every partition the image assigns to this node, recovering as needed, and
    /// removes partition folders of topics that no longer exist.
    pub fn open_all(
        &self,
        image: &MetadataImage,
        config: &BrokerConfig,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let checkpoints = StartCheckpoints {
            recovery: read_checkpoint(&self.data_dir.join(RECOVERY_POINT_CHECKPOINT))?,
            starts: read_checkpoint(&self.data_dir.join(LOG_START_CHECKPOINT))?,
            high_watermarks: read_checkpoint(&self.data_dir.join(HIGH_WATERMARK_CHECKPOINT))?,
        };
        self.remove_stray_dirs(image)?;
        self.sync(image, config, clean_shutdown, &checkpoints, now_ms)
    }

    /// Brings hosted partitions in line with `image`: creates new ones, drops deleted ones.
    pub fn sync_with(&self, image: &MetadataImage, config: &BrokerConfig, now_ms: i64) -> Result<(), StorageError> {
        self.sync(image, config, true, &StartCheckpoints::default(), now_ms)
    }

    fn sync(
        &self,
        image: &MetadataImage,
        config: &BrokerConfig,
        clean: bool,
        checkpoints: &StartCheckpoints,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let mut topics = self.topics.write().expect("topics lock");
        let synced = self.synced_records.load(std::sync::atomic::Ordering::Acquire);
        if image.records_applied < synced {
            return Ok(());
        }
        self.synced_records.store(image.records_applied, std::sync::atomic::Ordering::Release);
        let removed: Vec<String> = topics
            .iter()
            .filter(|(name, t)| image.topic(name).is_none_or(|i| i.topic_id != t.topic_id))
            .map(|(name, _)| name.clone())
            .collect();
        for name in removed {
            let topic = topics.remove(&name).expect("listed above");
            for partition in topic.partitions.iter().flatten() {
                if let Some(log) = partition.take_log() {
                    log.delete()?;
                }
            }
        }
        for (name, topic) in &image.topics {
            let hosted = topics.get(name);
            let unchanged_hosting = hosted.is_some_and(|h| {
                h.partitions.len() == topic.partitions.len()
                    && h.partitions
                        .iter()
                        .zip(&topic.partitions)
                        .all(|(h, p)| h.is_some() == p.replicas.contains(&self.node_id))
            });
            if let Some(hosted) = hosted {
                // Leadership, epochs and ISRs may have changed: hosted partitions follow.
                for (p, partition) in topic.partitions.iter().zip(&hosted.partitions) {
                    if let Some(partition) = partition.as_ref().filter(|_| p.replicas.contains(&self.node_id)) {
                        if let Err(e) = partition.apply_image(p, now_ms) {
                            tracing::error!(topic = %name, partition = p.partition, error = %e, "changing role failed");
                        }
                    }
                }
            }
            if unchanged_hosting {
                continue;
            }
            // Partitions added, or replicas moved onto or off this node (reassignment).
            let settings = topic_config::settings(config, image.topic_configs(name));
            let previous = hosted.map(|t| t.partitions.clone()).unwrap_or_default();
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let existing = previous.get(p.partition as usize).cloned().flatten();
                let wanted = p.replicas.contains(&self.node_id);
                match (existing, wanted) {
                    (Some(partition), true) => partitions.push(Some(partition)),
                    (Some(partition), false) => {
                        tracing::info!(topic = %name, partition = p.partition, "replica moved away; deleting it");
                        if let Some(log) = partition.take_log() {
                            log.delete()?;
                        }
                        partitions.push(None);
                    }
                    (None, false) => partitions.push(None),
                    (None, true) => {
                        let key = (name.clone(), p.partition);
                        let recovery_point = checkpoints.recovery.get(&key).copied().unwrap_or(0);
                        let log_start = checkpoints.starts.get(&key).copied().unwrap_or(0);
                        let high_watermark = checkpoints.high_watermarks.get(&key).copied().unwrap_or(0);
                        let dir = self.data_dir.join(partition_dir_name(name, p.partition));
                        prepare_dir(&dir, topic.topic_id)?;
                        let log =
                            PartitionLog::open(&dir, settings.log.clone(), recovery_point, log_start, clean, now_ms)?;
                        partitions.push(Some(Arc::new(Partition::new(
                            name.clone(),
                            topic.topic_id,
                            self.node_id,
                            p,
                            log,
                            settings.clone(),
                            high_watermark,
                            now_ms,
                        ))));
                    }
                }
            }
            topics.insert(name.clone(), Arc::new(TopicPartitions { topic_id: topic.topic_id, partitions }));
        }
        Ok(())
    }

    fn remove_stray_dirs(&self, image: &MetadataImage) -> Result<(), StorageError> {
        for entry in std::fs::read_dir(&self.data_dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if name == METADATA_DIR {
                continue;
            }
            let Some((topic, index)) = parse_partition_dir(&name) else { continue };
            let known = image
                .topic(&topic)
                .and_then(|t| t.partitions.get(index as usize))
                .is_some_and(|p| p.replicas.contains(&self.node_id));
            if !known {
                tracing::info!(dir = %name, "removing partition folder of a deleted topic");
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    /// Writes the recovery-point and log-start checkpoints for every hosted partition.
    pub fn write_checkpoints(&self) -> Result<(), StorageError> {
        let mut recovery = Vec::new();
        let mut starts = Vec::new();
        let mut high_watermarks = Vec::new();
        for partition in self.all_partitions() {
            let key = (partition.topic.clone(), partition.index);
            if let Ok((r, s)) = partition.with_log(|log| Ok((log.recovery_point(), log.log_start_offset()))) {
                recovery.push((key.clone(), r));
                starts.push((key.clone(), s));
                high_watermarks.push((key, partition.high_watermark()));
            }
        }
        OffsetCheckpoint::write(&self.data_dir.join(RECOVERY_POINT_CHECKPOINT), &recovery)?;
        OffsetCheckpoint::write(&self.data_dir.join(LOG_START_CHECKPOINT), &starts)?;
        OffsetCheckpoint::write(&self.data_dir.join(HIGH_WATERMARK_CHECKPOINT), &high_watermarks)?;
        Ok(())
    }

    /// Applies retention to every partition, and forgets idempotent producers idle for
    /// `producer_expiration_ms`; returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64, producer_expiration_ms: i64) -> usize {
        let mut deleted = 0;
        for partition in self.all_partitions() {
            let _ = partition.with_log(|log| Ok(log.expire_producers(now_ms, producer_expiration_ms)));
            match partition.with_log(|log| log.apply_retention(now_ms)) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed")
                }
            }
        }
        deleted
    }

    /// Time-based flush policy (`flush.ms`).
    pub fn maybe_flush(&self, now_ms: i64) {
        for partition in self.all_partitions() {
            if let Err(e) = partition.with_log(|log| log.maybe_flush(now_ms)) {
                tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "flush failed");
            }
        }
    }

    /// Flushes and closes every log, then writes the checkpoints: the clean-shutdown path.
    pub fn close_all(&self) -> Result<(), StorageError> {
        let mut recovery = Vec::new();
        let mut starts = Vec::new();
        let mut high_watermarks = Vec::new();
        for partition in self.all_partitions() {
            let high_watermark = partition.high_watermark();
            if let Some(mut log) = partition.take_log() {
                log.flush()?;
                let key = (partition.topic.clone(), partition.index);
                recovery.push((key.clone(), log.recovery_point()));
                starts.push((key.clone(), log.log_start_offset()));
                high_watermarks.push((key, high_watermark));
                log.close()?;
            }
        }
        OffsetCheckpoint::write(&self.data_dir.join(RECOVERY_POINT_CHECKPOINT), &recovery)?;
        OffsetCheckpoint::write(&self.data_dir.join(LOG_START_CHECKPOINT), &starts)?;
        OffsetCheckpoint::write(&self.data_dir.join(HIGH_WATERMARK_CHECKPOINT), &high_watermarks)?;
        Ok(())
    }
}

fn read_checkpoint(path: &Path) -> Result<Checkpoints, StorageError> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    OffsetCheckpoint::read(path)
}

/// Creates the partition folder with its `partition.metadata`; a folder left by an older
/// topic of the same name (another topic id) is removed first.
fn prepare_dir(dir: &Path, topic_id: Uuid) -> Result<(), StorageError> {
    let file = dir.join(PARTITION_METADATA);
    let expected = format!("version: 0\ntopic_id: {topic_id}\n");
    if let Ok(existing) = std::fs::read_to_string(&file) {
        if existing == expected {
            return Ok(());
        }
        tracing::info!(dir = %dir.display(), "replacing partition folder of an older topic");
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&file, expected)?;
    Ok(())
}
