//! Consumer groups with Kafka's classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, OffsetDelete, ListGroups, DescribeGroups, DeleteGroups).
//!
//! The design follows Kafka's group coordinator: a pure core and a thin shell.
//!
//! * The core ([`join`], [`sync`], [`offsets`], [`timers`]) is a set of functions from a
//!   group's state, a request and the time to an [`outcome::Outcome`]: the [`record::Record`]s
//!   to append, the response, and the answers owed to members whose JoinGroup or SyncGroup is
//!   parked. The core never mutates a group: state changes only by applying records
//!   ([`group::Group::apply`]). A handler sees the effect of its own records through a scratch
//!   copy ([`outcome::Tx`]), so its later decisions in the same request see them too.
//! * Records are *persistent* (group generations and committed offsets, written to the
//!   internal topic `__consumer_offsets` in Kafka's own binary format, [`codec`]) or *in
//!   memory* (a rebalance in flight, a heartbeat: Kafka does not persist these either). At
//!   start-up the persistent records of `__consumer_offsets` are replayed through the same
//!   `apply`, which rebuilds every group as of its last generation and its committed offsets.
//! * The shell ([`coordinator`]) owns the locks, the parked requests, the timers and the
//!   appends. It appends a request's persistent records to the group's coordinator partition
//!   (`abs(java_hash(group_id)) % partitions`, as Kafka does) before applying any record, so
//!   nothing a client saw can be lost by a crash the page cache survives.

pub mod codec;
pub mod coordinator;
pub mod group;
pub mod host;
pub mod join;
pub mod loader;
pub mod member;
pub mod offsets;
pub mod outcome;
pub mod rebalance;
pub mod record;
pub mod shard;
pub mod sync;
pub mod timers;
pub mod txn_offsets;

#[cfg(test)]
mod tests;

pub use coordinator::GroupCoordinator;
pub use group::{Group, GroupState};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The protocol type of Kafka consumers; only their subscriptions are understood.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Settings the group state machine runs with (Kafka's names in [`crate::config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members, extended while members keep arriving.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members per group.
    pub max_size: usize,
    /// How long a new member's JoinGroup may stay parked before the member is dropped
    /// (Kafka's `group.classic.new.member.join.timeout.ms`, 5 minutes, not configurable there).
    pub new_member_join_timeout_ms: i64,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: 1_000,
            new_member_join_timeout_ms: 300_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offset_metadata_max_bytes: 4_096,
        }
    }
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The `__consumer_offsets` partition that coordinates `group_id`: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions` (with `abs(MIN_VALUE) = 0`).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "the offsets topic has at least one partition");
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}
