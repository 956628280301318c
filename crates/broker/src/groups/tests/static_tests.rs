//! Static membership (KIP-345).

use super::*;

/// A Stable group of static members at generation 1; ids in `instances` order.
fn stable_static(instances: &[&str]) -> (Harness, Vec<String>) {
    let mut h = Harness::new();
    let mut ids = Vec::new();
    for instance in instances {
        let landed = h.join(&static_request("", instance));
        let id = landed.parked(WaitKind::Join).to_string();
        assert!(id.starts_with(&format!("{instance}-")), "{id}");
        ids.push(id);
    }
    h.advance_until(|g| g.is(GroupState::CompletingRebalance));
    let leader = h.group().leader_id.clone().unwrap();
    let assignments: Vec<(String, String)> = ids.iter().map(|m| (m.clone(), format!("asg-{m}"))).collect();
    let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
    for id in ids.iter().filter(|id| **id != leader) {
        h.sync(&sync_request(id, 1, &[])).parked(WaitKind::Sync);
    }
    h.sync(&sync_request(&leader, 1, &pairs));
    assert_eq!(h.state(), GroupState::Stable);
    (h, ids)
}

fn static_heartbeat(h: &mut Harness, member_id: &str, instance: &str) -> Option<ResponseError> {
    let request = HeartbeatRequest { instance_id: Some(instance.into()), ..heartbeat_request(member_id, 1) };
    let outcome = sync::heartbeat(h.group.as_ref(), &request, h.now);
    h.land(outcome).now()
}

#[test]
fn restarted_static_member_gets_its_assignment_back_without_a_rebalance() {
    let (mut h, ids) = stable_static(&["a", "b"]);
    let follower_index = if h.group().is_leader(&ids[0]) { 1 } else { 0 };
    let (old_id, instance) = (ids[follower_index].clone(), ["a", "b"][follower_index]);
    let generation = h.group().generation_id;
    let landed = h.join(&static_request("", instance));
    assert_eq!(landed.persisted().len(), 1, "the new member id is stored");
    let response = landed.now();
    assert_eq!((response.error, response.generation_id), (None, generation));
    let new_id = response.member_id.clone();
    assert_ne!(new_id, old_id);
    assert_eq!(h.state(), GroupState::Stable, "no rebalance");
    let assignment = h.sync(&sync_request(&new_id, generation, &[])).now().assignment;
    assert_eq!(assignment, Bytes::from(format!("asg-{old_id}")), "the old assignment, now under the new id");
    assert_eq!(static_heartbeat(&mut h, &old_id, instance), Some(ResponseError::FencedInstanceId));
    assert_eq!(static_heartbeat(&mut h, &new_id, instance), None);
    assert_eq!(static_heartbeat(&mut h, &new_id, "zzz"), Some(ResponseError::UnknownMemberId));
    let replayed = h.replayed().unwrap();
    assert!(replayed.member(&new_id).is_some() && replayed.member(&old_id).is_none());
    assert_eq!(replayed.static_members.get(instance), Some(&new_id));
}

#[test]
fn restarted_static_leader_is_told_not_to_assign() {
    for v9 in [false, true] {
        let (mut h, ids) = stable_static(&["a", "b"]);
        let leader = h.group().leader_id.clone().unwrap();
        let instance = if leader == ids[0] { "a" } else { "b" };
        let request = JoinRequest { supports_skip_assignment: v9, ..static_request("", instance) };
        let response = h.join(&request).now();
        if v9 {
            assert!(response.skip_assignment);
            assert_eq!(response.leader, response.member_id, "it is the leader, and knows it");
            assert_eq!(response.members.len(), 2);
        } else {
            assert!(!response.skip_assignment);
            assert_eq!(response.leader, leader, "before v9 it is shown the old leader id, so it does not assign");
            assert!(response.members.is_empty());
        }
        assert_eq!(h.state(), GroupState::Stable);
    }
}

#[test]
fn static_member_joins_without_member_id_required() {
    let mut h = Harness::new();
    let landed = h.join(&static_request("", "only"));
    assert!(landed.parked(WaitKind::Join).starts_with("only-"));
    assert!(h.group().pending_members.is_empty());
}

#[test]
fn static_rejoin_while_completing_fences_the_zombie_and_rebalances() {
    let mut h = Harness::new();
    let a = h.join(&static_request("", "a")).parked(WaitKind::Join).to_string();
    let b = h.join(&static_request("", "b")).parked(WaitKind::Join).to_string();
    h.advance_until(|g| g.is(GroupState::CompletingRebalance));
    let follower = if h.group().is_leader(&a) { (b, "b") } else { (a, "a") };
    h.sync(&sync_request(&follower.0, 1, &[])).parked(WaitKind::Sync);
    let landed = h.join(&static_request("", follower.1));
    assert_eq!(landed.sync_wakeup(&follower.0).error, Some(ResponseError::FencedInstanceId));
    let new_id = landed.parked(WaitKind::Join).to_string();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.group().member(&new_id).unwrap().awaiting_join);
}

#[test]
fn static_member_that_does_not_rejoin_stays_in_the_group() {
    let (mut h, ids) = stable_static(&["a", "b"]);
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..static_request(&ids[1], "b") };
    h.join(&changed).parked(WaitKind::Join);
    // "a" keeps heartbeating but does not rejoin before the rebalance times out.
    let deadline = h.group().join_deadline_ms.unwrap();
    h.now = deadline - 1;
    let hb = HeartbeatRequest { instance_id: Some("a".into()), ..heartbeat_request(&ids[0], 1) };
    let outcome = sync::heartbeat(h.group.as_ref(), &hb, h.now);
    assert_eq!(h.land(outcome).now(), Some(ResponseError::RebalanceInProgress));
    let done = h.tick_at(deadline);
    assert_eq!(done.join_wakeup(&ids[1]).generation_id, 2);
    assert!(h.group().member(&ids[0]).is_some(), "a static member is not dropped for not rejoining");
    assert_eq!(h.group().leader_id.as_deref(), Some(ids[1].as_str()), "the leader is one that rejoined");
}

#[test]
fn admin_removes_a_static_member_by_instance_id() {
    let (mut h, ids) = stable_static(&["a", "b"]);
    let response = h.leave(&[
        LeavingMember { member_id: String::new(), instance_id: Some("b".into()) },
        LeavingMember { member_id: String::new(), instance_id: Some("nobody".into()) },
    ]);
    let response = response.now();
    assert_eq!(response.members[0].2, None);
    assert_eq!(response.members[1].2, Some(ResponseError::UnknownMemberId));
    assert!(h.group().member(&ids[1]).is_none());
    assert!(!h.group().static_members.contains_key("b"));
    // A member id that does not match the instance is fenced.
    let fenced = h.leave(&[LeavingMember { member_id: "other".into(), instance_id: Some("a".into()) }]).now();
    assert_eq!(fenced.members[0].2, Some(ResponseError::FencedInstanceId));
}
