//! The group state machine under random request sequences: every outcome is replayed and
//! compared with what the handler saw (`Harness::land` asserts it on every step, in every
//! build, not only debug ones), and at every step the group rebuilt from the persistent log
//! alone has the same committed offsets and, in a stable state, the same generation.

use proptest::prelude::*;

use super::*;

/// One request or clock step; members are picked by index among those that joined.
#[derive(Clone, Debug)]
enum Op {
    JoinNew,
    Rejoin(usize),
    SyncFollower(usize),
    SyncLeader,
    Heartbeat(usize),
    Leave(usize),
    Commit { member: usize, partition: i32, offset: i64 },
    Tick { after_ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::JoinNew),
        2 => (0usize..4).prop_map(Op::Rejoin),
        2 => (0usize..4).prop_map(Op::SyncFollower),
        2 => Just(Op::SyncLeader),
        2 => (0usize..4).prop_map(Op::Heartbeat),
        1 => (0usize..4).prop_map(Op::Leave),
        3 => (0usize..4, 0i32..3, 0i64..1_000).prop_map(|(member, partition, offset)| Op::Commit { member, partition, offset }),
        2 => (0i64..2 * REBALANCE_MS as i64).prop_map(|after_ms| Op::Tick { after_ms }),
    ]
}

fn pick(members: &[String], index: usize) -> String {
    if members.is_empty() {
        "unknown-member".to_string()
    } else {
        members[index % members.len()].clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn every_step_replays_and_the_log_alone_rebuilds_the_committed_state(ops in proptest::collection::vec(op(), 1..40)) {
        let mut h = Harness::new();
        let mut members: Vec<String> = Vec::new();
        for op in ops {
            let generation = h.group.as_ref().map_or(-1, |g| g.generation_id);
            match op {
                Op::JoinNew => {
                    let first = h.join(&join_request("")).now();
                    if first.error == Some(ResponseError::MemberIdRequired) {
                        members.push(first.member_id.clone());
                        let _ = h.join(&join_request(&first.member_id));
                    }
                }
                Op::Rejoin(i) => {
                    let _ = h.join(&join_request(&pick(&members, i)));
                }
                Op::SyncFollower(i) => {
                    let _ = h.sync(&sync_request(&pick(&members, i), generation, &[]));
                }
                Op::SyncLeader => {
                    let leader = h.group.as_ref().and_then(|g| g.leader_id.clone()).unwrap_or_default();
                    let assignments: Vec<(String, String)> = members.iter().map(|m| (m.clone(), format!("a-{m}"))).collect();
                    let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
                    let _ = h.sync(&sync_request(&leader, generation, &pairs));
                }
                Op::Heartbeat(i) => {
                    let _ = h.heartbeat(&pick(&members, i), generation);
                }
                Op::Leave(i) => {
                    let member = pick(&members, i);
                    let _ = h.leave(&[LeavingMember { member_id: member, instance_id: None }]);
                }
                Op::Commit { member, partition, offset } => {
                    let _ = h.commit(&commit_request(&pick(&members, member), generation, &[("t", partition, offset)]));
                }
                Op::Tick { after_ms } => {
                    if h.group.is_some() {
                        let at = h.now + after_ms;
                        let _ = h.tick_at(at);
                    } else {
                        h.now += after_ms;
                    }
                }
            }
            let replayed = h.replayed();
            let live_offsets = h.group.as_ref().map(|g| g.offsets.clone()).unwrap_or_default();
            let logged_offsets = replayed.as_ref().map(|g| g.offsets.clone()).unwrap_or_default();
            prop_assert_eq!(&live_offsets, &logged_offsets, "committed offsets differ from the log's");
            if let (Some(live), Some(logged)) = (h.group.as_ref(), replayed.as_ref()) {
                if live.is(GroupState::Stable) {
                    prop_assert_eq!(live.generation_id, logged.generation_id, "a stable generation is in the log");
                }
            }
        }
    }
}
