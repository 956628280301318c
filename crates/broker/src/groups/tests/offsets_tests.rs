//! OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups, offsets retention, and replay.

use super::*;
use crate::groups::group::CommittedOffset;

fn errors(response: &offsets::CommitResponse) -> Vec<Option<ResponseError>> {
    response.iter().flat_map(|(_, ps)| ps.iter().map(|(_, e)| *e)).collect()
}

#[test]
fn standalone_commit_creates_a_simple_group_and_keeps_metadata_and_epoch() {
    let mut h = Harness::new();
    let landed = h.commit(&commit_request("", -1, &[("t", 0, 10), ("t", 1, 20), ("u", 0, 5)]));
    assert_eq!(landed.persisted().len(), 3);
    assert_eq!(errors(&landed.now()), vec![None, None, None]);
    assert_eq!((h.state(), h.group().protocol_type.clone()), (GroupState::Empty, None));
    let fetched = offsets::fetch(h.group.as_ref(), Some(&[("t".to_string(), vec![1, 7])]));
    assert_eq!(fetched[0].1[0].offset, 20);
    assert_eq!((fetched[0].1[0].leader_epoch, fetched[0].1[0].metadata.as_str()), (5, "m"));
    assert_eq!((fetched[0].1[1].offset, fetched[0].1[1].leader_epoch), (-1, -1), "nothing committed");
    let all = offsets::fetch(h.group.as_ref(), None);
    let listed: Vec<(&str, i32, i64)> =
        all.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), p.partition, p.offset))).collect();
    assert_eq!(listed, vec![("t", 0, 10), ("t", 1, 20), ("u", 0, 5)]);
    assert_eq!(h.replayed().unwrap().offsets, h.group().offsets, "offsets replay exactly");
}

#[test]
fn commit_to_a_missing_group_with_a_generation_is_refused_by_version() {
    let mut h = Harness::new();
    let v8 = commit_request("m", 3, &[("t", 0, 1)]);
    assert_eq!(errors(&h.commit(&v8).now()), vec![Some(ResponseError::IllegalGeneration)]);
    let v9 = CommitRequest { version: 9, ..v8 };
    assert_eq!(errors(&h.commit(&v9).now()), vec![Some(ResponseError::GroupIdNotFound)]);
    assert!(h.group.is_none());
}

#[test]
fn member_commits_are_checked_against_membership_and_generation() {
    let (mut h, members) = Harness::stable(2);
    let ok = h.commit(&commit_request(&members[1], 1, &[("t", 0, 1)]));
    assert_eq!(errors(&ok.now()), vec![None]);
    let cases = [
        (commit_request(&members[1], 2, &[("t", 0, 1)]), ResponseError::IllegalGeneration),
        (commit_request("ghost", 1, &[("t", 0, 1)]), ResponseError::UnknownMemberId),
        (commit_request("", -1, &[("t", 0, 1)]), ResponseError::UnknownMemberId),
        (
            CommitRequest { instance_id: Some("i".into()), ..commit_request(&members[1], 1, &[("t", 0, 1)]) },
            ResponseError::UnknownMemberId,
        ),
    ];
    for (request, error) in cases {
        assert_eq!(errors(&h.commit(&request).now()), vec![Some(error)], "{request:?}");
    }
    // During CompletingRebalance commits wait for the new generation.
    let changed = JoinRequest { protocols: protocols(&["range", "roundrobin"]), ..join_request(&members[1]) };
    h.join(&changed).parked(WaitKind::Join);
    h.join(&join_request(&members[0])).parked(WaitKind::Join);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let busy = h.commit(&commit_request(&members[1], 2, &[("t", 0, 1)]));
    assert_eq!(errors(&busy.now()), vec![Some(ResponseError::RebalanceInProgress)]);
}

#[test]
fn commit_renews_the_session_and_rejects_oversized_metadata() {
    let (mut h, members) = Harness::stable(1);
    h.now += 7_000;
    let mut request = commit_request(&members[0], 1, &[("t", 0, 1), ("t", 1, 2)]);
    request.topics[0].1[1].metadata = Some("x".repeat(17));
    let response = h.commit(&request).now();
    assert_eq!(errors(&response), vec![None, Some(ResponseError::OffsetMetadataTooLarge)]);
    assert_eq!(h.group().member(&members[0]).unwrap().heartbeat_deadline_ms, h.now + i64::from(SESSION_MS));
    assert!(h.group().offsets.contains_key(&("t".to_string(), 0)));
    assert!(!h.group().offsets.contains_key(&("t".to_string(), 1)));
}

#[test]
fn offset_delete_respects_subscriptions() {
    let mut h = Harness::new();
    let missing = offsets::delete_offsets(None, GROUP, &[("t".into(), vec![0])]);
    assert_eq!(h.land(missing).now(), Err(ResponseError::GroupIdNotFound));
    let (mut h, members) = Harness::stable(1);
    h.commit(&commit_request(&members[0], 1, &[("t", 0, 1), ("other", 0, 2)]));
    let outcome = offsets::delete_offsets(h.group.as_ref(), GROUP, &[("t".into(), vec![0]), ("other".into(), vec![0])]);
    let landed = h.land(outcome);
    assert_eq!(landed.persisted().len(), 1, "one tombstone");
    let response = landed.now().unwrap();
    assert_eq!(response[0].1, vec![(0, Some(ResponseError::GroupSubscribedToTopic))], "the group reads t");
    assert_eq!(response[1].1, vec![(0, None)]);
    assert!(!h.group().offsets.contains_key(&("other".to_string(), 0)));
    assert!(!h.replayed().unwrap().offsets.contains_key(&("other".to_string(), 0)), "the tombstone replays");
    // A non-consumer group with members may not lose offsets at all.
    let mut other = h.group().clone();
    other.protocol_type = Some("connect".into());
    let outcome = offsets::delete_offsets(Some(&other), GROUP, &[("x".into(), vec![0])]);
    assert_eq!(outcome.reply, Reply::Now(Err(ResponseError::NonEmptyGroup)));
}

#[test]
fn only_empty_groups_are_deleted_and_their_offsets_go_too() {
    let mut h = Harness::new();
    assert_eq!(h.land(offsets::delete_group(None, GROUP)).now(), Some(ResponseError::GroupIdNotFound));
    let (mut h, members) = Harness::stable(1);
    h.commit(&commit_request(&members[0], 1, &[("t", 0, 1), ("t", 1, 1)]));
    assert_eq!(
        h.land(offsets::delete_group(h.group.clone().as_ref(), GROUP)).now(),
        Some(ResponseError::NonEmptyGroup)
    );
    h.leave(&[LeavingMember { member_id: members[0].clone(), instance_id: None }]);
    let landed = h.land(offsets::delete_group(h.group.clone().as_ref(), GROUP));
    assert_eq!(landed.persisted().len(), 3, "two offset tombstones and the group's");
    assert!(h.group.is_none());
    assert!(h.replayed().is_none(), "the group does not come back on replay");
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention_then_the_group_goes() {
    let (mut h, members) = Harness::stable(1);
    h.commit(&commit_request(&members[0], 1, &[("t", 0, 1)]));
    let retention = h.config.offsets_retention_ms;
    // A group with members keeps offsets of topics it consumes.
    let kept = offsets::expire(h.group(), &h.config, h.now + 10 * retention);
    assert!(kept.records.is_empty());
    h.now += 1_000;
    h.leave(&[LeavingMember { member_id: members[0].clone(), instance_id: None }]);
    let emptied_at = h.now;
    assert!(offsets::expire(h.group(), &h.config, emptied_at + retention - 1).records.is_empty());
    let landed = h.land(offsets::expire(h.group(), &h.config, emptied_at + retention));
    assert_eq!(landed.persisted().len(), 2, "the offset and then the group are removed");
    assert!(h.group.is_none());
    assert!(h.replayed().is_none());
}

#[test]
fn simple_group_offsets_expire_by_commit_time_or_explicit_retention() {
    let mut h = Harness::new();
    h.commit(&commit_request("", -1, &[("t", 0, 1)]));
    h.now += 5_000;
    let explicit = CommitRequest { retention_time_ms: 1_000, version: 2, ..commit_request("", -1, &[("t", 1, 1)]) };
    h.commit(&explicit);
    let expiring = h.group().offsets[&("t".to_string(), 1)].clone();
    assert_eq!(expiring.expire_timestamp_ms, Some(h.now + 1_000));
    assert_eq!(h.replayed().unwrap().offsets[&("t".to_string(), 1)], expiring, "expiry survives replay (v1 value)");
    let landed = h.land(offsets::expire(h.group(), &h.config, h.now + 1_000));
    assert_eq!(landed.persisted().len(), 1);
    assert!(h.group().offsets.contains_key(&("t".to_string(), 0)));
    let retention = h.config.offsets_retention_ms;
    h.land(offsets::expire(h.group(), &h.config, T0 + retention));
    assert!(h.group.is_none());
}

#[test]
fn replay_rebuilds_groups_members_and_offsets_and_arms_sessions() {
    let (mut h, members) = Harness::stable(2);
    h.commit(&commit_request(&members[0], 1, &[("t", 0, 42)]));
    let mut replayed = h.replayed().unwrap();
    assert_eq!((replayed.state, replayed.generation_id), (GroupState::Stable, 1));
    assert_eq!(replayed.members.len(), 2);
    assert_eq!(
        replayed.offsets[&("t".to_string(), 0)],
        CommittedOffset {
            offset: 42,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp_ms: h.now,
            expire_timestamp_ms: None
        }
    );
    assert_eq!(replayed.next_deadline_ms(), None, "sessions are armed on load, not by replay");
    let loaded = timers::on_loaded(&replayed, T0 + 99);
    for record in &loaded.records {
        replayed.apply(record);
    }
    assert_eq!(replayed.next_deadline_ms(), Some(T0 + 99 + i64::from(SESSION_MS)));
    assert_eq!(replayed.member(&members[1]).unwrap().assignment, h.group().member(&members[1]).unwrap().assignment);
}
