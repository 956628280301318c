//! The runtime shared by the coordinators that keep their state in an internal topic: the
//! group coordinator (`__consumer_offsets`) and, as it is built, the transaction coordinator
//! (`__transaction_state`). What it owns is what they have in common; their pure decisions
//! and their records stay their own.
//!
//! Invariants:
//! - This node holds a shard exactly for each partition of the topic it leads, loaded by
//!   replaying the partition when leadership arrives or returns in a new leader epoch, and
//!   dropped when leadership leaves; a shard remembers the epoch it was loaded in, and a
//!   write is refused once the partition no longer leads in that epoch.
//! - Loads are serialised (two racing loads would each replay a fresh shard for the same
//!   epoch, and the one installed last would drop what the other already served); creating
//!   the topic (and the first load) happens once.
//! - A write is appended as one batch before any of its records is applied, and answered
//!   only once the in-sync replicas hold it ([`settle`]; and, with `log.flush.before.ack`,
//!   once it is on disk here).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use runnel_metadata::MetadataImage;
use runnel_protocol::batch::{build_batch_records, KeyValue};
use runnel_protocol::ResponseError;

use crate::locks::{MutexExt, RwLockExt};
use crate::partition::{Partition, PartitionError};

/// How long a coordinator write waits for the in-sync replicas of its partition (Kafka's
/// `offsets.commit.timeout.ms` and `transaction.state.log` writes alike).
pub const WRITE_REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// One partition's coordinator state on the node that leads it.
pub struct Shard<S> {
    pub partition: i32,
    /// The partition's leader epoch when this node loaded it.
    pub leader_epoch: i32,
    pub state: Mutex<S>,
}

/// The shards of one internal topic.
pub struct Shards<S> {
    topic: &'static str,
    /// Empty until the topic exists; then one slot per partition, `None` for partitions
    /// another node leads.
    slots: RwLock<Vec<Option<Arc<Shard<S>>>>>,
    create_lock: Mutex<()>,
    load_lock: Mutex<()>,
}

impl<S> Shards<S> {
    pub fn new(topic: &'static str) -> Self {
        Shards { topic, slots: RwLock::new(Vec::new()), create_lock: Mutex::new(()), load_lock: Mutex::new(()) }
    }

    /// Whether the topic exists and has been loaded once.
    pub fn is_ready(&self) -> bool {
        !self.slots.read_locked().is_empty()
    }

    /// Loads this node's shards to match leadership in `image`: a partition it has just come
    /// to lead (or leads in a new epoch) is replayed into a fresh shard by `replay`; one it no
    /// longer leads is dropped. Returns whether anything changed.
    pub fn load<E>(
        &self,
        partition_of: &dyn Fn(i32) -> Option<Arc<Partition>>,
        image: &MetadataImage,
        mut replay: impl FnMut(&Partition) -> Result<S, E>,
    ) -> Result<bool, E> {
        let Some(topic) = image.topic(self.topic) else { return Ok(false) };
        let _loading = self.load_lock.locked();
        let current = self.slots.read_locked().clone();
        let mut slots = Vec::with_capacity(topic.partitions.len());
        let mut changed = current.len() != topic.partitions.len();
        for p in &topic.partitions {
            let existing = current.get(p.partition as usize).cloned().flatten();
            let Some(partition) = partition_of(p.partition).filter(|x| x.is_leader()) else {
                changed |= existing.is_some();
                slots.push(None);
                continue;
            };
            if let Some(shard) = existing.filter(|s| s.leader_epoch == partition.leader_epoch()) {
                slots.push(Some(shard));
                continue;
            }
            changed = true;
            let state = replay(&partition)?;
            let leader_epoch = partition.leader_epoch();
            slots.push(Some(Arc::new(Shard { partition: p.partition, leader_epoch, state: Mutex::new(state) })));
        }
        if changed {
            *self.slots.write_locked() = slots;
        }
        Ok(changed)
    }

    /// Runs `create_and_load` once, the first time the topic is needed (concurrent callers
    /// wait for the first).
    pub fn ensure_ready<E>(&self, create_and_load: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        if self.is_ready() {
            return Ok(());
        }
        let _creating = self.create_lock.locked();
        if self.is_ready() {
            return Ok(());
        }
        create_and_load()
    }

    /// The shard of `key`'s partition (Kafka's `abs(hash(key)) % partitions`), if this node
    /// leads it.
    pub fn for_key(&self, key: &str) -> Option<Arc<Shard<S>>> {
        let slots = self.slots.read_locked();
        if slots.is_empty() {
            return None;
        }
        let count = i32::try_from(slots.len()).expect("partition count fits i32");
        slots[crate::groups::partition_for(key, count) as usize].clone()
    }

    /// Every shard this node holds.
    pub fn all(&self) -> Vec<Arc<Shard<S>>> {
        self.slots.read_locked().iter().flatten().cloned().collect()
    }
}

/// Bytes read per step while replaying.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Why a partition could not be replayed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading {topic}-{partition}: {source}")]
    Partition { topic: String, partition: i32, source: PartitionError },
    #[error("reading {topic}-{partition}: {source}")]
    Io { topic: String, partition: i32, source: std::io::Error },
    #[error("{topic}-{partition} holds a batch that does not frame: {source}")]
    Batch { topic: String, partition: i32, source: runnel_protocol::batch::BatchError },
}

/// Calls `each` with every batch of `partition` from its log start to its log end, in
/// offset order (transaction markers included: the group coordinator's transactional
/// offsets become visible at their commit marker). To the log end, not the high watermark: a
/// new leader is in the ISR and holds every committed write, but learns the high watermark
/// only as its followers fetch (Kafka's coordinators also load to the log end).
pub fn replay_batches(
    partition: &Partition,
    mut each: impl FnMut(&runnel_protocol::batch::BatchView<'_>),
) -> Result<(), ReplayError> {
    use std::os::unix::fs::FileExt;
    let (topic, index) = (partition.topic.clone(), partition.index);
    let partition_error = |source| ReplayError::Partition { topic: topic.clone(), partition: index, source };
    let mut offset = partition.with_log(|log| Ok(log.log_start_offset())).map_err(partition_error)?;
    let end = partition.log_end_offset();
    while offset < end {
        let read = partition.with_log(|log| log.read(offset, REPLAY_READ_BYTES, end, true)).map_err(partition_error)?;
        let Some(slice) = read.slice else { break };
        let mut bytes = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut bytes, slice.position).map_err(|source| ReplayError::Io {
            topic: topic.clone(),
            partition: index,
            source,
        })?;
        let before = offset;
        for item in runnel_protocol::batch::BatchIter::new(&bytes) {
            let (_, batch) =
                item.map_err(|source| ReplayError::Batch { topic: topic.clone(), partition: index, source })?;
            if batch.last_offset() < offset {
                continue;
            }
            each(&batch);
            offset = batch.last_offset() + 1;
        }
        assert!(offset > before, "a read that returns whole batches makes progress");
    }
    Ok(())
}

/// Appends `records` (key, value or tombstone) to `partition` as one uncompressed batch in
/// `leader_epoch`; the last offset written, `None` when there was nothing to write.
pub fn append_records(
    partition: &Partition,
    leader_epoch: i32,
    records: &[(Vec<u8>, Option<Vec<u8>>)],
    now_ms: i64,
) -> Result<Option<i64>, PartitionError> {
    if records.is_empty() {
        return Ok(None);
    }
    let pairs: Vec<KeyValue> = records.iter().map(|(key, value)| (Some(key.as_slice()), value.as_deref())).collect();
    let mut batch = build_batch_records(now_ms, &pairs);
    partition.append(&mut batch, leader_epoch, false, now_ms).map(|info| Some(info.last_offset))
}

/// [`append_records`] as a transactional batch of `producer` (id, epoch; no sequence, as
/// Kafka's coordinators write TxnOffsetCommit): the records count once the producer's
/// commit marker follows them.
pub fn append_transactional_records(
    partition: &Partition,
    leader_epoch: i32,
    records: &[(Vec<u8>, Option<Vec<u8>>)],
    (producer_id, producer_epoch): (i64, i16),
    now_ms: i64,
) -> Result<Option<i64>, PartitionError> {
    if records.is_empty() {
        return Ok(None);
    }
    let pairs: Vec<KeyValue> = records.iter().map(|(key, value)| (Some(key.as_slice()), value.as_deref())).collect();
    let mut batch = build_batch_records(now_ms, &pairs);
    let mut stamped = runnel_protocol::batch::BatchMut::new(&mut batch);
    stamped.set_producer(producer_id, producer_epoch, -1);
    stamped.set_transactional(false);
    partition.append(&mut batch, leader_epoch, false, now_ms).map(|info| Some(info.last_offset))
}

/// Waits until the in-sync replicas hold everything up to `last_offset` (acks=all, as
/// Kafka's coordinators write) while the partition leads in `leader_epoch`, and with
/// `flush_before_ack` until it is on disk here. NOT_COORDINATOR once leadership moved;
/// COORDINATOR_NOT_AVAILABLE after [`WRITE_REPLICATION_TIMEOUT`].
pub async fn settle(
    partition: &Partition,
    leader_epoch: i32,
    last_offset: i64,
    flush_before_ack: bool,
) -> Result<(), ResponseError> {
    let required = last_offset + 1;
    let mut watermark = partition.subscribe();
    let deadline = tokio::time::Instant::now() + WRITE_REPLICATION_TIMEOUT;
    while !partition.replicated_to(required, leader_epoch).map_err(|_| ResponseError::NotCoordinator)? {
        match tokio::time::timeout_at(deadline, watermark.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ResponseError::NotCoordinator),
            Err(_) => return Err(ResponseError::CoordinatorNotAvailable),
        }
    }
    if !flush_before_ack {
        return Ok(());
    }
    match partition.make_durable(required).await {
        Ok(()) => Ok(()),
        Err(PartitionError::Sync(e)) => crate::storage_failure::fatal(&partition.topic, partition.index, &e),
        Err(_) => Err(ResponseError::NotCoordinator),
    }
}
