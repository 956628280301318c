//! SyncGroup, Heartbeat, LeaveGroup and session expiry.

use super::*;

/// Two members at generation 1, CompletingRebalance; returns (harness, leader, follower).
fn completing() -> (Harness, String, String) {
    let mut h = Harness::new();
    let (a, _) = h.join_new();
    let (b, _) = h.join_new();
    h.advance_until(|g| g.is(GroupState::CompletingRebalance));
    let leader = h.group().leader_id.clone().unwrap();
    let follower = if leader == a { b } else { a };
    (h, leader, follower)
}

#[test]
fn sync_errors() {
    let mut h = Harness::new();
    assert_eq!(h.sync(&sync_request("m", 1, &[])).now().error, Some(ResponseError::UnknownMemberId));
    let (mut h, leader, follower) = completing();
    assert_eq!(h.sync(&sync_request("ghost", 1, &[])).now().error, Some(ResponseError::UnknownMemberId));
    assert_eq!(h.sync(&sync_request(&follower, 7, &[])).now().error, Some(ResponseError::IllegalGeneration));
    let wrong = SyncRequest { protocol_name: Some("roundrobin".into()), ..sync_request(&follower, 1, &[]) };
    assert_eq!(h.sync(&wrong).now().error, Some(ResponseError::InconsistentGroupProtocol));
    let wrong = SyncRequest { protocol_type: Some("connect".into()), ..sync_request(&follower, 1, &[]) };
    assert_eq!(h.sync(&wrong).now().error, Some(ResponseError::InconsistentGroupProtocol));
    let right = SyncRequest {
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        ..sync_request(&leader, 1, &[])
    };
    assert_eq!(h.sync(&right).now().error, None);
    // A rebalance under way: rejoin first.
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..join_request(&follower) };
    h.join(&changed).parked(WaitKind::Join);
    assert_eq!(h.sync(&sync_request(&leader, 1, &[])).now().error, Some(ResponseError::RebalanceInProgress));
}

#[test]
fn leader_assignment_stabilises_the_group_answers_followers_and_is_stored() {
    let (mut h, leader, follower) = completing();
    h.sync(&sync_request(&follower, 1, &[])).parked(WaitKind::Sync);
    h.now += 100;
    let landed = h.sync(&sync_request(&leader, 1, &[(&leader, "L"), (&follower, "F")]));
    let woken = landed.sync_wakeup(&follower).clone();
    assert_eq!((woken.error, woken.assignment.as_ref()), (None, &b"F"[..]));
    assert_eq!(woken.protocol_name.as_deref(), Some("range"));
    assert_eq!(landed.persisted().len(), 1, "one generation record");
    assert_eq!(landed.now().assignment, Bytes::from_static(b"L"));
    assert_eq!(h.state(), GroupState::Stable);
    let session = i64::from(SESSION_MS);
    assert_eq!(h.group().member(&follower).unwrap().heartbeat_deadline_ms, h.now + session, "session restarts");
    // Syncing again in Stable returns the stored assignment at once.
    assert_eq!(h.sync(&sync_request(&follower, 1, &[])).now().assignment, Bytes::from_static(b"F"));
    // The stored generation replays to the same members and assignments.
    let replayed = h.replayed().unwrap();
    assert_eq!((replayed.state, replayed.generation_id), (GroupState::Stable, 1));
    assert_eq!(replayed.member(&follower).unwrap().assignment, Bytes::from_static(b"F"));
    assert_eq!(replayed.leader_id.as_deref(), Some(leader.as_str()));
}

#[test]
fn members_left_out_of_the_assignment_get_an_empty_one() {
    let (mut h, leader, follower) = completing();
    h.sync(&sync_request(&leader, 1, &[(&leader, "L")]));
    assert_eq!(h.sync(&sync_request(&follower, 1, &[])).now().assignment, Bytes::new());
}

#[test]
fn member_that_never_syncs_is_dropped_and_the_group_rebalances() {
    let (mut h, leader, follower) = completing();
    h.sync(&sync_request(&leader, 1, &[(&leader, "L"), (&follower, "F")]));
    let deadline = h.group().sync_deadline_ms.expect("the follower's sync is awaited");
    while h.now + 5_000 < deadline {
        h.now += 5_000;
        assert_eq!(h.heartbeat(&follower, 1), None);
        assert_eq!(h.heartbeat(&leader, 1), None);
    }
    h.tick_at(deadline);
    assert!(h.group().member(&follower).is_none());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_rebalance_answers_parked_syncs_with_rebalance_in_progress() {
    let (mut h, leader, follower) = completing();
    h.sync(&sync_request(&follower, 1, &[])).parked(WaitKind::Sync);
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..join_request(&leader) };
    let landed = h.join(&changed);
    assert_eq!(landed.sync_wakeup(&follower).error, Some(ResponseError::RebalanceInProgress));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn heartbeat_errors_and_renewal() {
    let mut h = Harness::new();
    assert_eq!(h.heartbeat("m", 0), Some(ResponseError::UnknownMemberId));
    let (mut h, members) = Harness::stable(2);
    assert_eq!(h.heartbeat("ghost", 1), Some(ResponseError::UnknownMemberId));
    assert_eq!(h.heartbeat(&members[1], 0), Some(ResponseError::IllegalGeneration));
    h.now += 5_000;
    assert_eq!(h.heartbeat(&members[1], 1), None);
    assert_eq!(h.group().member(&members[1]).unwrap().heartbeat_deadline_ms, h.now + i64::from(SESSION_MS));
}

#[test]
fn silent_member_expires_and_the_last_one_leaves_an_empty_stored_generation() {
    let (mut h, members) = Harness::stable(2);
    let start = h.now;
    // Only the leader keeps its session alive.
    for step in 1..=3 {
        h.now = start + step * 4_000;
        assert_eq!(h.heartbeat(&members[0], 1), None);
        h.tick_at(h.now);
    }
    assert!(h.group().member(&members[1]).is_none(), "the silent follower expired");
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&members[0], 1), Some(ResponseError::RebalanceInProgress));
    let landed = h.tick_at(h.group().member(&members[0]).unwrap().heartbeat_deadline_ms);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.group().generation_id, 2);
    assert_eq!(landed.persisted().len(), 1, "the empty generation is stored");
    let replayed = h.replayed().unwrap();
    assert_eq!((replayed.state, replayed.generation_id, replayed.members.len()), (GroupState::Empty, 2, 0));
}

#[test]
fn parked_member_outlives_its_session_but_a_silent_one_does_not() {
    let (mut h, members) = Harness::stable(2);
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..join_request(&members[1]) };
    h.join(&changed).parked(WaitKind::Join);
    let session_end = h.group().member(&members[0]).unwrap().heartbeat_deadline_ms;
    assert!(session_end < h.group().join_deadline_ms.unwrap());
    let landed = h.tick_at(session_end);
    assert!(h.group().member(&members[0]).is_none(), "the member that neither rejoined nor heartbeated expired");
    let response = landed.join_wakeup(&members[1]);
    assert_eq!((response.error, response.generation_id), (None, 2), "the parked member carried on");
}

#[test]
fn parked_new_member_expires_after_the_new_member_join_timeout() {
    let mut h = Harness::new();
    h.config.initial_rebalance_delay_ms = 600_000;
    let (m, landed) = h.join_new();
    landed.parked(WaitKind::Join);
    let deadline = h.group().member(&m).unwrap().heartbeat_deadline_ms;
    assert_eq!(deadline, T0 + h.config.new_member_join_timeout_ms);
    let landed = h.tick_at(deadline);
    assert_eq!(landed.join_wakeup(&m).error, Some(ResponseError::UnknownMemberId));
    assert_eq!((h.state(), h.group().members.len()), (GroupState::Empty, 0));
}

#[test]
fn leave_rebalances_and_reports_per_member() {
    let (mut h, members) = Harness::stable(2);
    let landed = h.leave(&[
        LeavingMember { member_id: members[1].clone(), instance_id: None },
        LeavingMember { member_id: "ghost".into(), instance_id: None },
    ]);
    let response = landed.now();
    assert_eq!(response.members[0].2, None);
    assert_eq!(response.members[1].2, Some(ResponseError::UnknownMemberId));
    assert!(h.group().member(&members[1]).is_none());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.join(&join_request(&members[0])).parked(WaitKind::Join);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    // The last member leaving empties the group.
    h.leave(&[LeavingMember { member_id: members[0].clone(), instance_id: None }]);
    assert_eq!(h.state(), GroupState::Empty);
    let response = h.leave(&[LeavingMember { member_id: members[0].clone(), instance_id: None }]).now();
    assert_eq!(response.members[0].2, Some(ResponseError::UnknownMemberId));
}

#[test]
fn leaving_a_missing_group_and_a_pending_member() {
    let mut h = Harness::new();
    let response = h.leave(&[LeavingMember { member_id: "m".into(), instance_id: None }]).now();
    assert_eq!(response.error, Some(ResponseError::UnknownMemberId));
    let pending = h.join(&join_request("")).now().member_id;
    let response = h.leave(&[LeavingMember { member_id: pending.clone(), instance_id: None }]).now();
    assert_eq!(response.members[0].2, None);
    assert!(h.group().pending_members.is_empty());
}

#[test]
fn leaving_while_parked_in_join_answers_the_parked_request() {
    let (mut h, members) = Harness::stable(2);
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..join_request(&members[1]) };
    h.join(&changed).parked(WaitKind::Join);
    let landed = h.leave(&[LeavingMember { member_id: members[1].clone(), instance_id: None }]);
    assert_eq!(landed.join_wakeup(&members[1]).error, Some(ResponseError::UnknownMemberId));
}
