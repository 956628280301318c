//! A classic group's state and the questions the state machine asks of it. The state changes
//! only in [`Group::apply`] (in [`super::record`]).

use std::collections::{BTreeMap, BTreeSet};

use runnel_protocol::ResponseError;

use super::member::{Member, NEVER};
use super::CONSUMER_PROTOCOL_TYPE;

/// Kafka's classic group states; the names are what DescribeGroups and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupState {
    /// No members; offsets may still be committed (by admin tools or `assign()` consumers).
    #[default]
    Empty,
    /// Members are (re)joining; JoinGroup requests are parked until all have or time runs out.
    PreparingRebalance,
    /// The join phase ended; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment for the current generation.
    Stable,
    /// Reported for groups that do not exist.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Kafka's allowed transitions (`ClassicGroupState.validPreviousStates`).
    pub fn can_follow(self, previous: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => previous == PreparingRebalance,
            PreparingRebalance => matches!(previous, Stable | CompletingRebalance | Empty),
            CompletingRebalance => previous == PreparingRebalance,
            Stable => previous == CompletingRebalance,
            Dead => true,
        }
    }
}

/// A committed offset as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client did not say.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set by OffsetCommit v2-v4 with an explicit retention time.
    pub expire_timestamp_ms: Option<i64>,
}

/// The first rebalance of an empty group waits `delay_ms` for more members, and again while
/// new members keep arriving, for at most the rebalance timeout in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialDelay {
    pub delay_ms: i64,
    pub remaining_ms: i64,
    pub new_member_added: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// When the group entered its state; -1 when unknown (an old record).
    pub state_timestamp_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// `group.instance.id` -> member id.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they rejoin or time out.
    pub pending_members: BTreeMap<String, i64>,
    /// Members that got their JoinGroup answer but have not sent SyncGroup yet.
    pub pending_sync: BTreeSet<String>,
    /// PreparingRebalance ends (or the initial delay is re-examined) at this time.
    pub join_deadline_ms: Option<i64>,
    pub initial_delay: Option<InitialDelay>,
    /// Members in `pending_sync` are dropped at this time.
    pub sync_deadline_ms: Option<i64>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl Group {
    pub fn new(group_id: &str) -> Group {
        Group { group_id: group_id.to_string(), state_timestamp_ms: -1, ..Group::default() }
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Kafka's `canRebalance`: PreparingRebalance may follow the current state.
    pub fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance.can_follow(self.state)
    }

    /// The longest rebalance timeout among members (0 without members).
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.values().all(|m| m.awaiting_join) && self.pending_members.is_empty()
    }

    pub fn awaiting_join_count(&self) -> usize {
        self.members.values().filter(|m| m.awaiting_join).count()
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<&str> {
        let mut members = self.members.values();
        let Some(first) = members.next() else { return BTreeSet::new() };
        let mut common: BTreeSet<&str> = first.protocols.iter().map(|p| p.name.as_str()).collect();
        for member in members {
            common.retain(|name| member.protocols.iter().any(|p| p.name == *name));
        }
        common
    }

    /// Kafka's protocol selection: each member votes for its most preferred protocol that
    /// every member supports; the most votes wins (ties to the smallest name, for determinism).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.vote(&candidates) {
                *votes.entry(name).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes.into_iter().find(|(_, count)| *count == best).map(|(name, _)| name.to_string())
    }

    /// Whether a member of `protocol_type` offering `protocols` may join.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[&str]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|name| candidates.contains(name))
    }

    /// Kafka's `validateMember`: a static member must present the member id it was given.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), ResponseError> {
        if let Some(instance_id) = instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(existing) if existing != member_id => return Err(ResponseError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// The topics the members subscribe to, when the group runs Kafka's consumer protocol and
    /// every subscription parses (version-0 prefix of `ConsumerProtocolSubscription`).
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(parse_subscription_topics(&member.metadata(protocol))?);
        }
        Some(topics)
    }

    /// The earliest time at which a timer of this group fires.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let members = self.members.values().map(|m| m.heartbeat_deadline_ms).filter(|d| *d != NEVER);
        let pending = self.pending_members.values().copied();
        members.chain(pending).chain(self.join_deadline_ms).chain(self.sync_deadline_ms).min()
    }
}

/// Topic names from a consumer subscription: `version: i16, topics: [string]`, the prefix
/// every version of `ConsumerProtocolSubscription` shares.
pub fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut reader = super::codec::Reader::new(metadata);
    let _version = reader.i16().ok()?;
    let count = reader.i32().ok()?;
    let count = usize::try_from(count).ok()?;
    let mut topics = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        topics.push(reader.string().ok()?);
    }
    Some(topics)
}
