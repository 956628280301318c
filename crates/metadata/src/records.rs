//! Metadata records. Each is one record value (JSON) in the metadata log; the log is the
//! source of truth and the image is rebuilt by replaying it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::AclBinding;
use crate::quota::QuotaEntity;
use crate::remote_log::{RemoteSegment, RemoteStateChange};
use crate::scram::{ScramCredential, ScramMechanism};

/// What a configuration entry belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    /// The cluster-wide default of every broker's dynamic settings (Kafka's broker
    /// resource with an empty name).
    BrokerDefault,
}

/// One listener of a broker as clients of that listener reach it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// The listener's name, upper-cased (`PLAINTEXT`, `SSL`, `INTERNAL`...).
    pub listener: String,
    pub host: String,
    pub port: i32,
    /// Kafka's name of the listener's security protocol.
    pub security_protocol: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker (re)registers: its address, rack, and an incarnation id that changes on
    /// every process start, so a stale registration can be told apart.
    RegisterBroker {
        node_id: i32,
        host: String,
        port: i32,
        rack: Option<String>,
        #[serde(default)]
        incarnation_id: Uuid,
        /// Every listener's advertised address (Kafka's registration endpoints); empty in
        /// registrations written before listeners existed, which `host` and `port` describe.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        endpoints: Vec<BrokerEndpoint>,
    },
    /// The broker stopped heartbeating (or is shutting down): it leads nothing.
    FenceBroker {
        node_id: i32,
        /// Fenced by its own controlled shutdown: it stays fenced until it registers again,
        /// even if it still answers while it exits.
        #[serde(default)]
        shutting_down: bool,
    },
    /// The broker heartbeats again and has caught up with the metadata log.
    UnfenceBroker {
        node_id: i32,
    },
    /// The replicas a broker hosts that it cannot serve (they failed to open: Kafka's
    /// offline log directories, per partition). Such a replica leads nothing and leaves the
    /// ISR as a fenced broker's would, unless it is the ISR's last member. Replaces the
    /// broker's previous report; applies only to the registration (incarnation) that sent
    /// it, and a new registration starts with none.
    OfflineReplicas {
        node_id: i32,
        incarnation_id: Uuid,
        partitions: Vec<(Uuid, i32)>,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A conditional change of a partition's leader, ISR and (for reassignment) replicas,
    /// applied only if the partition epoch is still `expected_partition_epoch`: both the
    /// leader's ISR changes (AlterPartition) and the controller's elections are decided
    /// against an image that may be stale, and a change decided against an older partition
    /// state must not overwrite a newer one. Applying bumps the partition epoch, and the
    /// leader epoch when the leader changes.
    ChangePartition {
        topic_id: Uuid,
        partition: i32,
        expected_partition_epoch: i32,
        leader: i32,
        isr: Vec<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
        /// A reassignment in progress: replicas being added and removed (both empty when
        /// none). `None` keeps what the partition has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reassignment: Option<(Vec<i32>, Vec<i32>)>,
    },
    /// `value: None` removes the entry.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Creates or replaces a user's SCRAM credential for one mechanism (derived keys only).
    UserScramCredential {
        name: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    /// Removes a user's SCRAM credential for one mechanism.
    RemoveUserScramCredential {
        name: String,
        mechanism: ScramMechanism,
    },
    /// Stores an ACL under `id` (checked by `acl::check_binding` before it is proposed).
    Acl {
        id: Uuid,
        binding: AclBinding,
    },
    /// Removes the ACL stored under `id`.
    RemoveAcl {
        id: Uuid,
    },
    /// A copy of a segment to remote storage starts (tiered storage, `remote_log.rs`):
    /// applied only for the partition's current leader, epoch and registration.
    RemoteSegmentStarted {
        topic_id: Uuid,
        partition: i32,
        segment: RemoteSegment,
    },
    /// A remote segment's copy finished, or its deletion started or finished.
    RemoteSegmentChanged {
        topic_id: Uuid,
        partition: i32,
        segment_id: Uuid,
        change: RemoteStateChange,
    },
    /// The remote log starts at `offset` or later (retention, DeleteRecords).
    RemoteLogStart {
        topic_id: Uuid,
        partition: i32,
        offset: i64,
    },
    /// Everything of the partition is gone from remote storage (ends a deleted topic's
    /// clean-up).
    RemoteLogDeleted {
        topic_id: Uuid,
        partition: i32,
    },
    /// Sets (`Some`) or removes (`None`) one client quota of an entity (checked by
    /// `quota::check_value` before it is proposed).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<f64>,
    },
    /// Producer ids below `next_producer_id` have been handed out (in blocks); ids are
    /// never reused, across restarts and, later, across brokers.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
        /// Names this request, so the broker can tell its grant from an earlier grant of
        /// the same block (see [`crate::image::MetadataImage::producer_id_grant`]).
        #[serde(default)]
        request_id: Uuid,
    },
}

impl MetadataRecord {
    /// A broker registration with placeholder address and no rack, for tests.
    #[cfg(test)]
    pub(crate) fn test_broker(node_id: i32, incarnation: u128) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            node_id,
            host: "h".into(),
            port: 1,
            rack: None,
            incarnation_id: Uuid::from_u128(incarnation),
            endpoints: Vec::new(),
        }
    }

    /// A new partition with every replica in sync, the first leading, epochs 0, for tests.
    #[cfg(test)]
    pub(crate) fn test_partition(topic_id: Uuid, partition: i32, replicas: &[i32]) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata records always serialize")
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
