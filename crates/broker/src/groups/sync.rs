//! SyncGroup (the leader's assignment makes the group Stable and is stored), Heartbeat and
//! LeaveGroup.

use bytes::Bytes;
use runnel_protocol::ResponseError;

use super::group::{Group, GroupState};
use super::outcome::{Outcome, Parked, Reply, Tx, WaitKind};
use super::rebalance::{maybe_complete_join_phase, maybe_prepare_rebalance_or_complete_join, remove_member};
use super::record::{GroupMetadataValue, Record};
use super::GroupConfig;

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// v5+: what the member believes the group runs; checked when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, member id -> assignment; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ResponseError) -> Self {
        SyncResponse { error: Some(error), protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }

    fn assignment(group: &Group, assignment: Bytes) -> Self {
        SyncResponse {
            error: None,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            assignment,
        }
    }
}

fn validate_sync(group: &Group, request: &SyncRequest) -> Result<(), ResponseError> {
    group.validate_member(&request.member_id, request.instance_id.as_deref())?;
    if request.generation_id != group.generation_id {
        return Err(ResponseError::IllegalGeneration);
    }
    let inconsistent = |asked: &Option<String>, actual: &Option<String>| asked.is_some() && asked != actual;
    if inconsistent(&request.protocol_type, &group.protocol_type)
        || inconsistent(&request.protocol_name, &group.protocol_name)
    {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    Ok(())
}

pub fn sync(group: Option<&Group>, request: &SyncRequest, now_ms: i64) -> Outcome<SyncResponse> {
    let mut tx = Tx::new(group, &request.group_id);
    let fail = |tx: Tx, error| tx.now(SyncResponse::error(error));
    if group.is_none_or(|g| g.is(GroupState::Empty)) {
        return fail(tx, ResponseError::UnknownMemberId);
    }
    if let Err(error) = validate_sync(tx.group(), request) {
        return fail(tx, error);
    }
    let member_id = request.member_id.as_str();
    match tx.group().state {
        GroupState::PreparingRebalance => fail(tx, ResponseError::RebalanceInProgress),
        GroupState::CompletingRebalance if tx.group().is_leader(member_id) => {
            let response = store_assignment(&mut tx, request, now_ms);
            tx.now(response)
        }
        GroupState::CompletingRebalance => {
            tx.emit(Record::SyncReceived { member_id: member_id.to_string(), parked: true });
            tx.finish(Reply::Park { member_id: member_id.to_string(), kind: WaitKind::Sync })
        }
        GroupState::Stable => {
            tx.emit(Record::SyncReceived { member_id: member_id.to_string(), parked: false });
            let assignment = tx.group().member(member_id).expect("validated").assignment.clone();
            let response = SyncResponse::assignment(tx.group(), assignment);
            tx.now(response)
        }
        GroupState::Empty | GroupState::Dead => unreachable!("checked above"),
    }
}

/// The leader's SyncGroup: every member gets its assignment (empty if the leader left it
/// out), the generation is stored, and parked followers are answered.
fn store_assignment(tx: &mut Tx, request: &SyncRequest, now_ms: i64) -> SyncResponse {
    let leader_id = request.member_id.clone();
    tx.emit(Record::SyncReceived { member_id: leader_id.clone(), parked: false });
    let parked: Vec<String> =
        tx.group().members.values().filter(|m| m.awaiting_sync).map(|m| m.member_id.clone()).collect();
    let mut value = GroupMetadataValue::of(tx.group(), now_ms);
    for member in &mut value.members {
        member.assignment = request
            .assignments
            .iter()
            .find(|(id, _)| *id == member.member_id)
            .map(|(_, assignment)| assignment.clone())
            .unwrap_or_default();
    }
    tx.emit(Record::GroupMetadata(Some(value)));
    for member_id in parked.iter().chain(std::iter::once(&leader_id)) {
        // The session restarts once the member has its assignment.
        let member = tx.group().member(member_id).expect("members of the stored generation");
        let deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        tx.emit(Record::Heartbeat { member_id: member_id.clone(), deadline_ms });
    }
    for member_id in &parked {
        let assignment = tx.group().member(member_id).expect("stored").assignment.clone();
        let response = SyncResponse::assignment(tx.group(), assignment);
        tx.wake(member_id, Parked::Sync(response));
    }
    let assignment = tx.group().member(&leader_id).expect("leader").assignment.clone();
    SyncResponse::assignment(tx.group(), assignment)
}

#[derive(Debug, Clone)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
}

/// Renews the member's session; REBALANCE_IN_PROGRESS tells it to rejoin.
pub fn heartbeat(group: Option<&Group>, request: &HeartbeatRequest, now_ms: i64) -> Outcome<Option<ResponseError>> {
    let mut tx = Tx::new(group, &request.group_id);
    if group.is_none() {
        return tx.now(Some(ResponseError::UnknownMemberId));
    }
    if let Err(error) = tx.group().validate_member(&request.member_id, request.instance_id.as_deref()) {
        return tx.now(Some(error));
    }
    if request.generation_id != tx.group().generation_id {
        return tx.now(Some(ResponseError::IllegalGeneration));
    }
    let session_ms = i64::from(tx.group().member(&request.member_id).expect("validated").session_timeout_ms);
    let renew = Record::Heartbeat { member_id: request.member_id.clone(), deadline_ms: now_ms + session_ms };
    match tx.group().state {
        GroupState::Empty | GroupState::Dead => tx.now(Some(ResponseError::UnknownMemberId)),
        GroupState::PreparingRebalance => {
            tx.emit(renew);
            tx.now(Some(ResponseError::RebalanceInProgress))
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            tx.emit(renew);
            tx.now(None)
        }
    }
}

/// One member leaving; `member_id` is empty when an admin removes a static member by its
/// instance id.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    pub member_id: String,
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResponse {
    pub error: Option<ResponseError>,
    /// Per member, in request order.
    pub members: Vec<(String, Option<String>, Option<ResponseError>)>,
}

pub fn leave(
    group: Option<&Group>,
    group_id: &str,
    leaving: &[LeavingMember],
    config: &GroupConfig,
    now_ms: i64,
) -> Outcome<LeaveResponse> {
    let mut tx = Tx::new(group, group_id);
    if group.is_none() {
        return tx.now(LeaveResponse { error: Some(ResponseError::UnknownMemberId), members: Vec::new() });
    }
    let mut results = Vec::with_capacity(leaving.len());
    let mut removed_any = false;
    for member in leaving {
        let error = leave_one(&mut tx, member).err();
        removed_any |= error.is_none();
        results.push((member.member_id.clone(), member.instance_id.clone(), error));
    }
    if removed_any {
        match tx.group().state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                maybe_prepare_rebalance_or_complete_join(&mut tx, config, now_ms)
            }
            GroupState::PreparingRebalance => maybe_complete_join_phase(&mut tx, config, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
    tx.now(LeaveResponse { error: None, members: results })
}

fn leave_one(tx: &mut Tx, leaving: &LeavingMember) -> Result<(), ResponseError> {
    let instance_id = leaving.instance_id.as_deref();
    if leaving.member_id.is_empty() {
        let member_id = instance_id.and_then(|i| tx.group().static_members.get(i).cloned());
        let member_id = member_id.ok_or(ResponseError::UnknownMemberId)?;
        remove_member(tx, &member_id);
        return Ok(());
    }
    if tx.group().pending_members.contains_key(&leaving.member_id) {
        tx.emit(Record::PendingMemberRemoved { member_id: leaving.member_id.clone() });
        return Ok(());
    }
    tx.group().validate_member(&leaving.member_id, instance_id)?;
    remove_member(tx, &leaving.member_id);
    Ok(())
}
