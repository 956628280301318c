//! Followers copy their partitions from the leaders: per source broker, a bounded number of
//! fetcher tasks (`num.replica.fetchers`), each with one connection, sending Fetch requests
//! with this node's replica id and the leader epoch it follows.
//!
//! A partition that starts following (or follows a new leader epoch) first truncates:
//! it asks the leader with OffsetsForLeaderEpoch where its own latest epoch ends there and
//! cuts its log at the smaller of that and its own end for that epoch, repeating with the
//! next older epoch when the leader answers with one this replica does not hold (Kafka's
//! KIP-101/KIP-279). Only then does it fetch, from its log end. Appends and truncations
//! check, under the partition's state lock, that the replica still follows the same leader
//! and epoch, so a late answer from a deposed leader changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, MetadataRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;
use runnel_protocol::batch::LOG_OVERHEAD;
use runnel_protocol::ResponseError;
use runnel_storage::leader_epoch::UNDEFINED_EPOCH_OFFSET;
use runnel_storage::StorageError;
use tokio::sync::{watch, Notify};

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::locks::MutexExt;
use crate::partition::{Partition, PartitionError, Role};

/// Fetch v15: the first version whose `ReplicaState` carries the broker epoch, which the
/// leader checks before it takes a fetch as a follower's (topics by id from v13).
const FETCH_VERSION: i16 = 15;
/// Metadata v12: names the cluster id, asked once per connection.
const CLUSTER_CHECK_METADATA_VERSION: i16 = 12;
const OFFSETS_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Connecting to a leader; an unreachable one must not hold the fetcher up for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A request beyond the fetch wait: the leader is considered unreachable after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a fetcher knows of one partition it copies.
#[derive(Clone)]
struct Target {
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// Truncation (OffsetsForLeaderEpoch) must run before fetching.
    truncate: bool,
}

type Key = (String, i32);
/// Partitions wanted per fetcher: by key, the partition and the leader epoch it follows.
type Assignment = HashMap<(i32, usize), BTreeMap<Key, (Arc<Partition>, i32)>>;

struct Fetcher {
    leader: i32,
    targets: Mutex<BTreeMap<Key, Target>>,
    wake: Notify,
}

/// Every fetcher of this node, by (source broker, fetcher number).
#[derive(Default)]
pub struct ReplicaFetchers {
    fetchers: Mutex<HashMap<(i32, usize), Arc<Fetcher>>>,
}

impl ReplicaFetchers {
    /// Assigns every partition this node follows to a fetcher of its leader (starting
    /// fetchers as needed) and takes away the ones it no longer follows.
    pub fn update(&self, broker: &Arc<Broker>, stop: &watch::Receiver<bool>) {
        let per_leader = broker.config.replication.num_fetchers.max(1);
        let mut desired: Assignment = HashMap::new();
        for partition in broker.replicas.all_partitions() {
            if let Role::Follower { leader } = partition.role() {
                let slot = (partition.index as usize + partition.topic.len()) % per_leader;
                let key = (partition.topic.clone(), partition.index);
                let epoch = partition.leader_epoch();
                desired.entry((leader, slot)).or_default().insert(key, (partition, epoch));
            }
        }
        let mut fetchers = self.fetchers.locked();
        for (id, fetcher) in fetchers.iter() {
            let wanted = desired.get(id);
            let mut targets = fetcher.targets.locked();
            let before = targets.len();
            targets.retain(|key, target| {
                wanted.and_then(|w| w.get(key)).is_some_and(|(partition, epoch)| {
                    Arc::ptr_eq(partition, &target.partition) && *epoch == target.leader_epoch
                })
            });
            if targets.len() != before {
                fetcher.wake.notify_one();
            }
        }
        for (id, wanted) in desired {
            let fetcher = fetchers.entry(id).or_insert_with(|| {
                let fetcher =
                    Arc::new(Fetcher { leader: id.0, targets: Mutex::new(BTreeMap::new()), wake: Notify::new() });
                tokio::spawn(run(broker.clone(), fetcher.clone(), stop.clone()));
                tracing::info!(leader = id.0, fetcher = id.1, "replica fetcher started");
                fetcher
            });
            let mut targets = fetcher.targets.locked();
            let mut added = false;
            for (key, (partition, leader_epoch)) in wanted {
                targets.entry(key).or_insert_with(|| {
                    added = true;
                    Target { partition, leader_epoch, truncate: true }
                });
            }
            if added {
                fetcher.wake.notify_one();
            }
        }
    }
}

/// The leader's address on the inter-broker listener.
pub(crate) fn leader_address(broker: &Broker, leader: i32) -> Option<String> {
    let listener = broker.config.listeners.inter_broker.as_str();
    let image = broker.metadata.image();
    let (host, port) = image.brokers.get(&leader)?.endpoint(listener)?;
    Some(format!("{host}:{port}"))
}

/// Connects to the leader at `address`, and checks that the node there belongs to this
/// cluster (Metadata names the cluster id): a node of another cluster on an address a
/// leader used before would otherwise answer for partitions of the same name, and its
/// OffsetsForLeaderEpoch answers would truncate this replica.
pub(crate) async fn connect(broker: &Broker, address: &str) -> Option<Connection> {
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect_secure(address, broker.config.outbound_bind, &broker.inter_broker_security),
    );
    let mut connection = match connected.await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            tracing::debug!(%address, error = %e, "connecting to the leader failed");
            return None;
        }
        Err(_) => return None,
    };
    connection.set_timeout(REQUEST_TIMEOUT);
    connection.set_client_id("runnel-replica-fetcher");
    let request = MetadataRequest::default().with_topics(Some(vec![])).with_allow_auto_topic_creation(false);
    let theirs = match connection.send(&request, CLUSTER_CHECK_METADATA_VERSION).await {
        Ok(response) => response.cluster_id.map(|id| id.to_string()),
        Err(e) => {
            tracing::debug!(%address, error = %e, "leader did not answer the cluster check");
            return None;
        }
    };
    if theirs.as_deref() != Some(broker.cluster_id.as_str()) {
        tracing::warn!(%address, ?theirs, ours = %broker.cluster_id, "the node at the leader's address belongs to another cluster");
        return None;
    }
    Some(connection)
}

async fn run(broker: Arc<Broker>, fetcher: Arc<Fetcher>, mut stop: watch::Receiver<bool>) {
    let backoff = Duration::from_millis(broker.config.replication.fetch_backoff_ms.max(10));
    let mut connection: Option<(String, Connection)> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let targets: Vec<(Key, Target)> =
            fetcher.targets.locked().iter().map(|(k, t)| (k.clone(), t.clone())).collect();
        let progress = if targets.is_empty() {
            connection = None;
            tokio::select! {
                _ = fetcher.wake.notified() => {}
                _ = stop.changed() => return,
            }
            continue;
        } else {
            let Some(address) = leader_address(&broker, fetcher.leader) else {
                pause(&fetcher, &mut stop, backoff).await;
                continue;
            };
            if connection.as_ref().is_none_or(|(a, _)| *a != address) {
                connection = connect(&broker, &address).await.map(|c| (address, c));
            }
            let Some((_, conn)) = connection.as_mut() else {
                pause(&fetcher, &mut stop, backoff).await;
                continue;
            };
            let truncating: Vec<&(Key, Target)> = targets.iter().filter(|(_, t)| t.truncate).collect();
            let outcome = if truncating.is_empty() {
                fetch_once(&broker, &fetcher, conn, &targets).await
            } else {
                truncate(&broker, &fetcher, conn, &truncating).await
            };
            match outcome {
                Ok(progress) => progress,
                Err(e) => {
                    tracing::debug!(leader = fetcher.leader, error = %e, "replica fetch failed; reconnecting");
                    connection = None;
                    false
                }
            }
        };
        if !progress {
            pause(&fetcher, &mut stop, backoff).await;
        }
    }
}

/// Waits `backoff`, or less if the fetcher's partitions change or the node stops.
async fn pause(fetcher: &Fetcher, stop: &mut watch::Receiver<bool>, backoff: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(backoff) => {}
        _ = fetcher.wake.notified() => {}
        _ = stop.changed() => {}
    }
}

fn mark(fetcher: &Fetcher, key: &Key, epoch: i32, truncate: bool) {
    if let Some(target) = fetcher.targets.locked().get_mut(key) {
        if target.leader_epoch == epoch {
            target.truncate = truncate;
        }
    }
}

/// One round of OffsetsForLeaderEpoch for the partitions that must truncate. Returns
/// whether any partition moved on.
async fn truncate(
    broker: &Broker,
    fetcher: &Fetcher,
    conn: &mut Connection,
    targets: &[&(Key, Target)],
) -> Result<bool, String> {
    let mut asked: BTreeMap<String, Vec<(i32, i32, Target)>> = BTreeMap::new();
    let mut progress = false;
    for (key, target) in targets {
        match target.partition.latest_epoch() {
            Ok(Some(epoch)) => asked.entry(key.0.clone()).or_default().push((key.1, epoch, target.clone())),
            // An empty log has nothing to cut: fetch from its end.
            Ok(None) => {
                mark(fetcher, key, target.leader_epoch, false);
                progress = true;
            }
            Err(e) => tracing::warn!(topic = %key.0, partition = key.1, error = %e, "reading the epoch cache failed"),
        }
    }
    if asked.is_empty() {
        return Ok(progress);
    }
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(broker.config.node_id)).with_topics(
        asked
            .iter()
            .map(|(topic, parts)| {
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|(index, epoch, target)| {
                                OffsetForLeaderPartition::default()
                                    .with_partition(*index)
                                    .with_current_leader_epoch(target.leader_epoch)
                                    .with_leader_epoch(*epoch)
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let response = conn.send(&request, OFFSETS_FOR_LEADER_EPOCH_VERSION).await.map_err(|e| e.to_string())?;
    for topic in response.topics {
        let name = topic.topic.0.to_string();
        let Some(parts) = asked.get(&name) else { continue };
        for answer in topic.partitions {
            let Some((_, _, target)) = parts.iter().find(|(i, _, _)| *i == answer.partition) else {
                continue;
            };
            if answer.error_code != 0 {
                tracing::debug!(topic = %name, partition = answer.partition, error = answer.error_code, "leader cannot answer for epochs yet");
                continue;
            }
            let key = (name.clone(), answer.partition);
            let following = (fetcher.leader, target.leader_epoch);
            let before = target.partition.log_end_offset();
            match truncation_point(&target.partition, answer.leader_epoch, answer.end_offset) {
                Ok((offset, complete)) => match target.partition.truncate_to(following, offset) {
                    Ok(Some(end)) => {
                        if end < before {
                            broker.stats.truncations.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(topic = %name, partition = answer.partition, from = before, to = end, "truncated a suffix the new leader does not hold");
                        }
                        tracing::debug!(topic = %name, partition = answer.partition, end, complete, "truncated before following");
                        mark(fetcher, &key, target.leader_epoch, !complete);
                        progress = true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(topic = %name, partition = answer.partition, error = %e, "truncation failed")
                    }
                },
                Err(e) => {
                    tracing::error!(topic = %name, partition = answer.partition, error = %e, "epoch lookup failed")
                }
            }
        }
    }
    Ok(progress)
}

/// Where to cut, and whether that settles it (Kafka's `getOffsetTruncationState`).
fn truncation_point(partition: &Partition, leader_epoch: i32, leader_end: i64) -> Result<(i64, bool), PartitionError> {
    let own_end = partition.log_end_offset();
    if leader_end == UNDEFINED_EPOCH_OFFSET {
        // The leader knows no epoch this old: keep only what was known committed.
        return Ok((partition.high_watermark().min(own_end), true));
    }
    let (own_epoch, own_epoch_end) = partition.end_offset_for_epoch(leader_epoch)?;
    if own_epoch_end == UNDEFINED_EPOCH_OFFSET {
        return Ok((leader_end.min(own_end), true));
    }
    if own_epoch != leader_epoch {
        // The leader answered with an epoch this replica does not hold: cut to the end of
        // our older epoch and ask again with it.
        return Ok((own_epoch_end.min(own_end), false));
    }
    Ok((leader_end.min(own_epoch_end).min(own_end), true))
}

/// Whole batches of `records` (a leader sends whole batches; be strict anyway).
fn whole_batches(records: &Bytes) -> Bytes {
    let mut at = 0usize;
    while records.len() - at >= LOG_OVERHEAD {
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let Ok(length) = usize::try_from(length) else { break };
        if at + LOG_OVERHEAD + length > records.len() {
            break;
        }
        at += LOG_OVERHEAD + length;
    }
    records.slice(..at)
}

/// One Fetch for every partition ready to fetch. Returns whether anything moved.
async fn fetch_once(
    broker: &Broker,
    fetcher: &Fetcher,
    conn: &mut Connection,
    targets: &[(Key, Target)],
) -> Result<bool, String> {
    let config = &broker.config.replication;
    let mut topics: BTreeMap<uuid::Uuid, Vec<FetchPartition>> = BTreeMap::new();
    let mut names: HashMap<uuid::Uuid, &str> = HashMap::new();
    for (key, target) in targets {
        names.insert(target.partition.topic_id, key.0.as_str());
        topics.entry(target.partition.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(key.1)
                .with_current_leader_epoch(target.leader_epoch)
                .with_fetch_offset(target.partition.log_end_offset())
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(target.partition.with_log(|log| Ok(log.log_start_offset())).unwrap_or(-1))
                .with_partition_max_bytes(config.fetch_max_bytes),
        );
    }
    // The broker epoch of this node's current registration: the leader refuses a follower
    // fetch that does not name it.
    let broker_epoch = broker.metadata.image().brokers.get(&broker.config.node_id).map_or(-1, |b| b.epoch);
    let request = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default().with_replica_id(BrokerId(broker.config.node_id)).with_replica_epoch(broker_epoch),
        )
        .with_max_wait_ms(i32::try_from(config.fetch_wait_max_ms).unwrap_or(i32::MAX))
        .with_min_bytes(1)
        .with_max_bytes(config.fetch_response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| FetchTopic::default().with_topic_id(topic_id).with_partitions(partitions))
                .collect(),
        );
    let response = conn.send(&request, FETCH_VERSION).await.map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Err(format!("fetch error {}", response.error_code));
    }
    // Every partition refused (not leader yet, epoch mismatch): back off before asking again.
    let mut refused = 0usize;
    let now = now_ms();
    for topic in response.responses {
        let Some(name) = names.get(&topic.topic_id).map(|n| n.to_string()) else { continue };
        for data in topic.partitions {
            let key = (name.clone(), data.partition_index);
            let Some((_, target)) = targets.iter().find(|(k, _)| *k == key) else { continue };
            let following = (fetcher.leader, target.leader_epoch);
            let partition = &target.partition;
            match ResponseError::try_from_code(data.error_code) {
                None => {
                    let records = data.records.as_ref().map(whole_batches).unwrap_or_default();
                    partition.follow_log_start_offset(data.log_start_offset);
                    if records.is_empty() {
                        partition.follow_high_watermark(data.high_watermark);
                        continue;
                    }
                    match partition.append_as_follower(following, &records, data.high_watermark, now) {
                        Ok(true) => {
                            broker.stats.replicated_bytes.fetch_add(records.len() as u64, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(PartitionError::Storage(StorageError::NonContiguous { .. })) => {
                            mark(fetcher, &key, target.leader_epoch, true);
                        }
                        Err(e) => {
                            // An invalid batch (or a failing disk) would fail again at once:
                            // count it as refused so the fetcher backs off.
                            refused += 1;
                            tracing::error!(topic = %name, partition = key.1, error = %e, "follower append failed")
                        }
                    }
                }
                Some(ResponseError::OffsetMovedToTieredStorage) => {
                    // What we lack is in remote storage only (Kafka's tier state machine): a
                    // replica keeps the local part, so start past the highest offset the
                    // metadata says is uploaded, which the leader still holds locally (it
                    // deletes nothing that is not uploaded). A stale image retries later.
                    match crate::tier_state::start_above_remote(broker, partition, following).await {
                        Ok(Some(start)) => {
                            tracing::info!(topic = %name, partition = key.1, start, "the leader's log below this offset is in remote storage only: the replica starts there");
                        }
                        Ok(None) => refused += 1,
                        Err(error) => {
                            refused += 1;
                            tracing::warn!(topic = %name, partition = key.1, %error, "starting above remote storage failed; retried");
                        }
                    }
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    if data.log_start_offset > partition.log_end_offset() {
                        // The leader deleted what we lack (retention): start at its log start.
                        let _ = partition.truncate_fully_and_start_at(following, data.log_start_offset);
                    } else {
                        mark(fetcher, &key, target.leader_epoch, true);
                    }
                }
                Some(error) => {
                    refused += 1;
                    tracing::debug!(topic = %name, partition = key.1, ?error, "leader refused the fetch");
                }
            }
        }
    }
    // An empty answer waited at the leader already (long poll): fetch again at once.
    Ok(refused < targets.len())
}
