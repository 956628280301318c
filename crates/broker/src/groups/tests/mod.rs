//! Unit tests of the pure group state machine: each transition and error code, driven the
//! way the shell drives it (records applied after the handler, replies and wakeups checked),
//! and the persistent records replayed through Kafka's binary format.

mod join_tests;
mod model_tests;
mod offsets_tests;
mod static_tests;
mod sync_tests;

use bytes::{BufMut, Bytes, BytesMut};
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::codec;
use super::group::{Group, GroupState};
use super::join::{self, JoinRequest, JoinResponse};
use super::member::Protocol;
use super::offsets::{self, CommitPartition, CommitRequest};
use super::outcome::{Outcome, Parked, Reply, WaitKind};
use super::record::Record;
use super::sync::{self, HeartbeatRequest, LeaveResponse, LeavingMember, SyncRequest, SyncResponse};
use super::timers;
use super::GroupConfig;

pub const T0: i64 = 1_700_000_000_000;
pub const GROUP: &str = "g";
pub const SESSION_MS: i32 = 10_000;
pub const REBALANCE_MS: i32 = 20_000;
pub const DELAY_MS: i64 = 3_000;

pub fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: DELAY_MS,
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 60_000,
        max_size: 3,
        new_member_join_timeout_ms: 300_000,
        offsets_retention_ms: 600_000,
        offset_metadata_max_bytes: 16,
    }
}

/// A consumer-protocol subscription (version 0: topics, no user data).
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i32(topics.len() as i32);
    for topic in topics {
        buf.put_i16(topic.len() as i16);
        buf.put_slice(topic.as_bytes());
    }
    buf.put_i32(-1);
    buf.freeze()
}

pub fn protocols(names: &[&str]) -> Vec<Protocol> {
    names.iter().map(|n| Protocol { name: n.to_string(), metadata: subscription(&["t"]) }).collect()
}

pub fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

pub fn static_request(member_id: &str, instance: &str) -> JoinRequest {
    JoinRequest { instance_id: Some(instance.into()), ..join_request(member_id) }
}

pub fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: GROUP.into(),
        generation_id,
        member_id: member_id.into(),
        instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::from(a.to_string()))).collect(),
    }
}

pub fn heartbeat_request(member_id: &str, generation_id: i32) -> HeartbeatRequest {
    HeartbeatRequest { group_id: GROUP.into(), generation_id, member_id: member_id.into(), instance_id: None }
}

pub fn commit_request(member_id: &str, generation_id: i32, offsets: &[(&str, i32, i64)]) -> CommitRequest {
    let mut topics: Vec<(String, Vec<CommitPartition>)> = Vec::new();
    for (topic, partition, offset) in offsets {
        let p = CommitPartition {
            partition: *partition,
            offset: *offset,
            leader_epoch: 5,
            metadata: Some("m".into()),
            commit_timestamp_ms: -1,
        };
        match topics.iter_mut().find(|(t, _)| t == topic) {
            Some((_, ps)) => ps.push(p),
            None => topics.push((topic.to_string(), vec![p])),
        }
    }
    CommitRequest {
        group_id: GROUP.into(),
        generation_id,
        member_id: member_id.into(),
        instance_id: None,
        retention_time_ms: -1,
        topics,
        version: 8,
    }
}

/// What one request produced once landed.
pub struct Landed<R> {
    pub reply: Reply<R>,
    pub wakeups: Vec<(String, Parked)>,
    pub records: Vec<Record>,
}

impl<R: std::fmt::Debug> Landed<R> {
    pub fn now(self) -> R {
        match self.reply {
            Reply::Now(r) => r,
            Reply::Park { member_id, .. } => panic!("expected an answer, {member_id} was parked"),
        }
    }

    pub fn parked(&self, kind: WaitKind) -> &str {
        match &self.reply {
            Reply::Park { member_id, kind: k } if *k == kind => member_id,
            other => panic!("expected a parked {kind:?}, got {other:?}"),
        }
    }

    pub fn join_wakeup(&self, member_id: &str) -> &JoinResponse {
        match self.wakeups.iter().find(|(m, _)| m == member_id) {
            Some((_, Parked::Join(r))) => r,
            other => panic!("no join wakeup for {member_id}: {other:?} in {:?}", self.wakeups),
        }
    }

    pub fn sync_wakeup(&self, member_id: &str) -> &SyncResponse {
        match self.wakeups.iter().find(|(m, _)| m == member_id) {
            Some((_, Parked::Sync(r))) => r,
            other => panic!("no sync wakeup for {member_id}: {other:?} in {:?}", self.wakeups),
        }
    }

    pub fn persisted(&self) -> Vec<&Record> {
        self.records.iter().filter(|r| r.is_persistent()).collect()
    }
}

/// One group driven as the shell drives it, with the persistent log kept as bytes.
pub struct Harness {
    pub group: Option<Group>,
    pub now: i64,
    pub config: GroupConfig,
    /// The persistent records, encoded as in `__consumer_offsets`.
    pub log: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    next_uuid: u128,
}

impl Harness {
    pub fn new() -> Self {
        Harness { group: None, now: T0, config: config(), log: Vec::new(), next_uuid: 1 }
    }

    pub fn group(&self) -> &Group {
        self.group.as_ref().expect("the group exists")
    }

    pub fn state(&self) -> GroupState {
        self.group.as_ref().map_or(GroupState::Dead, |g| g.state)
    }

    pub fn land<R>(&mut self, outcome: Outcome<R>) -> Landed<R> {
        for record in &outcome.records {
            if let Some(encoded) = codec::encode(GROUP, record) {
                self.log.push(encoded);
            }
            if matches!(record, Record::GroupMetadata(None)) {
                self.group = None;
            } else {
                self.group.get_or_insert_with(|| Group::new(GROUP)).apply(record);
            }
        }
        let replayed = self.group.clone().unwrap_or_else(|| Group::new(&outcome.expected.group_id));
        assert_eq!(replayed, outcome.expected, "replay differs from what the handler saw");
        Landed { reply: outcome.reply, wakeups: outcome.wakeups, records: outcome.records }
    }

    pub fn join(&mut self, request: &JoinRequest) -> Landed<JoinResponse> {
        let fresh = Uuid::from_u128(self.next_uuid);
        self.next_uuid += 1;
        let outcome = join::join(self.group.as_ref(), request, &self.config, self.now, fresh);
        self.land(outcome)
    }

    pub fn sync(&mut self, request: &SyncRequest) -> Landed<SyncResponse> {
        let outcome = sync::sync(self.group.as_ref(), request, self.now);
        self.land(outcome)
    }

    pub fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> Option<ResponseError> {
        let outcome = sync::heartbeat(self.group.as_ref(), &heartbeat_request(member_id, generation_id), self.now);
        self.land(outcome).now()
    }

    pub fn leave(&mut self, leaving: &[LeavingMember]) -> Landed<LeaveResponse> {
        let outcome = sync::leave(self.group.as_ref(), GROUP, leaving, &self.config, self.now);
        self.land(outcome)
    }

    pub fn commit(&mut self, request: &CommitRequest) -> Landed<offsets::CommitResponse> {
        let outcome = offsets::commit(self.group.as_ref(), request, &self.config, self.now);
        self.land(outcome)
    }

    /// Moves the clock to `at` and runs the timers, as the shell's tick does.
    pub fn tick_at(&mut self, at: i64) -> Landed<()> {
        self.now = at;
        let group = self.group.clone().expect("a group to tick");
        let outcome = timers::tick(&group, &self.config, at);
        self.land(outcome)
    }

    /// Runs timers at each next deadline until `done` holds (at most 20 rounds).
    pub fn advance_until(&mut self, done: impl Fn(&Group) -> bool) -> Vec<Landed<()>> {
        let mut landed = Vec::new();
        for _ in 0..20 {
            if done(self.group()) {
                return landed;
            }
            let next = self.group().next_deadline_ms().expect("a timer to wait for");
            landed.push(self.tick_at(next.max(self.now)));
        }
        panic!("condition not reached: {:?}", self.group());
    }

    /// A dynamic member's two-step join (v4+): MEMBER_ID_REQUIRED, then the parked rejoin.
    pub fn join_new(&mut self) -> (String, Landed<JoinResponse>) {
        let first = self.join(&join_request("")).now();
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        let member_id = first.member_id;
        let landed = self.join(&join_request(&member_id));
        (member_id, landed)
    }

    /// A Stable group of `n` dynamic members at generation 1; the first is the leader.
    pub fn stable(n: usize) -> (Harness, Vec<String>) {
        let mut h = Harness::new();
        let mut members = Vec::new();
        for _ in 0..n {
            let (id, landed) = h.join_new();
            landed.parked(WaitKind::Join);
            members.push(id);
        }
        let woken = h.advance_until(|g| g.is(GroupState::CompletingRebalance));
        let leader = h.group().leader_id.clone().expect("a leader");
        let last = woken.last().expect("the join completed");
        assert_eq!(last.join_wakeup(&leader).members.len(), n, "the leader learns every member");
        members.sort_by_key(|m| *m != leader);
        for follower in &members[1..] {
            h.sync(&sync_request(follower, 1, &[])).parked(WaitKind::Sync);
        }
        let assignments: Vec<(String, String)> =
            members.iter().map(|m| (m.clone(), format!("assignment-of-{m}"))).collect();
        let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
        let landed = h.sync(&sync_request(&leader, 1, &pairs));
        assert_eq!(landed.wakeups.len(), n - 1);
        assert_eq!(landed.now().assignment, Bytes::from(format!("assignment-of-{leader}")));
        assert_eq!(h.state(), GroupState::Stable);
        (h, members)
    }

    /// The group rebuilt from the persistent log alone, through the binary format.
    pub fn replayed(&self) -> Option<Group> {
        let mut group: Option<Group> = None;
        for (key, value) in &self.log {
            let (id, record) = codec::decode(key, value.as_deref()).expect("our own records decode");
            assert_eq!(id, GROUP);
            if matches!(record, Record::GroupMetadata(None)) {
                group = None;
            } else {
                group.get_or_insert_with(|| Group::new(GROUP)).apply(&record);
            }
        }
        group
    }
}

#[test]
fn coordinator_partition_is_kafkas() {
    use super::{java_string_hash, partition_for};
    assert_eq!(java_string_hash("g1"), 3242);
    assert_eq!(partition_for("g1", 50), 42);
    assert_eq!(partition_for("", 50), 0);
    // Its hash is i32::MIN, whose absolute value Kafka takes as 0.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    assert_eq!(partition_for("é", 50), 33);
    // Outside the BMP: hashed over UTF-16 surrogate pairs, as Java does.
    assert_eq!(partition_for("😀", 50), 49);
    assert_eq!(partition_for("my-consumer-group", 50), 13);
}
