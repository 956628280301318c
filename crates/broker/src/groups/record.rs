//! The records a group changes by, and [`Group::apply`], the only code that changes a group.
//!
//! Persistent records ([`Record::GroupMetadata`], [`Record::OffsetCommit`]) are appended to
//! `__consumer_offsets` before they are applied; replaying them at start-up rebuilds each group
//! as of its last generation, with its committed offsets. The other records describe a
//! rebalance in flight and live only in memory, as in Kafka: after a restart, members rejoin.

use bytes::Bytes;

use super::group::{CommittedOffset, Group, GroupState, InitialDelay};
use super::member::{Member, Protocol, NEVER};

/// One member in a generation record (Kafka's `GroupMetadataValue.MemberMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group generation as stored (Kafka's `GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

impl GroupMetadataValue {
    /// The record of `group`'s current generation, members and assignments.
    pub fn of(group: &Group, state_timestamp_ms: i64) -> GroupMetadataValue {
        let protocol = group.protocol_name.clone();
        let members = group
            .members
            .values()
            .map(|m| MemberMetadata {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: protocol.as_deref().map(|p| m.metadata(p)).unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        GroupMetadataValue {
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            generation_id: group.generation_id,
            protocol_name: protocol,
            leader_id: group.leader_id.clone(),
            state_timestamp_ms,
            members,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    // ----- persistent -----
    /// A generation was stored (Stable with assignments, or Empty); `None` deletes the group.
    GroupMetadata(Option<GroupMetadataValue>),
    /// An offset was committed; `None` deletes it.
    OffsetCommit {
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    // ----- in memory -----
    /// A member id was handed out with MEMBER_ID_REQUIRED.
    PendingMemberAdded {
        member_id: String,
        deadline_ms: i64,
    },
    PendingMemberRemoved {
        member_id: String,
    },
    /// A member joined or rejoined (parked unless the record says otherwise).
    MemberJoined(Box<Member>),
    MemberRemoved {
        member_id: String,
    },
    /// A static member rejoined under a new member id, which replaces the old one.
    StaticMemberReplaced {
        instance_id: String,
        old_member_id: String,
        new_member_id: String,
    },
    /// A member's session deadline moved.
    Heartbeat {
        member_id: String,
        deadline_ms: i64,
    },
    /// The member's parked JoinGroup was answered outside a generation change.
    JoinAnswered {
        member_id: String,
    },
    /// PreparingRebalance began.
    RebalanceStarted {
        at_ms: i64,
        join_deadline_ms: i64,
        initial_delay: Option<InitialDelay>,
    },
    /// The end of the join phase moved (the initial delay grew, or nobody rejoined).
    JoinDeadlineMoved {
        join_deadline_ms: i64,
        initial_delay: Option<InitialDelay>,
    },
    LeaderElected {
        member_id: String,
    },
    /// The join phase completed with members: CompletingRebalance.
    GenerationStarted {
        at_ms: i64,
        generation_id: i32,
        protocol_name: String,
        sync_deadline_ms: i64,
    },
    /// A member's SyncGroup arrived; `parked` when it waits for the leader.
    SyncReceived {
        member_id: String,
        parked: bool,
    },
    /// Members that never sent SyncGroup are no longer waited for.
    SyncDeadlinePassed,
}

impl Record {
    pub fn is_persistent(&self) -> bool {
        matches!(self, Record::GroupMetadata(_) | Record::OffsetCommit { .. })
    }
}

impl Group {
    /// Applies one record. Records are facts that already happened, so a record that does
    /// not fit the state is a bug in the state machine, not bad input: it panics.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::GroupMetadata(Some(value)) => self.load_generation(value),
            Record::GroupMetadata(None) => *self = Group::new(&self.group_id),
            Record::OffsetCommit { topic, partition, value } => {
                let key = (topic.clone(), *partition);
                match value {
                    Some(value) => self.offsets.insert(key, value.clone()),
                    None => self.offsets.remove(&key),
                };
            }
            Record::PendingMemberAdded { member_id, deadline_ms } => {
                assert!(!self.members.contains_key(member_id), "pending member {member_id} is already a member");
                self.pending_members.insert(member_id.clone(), *deadline_ms);
            }
            Record::PendingMemberRemoved { member_id } => {
                self.pending_members.remove(member_id);
            }
            Record::MemberJoined(member) => self.put_member(member),
            Record::MemberRemoved { member_id } => self.remove_member(member_id),
            Record::StaticMemberReplaced { instance_id, old_member_id, new_member_id } => {
                self.replace_static_member(instance_id, old_member_id, new_member_id)
            }
            Record::Heartbeat { member_id, deadline_ms } => {
                self.member_mut(member_id).heartbeat_deadline_ms = *deadline_ms
            }
            Record::JoinAnswered { member_id } => self.member_mut(member_id).awaiting_join = false,
            Record::RebalanceStarted { at_ms, join_deadline_ms, initial_delay } => {
                self.start_rebalance(*at_ms, *join_deadline_ms, *initial_delay)
            }
            Record::JoinDeadlineMoved { join_deadline_ms, initial_delay } => {
                assert!(self.is(GroupState::PreparingRebalance), "join deadline outside PreparingRebalance");
                self.join_deadline_ms = Some(*join_deadline_ms);
                self.initial_delay = *initial_delay;
            }
            Record::LeaderElected { member_id } => {
                assert!(self.members.contains_key(member_id), "leader {member_id} is not a member");
                self.leader_id = Some(member_id.clone());
            }
            Record::GenerationStarted { at_ms, generation_id, protocol_name, sync_deadline_ms } => {
                self.start_generation(*at_ms, *generation_id, protocol_name, *sync_deadline_ms)
            }
            Record::SyncReceived { member_id, parked } => {
                self.member_mut(member_id).awaiting_sync = *parked;
                self.pending_sync.remove(member_id);
                if self.pending_sync.is_empty() {
                    self.sync_deadline_ms = None;
                }
            }
            Record::SyncDeadlinePassed => {
                self.pending_sync.clear();
                self.sync_deadline_ms = None;
            }
        }
    }

    fn member_mut(&mut self, member_id: &str) -> &mut Member {
        self.members.get_mut(member_id).unwrap_or_else(|| panic!("record names unknown member {member_id}"))
    }

    fn transition(&mut self, state: GroupState, at_ms: i64) {
        assert!(state.can_follow(self.state), "group {}: {:?} cannot follow {:?}", self.group_id, state, self.state);
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = at_ms;
    }

    fn put_member(&mut self, member: &Member) {
        let id = &member.member_id;
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        assert_eq!(self.protocol_type.as_deref(), Some(member.protocol_type.as_str()), "protocol type of {id}");
        let added = !self.members.contains_key(id);
        if added && self.is(GroupState::PreparingRebalance) && self.previous_state == GroupState::Empty {
            if let Some(delay) = self.initial_delay.as_mut() {
                delay.new_member_added = true;
            }
        }
        if let Some(instance_id) = &member.instance_id {
            let previous = self.static_members.insert(instance_id.clone(), id.clone());
            assert!(previous.is_none_or(|p| &p == id), "instance {instance_id} already belongs to another member");
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(id.clone());
        }
        self.pending_members.remove(id);
        self.members.insert(id.clone(), member.clone());
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(removed) = self.members.remove(member_id) {
            if let Some(instance_id) = &removed.instance_id {
                self.static_members.remove(instance_id);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
    }

    fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) {
        let mut member =
            self.members.remove(old_id).unwrap_or_else(|| panic!("cannot replace unknown member {old_id}"));
        assert_eq!(member.instance_id.as_deref(), Some(instance_id), "replaced member's instance id");
        member.member_id = new_id.to_string();
        member.awaiting_join = false;
        member.awaiting_sync = false;
        self.members.insert(new_id.to_string(), member);
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members.insert(instance_id.to_string(), new_id.to_string());
    }

    fn start_rebalance(&mut self, at_ms: i64, join_deadline_ms: i64, initial_delay: Option<InitialDelay>) {
        if self.is(GroupState::CompletingRebalance) {
            // The assignment being computed is for a generation that will not happen.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
            }
        }
        for member in self.members.values_mut() {
            member.awaiting_sync = false;
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        self.transition(GroupState::PreparingRebalance, at_ms);
        self.join_deadline_ms = Some(join_deadline_ms);
        self.initial_delay = initial_delay;
    }

    fn start_generation(&mut self, at_ms: i64, generation_id: i32, protocol: &str, sync_deadline_ms: i64) {
        assert!(!self.members.is_empty(), "a generation with members needs members");
        assert_eq!(generation_id, self.generation_id + 1, "generations advance by one");
        self.transition(GroupState::CompletingRebalance, at_ms);
        self.generation_id = generation_id;
        self.protocol_name = Some(protocol.to_string());
        self.join_deadline_ms = None;
        self.initial_delay = None;
        for member in self.members.values_mut() {
            member.awaiting_join = false;
            member.is_new = false;
            member.heartbeat_deadline_ms = at_ms.saturating_add(i64::from(member.session_timeout_ms));
        }
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = Some(sync_deadline_ms);
    }

    /// A stored generation: Stable with its members' assignments, or Empty. Applied live, it
    /// keeps what memory knows beyond the record (all protocols, session deadlines, pending
    /// syncs); replayed at start-up, it creates the members from the record alone.
    fn load_generation(&mut self, value: &GroupMetadataValue) {
        let state = if value.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        if self.state != state {
            if state.can_follow(self.state) {
                self.transition(state, value.state_timestamp_ms);
            } else {
                // Replay: the previous record left the group in another persistent state.
                self.previous_state = self.state;
                self.state = state;
                self.state_timestamp_ms = value.state_timestamp_ms;
            }
        }
        let protocol_type = (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
        self.protocol_type = protocol_type;
        self.generation_id = value.generation_id;
        self.protocol_name = value.protocol_name.clone();
        self.leader_id = value.leader_id.clone();
        self.join_deadline_ms = None;
        self.initial_delay = None;
        let mut members = std::collections::BTreeMap::new();
        for stored in &value.members {
            let member = match self.members.remove(&stored.member_id) {
                Some(mut live) => {
                    live.assignment = stored.assignment.clone();
                    live.awaiting_join = false;
                    live.awaiting_sync = false;
                    live
                }
                None => member_from_record(stored, &self.protocol_type, &self.protocol_name),
            };
            members.insert(stored.member_id.clone(), member);
        }
        self.members = members;
        self.static_members = self
            .members
            .values()
            .filter_map(|m| m.instance_id.clone().map(|instance| (instance, m.member_id.clone())))
            .collect();
        self.pending_sync.retain(|id| self.members.contains_key(id));
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }
}

fn member_from_record(stored: &MemberMetadata, protocol_type: &Option<String>, protocol: &Option<String>) -> Member {
    let rebalance_timeout_ms =
        if stored.rebalance_timeout_ms == -1 { stored.session_timeout_ms } else { stored.rebalance_timeout_ms };
    Member {
        member_id: stored.member_id.clone(),
        instance_id: stored.instance_id.clone(),
        client_id: stored.client_id.clone(),
        client_host: stored.client_host.clone(),
        rebalance_timeout_ms,
        session_timeout_ms: stored.session_timeout_ms,
        protocol_type: protocol_type.clone().unwrap_or_default(),
        protocols: protocol
            .iter()
            .map(|name| Protocol { name: name.clone(), metadata: stored.subscription.clone() })
            .collect(),
        assignment: stored.assignment.clone(),
        awaiting_join: false,
        awaiting_sync: false,
        is_new: false,
        // Armed when the coordinator finishes loading (`timers::on_loaded`).
        heartbeat_deadline_ms: NEVER,
    }
}
