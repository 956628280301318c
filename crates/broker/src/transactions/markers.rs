//! Writing a prepared transaction's markers (Kafka's `TransactionMarkerChannelManager`), the
//! coordinator's node as host of the coordinator, and the coordinator's timers.
//!
//! A marker for a partition this node leads is appended here; one for a partition another
//! node leads goes to it in a WriteTxnMarkers request, batched per leader. A partition whose
//! marker failed (no leader, a leader that moved, a node down) is retried with backoff until
//! every marker is written, then the transaction completes; the task ends early once this
//! node no longer owes the markers (the coordinator moved: its new node resumes them).
//! Markers are appended with acks=all, as Kafka's coordinator asks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::MetadataImage;
use runnel_protocol::control::Marker;
use runnel_protocol::ResponseError;
use runnel_storage::{ProducerError, StorageError};
use tokio::sync::watch;

use super::coordinator::{MarkerJob, TxnHost, TRANSACTION_STATE_TOPIC};
use super::state::TxnPartition;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::partition::{Partition, PartitionError};

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often prepared transactions without a writer are looked for (after a load).
const RESUME_INTERVAL: Duration = Duration::from_secs(1);

impl TxnHost for Broker {
    fn image(&self) -> Arc<MetadataImage> {
        self.metadata.image()
    }

    fn state_partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.replicas.partition(TRANSACTION_STATE_TOPIC, index)
    }

    fn create_state_topic(
        &self,
        partitions: i32,
        replication_factor: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ResponseError> {
        let name = TRANSACTION_STATE_TOPIC;
        match crate::topic_admin::create_topic(self, name, partitions, replication_factor, configs, false) {
            Ok(_) => Ok(()),
            Err(refusal) if refusal.error == ResponseError::TopicAlreadyExists => Ok(()),
            Err(refusal) => {
                tracing::error!(error = ?refusal.error, message = %refusal.message, "creating {name} failed");
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    fn flush_before_ack(&self) -> bool {
        self.config.log_flush_before_ack
    }

    fn new_producer_id(&self) -> Result<i64, ResponseError> {
        crate::metadata_store::blocking(|| self.producer_ids.next(&self.metadata)).map_err(|error| {
            tracing::error!(%error, "allocating a producer id block failed");
            ResponseError::CoordinatorNotAvailable
        })
    }
}

/// Appends `marker` for `producer` to a partition this node leads and waits until its
/// in-sync replicas hold it (the leader's side of WriteTxnMarkers).
pub async fn write_marker(
    broker: &Broker,
    topic: &str,
    index: i32,
    marker: Marker,
    producer: (i64, i16),
) -> Result<(), ResponseError> {
    let partition = broker.replicas.led_partition(&broker.metadata.image(), topic, index)?;
    let leader_epoch = partition.leader_epoch();
    let info = match partition.append_marker(marker, producer, leader_epoch, now_ms()) {
        Ok(info) => info,
        Err(PartitionError::NotLeader) => return Err(ResponseError::NotLeaderOrFollower),
        Err(PartitionError::Deleted) => return Err(ResponseError::UnknownTopicOrPartition),
        Err(PartitionError::Storage(StorageError::Producer(ProducerError::InvalidEpoch { .. }))) => {
            return Err(ResponseError::InvalidProducerEpoch)
        }
        Err(error) => {
            tracing::error!(topic, partition = index, %error, "appending a transaction marker failed");
            return Err(ResponseError::KafkaStorageError);
        }
    };
    if topic == crate::groups::OFFSETS_TOPIC {
        broker.groups.transaction_ended(index, producer.0, marker.commit);
    }
    let settled = crate::coordinator_runtime::settle(
        &partition,
        leader_epoch,
        info.last_offset,
        broker.config.log_flush_before_ack,
    );
    settled.await.map_err(|error| match error {
        ResponseError::CoordinatorNotAvailable => ResponseError::RequestTimedOut,
        _ => ResponseError::NotLeaderOrFollower,
    })
}

/// Writes `job`'s markers in a task of its own.
pub fn spawn(broker: &Arc<Broker>, job: MarkerJob) {
    let broker = broker.clone();
    tokio::spawn(async move { write_all(&broker, job).await });
}

async fn write_all(broker: &Arc<Broker>, job: MarkerJob) {
    let marker = Marker { commit: job.markers.commit, coordinator_epoch: job.coordinator_epoch };
    let producer = (job.markers.producer_id, job.markers.producer_epoch);
    let mut pending: BTreeSet<TxnPartition> = job.markers.partitions.clone();
    let mut backoff = BACKOFF_MIN;
    loop {
        if !broker.transactions.still_owed(&job) {
            broker.transactions.done_writing(&job);
            return;
        }
        let image = broker.metadata.image();
        let mut by_leader: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
        // A partition whose topic was deleted needs no marker.
        pending.retain(|(topic, index)| {
            let Some(described) = image.topic(topic).and_then(|t| t.partitions.get(usize::try_from(*index).ok()?))
            else {
                return false;
            };
            by_leader.entry(described.leader).or_default().push((topic.clone(), *index));
            true
        });
        for (leader, partitions) in by_leader {
            let written = if leader == broker.config.node_id {
                let mut written = Vec::new();
                for (topic, index) in partitions {
                    match write_marker(broker, &topic, index, marker, producer).await {
                        Ok(()) => written.push((topic, index)),
                        Err(error) => settled_elsewhere(&mut written, (topic, index), error),
                    }
                }
                written
            } else if leader >= 0 {
                send(broker, leader, &job, marker, partitions).await
            } else {
                Vec::new()
            };
            for partition in written {
                pending.remove(&partition);
            }
        }
        if pending.is_empty() {
            if let Err(error) = broker.transactions.markers_written(broker.as_ref(), &job).await {
                tracing::warn!(transactional_id = %job.transactional_id, ?error, "completing a transaction failed");
            }
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// INVALID_PRODUCER_EPOCH: the partition already holds a later epoch of the producer,
/// written after this transaction ended there; nothing is owed (Kafka drops the marker).
fn settled_elsewhere(written: &mut Vec<TxnPartition>, partition: TxnPartition, error: ResponseError) {
    if error == ResponseError::InvalidProducerEpoch {
        written.push(partition);
    } else {
        tracing::debug!(topic = %partition.0, partition = partition.1, ?error, "transaction marker not written yet");
    }
}

/// WriteTxnMarkers to `leader` for `partitions`; the partitions it wrote.
async fn send(
    broker: &Broker,
    leader: i32,
    job: &MarkerJob,
    marker: Marker,
    partitions: Vec<TxnPartition>,
) -> Vec<TxnPartition> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in &partitions {
        topics.entry(topic.as_str()).or_default().push(*index);
    }
    let topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(job.markers.producer_id))
        .with_producer_epoch(job.markers.producer_epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(topics)]);
    let response = match broker.broker_connections.send(broker, leader, &request, 1).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(leader, %error, "WriteTxnMarkers failed");
            return Vec::new();
        }
    };
    let mut written = Vec::new();
    for result in response.markers.iter().flat_map(|m| m.topics.iter()) {
        for p in &result.partitions {
            let partition = (result.name.0.to_string(), p.partition_index);
            match ResponseError::try_from_code(p.error_code) {
                None => written.push(partition),
                Some(error) => settled_elsewhere(&mut written, partition, error),
            }
        }
    }
    written
}

/// The coordinator's timers: transactions past their timeout are aborted, ids idle past
/// `transactional.id.expiration.ms` forgotten, and markers no task writes (a shard just
/// loaded) resumed. Ends with the server.
pub fn spawn_timers(broker: &Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let broker = broker.clone();
    tokio::spawn(async move {
        let config = broker.transactions.config().clone();
        let mut abort = tokio::time::interval(Duration::from_millis(config.abort_timed_out_interval_ms));
        let mut expire = tokio::time::interval(Duration::from_millis(config.remove_expired_interval_ms));
        let mut resume = tokio::time::interval(RESUME_INTERVAL);
        for timer in [&mut abort, &mut expire, &mut resume] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = abort.tick() => {
                    for job in broker.transactions.abort_timed_out(broker.as_ref()).await {
                        spawn(&broker, job);
                    }
                }
                _ = expire.tick() => broker.transactions.expire_ids(broker.as_ref()).await,
                _ = resume.tick() => {
                    for job in broker.transactions.unwritten() {
                        spawn(&broker, job);
                    }
                }
                _ = stop.changed() => return,
            }
        }
    });
}
