//! JoinGroup: new members get broker-issued ids (MEMBER_ID_REQUIRED from v4, KIP-394),
//! static members (KIP-345) take over their previous identity, and joins park until the join
//! phase completes.

use bytes::Bytes;
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::group::{Group, GroupState};
use super::member::{Member, Protocol};
use super::outcome::{Outcome, Parked, Reply, Tx, WaitKind};
use super::rebalance::{
    generation_response, maybe_complete_join_phase, maybe_prepare_rebalance_or_complete_join, prepare_rebalance,
};
use super::record::{GroupMetadataValue, Record};
use super::sync::SyncResponse;
use super::GroupConfig;

/// A JoinGroup request, whatever its version.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member that has no id yet.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// v4+: a new dynamic member must first learn its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
    /// v9+: the leader of a rejoining static member may skip the assignment.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member's metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(member_id: &str, error: ResponseError) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

fn reject(group: Option<&Group>, group_id: &str, member_id: &str, error: ResponseError) -> Outcome<JoinResponse> {
    Tx::new(group, group_id).now(JoinResponse::error(member_id, error))
}

/// Handles a JoinGroup. `fresh` makes the new member id unique (the shell passes a random
/// UUID; tests pass fixed ones).
pub fn join(
    group: Option<&Group>,
    request: &JoinRequest,
    config: &GroupConfig,
    now_ms: i64,
    fresh: Uuid,
) -> Outcome<JoinResponse> {
    let group_id = request.group_id.as_str();
    let member_id = request.member_id.as_str();
    if group_id.is_empty() {
        return reject(group, group_id, member_id, ResponseError::InvalidGroupId);
    }
    let timeout = request.session_timeout_ms;
    if timeout < config.min_session_timeout_ms || timeout > config.max_session_timeout_ms {
        return reject(group, group_id, member_id, ResponseError::InvalidSessionTimeout);
    }
    if group.is_none() && !member_id.is_empty() {
        return reject(group, group_id, member_id, ResponseError::UnknownMemberId);
    }
    let mut tx = Tx::new(group, group_id);
    if !accepts_joining_member(tx.group(), member_id, config) {
        if tx.group().members.contains_key(member_id) {
            super::rebalance::remove_member(&mut tx, member_id);
        }
        return tx.now(JoinResponse::error("", ResponseError::GroupMaxSizeReached));
    }
    let reply = if member_id.is_empty() {
        join_new_member(&mut tx, request, config, now_ms, fresh)
    } else {
        join_existing_member(&mut tx, request, config, now_ms)
    };
    tx.finish(reply)
}

/// Kafka's `acceptJoiningMember`: `group.max.size` bounds the members.
fn accepts_joining_member(group: &Group, member_id: &str, config: &GroupConfig) -> bool {
    match group.state {
        GroupState::Empty | GroupState::Dead => true,
        GroupState::PreparingRebalance => {
            group.member(member_id).is_some_and(|m| m.awaiting_join) || group.awaiting_join_count() < config.max_size
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            group.members.contains_key(member_id) || group.members.len() < config.max_size
        }
    }
}

fn protocol_names(request: &JoinRequest) -> Vec<&str> {
    request.protocols.iter().map(|p| p.name.as_str()).collect()
}

fn join_new_member(
    tx: &mut Tx,
    request: &JoinRequest,
    config: &GroupConfig,
    now_ms: i64,
    fresh: Uuid,
) -> Reply<JoinResponse> {
    if !tx.group().supports_protocols(&request.protocol_type, &protocol_names(request)) {
        return Reply::Now(JoinResponse::error("", ResponseError::InconsistentGroupProtocol));
    }
    let prefix = request.instance_id.as_deref().unwrap_or(&request.client_id);
    let new_id = format!("{prefix}-{fresh}");
    if let Some(instance_id) = &request.instance_id {
        return match tx.group().static_members.get(instance_id).cloned() {
            Some(old_id) => rejoin_static_member(tx, request, config, now_ms, &old_id, &new_id),
            None => add_member(tx, request, config, now_ms, &new_id),
        };
    }
    if request.require_known_member_id {
        let deadline_ms = now_ms + i64::from(request.session_timeout_ms);
        tx.emit(Record::PendingMemberAdded { member_id: new_id.clone(), deadline_ms });
        return Reply::Now(JoinResponse::error(&new_id, ResponseError::MemberIdRequired));
    }
    add_member(tx, request, config, now_ms, &new_id)
}

fn join_existing_member(tx: &mut Tx, request: &JoinRequest, config: &GroupConfig, now_ms: i64) -> Reply<JoinResponse> {
    let member_id = request.member_id.as_str();
    if !tx.group().supports_protocols(&request.protocol_type, &protocol_names(request)) {
        return Reply::Now(JoinResponse::error(member_id, ResponseError::InconsistentGroupProtocol));
    }
    if tx.group().pending_members.contains_key(member_id) {
        return add_member(tx, request, config, now_ms, member_id);
    }
    if let Err(error) = tx.group().validate_member(member_id, request.instance_id.as_deref()) {
        return Reply::Now(JoinResponse::error(member_id, error));
    }
    let group = tx.group();
    let member = group.member(member_id).expect("validated above");
    match group.state {
        GroupState::PreparingRebalance => update_member(tx, request, config, now_ms),
        GroupState::CompletingRebalance if member.matches(&request.protocols) => {
            // The member missed its JoinGroup answer: send it again.
            let leader = group.is_leader(member_id);
            Reply::Now(generation_response(tx, member_id, leader))
        }
        GroupState::Stable if !group.is_leader(member_id) && member.matches(&request.protocols) => {
            Reply::Now(generation_response(tx, member_id, false))
        }
        // A leader rejoining a stable group asks for a rebalance (its topics changed);
        // anyone with new metadata does too.
        GroupState::CompletingRebalance | GroupState::Stable => update_member(tx, request, config, now_ms),
        GroupState::Empty | GroupState::Dead => {
            Reply::Now(JoinResponse::error(member_id, ResponseError::UnknownMemberId))
        }
    }
}

/// A parked member as the request describes it.
fn member_from(request: &JoinRequest, member_id: &str, deadline_ms: i64) -> Member {
    Member {
        member_id: member_id.to_string(),
        instance_id: request.instance_id.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        session_timeout_ms: request.session_timeout_ms,
        protocol_type: request.protocol_type.clone(),
        protocols: request.protocols.clone(),
        assignment: Bytes::new(),
        awaiting_join: true,
        awaiting_sync: false,
        is_new: true,
        heartbeat_deadline_ms: deadline_ms,
    }
}

fn add_member(
    tx: &mut Tx,
    request: &JoinRequest,
    config: &GroupConfig,
    now_ms: i64,
    member_id: &str,
) -> Reply<JoinResponse> {
    // A new member cannot heartbeat while parked, and a disconnect goes unnoticed while it
    // is, so its session is the new-member join timeout until the join phase ends.
    let member = member_from(request, member_id, now_ms + config.new_member_join_timeout_ms);
    tx.emit(Record::MemberJoined(Box::new(member)));
    maybe_prepare_rebalance_or_complete_join(tx, config, now_ms);
    Reply::Park { member_id: member_id.to_string(), kind: WaitKind::Join }
}

/// An existing member rejoins with (possibly) new metadata and parks.
fn update_member(tx: &mut Tx, request: &JoinRequest, config: &GroupConfig, now_ms: i64) -> Reply<JoinResponse> {
    let existing = tx.group().member(&request.member_id).expect("validated member").clone();
    let member = Member {
        protocols: request.protocols.clone(),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        session_timeout_ms: request.session_timeout_ms,
        awaiting_join: true,
        ..existing
    };
    tx.emit(Record::MemberJoined(Box::new(member)));
    maybe_prepare_rebalance_or_complete_join(tx, config, now_ms);
    Reply::Park { member_id: request.member_id.clone(), kind: WaitKind::Join }
}

/// A static member came back without its member id: the new id replaces the old one, whose
/// parked requests (a zombie's) are fenced. In a stable group whose protocol does not change,
/// the member gets its old assignment back without a rebalance (KIP-345).
fn rejoin_static_member(
    tx: &mut Tx,
    request: &JoinRequest,
    config: &GroupConfig,
    now_ms: i64,
    old_id: &str,
    new_id: &str,
) -> Reply<JoinResponse> {
    let instance_id = request.instance_id.clone().expect("static member");
    let old = tx.group().member(old_id).expect("static member is a member");
    let (awaiting_join, awaiting_sync) = (old.awaiting_join, old.awaiting_sync);
    let session_ms = i64::from(old.session_timeout_ms);
    if awaiting_join {
        tx.wake(old_id, Parked::Join(JoinResponse::error(old_id, ResponseError::FencedInstanceId)));
    }
    if awaiting_sync {
        tx.wake(old_id, Parked::Sync(SyncResponse::error(ResponseError::FencedInstanceId)));
    }
    let leader_before = tx.group().leader_id.clone().unwrap_or_default();
    tx.emit(Record::StaticMemberReplaced {
        instance_id,
        old_member_id: old_id.to_string(),
        new_member_id: new_id.to_string(),
    });
    tx.emit(Record::Heartbeat { member_id: new_id.to_string(), deadline_ms: now_ms + session_ms });
    let replaced = tx.group().member(new_id).expect("just replaced").clone();
    let updated = Member {
        protocols: request.protocols.clone(),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        session_timeout_ms: request.session_timeout_ms,
        awaiting_join: true,
        ..replaced
    };
    tx.emit(Record::MemberJoined(Box::new(updated)));
    match tx.group().state {
        GroupState::Stable if tx.group().select_protocol() == tx.group().protocol_name => {
            // Store the new member id; the assignment stays as it is.
            let value = GroupMetadataValue::of(tx.group(), tx.group().state_timestamp_ms);
            tx.emit(Record::GroupMetadata(Some(value)));
            Reply::Now(static_rejoin_response(tx, request, new_id, leader_before))
        }
        GroupState::Stable => {
            maybe_prepare_rebalance_or_complete_join(tx, config, now_ms);
            Reply::Park { member_id: new_id.to_string(), kind: WaitKind::Join }
        }
        // The leader may already be assigning for the old member id: start over.
        GroupState::CompletingRebalance => {
            prepare_rebalance(tx, config, now_ms);
            Reply::Park { member_id: new_id.to_string(), kind: WaitKind::Join }
        }
        GroupState::PreparingRebalance => {
            maybe_complete_join_phase(tx, config, now_ms);
            Reply::Park { member_id: new_id.to_string(), kind: WaitKind::Join }
        }
        GroupState::Empty | GroupState::Dead => unreachable!("a group with a static member has members"),
    }
}

/// The answer to a static member that got its place back in a stable group. Before v9 the
/// response names the old leader id if the member was the leader, so that it does not run
/// an assignment (it cannot tell the others); from v9 it is told to skip the assignment.
fn static_rejoin_response(tx: &Tx, request: &JoinRequest, new_id: &str, leader_before: String) -> JoinResponse {
    if request.supports_skip_assignment {
        let leader = tx.group().is_leader(new_id);
        let mut response = generation_response(tx, new_id, leader);
        response.skip_assignment = leader;
        response
    } else {
        let mut response = generation_response(tx, new_id, false);
        response.leader = leader_before;
        response
    }
}
