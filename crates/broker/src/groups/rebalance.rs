//! The rebalance phases every entry point shares: start a rebalance, complete the join phase
//! (start the next generation or go Empty), and remove a member.

use runnel_protocol::ResponseError;

use super::group::{GroupState, InitialDelay};
use super::join::{JoinResponse, JoinedMember};
use super::outcome::{Parked, Tx};
use super::record::{GroupMetadataValue, Record};
use super::sync::SyncResponse;
use super::GroupConfig;

/// The JoinGroup answer of the current generation for `member_id`; the leader gets every
/// member's metadata when `with_members`.
pub fn generation_response(tx: &Tx, member_id: &str, with_members: bool) -> JoinResponse {
    let group = tx.group();
    let protocol = group.protocol_name.clone();
    let members = if with_members {
        group
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: protocol.as_deref().map(|p| m.metadata(p)).unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResponse {
        error: None,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: protocol,
        leader: group.leader_id.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members,
    }
}

/// Starts a rebalance when the state allows one, else tries to finish the one under way.
pub fn maybe_prepare_rebalance_or_complete_join(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    if tx.group().can_rebalance() {
        prepare_rebalance(tx, config, now_ms);
    } else {
        maybe_complete_join_phase(tx, config, now_ms);
    }
}

/// Enters PreparingRebalance. Parked SyncGroups are told to rejoin. The first rebalance of an
/// empty group waits `group.initial.rebalance.delay.ms` for more members.
pub fn prepare_rebalance(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    let parked: Vec<String> =
        tx.group().members.values().filter(|m| m.awaiting_sync).map(|m| m.member_id.clone()).collect();
    for member_id in parked {
        tx.wake(&member_id, Parked::Sync(SyncResponse::error(ResponseError::RebalanceInProgress)));
    }
    let group = tx.group();
    let rebalance_timeout_ms = group.rebalance_timeout_ms();
    if group.is(GroupState::Empty) {
        let delay_ms = config.initial_rebalance_delay_ms;
        let initial =
            InitialDelay { delay_ms, remaining_ms: (rebalance_timeout_ms - delay_ms).max(0), new_member_added: false };
        tx.emit(Record::RebalanceStarted {
            at_ms: now_ms,
            join_deadline_ms: now_ms + delay_ms,
            initial_delay: Some(initial),
        });
        return;
    }
    tx.emit(Record::RebalanceStarted {
        at_ms: now_ms,
        join_deadline_ms: now_ms + rebalance_timeout_ms,
        initial_delay: None,
    });
    if tx.group().has_all_members_joined() {
        complete_join(tx, config, now_ms);
    }
}

/// Completes the join phase once every member has rejoined, except during the initial
/// rebalance, which always waits out its delay.
pub fn maybe_complete_join_phase(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    let group = tx.group();
    if !group.is(GroupState::PreparingRebalance) || group.previous_state == GroupState::Empty {
        return;
    }
    if group.has_all_members_joined() {
        complete_join(tx, config, now_ms);
    }
}

/// Ends the join phase: dynamic members that did not rejoin are dropped, and the group
/// starts its next generation (CompletingRebalance, parked joins answered) or becomes Empty
/// (a generation record is stored).
pub fn complete_join(tx: &mut Tx, _config: &GroupConfig, now_ms: i64) {
    let absent: Vec<String> = tx
        .group()
        .members
        .values()
        .filter(|m| !m.awaiting_join && m.instance_id.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in absent {
        tx.emit(Record::MemberRemoved { member_id });
    }
    if !tx.group().members.is_empty() && !elect_joined_leader(tx) {
        // Only static members that did not rejoin are left: wait for them (or their
        // sessions to end) for another rebalance timeout.
        let join_deadline_ms = now_ms + tx.group().rebalance_timeout_ms();
        tx.emit(Record::JoinDeadlineMoved { join_deadline_ms, initial_delay: None });
        return;
    }
    let generation_id = tx.group().generation_id + 1;
    if tx.group().members.is_empty() {
        let group = tx.group();
        let mut value = GroupMetadataValue::of(group, now_ms);
        value.generation_id = generation_id;
        value.protocol_name = None;
        value.leader_id = None;
        tx.emit(Record::GroupMetadata(Some(value)));
        return;
    }
    let protocol_name = tx.group().select_protocol().expect("members that joined share a protocol");
    let parked: Vec<String> =
        tx.group().members.values().filter(|m| m.awaiting_join).map(|m| m.member_id.clone()).collect();
    let sync_deadline_ms = now_ms + tx.group().rebalance_timeout_ms();
    tx.emit(Record::GenerationStarted { at_ms: now_ms, generation_id, protocol_name, sync_deadline_ms });
    for member_id in parked {
        let leader = tx.group().is_leader(&member_id);
        let response = generation_response(tx, &member_id, leader);
        tx.wake(&member_id, Parked::Join(response));
    }
}

/// Kafka's `maybeElectNewJoinedLeader`: a leader that did not rejoin hands over to one that
/// did. False when no member rejoined.
fn elect_joined_leader(tx: &mut Tx) -> bool {
    let group = tx.group();
    let Some(leader) = group.leader_id.as_deref().and_then(|id| group.member(id)) else { return false };
    if leader.awaiting_join {
        return true;
    }
    let Some(next) = group.members.values().find(|m| m.awaiting_join).map(|m| m.member_id.clone()) else {
        return false;
    };
    tx.emit(Record::LeaderElected { member_id: next });
    true
}

/// Removes a member; its parked request (if any) is told UNKNOWN_MEMBER_ID so that a client
/// that is still alive joins again.
pub fn remove_member(tx: &mut Tx, member_id: &str) {
    let member = tx.group().member(member_id);
    let (awaiting_join, awaiting_sync) = member.map_or((false, false), |m| (m.awaiting_join, m.awaiting_sync));
    if awaiting_join {
        tx.wake(member_id, Parked::Join(JoinResponse::error("", ResponseError::UnknownMemberId)));
    }
    if awaiting_sync {
        tx.wake(member_id, Parked::Sync(SyncResponse::error(ResponseError::UnknownMemberId)));
    }
    tx.emit(Record::MemberRemoved { member_id: member_id.to_string() });
}

/// After members left or expired: rebalance a settled group, or finish a rebalance that no
/// longer waits for anyone.
pub fn after_members_removed(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    let state = tx.group().state;
    match state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            maybe_prepare_rebalance_or_complete_join(tx, config, now_ms)
        }
        GroupState::PreparingRebalance if tx.group().has_all_members_joined() => complete_join(tx, config, now_ms),
        _ => {}
    }
}
