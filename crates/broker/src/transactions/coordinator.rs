//! The transaction coordinator's shell around the pure decisions (`decide.rs`): one shard
//! per `__transaction_state` partition this node leads (on the coordinator runtime shared
//! with the group coordinator), the topic's creation, and the landing of a decision.
//!
//! Invariants:
//! - A decision runs under its shard's lock on the state its records left; its records are
//!   appended as one batch before any is applied (`state::apply`, the same function a load
//!   replays with), and its answer is given only once the in-sync replicas hold them.
//! - Markers are owed exactly for the transactions in `PrepareCommit` / `PrepareAbort`; one
//!   task at a time writes a transaction's markers (`TxnShard::writing`), and only its
//!   completion, applied on the same prepared producer id and epoch, moves the transaction
//!   to `Complete*`. A node that loads a shard resumes the markers its prepared
//!   transactions still owe ([`TransactionCoordinator::unwritten`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use runnel_metadata::MetadataImage;
use runnel_protocol::ResponseError;

use super::codec;
use super::config::TxnConfig;
use super::decide::{self, Markers, Outcome, ProducerIdAndEpoch};
use super::state::{self, TxnMetadata, TxnPartition, TxnState, TxnStates};
use crate::clock::now_ms;
use crate::coordinator_runtime::{self, ReplayError, Shards};
use crate::locks::MutexExt;
use crate::partition::Partition;

/// Kafka's internal topic of transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// What the coordinator needs from its node.
pub trait TxnHost: Sync {
    fn image(&self) -> Arc<MetadataImage>;
    /// This node's replica of `__transaction_state` partition `index`.
    fn state_partition(&self, index: i32) -> Option<Arc<Partition>>;
    /// Creates `__transaction_state`; a topic that already exists is success.
    fn create_state_topic(
        &self,
        partitions: i32,
        replication_factor: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ResponseError>;
    fn flush_before_ack(&self) -> bool;
    /// A fresh producer id (blocking: a new block is taken from the metadata log).
    fn new_producer_id(&self) -> Result<i64, ResponseError>;
}

/// One `__transaction_state` partition's transactional ids.
#[derive(Default)]
pub struct TxnShard {
    pub states: TxnStates,
    /// Prepared transactions a task is writing the markers of.
    writing: BTreeSet<String>,
}

/// The markers one prepared transaction owes, and the coordinator that owes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub state_partition: i32,
    /// The state partition's leader epoch (Kafka's coordinator epoch, carried by markers).
    pub coordinator_epoch: i32,
    pub markers: Markers,
}

/// A transactional id as DescribeTransactions and ListTransactions show it.
pub type Described = (String, TxnMetadata);

/// Where a write went: the state partition, its leader epoch, the last offset written.
type Written = (Arc<Partition>, i32, i64);

/// A decision's answer, where its records went, and the markers it owes.
type Executed<T> = (Result<T, ResponseError>, Option<Written>, Option<MarkerJob>);

pub struct TransactionCoordinator {
    config: TxnConfig,
    shards: Shards<TxnShard>,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TransactionCoordinator { config, shards: Shards::new(TRANSACTION_STATE_TOPIC) }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Makes this node the coordinator of exactly the state partitions it leads (replayed
    /// from their logs when leadership arrives, dropped when it leaves). Runs at start-up
    /// and after every metadata change that touches the topic.
    pub fn load(
        &self,
        state_partition: &dyn Fn(i32) -> Option<Arc<Partition>>,
        image: &MetadataImage,
    ) -> Result<(), ReplayError> {
        let (mut records, mut skipped) = (0u64, 0u64);
        let changed = self.shards.load(state_partition, image, |partition| {
            let mut shard = TxnShard::default();
            coordinator_runtime::replay_batches(partition, |batch| match batch.records() {
                // Markers are never written to this topic; a foreign one changes nothing.
                _ if batch.is_control() => {}
                Ok(all) => {
                    for record in all {
                        let decoded =
                            record.key.ok_or(crate::groups::codec::CodecError::Invalid("record without a key"));
                        let applied = decoded
                            .and_then(|key| codec::decode(key, record.value))
                            .map_err(|e| e.to_string())
                            .and_then(|r| state::apply(&mut shard.states, &r).map_err(|e| e.to_string()));
                        match applied {
                            Ok(()) => records += 1,
                            Err(error) => {
                                let offset = batch.base_offset() + record.offset_delta;
                                tracing::warn!(offset, %error, "skipping a transaction state record");
                                skipped += 1;
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(offset = batch.base_offset(), %error, "skipping a transaction state batch");
                    skipped += u64::try_from(batch.record_count()).unwrap_or(0);
                }
            })?;
            Ok::<_, ReplayError>(shard)
        })?;
        if changed {
            let shards = self.shards.all();
            let ids: usize = shards.iter().map(|s| s.state.locked().states.len()).sum();
            tracing::info!(transactional_ids = ids, records, skipped, partitions = shards.len(), "loaded transactions");
        }
        Ok(())
    }

    /// Creates `__transaction_state` on first need (FindCoordinator, InitProducerId).
    pub fn ensure_ready(&self, host: &dyn TxnHost) -> Result<(), ResponseError> {
        if self.shards.is_ready() {
            return Ok(());
        }
        crate::metadata_store::blocking(|| self.shards.ensure_ready(|| self.create_and_load(host)))
    }

    fn create_and_load(&self, host: &dyn TxnHost) -> Result<(), ResponseError> {
        if host.image().topic(TRANSACTION_STATE_TOPIC).is_none() {
            let live = host.image().brokers.values().filter(|b| !b.fenced).count().max(1);
            let replication = self.config.state_log_replication_factor.min(i32::try_from(live).unwrap_or(i32::MAX));
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            configs.insert("segment.bytes".to_string(), self.config.state_log_segment_bytes.to_string());
            let min_isr = self.config.state_log_min_isr.min(replication);
            configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
            host.create_state_topic(self.config.state_log_partitions, replication, &configs)?;
        }
        self.load(&|index| host.state_partition(index), &host.image()).map_err(|error| {
            tracing::error!(%error, "loading the transaction state topic failed");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// The state partition of `transactional_id` (Kafka's hash, as for groups).
    pub fn partition_of(image: &MetadataImage, transactional_id: &str) -> Option<i32> {
        let count = i32::try_from(image.topic(TRANSACTION_STATE_TOPIC)?.partitions.len()).ok()?;
        (count > 0).then(|| crate::groups::partition_for(transactional_id, count))
    }

    /// Runs a decision on `id` under its shard's lock and lands its records.
    fn execute<T>(
        &self,
        host: &dyn TxnHost,
        id: &str,
        now: i64,
        decide: impl FnOnce(Option<&TxnMetadata>) -> Outcome<T>,
    ) -> Result<Executed<T>, ResponseError> {
        self.ensure_ready(host)?;
        let shard = self.shards.for_key(id).ok_or(ResponseError::NotCoordinator)?;
        let partition = host
            .state_partition(shard.partition)
            .filter(|p| p.is_leader() && p.leader_epoch() == shard.leader_epoch)
            .ok_or(ResponseError::NotCoordinator)?;
        let mut state = shard.state.locked();
        let outcome = decide(state.states.get(id));
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = outcome.records.iter().map(codec::encode).collect();
        let last = coordinator_runtime::append_records(&partition, shard.leader_epoch, &encoded, now).map_err(|e| {
            tracing::error!(partition = shard.partition, error = %e, "appending transaction state failed");
            ResponseError::NotCoordinator
        })?;
        for record in &outcome.records {
            if let Err(error) = state::apply(&mut state.states, record) {
                // A decision returned a record its own state refuses: a bug, not input.
                tracing::error!(%error, "a transaction decision's record does not apply");
                debug_assert!(false, "{error}");
            }
        }
        let job = outcome.markers.map(|markers| {
            state.writing.insert(id.to_string());
            MarkerJob {
                transactional_id: id.to_string(),
                state_partition: shard.partition,
                coordinator_epoch: shard.leader_epoch,
                markers,
            }
        });
        Ok((outcome.answer, last.map(|offset| (partition, shard.leader_epoch, offset)), job))
    }

    /// Runs a decision and answers once its records are replicated; the markers it owes,
    /// if any, are returned for the caller to write (`markers::spawn`).
    async fn run<T>(
        &self,
        host: &dyn TxnHost,
        id: &str,
        decide: impl FnOnce(Option<&TxnMetadata>, i64) -> Outcome<T>,
    ) -> (Result<T, ResponseError>, Option<MarkerJob>) {
        let now = now_ms();
        let (answer, written, job) = match self.execute(host, id, now, |current| decide(current, now)) {
            Ok(executed) => executed,
            Err(error) => return (Err(error), None),
        };
        if let Some((partition, epoch, last)) = written {
            let settled = coordinator_runtime::settle(&partition, epoch, last, host.flush_before_ack()).await;
            if let Err(error) = settled {
                if let Some(job) = &job {
                    // Resumed by the timer while this node still coordinates.
                    self.done_writing(job);
                }
                return (Err(error), None);
            }
        }
        (answer, job)
    }

    pub async fn init_producer_id(
        &self,
        host: &dyn TxnHost,
        id: &str,
        timeout_ms: i32,
        expected: ProducerIdAndEpoch,
    ) -> (Result<ProducerIdAndEpoch, ResponseError>, Option<MarkerJob>) {
        if let Err(error) = self.ensure_ready(host) {
            return (Err(error), None);
        }
        // Taken before the shard's lock (it may wait on the metadata quorum); an id the
        // decision does not use is skipped, as Kafka's blocks allow.
        let mut fresh = match host.new_producer_id() {
            Ok(fresh) => Some(fresh),
            Err(error) => return (Err(error), None),
        };
        let max = self.config.max_timeout_ms;
        self.run(host, id, |current, now| {
            let mut next = || fresh.take().expect("a decision allocates at most one producer id");
            decide::init_producer_id(id, current, timeout_ms, max, expected, &mut next, now)
        })
        .await
    }

    pub async fn add_partitions(
        &self,
        host: &dyn TxnHost,
        id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &BTreeSet<TxnPartition>,
    ) -> Result<(), ResponseError> {
        let (pid, epoch) = (producer.producer_id, producer.producer_epoch);
        self.run(host, id, |current, now| decide::add_partitions(id, current, pid, epoch, partitions, now)).await.0
    }

    pub async fn end_transaction(
        &self,
        host: &dyn TxnHost,
        id: &str,
        producer: ProducerIdAndEpoch,
        commit: bool,
    ) -> (Result<(), ResponseError>, Option<MarkerJob>) {
        let (pid, epoch) = (producer.producer_id, producer.producer_epoch);
        self.run(host, id, |current, now| decide::end_transaction(id, current, pid, epoch, commit, now)).await
    }

    /// KIP-890's verification: whether each partition is in `id`'s ongoing transaction for
    /// this producer (INVALID_TXN_STATE when it is not). The answer reads replicated state:
    /// the client learnt of the partition's addition only once it was replicated.
    pub fn verify(
        &self,
        id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TxnPartition],
    ) -> Result<Vec<(TxnPartition, Option<ResponseError>)>, ResponseError> {
        let shard = self.shards.for_key(id).ok_or(ResponseError::NotCoordinator)?;
        let state = shard.state.locked();
        let current = state.states.get(id).filter(|m| m.state != TxnState::Dead);
        let current = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
        if current.producer_id != producer.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if current.producer_epoch != producer.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        let in_txn = |p: &TxnPartition| current.state == TxnState::Ongoing && current.partitions.contains(p);
        Ok(partitions.iter().map(|p| (p.clone(), (!in_txn(p)).then_some(ResponseError::InvalidTxnState))).collect())
    }

    /// Whether `job` is still owed by this node: its shard is loaded in the same epoch and
    /// its transaction still prepared with the job's producer id and epoch.
    pub fn still_owed(&self, job: &MarkerJob) -> bool {
        let Some(shard) = self.shards.for_key(&job.transactional_id) else { return false };
        if shard.leader_epoch != job.coordinator_epoch {
            return false;
        }
        let state = shard.state.locked();
        state.states.get(&job.transactional_id).is_some_and(|m| prepared_as(m, &job.markers))
    }

    /// Every marker of `job` is written: its transaction completes.
    pub async fn markers_written(&self, host: &dyn TxnHost, job: &MarkerJob) -> Result<(), ResponseError> {
        let id = job.transactional_id.as_str();
        let result = self
            .run(host, id, |current, now| {
                let records = match current {
                    Some(m) if prepared_as(m, &job.markers) => {
                        decide::markers_written(id, m, now).into_iter().collect()
                    }
                    _ => Vec::new(),
                };
                Outcome { records, answer: Ok(()), markers: None }
            })
            .await
            .0;
        self.done_writing(job);
        result
    }

    /// No task writes `job`'s markers any more.
    pub fn done_writing(&self, job: &MarkerJob) {
        if let Some(shard) = self.shards.for_key(&job.transactional_id) {
            shard.state.locked().writing.remove(&job.transactional_id);
        }
    }

    /// Prepared transactions whose markers no task is writing (after a load, or after a
    /// task gave up), now marked as being written by the caller.
    pub fn unwritten(&self) -> Vec<MarkerJob> {
        let mut jobs = Vec::new();
        for shard in self.shards.all() {
            let mut state = shard.state.locked();
            let owed: Vec<(String, Markers)> = state
                .states
                .iter()
                .filter(|(id, m)| !state.writing.contains(*id) && owed_markers(m).is_some())
                .filter_map(|(id, m)| owed_markers(m).map(|markers| (id.clone(), markers)))
                .collect();
            for (id, markers) in owed {
                state.writing.insert(id.clone());
                jobs.push(MarkerJob {
                    transactional_id: id,
                    state_partition: shard.partition,
                    coordinator_epoch: shard.leader_epoch,
                    markers,
                });
            }
        }
        jobs
    }

    /// Aborts every ongoing transaction past its timeout (the producer is fenced); returns
    /// the markers the aborts owe.
    pub async fn abort_timed_out(&self, host: &dyn TxnHost) -> Vec<MarkerJob> {
        let now = now_ms();
        let due: Vec<String> = self.each_id(|id, m| decide::expire_transaction(id, m, now).is_some());
        let mut jobs = Vec::new();
        for id in due {
            tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
            let (_, job) = self
                .run(host, &id, |current, now| match current.and_then(|m| decide::expire_transaction(&id, m, now)) {
                    Some(outcome) => outcome,
                    None => Outcome { records: Vec::new(), answer: Ok(()), markers: None },
                })
                .await;
            jobs.extend(job);
        }
        jobs
    }

    /// Forgets ids idle for `transactional.id.expiration.ms` (tombstones).
    pub async fn expire_ids(&self, host: &dyn TxnHost) {
        let now = now_ms();
        let expiration = self.config.id_expiration_ms;
        let due: Vec<String> = self.each_id(|id, m| decide::expire_id(id, m, now, expiration).is_some());
        for id in due {
            let (result, _) = self
                .run(host, &id, |current, now| {
                    let records = current.and_then(|m| decide::expire_id(&id, m, now, expiration));
                    Outcome { records: records.into_iter().collect(), answer: Ok(()), markers: None }
                })
                .await;
            if let Err(error) = result {
                tracing::debug!(transactional_id = %id, ?error, "expiring a transactional id failed");
            }
        }
    }

    fn each_id(&self, mut wanted: impl FnMut(&str, &TxnMetadata) -> bool) -> Vec<String> {
        let mut ids = Vec::new();
        for shard in self.shards.all() {
            let state = shard.state.locked();
            ids.extend(state.states.iter().filter(|(id, m)| wanted(id, m)).map(|(id, _)| id.clone()));
        }
        ids
    }

    /// `id`'s state if this node coordinates it (NOT_COORDINATOR otherwise).
    pub fn describe(&self, id: &str) -> Result<Option<TxnMetadata>, ResponseError> {
        let shard = self.shards.for_key(id).ok_or(ResponseError::NotCoordinator)?;
        let state = shard.state.locked();
        Ok(state.states.get(id).cloned())
    }

    /// Every transactional id this node coordinates.
    pub fn list(&self) -> Vec<Described> {
        let mut all = Vec::new();
        for shard in self.shards.all() {
            all.extend(shard.state.locked().states.iter().map(|(id, m)| (id.clone(), m.clone())));
        }
        all
    }
}

fn prepared_as(metadata: &TxnMetadata, markers: &Markers) -> bool {
    owed_markers(metadata).is_some_and(|owed| owed.producer_id == markers.producer_id)
        && metadata.producer_epoch == markers.producer_epoch
}

/// The markers a prepared transaction owes (none for any other state).
fn owed_markers(metadata: &TxnMetadata) -> Option<Markers> {
    let commit = match metadata.state {
        TxnState::PrepareCommit => true,
        TxnState::PrepareAbort => false,
        _ => return None,
    };
    Some(Markers {
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        commit,
        partitions: metadata.partitions.clone(),
    })
}
