//! The partitions this node hosts, kept in step with the metadata image.
//!
//! Owns the data directory's partition folders and the node-wide checkpoint files
//! (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `replication-offset-checkpoint`). Lookups by topic name take a read lock on a map of
//! topics, then index a vector: no allocation per lookup.
//!
//! Invariants:
//! - No disk I/O under the `topics` lock: a sync decides what to open and delete under a
//!   short read lock, does the I/O with no lock that lookups take (syncs are serialised by
//!   a lock of their own), and installs the result under a short write lock. A produce or
//!   fetch lookup never waits for a folder to be created, recovered or deleted.
//! - A partition that fails to open is offline on this node (reported in logs, metrics,
//!   Metadata's offline replicas and DescribeLogDirs; requests get KAFKA_STORAGE_ERROR);
//!   every other partition serves and the node starts. It stays offline until the node
//!   restarts (as a Kafka log directory does) or its topic is deleted.
//! - Start-up moves stray folders aside instead of deleting them (`log_dirs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use runnel_metadata::{MetadataImage, PartitionImage};
use runnel_protocol::ResponseError;
use runnel_storage::{partition_dir_name, OffsetCheckpoint, PartitionLog, StorageError};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::locks::{MutexExt, RwLockExt};
use crate::log_dirs::{self, Checkpoints, HIGH_WATERMARK_CHECKPOINT, LOG_START_CHECKPOINT, RECOVERY_POINT_CHECKPOINT};
use crate::partition::{Partition, PartitionError};
use crate::topic_config::{self, TopicSettings};

pub struct TopicPartitions {
    pub topic_id: Uuid,
    /// Indexed by partition number; `None` where this node holds no replica (or its replica
    /// failed to open: see [`ReplicaManager::offline`]).
    pub partitions: Vec<Option<Arc<Partition>>>,
}

pub struct ReplicaManager {
    data_dir: PathBuf,
    node_id: i32,
    name_max: usize,
    topics: RwLock<HashMap<String, Arc<TopicPartitions>>>,
    /// Replicas this node should host but could not open: the topic id and the reason.
    offline: RwLock<BTreeMap<(String, i32), (Uuid, String)>>,
    /// Serialises syncs, which do their I/O outside `topics`.
    sync_lock: Mutex<()>,
}

/// The checkpoints read at start-up: recovery points, log starts, high watermarks.
struct StartCheckpoints {
    /// Whether the logs may skip recovery: a clean shutdown, with an intact recovery
    /// checkpoint.
    clean: bool,
    recovery: Checkpoints,
    starts: Checkpoints,
    high_watermarks: Checkpoints,
}

impl StartCheckpoints {
    fn running() -> Self {
        StartCheckpoints {
            clean: true,
            recovery: Checkpoints::new(),
            starts: Checkpoints::new(),
            high_watermarks: Checkpoints::new(),
        }
    }
}

/// What one sync does, decided under the read lock.
enum Step {
    /// Close and delete this replica's log (topic deleted, or replica moved away).
    Delete(Arc<Partition>),
    /// Open the replica of `topic` partition `image.partition` (new partition, replica moved
    /// here, or an earlier attempt failed).
    Open { topic: String, topic_id: Uuid, image: Box<PartitionImage>, settings: Box<TopicSettings> },
}

impl ReplicaManager {
    pub fn new(data_dir: &Path, node_id: i32) -> Self {
        ReplicaManager {
            data_dir: data_dir.to_path_buf(),
            node_id,
            name_max: log_dirs::name_max(data_dir),
            topics: RwLock::new(HashMap::new()),
            offline: RwLock::new(BTreeMap::new()),
            sync_lock: Mutex::new(()),
        }
    }

    /// Whether a topic of this name and partition count has folder names the data
    /// directory's file system takes; the message for the client if not.
    pub fn check_folder_names(&self, topic: &str, partitions: i32) -> Result<(), String> {
        log_dirs::check_folder_names(topic, partitions, self.name_max)
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read_locked();
        topics.get(topic)?.partitions.get(usize::try_from(index).ok()?)?.clone()
    }

    /// Replicas this node should host but could not open, with why.
    pub fn offline(&self) -> BTreeMap<(String, i32), String> {
        self.offline.read_locked().iter().map(|(key, (_, why))| (key.clone(), why.clone())).collect()
    }

    /// The partitions of `topic` whose replica on this node is offline (no copy of the map).
    pub fn offline_partitions(&self, topic: &str) -> Vec<i32> {
        let offline = self.offline.read_locked();
        let from = (topic.to_string(), i32::MIN);
        offline.range(from..).take_while(|((name, _), _)| name == topic).map(|((_, index), _)| *index).collect()
    }

    /// The offline replicas as (topic id, partition): what this node reports to the
    /// controller.
    pub fn offline_ids(&self) -> std::collections::BTreeSet<(Uuid, i32)> {
        self.offline.read_locked().iter().map(|((_, index), (id, _))| (*id, *index)).collect()
    }

    pub fn is_offline(&self, topic: &str, index: i32) -> bool {
        self.offline.read_locked().contains_key(&(topic.to_string(), index))
    }

    /// The partition if this node leads it in `image`, else the error Kafka gives: unknown
    /// topic or partition, NOT_LEADER_OR_FOLLOWER (the client refreshes its metadata), or
    /// KAFKA_STORAGE_ERROR when this node's replica is offline.
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
        match self.partition(topic, index) {
            Some(p) if p.is_leader() => Ok(p),
            None if self.is_offline(topic, index) => Err(ResponseError::KafkaStorageError),
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }

    /// The partition a consumer may read on this node: the leader's, or with
    /// `follower_reads` (a Fetch v11+ from a consumer, KIP-392) a follower's, which serves up
    /// to the high watermark it has learned.
    pub fn readable_partition(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        follower_reads: bool,
    ) -> Result<Arc<Partition>, ResponseError> {
        let led = self.led_partition(image, topic, index);
        if !follower_reads || led.is_ok() {
            return led;
        }
        let is_replica = image
            .topic(topic)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
            .is_some_and(|p| p.replicas.contains(&self.node_id));
        match self.partition(topic, index) {
            Some(p) if is_replica && matches!(p.role(), crate::partition::Role::Follower { .. }) => Ok(p),
            _ => led,
        }
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        let topics = self.topics.read_locked();
        topics.values().flat_map(|t| t.partitions.iter().flatten().cloned()).collect()
    }

    /// Opens every partition the image assigns to this node, recovering as needed, and
    /// moves aside partition folders the image does not name. A partition that fails to
    /// open is offline; the others serve.
    pub fn open_all(&self, image: &MetadataImage, config: &BrokerConfig, clean_shutdown: bool, now_ms: i64) {
        let recovery = log_dirs::read_checkpoint(&self.data_dir.join(RECOVERY_POINT_CHECKPOINT));
        let checkpoints = StartCheckpoints {
            // Without an intact recovery checkpoint every log is scanned in full.
            clean: clean_shutdown && recovery.is_some(),
            recovery: recovery.unwrap_or_default(),
            starts: log_dirs::read_checkpoint(&self.data_dir.join(LOG_START_CHECKPOINT)).unwrap_or_default(),
            high_watermarks: log_dirs::read_checkpoint(&self.data_dir.join(HIGH_WATERMARK_CHECKPOINT))
                .unwrap_or_default(),
        };
        let hosted = |topic: &str, index: i32| {
            image
                .topic(topic)
                .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
                .is_some_and(|p| p.replicas.contains(&self.node_id))
        };
        if let Err(e) = log_dirs::move_aside_strays(&self.data_dir, hosted) {
            tracing::error!(error = %e, "looking for stray partition folders failed");
        }
        if let Err(e) = self.sync(image, None, config, &checkpoints, now_ms) {
            tracing::error!(error = %e, "some partitions could not be opened; they are offline on this node");
        }
    }

    /// The replica manager's publisher (see `publisher.rs`): brings the hosted partitions of
    /// `topics` (`None`: every topic, when the broker defaults changed) in line with `image`
    /// (creates new ones, drops deleted ones, changes roles and settings); the others are
    /// untouched. Everything that can be done is done; the
    /// first failure is returned.
    pub fn publish(
        &self,
        image: &MetadataImage,
        topics: Option<&BTreeSet<String>>,
        config: &BrokerConfig,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.sync(image, topics, config, &StartCheckpoints::running(), now_ms)
    }

    /// `only`: the topics to bring in line (`None`: every topic).
    fn sync(
        &self,
        image: &MetadataImage,
        only: Option<&BTreeSet<String>>,
        config: &BrokerConfig,
        checkpoints: &StartCheckpoints,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let _one_at_a_time = self.sync_lock.locked();
        let steps = self.plan(image, only, config, now_ms);
        let mut first_error = None;
        let mut opened = HashMap::new();
        for step in steps {
            match step {
                Step::Delete(partition) => {
                    if let Some(log) = partition.take_log() {
                        if let Err(e) = log.delete() {
                            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "deleting a replica failed");
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Step::Open { topic, topic_id, image, settings } => {
                    let key = (topic.clone(), image.partition);
                    match self.open_partition(&topic, topic_id, &image, *settings, checkpoints, now_ms) {
                        Ok(partition) => {
                            self.offline.write_locked().remove(&key);
                            opened.insert(key, Arc::new(partition));
                        }
                        Err(e) => {
                            tracing::error!(topic = %topic, partition = image.partition, error = %e, "opening a replica failed; it is offline on this node");
                            self.offline.write_locked().insert(key, (topic_id, e.to_string()));
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        self.install(image, only, opened);
        first_error.map_or(Ok(()), Err)
    }

    /// Under the read lock: hosted partitions take their new roles; returns the replicas
    /// to delete and to open.
    fn plan(
        &self,
        image: &MetadataImage,
        only: Option<&BTreeSet<String>>,
        config: &BrokerConfig,
        now_ms: i64,
    ) -> Vec<Step> {
        let wanted = |name: &str| only.is_none_or(|only| only.contains(name));
        let topics = self.topics.read_locked();
        let mut steps = Vec::new();
        for (name, hosted) in topics.iter().filter(|(name, _)| wanted(name)) {
            let current = image.topic(name).filter(|t| t.topic_id == hosted.topic_id);
            // Settings changed at runtime (IncrementalAlterConfigs) apply to hosted replicas
            // here, without a restart.
            let settings = current.map(|_| topic_config::settings(config, image.topic_configs(name)));
            for (index, partition) in hosted.partitions.iter().enumerate() {
                let Some(partition) = partition else { continue };
                let wanted =
                    current.and_then(|t| t.partitions.get(index)).filter(|p| p.replicas.contains(&self.node_id));
                match wanted {
                    // Leadership, epochs and ISRs may have changed: hosted partitions follow.
                    Some(p) => {
                        if let Err(e) = partition.apply_image(p, now_ms) {
                            tracing::error!(topic = %name, partition = p.partition, error = %e, "changing role failed");
                        }
                        if let Some(settings) = &settings {
                            partition.update_settings(settings);
                        }
                    }
                    None => {
                        if current.is_some() {
                            tracing::info!(topic = %name, partition = index, "replica moved away; deleting it");
                        }
                        steps.push(Step::Delete(partition.clone()));
                    }
                }
            }
        }
        let offline = self.offline.read_locked();
        for (name, topic) in image.topics.iter().filter(|(name, _)| wanted(name)) {
            let hosted = topics.get(name).filter(|h| h.topic_id == topic.topic_id);
            let settings = topic_config::settings(config, image.topic_configs(name));
            for p in topic.partitions.iter().filter(|p| p.replicas.contains(&self.node_id)) {
                let held = hosted.and_then(|h| h.partitions.get(p.partition as usize)).is_some_and(Option::is_some);
                let failed = offline.get(&(name.clone(), p.partition)).is_some_and(|(id, _)| *id == topic.topic_id);
                if !held && !failed {
                    steps.push(Step::Open {
                        topic: name.clone(),
                        topic_id: topic.topic_id,
                        image: Box::new(p.clone()),
                        settings: Box::new(settings.clone()),
                    });
                }
            }
        }
        steps
    }

    fn open_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        image: &PartitionImage,
        settings: TopicSettings,
        checkpoints: &StartCheckpoints,
        now_ms: i64,
    ) -> Result<Partition, StorageError> {
        let key = (topic.to_string(), image.partition);
        let recovery_point = checkpoints.recovery.get(&key).copied().unwrap_or(0);
        let log_start = checkpoints.starts.get(&key).copied().unwrap_or(0);
        let high_watermark = checkpoints.high_watermarks.get(&key).copied().unwrap_or(0);
        let dir = self.data_dir.join(partition_dir_name(topic, image.partition));
        log_dirs::prepare_dir(&dir, topic_id)?;
        let log = PartitionLog::open(&dir, settings.log.clone(), recovery_point, log_start, checkpoints.clean, now_ms)?;
        Ok(Partition::new(topic.to_string(), topic_id, self.node_id, image, log, settings, high_watermark, now_ms))
    }

    /// Under the write lock: the hosted map takes the image's shape for the topics synced
    /// (`only`, or all), with the replicas just opened in place. Nothing here touches the disk.
    fn install(
        &self,
        image: &MetadataImage,
        only: Option<&BTreeSet<String>>,
        mut opened: HashMap<(String, i32), Arc<Partition>>,
    ) {
        let wanted = |name: &str| only.is_none_or(|only| only.contains(name));
        let mut topics = self.topics.write_locked();
        let mut next: HashMap<String, Arc<TopicPartitions>> =
            topics.iter().filter(|(name, _)| !wanted(name)).map(|(n, t)| (n.clone(), t.clone())).collect();
        for (name, topic) in image.topics.iter().filter(|(name, _)| wanted(name)) {
            let hosted = topics.remove(name).filter(|h| h.topic_id == topic.topic_id);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    if !p.replicas.contains(&self.node_id) {
                        return None;
                    }
                    let key = (name.clone(), p.partition);
                    opened.remove(&key).or_else(|| hosted.as_ref()?.partitions.get(p.partition as usize)?.clone())
                })
                .collect();
            next.insert(name.clone(), Arc::new(TopicPartitions { topic_id: topic.topic_id, partitions }));
        }
        *topics = next;
        drop(topics);
        // Replicas of topics that are gone are not offline any more.
        self.offline.write_locked().retain(|(name, index), (topic_id, _)| {
            image
                .topic(name)
                .filter(|t| t.topic_id == *topic_id)
                .and_then(|t| t.partitions.get(*index as usize))
                .is_some_and(|p| p.replicas.contains(&self.node_id))
        });
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
    /// `producer_expiration_ms`; returns the number of segments deleted. `uploaded_through`
    /// says, for a partition whose segments go to remote storage, the highest offset remote
    /// storage holds (-1: none): its local segments go by `local.retention.*`, and only
    /// once uploaded.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        producer_expiration_ms: i64,
        uploaded_through: &dyn Fn(&Partition) -> Option<i64>,
    ) -> usize {
        let mut deleted = 0;
        for partition in self.all_partitions() {
            let _ = partition.with_log(|log| Ok(log.expire_producers(now_ms, producer_expiration_ms)));
            let retained = match uploaded_through(&partition) {
                Some(uploaded) => partition.with_log(|log| {
                    log.keep_snapshots_above(uploaded);
                    log.apply_local_retention(now_ms, uploaded)
                }),
                None => partition.with_log(|log| {
                    log.keep_snapshots_above(i64::MAX); // only the newest few: nothing uploads them
                    log.apply_retention(now_ms)
                }),
            };
            match retained {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed")
                }
            }
        }
        deleted
    }

    /// The fsyncs rolled segments owe (Kafka flushes a rolled segment in the background,
    /// after the roll). A failed fsync is a storage failure: see [`crate::storage_failure`].
    pub fn flush_rolled(&self) {
        for partition in self.all_partitions() {
            match partition.flush_rolled() {
                Ok(()) | Err(PartitionError::Deleted) => {}
                Err(e) => crate::storage_failure::fatal(&partition.topic, partition.index, &e),
            }
        }
    }

    /// Time-based flush policy (`flush.ms`).
    pub fn maybe_flush(&self, now_ms: i64) {
        for partition in self.all_partitions() {
            match partition.flush_if_due(now_ms) {
                Ok(()) | Err(PartitionError::Deleted) => {}
                Err(e) => crate::storage_failure::fatal(&partition.topic, partition.index, &e),
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
