//! Which replica a consumer should read from (KIP-392, Kafka's `RackAwareReplicaSelector`).
//!
//! With `replica.selector.class` naming the rack-aware selector, a leader answers a
//! consumer's Fetch (v11+, which carries the client's `rack_id`) for a partition with a
//! `preferred_read_replica` instead of data when another replica in the client's rack can
//! serve the fetch offset: the leader itself when it is in that rack, else the replica in
//! the rack with the highest log end offset at or past the fetch offset (ties go to the
//! lowest id, so the answer is stable). A client without a rack, or a rack with no such
//! replica, reads from the leader. Followers serve such consumers up to their high
//! watermark.
//!
//! Invariants: pure; the answer is `None` (read from the leader) or a replica that is not
//! the leader and whose log already reaches the fetch offset.

/// The selector `replica.selector.class` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaSelector {
    /// Kafka's default (`LeaderSelector`): consumers read from the leader.
    #[default]
    Leader,
    /// `RackAwareReplicaSelector`.
    RackAware,
}

impl ReplicaSelector {
    pub const LEADER_CLASS: &'static str = "org.apache.kafka.common.replica.LeaderSelector";
    pub const RACK_AWARE_CLASS: &'static str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

    /// The selector a class name stands for (empty: the default).
    pub fn from_class(name: &str) -> Option<Self> {
        match name.trim() {
            "" | Self::LEADER_CLASS => Some(ReplicaSelector::Leader),
            Self::RACK_AWARE_CLASS => Some(ReplicaSelector::RackAware),
            _ => None,
        }
    }
}

/// A replica that could serve a consumer: its id, rack, and how far its log reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub id: i32,
    pub rack: Option<&'a str>,
    pub log_end: i64,
}

/// The replica a consumer in `client_rack` should read `fetch_offset` from, when it is not
/// the leader (`leader_rack`); `followers` are the leader's view of its followers.
pub fn preferred_read_replica(
    selector: ReplicaSelector,
    client_rack: &str,
    leader_rack: Option<&str>,
    followers: &[Candidate],
    fetch_offset: i64,
) -> Option<i32> {
    if selector != ReplicaSelector::RackAware || client_rack.is_empty() || leader_rack == Some(client_rack) {
        return None;
    }
    followers
        .iter()
        .filter(|c| c.rack == Some(client_rack) && c.log_end >= fetch_offset)
        .max_by(|a, b| a.log_end.cmp(&b.log_end).then(b.id.cmp(&a.id)))
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: i32, rack: &'static str, log_end: i64) -> Candidate<'static> {
        Candidate { id, rack: Some(rack), log_end }
    }

    #[test]
    fn a_consumer_reads_from_a_caught_up_replica_in_its_rack() {
        let followers = [candidate(2, "b", 100), candidate(3, "c", 90), candidate(4, "c", 95), candidate(5, "c", 95)];
        let pick = |rack: &str, offset: i64| {
            preferred_read_replica(ReplicaSelector::RackAware, rack, Some("a"), &followers, offset)
        };
        assert_eq!(pick("b", 50), Some(2));
        assert_eq!(pick("c", 50), Some(4), "the furthest, then the lowest id");
        assert_eq!(pick("c", 99), None, "no replica in the rack has the offset yet");
        assert_eq!(pick("a", 50), None, "the leader is in the client's rack");
        assert_eq!(pick("", 50), None, "a client without a rack");
        assert_eq!(pick("z", 50), None);
        assert_eq!(preferred_read_replica(ReplicaSelector::Leader, "b", Some("a"), &followers, 0), None);
        assert_eq!(ReplicaSelector::from_class(ReplicaSelector::RACK_AWARE_CLASS), Some(ReplicaSelector::RackAware));
        assert_eq!(ReplicaSelector::from_class(""), Some(ReplicaSelector::Leader));
        assert_eq!(ReplicaSelector::from_class("com.example.Mine"), None);
    }
}
