//! What happens when time passes: sessions end, the join phase times out or its initial
//! delay is re-examined, members that never sent SyncGroup are dropped. The shell calls
//! [`tick`] when [`super::group::Group::next_deadline_ms`] has passed.

use super::group::{Group, GroupState, InitialDelay};
use super::member::NEVER;
use super::outcome::{Outcome, Tx};
use super::rebalance::{after_members_removed, complete_join, prepare_rebalance, remove_member};
use super::record::Record;
use super::GroupConfig;

/// Runs every timer of `group` that is due at `now_ms`.
pub fn tick(group: &Group, config: &GroupConfig, now_ms: i64) -> Outcome<()> {
    let mut tx = Tx::new(Some(group), &group.group_id);
    expire_pending_members(&mut tx, config, now_ms);
    expire_sessions(&mut tx, config, now_ms);
    if tx.group().is(GroupState::PreparingRebalance) && tx.group().join_deadline_ms.is_some_and(|d| d <= now_ms) {
        join_deadline_passed(&mut tx, config, now_ms);
    }
    if tx.group().sync_deadline_ms.is_some_and(|d| d <= now_ms) {
        sync_deadline_passed(&mut tx, config, now_ms);
    }
    tx.now(())
}

fn expire_pending_members(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    let expired: Vec<String> =
        tx.group().pending_members.iter().filter(|(_, d)| **d <= now_ms).map(|(id, _)| id.clone()).collect();
    for member_id in expired {
        tx.emit(Record::PendingMemberRemoved { member_id });
        let group = tx.group();
        if group.is(GroupState::PreparingRebalance) && group.has_all_members_joined() {
            complete_join(tx, config, now_ms);
        }
    }
}

fn expire_sessions(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    let due: Vec<String> = tx
        .group()
        .members
        .values()
        .filter(|m| m.heartbeat_deadline_ms <= now_ms)
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in due {
        let Some(member) = tx.group().member(&member_id) else { continue };
        if member.has_satisfied_heartbeat() {
            // Parked in a rebalance: the timer is spent, and the rebalance re-arms it.
            tx.emit(Record::Heartbeat { member_id, deadline_ms: NEVER });
            continue;
        }
        tracing::info!(group = %tx.group().group_id, member = %member_id, "session expired; removing member");
        remove_member(tx, &member_id);
        after_members_removed(tx, config, now_ms);
    }
}

fn join_deadline_passed(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    match tx.group().initial_delay {
        Some(delay) if delay.new_member_added && delay.remaining_ms > 0 => {
            // Members are still arriving: wait another delay, within the rebalance timeout.
            let next_delay_ms = config.initial_rebalance_delay_ms.min(delay.remaining_ms);
            let initial_delay = InitialDelay {
                delay_ms: next_delay_ms,
                remaining_ms: (delay.remaining_ms - delay.delay_ms).max(0),
                new_member_added: false,
            };
            tx.emit(Record::JoinDeadlineMoved {
                join_deadline_ms: now_ms + next_delay_ms,
                initial_delay: Some(initial_delay),
            });
        }
        _ => complete_join(tx, config, now_ms),
    }
}

fn sync_deadline_passed(tx: &mut Tx, config: &GroupConfig, now_ms: i64) {
    let group = tx.group();
    let laggards: Vec<String> = group.pending_sync.iter().cloned().collect();
    let settled = group.is(GroupState::CompletingRebalance) || group.is(GroupState::Stable);
    if !settled || laggards.is_empty() {
        tx.emit(Record::SyncDeadlinePassed);
        return;
    }
    tracing::info!(group = %group.group_id, members = ?laggards, "members did not send SyncGroup in time");
    for member_id in laggards {
        remove_member(tx, &member_id);
    }
    tx.emit(Record::SyncDeadlinePassed);
    if tx.group().can_rebalance() {
        prepare_rebalance(tx, config, now_ms);
    }
}

/// After start-up replay: every loaded member gets a full session to come back.
pub fn on_loaded(group: &Group, now_ms: i64) -> Outcome<()> {
    let mut tx = Tx::new(Some(group), &group.group_id);
    let members: Vec<(String, i64)> =
        group.members.values().map(|m| (m.member_id.clone(), i64::from(m.session_timeout_ms))).collect();
    for (member_id, session_ms) in members {
        tx.emit(Record::Heartbeat { member_id, deadline_ms: now_ms + session_ms });
    }
    tx.now(())
}
