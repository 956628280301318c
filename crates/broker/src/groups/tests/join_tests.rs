//! JoinGroup and the join phase.

use super::*;

#[test]
fn invalid_group_id_and_session_timeouts_are_refused() {
    let mut h = Harness::new();
    let mut request = join_request("");
    request.group_id = String::new();
    assert_eq!(h.join(&request).now().error, Some(ResponseError::InvalidGroupId));
    for timeout in [5_999, 60_001] {
        let request = JoinRequest { session_timeout_ms: timeout, ..join_request("") };
        assert_eq!(h.join(&request).now().error, Some(ResponseError::InvalidSessionTimeout), "{timeout}");
    }
    assert!(h.group.is_none(), "nothing was recorded");
}

#[test]
fn unknown_member_of_a_missing_group_is_unknown() {
    let mut h = Harness::new();
    assert_eq!(h.join(&join_request("ghost")).now().error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn new_member_gets_an_id_first_and_joins_with_it() {
    let mut h = Harness::new();
    let first = h.join(&join_request("")).now();
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(first.member_id.starts_with("client-"), "{}", first.member_id);
    assert_eq!(h.state(), GroupState::Empty, "a pending member does not start a rebalance");
    assert!(h.group().pending_members.contains_key(&first.member_id));
    let landed = h.join(&join_request(&first.member_id));
    assert_eq!(landed.parked(WaitKind::Join), first.member_id);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.group().join_deadline_ms, Some(T0 + DELAY_MS), "the initial rebalance waits its delay");
    assert!(h.group().pending_members.is_empty());
    // Nothing completes before the delay, even though everyone has joined.
    let early = h.tick_at(T0 + DELAY_MS - 1);
    assert!(early.wakeups.is_empty());
    let done = h.tick_at(T0 + DELAY_MS);
    let response = done.join_wakeup(&first.member_id);
    assert_eq!((response.error, response.generation_id), (None, 1));
    assert_eq!(response.leader, first.member_id);
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(response.members.len(), 1, "the leader gets the members");
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert!(done.persisted().is_empty(), "a generation is stored only once it has its assignment");
}

#[test]
fn before_v4_a_new_member_joins_at_once() {
    let mut h = Harness::new();
    let request = JoinRequest { require_known_member_id: false, ..join_request("") };
    let landed = h.join(&request);
    let member_id = landed.parked(WaitKind::Join).to_string();
    assert_eq!(h.group().members.len(), 1);
    assert!(h.group().member(&member_id).unwrap().awaiting_join);
}

#[test]
fn pending_member_that_never_returns_expires_after_its_session() {
    let mut h = Harness::new();
    let id = h.join(&join_request("")).now().member_id;
    assert_eq!(h.group().next_deadline_ms(), Some(T0 + i64::from(SESSION_MS)));
    h.tick_at(T0 + i64::from(SESSION_MS));
    assert!(!h.group().pending_members.contains_key(&id));
    assert_eq!(h.join(&join_request(&id)).now().error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn protocol_type_and_protocols_must_be_compatible() {
    let mut h = Harness::new();
    let request = JoinRequest { protocol_type: String::new(), require_known_member_id: false, ..join_request("") };
    assert_eq!(h.join(&request).now().error, Some(ResponseError::InconsistentGroupProtocol));
    let request = JoinRequest { protocols: vec![], require_known_member_id: false, ..join_request("") };
    assert_eq!(h.join(&request).now().error, Some(ResponseError::InconsistentGroupProtocol));
    let (_, landed) = h.join_new();
    landed.parked(WaitKind::Join);
    let request = JoinRequest { protocol_type: "connect".into(), ..join_request("") };
    assert_eq!(h.join(&request).now().error, Some(ResponseError::InconsistentGroupProtocol));
    let request = JoinRequest { protocols: protocols(&["roundrobin"]), ..join_request("") };
    assert_eq!(h.join(&request).now().error, Some(ResponseError::InconsistentGroupProtocol));
}

#[test]
fn protocol_is_chosen_by_votes_among_common_ones() {
    let mut h = Harness::new();
    let prefs: [&[&str]; 3] = [&["range", "roundrobin"], &["roundrobin", "range"], &["roundrobin", "range", "sticky"]];
    for names in prefs {
        let id = h.join(&join_request("")).now().member_id;
        let request = JoinRequest { protocols: protocols(names), ..join_request(&id) };
        h.join(&request).parked(WaitKind::Join);
    }
    h.advance_until(|g| g.is(GroupState::CompletingRebalance));
    assert_eq!(h.group().protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn initial_delay_grows_while_members_arrive_then_completes() {
    let mut h = Harness::new();
    let (a, _) = h.join_new();
    h.now = T0 + 1_000;
    let (b, _) = h.join_new();
    assert!(h.group().initial_delay.unwrap().new_member_added);
    let extended = h.tick_at(T0 + DELAY_MS);
    assert!(extended.wakeups.is_empty());
    assert_eq!(h.group().join_deadline_ms, Some(T0 + 2 * DELAY_MS));
    let done = h.tick_at(T0 + 2 * DELAY_MS);
    assert_eq!(done.wakeups.len(), 2);
    assert_eq!(done.join_wakeup(&a).generation_id, 1);
    assert_eq!(done.join_wakeup(&b).generation_id, 1);
    let leader = &h.group().leader_id.clone().unwrap();
    assert!(done.join_wakeup(leader).members.len() == 2);
    let follower = if leader == &a { &b } else { &a };
    assert!(done.join_wakeup(follower).members.is_empty(), "followers do not get the members");
}

#[test]
fn new_member_rebalances_a_stable_group_and_completes_when_all_rejoin() {
    let (mut h, members) = Harness::stable(2);
    let (newcomer, landed) = h.join_new();
    landed.parked(WaitKind::Join);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.group().join_deadline_ms, Some(h.now + i64::from(REBALANCE_MS)));
    assert_eq!(h.group().member(&members[0]).unwrap().assignment, Bytes::from(format!("assignment-of-{}", members[0])));
    assert_eq!(h.heartbeat(&members[0], 1), Some(ResponseError::RebalanceInProgress));
    h.join(&join_request(&members[0])).parked(WaitKind::Join);
    let last = h.join(&join_request(&members[1]));
    last.parked(WaitKind::Join);
    assert_eq!(h.state(), GroupState::CompletingRebalance, "completes as soon as everyone rejoined");
    for member in members.iter().chain(std::iter::once(&newcomer)) {
        assert_eq!(last.join_wakeup(member).generation_id, 2);
    }
}

#[test]
fn member_that_does_not_rejoin_in_time_is_dropped() {
    let (mut h, members) = Harness::stable(2);
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..join_request(&members[1]) };
    h.join(&changed).parked(WaitKind::Join);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let deadline = h.group().join_deadline_ms.unwrap();
    let done = h.tick_at(deadline);
    assert!(h.group().member(&members[0]).is_none(), "the absent member was removed");
    let response = done.join_wakeup(&members[1]);
    assert_eq!((response.generation_id, response.leader.as_str()), (2, members[1].as_str()), "leadership moved");
}

#[test]
fn group_max_size_is_enforced() {
    let (mut h, _) = Harness::stable(3);
    let response = h.join(&join_request("")).now();
    assert_eq!(response.error, Some(ResponseError::GroupMaxSizeReached));
}

#[test]
fn follower_rejoining_a_stable_group_unchanged_does_not_rebalance() {
    let (mut h, members) = Harness::stable(2);
    let response = h.join(&join_request(&members[1])).now();
    assert_eq!((response.error, response.generation_id), (None, 1));
    assert!(response.members.is_empty());
    assert_eq!(h.state(), GroupState::Stable);
    // The leader rejoining asks for a rebalance (its view of the topics may have changed).
    h.join(&join_request(&members[0])).parked(WaitKind::Join);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn changed_metadata_rebalances_and_unchanged_rejoin_during_sync_is_answered_again() {
    let (mut h, members) = Harness::stable(2);
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..join_request(&members[1]) };
    h.join(&changed).parked(WaitKind::Join);
    let done = h.join(&join_request(&members[0]));
    assert_eq!(done.join_wakeup(&members[1]).generation_id, 2);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let again = h.join(&changed).now();
    assert_eq!((again.error, again.generation_id), (None, 2));
}

#[test]
fn member_of_an_empty_group_is_unknown() {
    let (mut h, members) = Harness::stable(1);
    h.leave(&[LeavingMember { member_id: members[0].clone(), instance_id: None }]);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.join(&join_request(&members[0])).now().error, Some(ResponseError::UnknownMemberId));
}
