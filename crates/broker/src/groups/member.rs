//! One member of a classic group: who it is, what it supports, what it was assigned, and the
//! rebalance bookkeeping (parked JoinGroup / SyncGroup, session deadline).

use std::collections::BTreeSet;

use bytes::Bytes;

/// A deadline that never passes: a session timer that fired while the member was parked in
/// a rebalance, and is re-armed when the rebalance moves on (as Kafka's timer is).
pub const NEVER: i64 = i64::MAX;

/// One protocol a member supports (e.g. "range" with its subscription), in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// What the leader assigned in the current generation (empty before the first sync).
    pub assignment: Bytes,
    /// Its JoinGroup is parked until the join phase completes.
    pub awaiting_join: bool,
    /// Its SyncGroup is parked until the leader's assignment arrives.
    pub awaiting_sync: bool,
    /// Joined in the current rebalance; such a member can time out even while parked.
    pub is_new: bool,
    /// The session ends at this time unless renewed by a heartbeat or a rebalance step.
    pub heartbeat_deadline_ms: i64,
}

impl Member {
    /// The member's metadata for `protocol` (empty when it does not support it).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| p.metadata.clone()).unwrap_or_default()
    }

    /// The member's most preferred protocol among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols.iter().map(|p| p.name.as_str()).find(|name| candidates.contains(name))
    }

    /// Whether `protocols` are exactly what the member joined with last time.
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `hasSatisfiedHeartbeat`: a member parked in a rebalance needs no heartbeats,
    /// unless it is new (it may have gone away while parked, and would never come back).
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join || self.awaiting_sync)
    }
}
