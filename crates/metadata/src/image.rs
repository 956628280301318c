//! The metadata image: an immutable snapshot of brokers, topics, partitions and configs.
//! Request handlers hold an `Arc<MetadataImage>` for the whole request, so they see one
//! consistent state; a change builds a new image and swaps it in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::Acls;
use crate::records::{BrokerEndpoint, ConfigResource, MetadataRecord};
use crate::scram::ScramCredentials;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub incarnation_id: Uuid,
    /// Kafka's broker epoch: the position of this registration in the metadata log (the
    /// count of records applied up to and including it), the same on every node. A
    /// follower's fetch names it, so a leader can tell a registered replica from a client
    /// that claims its id, and a restarted broker's old fetches from its new ones.
    #[serde(default)]
    pub epoch: i64,
    /// A fenced broker leads no partition and is not chosen for new replicas.
    pub fenced: bool,
    /// Fenced by a controlled shutdown: only a new registration unfences it.
    #[serde(default)]
    pub shutting_down: bool,
    /// Replicas on this broker that it reported it cannot serve, as (topic id, partition).
    #[serde(default)]
    pub offline_replicas: BTreeSet<(Uuid, i32)>,
    /// Its listeners' advertised addresses; empty for a registration from before
    /// listeners, whose one address is `host` and `port`.
    #[serde(default)]
    pub endpoints: Vec<BrokerEndpoint>,
}

impl BrokerImage {
    /// Where clients of listener `listener` reach this broker: that listener's endpoint, or
    /// for a registration without endpoints its one address. `None`: the broker has no
    /// such listener (Kafka then leaves it out, or answers LISTENER_NOT_FOUND).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        if self.endpoints.is_empty() {
            return Some((&self.host, self.port));
        }
        self.endpoints.iter().find(|e| e.listener == listener).map(|e| (e.host.as_str(), e.port))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress: `replicas` holds the target replicas and then the ones
    /// being removed; the added ones join the ISR by catching up, then the controller
    /// completes it (replicas = target).
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// The replicas a reassignment in progress leads to (the replicas when none is).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|id| !self.removing_replicas.contains(id)).collect()
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// A change of this partition's leader and ISR, conditional on its current partition
    /// epoch (see [`MetadataRecord::ChangePartition`]).
    pub fn change(&self, topic_id: Uuid, leader: i32, isr: Vec<i32>) -> MetadataRecord {
        self.change_replicas(topic_id, leader, isr, None, None)
    }

    /// Like [`change`](Self::change), also setting the replicas and the reassignment in
    /// progress (adding, removing) when given.
    pub fn change_replicas(
        &self,
        topic_id: Uuid,
        leader: i32,
        isr: Vec<i32>,
        replicas: Option<Vec<i32>>,
        reassignment: Option<(Vec<i32>, Vec<i32>)>,
    ) -> MetadataRecord {
        MetadataRecord::ChangePartition {
            topic_id,
            partition: self.partition,
            expected_partition_epoch: self.partition_epoch,
            leader,
            isr,
            replicas,
            reassignment,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    /// Indexed by partition number; partitions are dense from 0.
    pub partitions: Vec<PartitionImage>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, BrokerImage>,
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    #[serde(with = "crate::pairs")]
    pub configs: HashMap<ConfigResource, BTreeMap<String, String>>,
    /// How many records have been applied.
    pub records_applied: u64,
    /// Leader changes to a live leader applied so far (Kafka's leader elections), and
    /// those whose new leader was not in the ISR before (unclean elections): the same on
    /// every node, since every node applies the same records.
    #[serde(default)]
    pub leader_elections: u64,
    #[serde(default)]
    pub unclean_elections: u64,
    /// The first producer id not yet allocated to any broker.
    pub next_producer_id: i64,
    /// The broker that was granted the block ending at `next_producer_id`.
    #[serde(default)]
    pub producer_id_block_owner: i32,
    /// The request that was granted that block. A broker deciding on a stale image may ask
    /// for the very block it was granted before a restart (and handed ids from); that
    /// request is skipped, and owner and end alone would still look like a grant to it.
    #[serde(default)]
    pub producer_id_grant: Uuid,
    /// Every user's SCRAM credentials.
    #[serde(default)]
    pub scram: ScramCredentials,
    /// Every ACL, by id.
    #[serde(default)]
    pub acls: Acls,
    /// Every client quota, by entity.
    #[serde(default, with = "crate::pairs")]
    pub quotas: crate::quota::Quotas,
    /// What each partition holds in remote storage (tiered storage), by topic id and
    /// partition; kept after its topic is deleted, until its remote data is gone. Shared
    /// per partition, so applying a record copies one partition's state, not all.
    #[serde(default, with = "crate::pairs")]
    pub remote_logs: BTreeMap<(Uuid, i32), std::sync::Arc<crate::remote_log::RemoteLogImage>>,
}

impl MetadataImage {
    /// Whether broker `id` may lead or stay in the ISR of this partition: it is registered,
    /// unfenced, and has not reported its replica offline.
    pub fn replica_eligible(&self, id: i32, topic_id: &Uuid, partition: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced && !b.offline_replicas.contains(&(*topic_id, partition)))
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id.get(id).and_then(|name| self.topics.get(name))
    }

    pub fn topic_configs(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.configs.get(&ConfigResource::Topic(name.to_string()))
    }

    /// The uploader a remote segment record must come from for `topic_id`-`partition`: its
    /// leader's (epoch, id, incarnation), if it has a registered leader.
    pub fn current_uploader(&self, topic_id: &Uuid, partition: i32) -> Option<(i32, i32, Uuid)> {
        let p = self.topic_by_id(topic_id)?.partitions.get(usize::try_from(partition).ok()?)?;
        let broker = self.brokers.get(&p.leader)?;
        Some((p.leader_epoch, p.leader, broker.incarnation_id))
    }

    /// Changes one partition's remote log with `change` (whether it changed anything),
    /// dropping it when nothing is left.
    fn change_remote_log(
        &mut self,
        topic_id: Uuid,
        partition: i32,
        change: impl FnOnce(&mut crate::remote_log::RemoteLogImage) -> bool,
    ) {
        let key = (topic_id, partition);
        let log = self.remote_logs.entry(key).or_default();
        change(std::sync::Arc::make_mut(log));
        if log.is_empty() {
            self.remote_logs.remove(&key);
        }
    }

    /// The dynamic settings stored for broker `node` (`None`: the cluster-wide default).
    pub fn broker_configs(&self, node: Option<i32>) -> Option<&BTreeMap<String, String>> {
        self.configs.get(&node.map_or(ConfigResource::BrokerDefault, ConfigResource::Broker))
    }

    /// A new image with `records` applied in order. `records` is one batch, decided
    /// together. Applying is deterministic and total: a record that conflicts with the
    /// image (decided against an older image by a racing proposer: a topic name taken
    /// meanwhile, a partition beyond the end, a producer id block already handed out) is
    /// skipped, with the records of the same batch that depend on it, on every node alike.
    /// Proposers read the committed image back to learn whether they won.
    pub fn apply(&self, records: &[MetadataRecord]) -> MetadataImage {
        let mut next = self.clone();
        let mut lost_topics: Vec<&str> = Vec::new();
        for record in records {
            next.records_applied += 1;
            if let MetadataRecord::Topic { name, .. } = record {
                if next.topics.contains_key(name) {
                    lost_topics.push(name);
                    continue;
                }
            }
            if let MetadataRecord::Config { resource: ConfigResource::Topic(name), .. } = record {
                if lost_topics.contains(&name.as_str()) {
                    continue;
                }
            }
            next.apply_one(record);
        }
        next
    }

    fn apply_one(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker { node_id, host, port, rack, incarnation_id, endpoints } => {
                let broker = BrokerImage {
                    node_id: *node_id,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                    incarnation_id: *incarnation_id,
                    epoch: self.records_applied as i64,
                    fenced: false,
                    shutting_down: false,
                    offline_replicas: BTreeSet::new(),
                    endpoints: endpoints.clone(),
                };
                self.brokers.insert(*node_id, broker);
            }
            MetadataRecord::OfflineReplicas { node_id, incarnation_id, partitions } => {
                if let Some(broker) = self.brokers.get_mut(node_id).filter(|b| b.incarnation_id == *incarnation_id) {
                    broker.offline_replicas = partitions.iter().copied().collect();
                }
            }
            MetadataRecord::FenceBroker { node_id, shutting_down } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.fenced = true;
                    broker.shutting_down = *shutting_down;
                }
            }
            MetadataRecord::UnfenceBroker { node_id } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.fenced = false;
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_names_by_id.insert(*topic_id, name.clone());
                let topic = TopicImage { name: name.clone(), topic_id: *topic_id, partitions: Vec::new() };
                self.topics.insert(name.clone(), topic);
            }
            MetadataRecord::Partition { topic_id, partition, replicas, isr, leader, leader_epoch, partition_epoch } => {
                let Some(name) = self.topic_names_by_id.get(topic_id) else { return };
                let topic = self.topics.get_mut(name).expect("id index and topics agree");
                let image = PartitionImage {
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                };
                let index = *partition as usize;
                if index < topic.partitions.len() {
                    topic.partitions[index] = image;
                } else if index == topic.partitions.len() {
                    topic.partitions.push(image);
                }
                // Beyond the end: decided against a stale image; partitions stay dense.
            }
            MetadataRecord::ChangePartition {
                topic_id,
                partition,
                expected_partition_epoch,
                leader,
                isr,
                replicas,
                reassignment,
            } => {
                let Some(name) = self.topic_names_by_id.get(topic_id) else { return };
                let topic = self.topics.get_mut(name).expect("id index and topics agree");
                let Some(p) = usize::try_from(*partition).ok().and_then(|i| topic.partitions.get_mut(i)) else {
                    return;
                };
                let replicas = replicas.as_ref().unwrap_or(&p.replicas);
                let valid = p.partition_epoch == *expected_partition_epoch
                    && !isr.is_empty()
                    && isr.iter().all(|id| replicas.contains(id))
                    && (*leader == -1 || isr.contains(leader));
                // Epochs at i32::MAX (a malformed record) cannot move: skipped too.
                let next_leader_epoch =
                    if p.leader != *leader { p.leader_epoch.checked_add(1) } else { Some(p.leader_epoch) };
                let (Some(next_leader_epoch), Some(next_partition_epoch)) =
                    (next_leader_epoch, p.partition_epoch.checked_add(1))
                else {
                    return;
                };
                if !valid {
                    return; // decided against a stale partition state (or malformed): skipped everywhere
                }
                if p.leader != *leader && *leader >= 0 {
                    self.leader_elections += 1;
                    if !p.isr.contains(leader) {
                        self.unclean_elections += 1;
                    }
                }
                p.leader_epoch = next_leader_epoch;
                p.partition_epoch = next_partition_epoch;
                p.leader = *leader;
                p.isr = isr.clone();
                p.replicas = replicas.clone();
                if let Some((adding, removing)) = reassignment {
                    p.adding_replicas = adding.clone();
                    p.removing_replicas = removing.clone();
                }
            }
            MetadataRecord::Config { resource, name, value } => {
                let entries = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(value) => {
                        entries.insert(name.clone(), value.clone());
                    }
                    None => {
                        entries.remove(name);
                    }
                }
            }
            MetadataRecord::ProducerIds { broker_id, next_producer_id, request_id } => {
                // A block is granted once: a racing request for the same block is skipped.
                if *next_producer_id > self.next_producer_id {
                    self.next_producer_id = *next_producer_id;
                    self.producer_id_block_owner = *broker_id;
                    self.producer_id_grant = *request_id;
                }
            }
            MetadataRecord::UserScramCredential { name, mechanism, credential } => {
                self.scram.entry(name.clone()).or_default().insert(*mechanism, credential.clone());
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if let Some(user) = self.scram.get_mut(name) {
                    user.remove(mechanism);
                    if user.is_empty() {
                        self.scram.remove(name);
                    }
                }
            }
            MetadataRecord::Acl { id, binding } => {
                self.acls.insert(*id, binding.clone());
            }
            MetadataRecord::RemoveAcl { id } => {
                self.acls.remove(id);
            }
            MetadataRecord::RemoteSegmentStarted { topic_id, partition, segment } => {
                let uploader = self.current_uploader(topic_id, *partition);
                self.change_remote_log(*topic_id, *partition, |log| log.start(segment.clone(), uploader));
            }
            MetadataRecord::RemoteSegmentChanged { topic_id, partition, segment_id, change } => {
                let uploader = self.current_uploader(topic_id, *partition);
                self.change_remote_log(*topic_id, *partition, |log| log.change(*segment_id, change, uploader));
            }
            MetadataRecord::RemoteLogStart { topic_id, partition, offset } => {
                self.change_remote_log(*topic_id, *partition, |log| log.advance_start(*offset));
            }
            MetadataRecord::RemoteLogDeleted { topic_id, partition } => {
                self.remote_logs.remove(&(*topic_id, *partition));
            }
            MetadataRecord::ClientQuota { entity, key, value } => match value {
                Some(value) => {
                    self.quotas.entry(entity.clone()).or_default().insert(key.clone(), *value);
                }
                None => {
                    if let Some(values) = self.quotas.get_mut(entity) {
                        values.remove(key);
                        if values.is_empty() {
                            self.quotas.remove(entity);
                        }
                    }
                }
            },
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names_by_id.remove(topic_id) {
                    self.topics.remove(&name);
                    self.configs.remove(&ConfigResource::Topic(name));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_changes_count_as_elections_and_outside_the_isr_as_unclean() {
        let id = Uuid::from_u128(8);
        let image = MetadataImage::default().apply(&[
            MetadataRecord::Topic { name: "t".into(), topic_id: id },
            MetadataRecord::test_partition(id, 0, &[1, 2, 3]),
        ]);
        let change = |epoch, leader, isr: Vec<i32>| MetadataRecord::ChangePartition {
            topic_id: id,
            partition: 0,
            expected_partition_epoch: epoch,
            leader,
            isr,
            replicas: None,
            reassignment: None,
        };
        // An ISR shrink keeps the leader: no election. A move to an in-sync replica: clean.
        let image = image.apply(&[change(0, 1, vec![1, 2]), change(1, 2, vec![2])]);
        assert_eq!((image.leader_elections, image.unclean_elections), (1, 0));
        // Offline (-1) is no election; then replica 3, out of the ISR: unclean.
        let image = image.apply(&[change(2, -1, vec![2]), change(3, 3, vec![3])]);
        assert_eq!((image.leader_elections, image.unclean_elections), (2, 1));
    }

    #[test]
    fn topics_partitions_configs_and_removal_replay() {
        let id = Uuid::from_u128(7);
        let records = vec![
            MetadataRecord::Topic { name: "t".into(), topic_id: id },
            MetadataRecord::test_partition(id, 0, &[1]),
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
        ];
        let image = MetadataImage::default().apply(&records);
        assert_eq!(image.topic("t").unwrap().partitions.len(), 1);
        assert_eq!(image.topic_by_id(&id).unwrap().name, "t");
        assert_eq!(image.topic_configs("t").unwrap()["retention.ms"], "5");
        let removed = image.apply(&[MetadataRecord::RemoveTopic { topic_id: id }]);
        assert!(removed.topic("t").is_none());
        assert!(removed.topic_configs("t").is_none());
        // the old image is untouched
        assert!(image.topic("t").is_some());
    }

    #[test]
    fn a_racing_batch_that_lost_its_topic_name_changes_nothing() {
        let (winner, loser) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let batch = |id: Uuid, retention: &str| {
            vec![
                MetadataRecord::Topic { name: "t".into(), topic_id: id },
                MetadataRecord::Config {
                    resource: ConfigResource::Topic("t".into()),
                    name: "retention.ms".into(),
                    value: Some(retention.into()),
                },
                MetadataRecord::test_partition(id, 0, &[1]),
            ]
        };
        let image = MetadataImage::default().apply(&batch(winner, "1")).apply(&batch(loser, "2"));
        assert_eq!(image.topic("t").unwrap().topic_id, winner);
        assert_eq!(image.topic_configs("t").unwrap()["retention.ms"], "1");
        assert_eq!(image.topic("t").unwrap().partitions.len(), 1);
        assert!(image.topic_by_id(&loser).is_none());
    }

    #[test]
    fn a_producer_id_block_is_granted_once() {
        let grant = |broker_id, next, request| MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id: next,
            request_id: Uuid::from_u128(request),
        };
        let image = MetadataImage::default().apply(&[grant(1, 1000, 1)]).apply(&[grant(2, 1000, 2)]);
        assert_eq!((image.next_producer_id, image.producer_id_block_owner), (1000, 1));
        assert_eq!(image.producer_id_grant, Uuid::from_u128(1));
        // The same broker asking again for the block it holds (deciding on a stale image
        // after a restart) is skipped, and the grant still names the first request.
        let image = image.apply(&[grant(1, 1000, 3)]);
        assert_eq!((image.producer_id_block_owner, image.producer_id_grant), (1, Uuid::from_u128(1)));
    }

    #[test]
    fn a_partition_change_decided_against_a_stale_epoch_is_skipped() {
        let id = Uuid::from_u128(3);
        let image = MetadataImage::default().apply(&[
            MetadataRecord::Topic { name: "t".into(), topic_id: id },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 9,
            },
        ]);
        let change = |expected, leader, isr: Vec<i32>| MetadataRecord::ChangePartition {
            topic_id: id,
            partition: 0,
            expected_partition_epoch: expected,
            leader,
            isr,
            replicas: None,
            reassignment: None,
        };
        // The leader shrinks the ISR; a controller that decided against epoch 9 loses.
        let shrunk = image.apply(&[change(9, 1, vec![1, 2]), change(9, 3, vec![3, 2])]);
        let p = &shrunk.topic("t").unwrap().partitions[0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch), (1, vec![1, 2], 4, 10));
        let moved = shrunk.apply(&[change(10, 2, vec![2])]);
        let p = &moved.topic("t").unwrap().partitions[0];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 5, 11), "a new leader bumps the leader epoch");
        for bad in [change(11, 4, vec![4]), change(11, 1, vec![2]), change(11, 2, vec![])] {
            assert_eq!(moved.apply(std::slice::from_ref(&bad)).topics, moved.topics, "{bad:?} is refused");
        }
    }

    #[test]
    fn records_round_trip_through_their_encoding() {
        let record = MetadataRecord::Config { resource: ConfigResource::Broker(1), name: "x".into(), value: None };
        assert_eq!(MetadataRecord::decode(&record.encode()).unwrap(), record);
    }
}
