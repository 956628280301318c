//! The openraft type configuration: who the nodes are and what a log entry carries.

use std::fmt;

use runnel_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

use crate::snapshot_buffer::SnapshotBuffer;

/// A node's id, the same number as the broker's `node.id`.
pub type NodeId = u64;

/// What a node does in the cluster. A controller is a Raft voter; a broker-only node joins
/// the quorum as a learner and only follows the committed metadata log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Roles {
    pub const COMBINED: Roles = Roles { broker: true, controller: true };
    pub const BROKER: Roles = Roles { broker: true, controller: false };
    pub const CONTROLLER: Roles = Roles { broker: false, controller: true };
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.broker, self.controller) {
            (true, true) => f.write_str("broker,controller"),
            (true, false) => f.write_str("broker"),
            (false, true) => f.write_str("controller"),
            (false, false) => f.write_str("none"),
        }
    }
}

/// What the quorum knows about a member: stored in Raft's membership config, so every node
/// learns every member's addresses from the log itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuorumNode {
    /// Where Kafka clients reach this node (`host:port`); empty when not known, e.g. for a
    /// voter known only from `--controller-quorum`.
    pub kafka_addr: String,
    /// Where other quorum members reach this node (`host:port`, the `--controller-listen`).
    pub controller_addr: String,
    pub roles: Roles,
    pub rack: Option<String>,
}

impl QuorumNode {
    /// A voter known only by its controller address, as `--controller-quorum` lists them.
    pub fn voter(controller_addr: impl Into<String>) -> QuorumNode {
        QuorumNode { controller_addr: controller_addr.into(), roles: Roles::CONTROLLER, ..QuorumNode::default() }
    }
}

/// The application data of one log entry: records that are applied to the image together,
/// so a decision's records (a topic and its partitions) become visible atomically.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

/// What applying one entry answers: the number of records the image holds after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub records_applied: u64,
}

openraft::declare_raft_types!(
    /// Runnel's Raft types: u64 node ids, [`QuorumNode`] members, [`MetadataBatch`] entries,
    /// snapshots as serialized bytes in memory ([`SnapshotBuffer`], bounded while received).
    pub TypeConfig:
        D = MetadataBatch,
        R = Applied,
        NodeId = NodeId,
        Node = QuorumNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotBuffer,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, QuorumNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, QuorumNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
