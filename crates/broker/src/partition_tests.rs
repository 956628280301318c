//! The replication state of one partition: high watermark, ISR changes, roles and fencing
//! of stale fetch answers, on a real log in a temporary directory.

use runnel_metadata::PartitionImage;
use runnel_protocol::batch::build_batch;
use runnel_storage::{LogConfig, PartitionLog};

use crate::config::BrokerConfig;
use crate::partition::{IsrChange, Partition, PartitionError, Role, Transition};
use crate::topic_config;
use runnel_protocol::ResponseError;

const NODE: i32 = 1;
const LAG_MS: i64 = 10_000;

fn image(leader: i32, leader_epoch: i32, partition_epoch: i32, replicas: &[i32], isr: &[i32]) -> PartitionImage {
    PartitionImage {
        partition: 0,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch,
        partition_epoch,
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

fn partition(dir: &std::path::Path, image: &PartitionImage) -> Partition {
    let log = PartitionLog::open(dir, LogConfig::default(), 0, 0, true, 0).expect("open log");
    let settings = topic_config::settings(&BrokerConfig::default(), None);
    Partition::new("t".into(), uuid::Uuid::from_u128(1), NODE, image, log, settings, 0, 0)
}

fn append(partition: &Partition, records: usize) {
    for _ in 0..records {
        partition
            .append_batch(&build_batch(0, &[b"v".as_slice()]), partition.leader_epoch(), false, 0)
            .expect("append");
    }
}

#[test]
fn a_sole_in_sync_leader_moves_the_high_watermark_with_its_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(NODE, 0, 0, &[1], &[1]));
    assert_eq!(p.role(), Role::Leader);
    append(&p, 3);
    assert_eq!((p.log_end_offset(), p.high_watermark()), (3, 3));
}

#[test]
fn the_high_watermark_is_the_smallest_log_end_over_the_isr_and_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(NODE, 0, 0, &[1, 2, 3], &[1, 2, 3]));
    append(&p, 5);
    assert_eq!(p.high_watermark(), 0, "followers have not fetched yet");
    assert_eq!(p.record_follower_fetch(2, 5, -1, 1), Ok(None));
    assert_eq!(p.high_watermark(), 0, "follower 3 is in the ISR and unknown");
    p.record_follower_fetch(3, 2, -1, 1).unwrap();
    assert_eq!(p.high_watermark(), 2);
    p.record_follower_fetch(3, 5, -1, 2).unwrap();
    assert_eq!(p.high_watermark(), 5);
    p.record_follower_fetch(3, 1, -1, 3).unwrap();
    assert_eq!(p.high_watermark(), 5, "never back");
    assert_eq!(p.record_follower_fetch(9, 5, -1, 3), Err(ResponseError::NotLeaderOrFollower), "not a replica: refused");
}

#[test]
fn a_fetch_offset_beyond_the_log_end_is_refused_and_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(NODE, 0, 0, &[1, 2], &[1]));
    append(&p, 3);
    // A client claiming to be follower 2 says it holds 1,000 records: believing it would
    // acknowledge acks=all before replication and put 2 into the ISR.
    assert_eq!(p.record_follower_fetch(2, 1_000, -1, 1), Err(ResponseError::OffsetOutOfRange));
    assert_eq!(p.record_follower_fetch(2, -5, -1, 1), Err(ResponseError::OffsetOutOfRange));
    assert_eq!(p.high_watermark(), 3, "the sole ISR member's log end, unchanged");
    assert_eq!(p.isr_len(), 1);
    append(&p, 1);
    // Follower 2 really at 3: not caught up with 4, so it does not join.
    assert_eq!(p.record_follower_fetch(2, 3, -1, 2), Ok(None));
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_returns_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(NODE, 0, 4, &[1, 2, 3], &[1, 2, 3]));
    append(&p, 4);
    p.record_follower_fetch(2, 4, -1, 1_000).unwrap();
    p.record_follower_fetch(3, 1, -1, 1_000).unwrap();
    assert_eq!(p.isr_shrink(1_000 + LAG_MS / 2, LAG_MS), None, "not lagging for long enough");
    // Follower 2 keeps fetching the log end; follower 3 is stuck at offset 1.
    p.record_follower_fetch(2, 4, -1, 1_000 + LAG_MS).unwrap();
    let shrink = p.isr_shrink(2_000 + LAG_MS, LAG_MS);
    assert_eq!(shrink, Some(IsrChange { isr: vec![1, 2], partition_epoch: 4 }));
    assert_eq!(p.isr_shrink(3_000 + LAG_MS, LAG_MS), None, "one change in flight at a time");
    assert_eq!(p.high_watermark(), 1, "a pending shrink still counts follower 3");
    // The change commits: the high watermark moves past the laggard.
    assert_eq!(p.apply_image(&image(NODE, 0, 5, &[1, 2, 3], &[1, 2]), 3_000 + LAG_MS).unwrap(), Transition::None);
    assert_eq!(p.high_watermark(), 4);
    // Follower 3 catches up to the high watermark: back into the ISR.
    assert_eq!(p.record_follower_fetch(3, 3, -1, 4_000 + LAG_MS), Ok(None), "below the high watermark");
    let expand = p.record_follower_fetch(3, 4, -1, 4_000 + LAG_MS).unwrap();
    assert_eq!(expand, Some(IsrChange { isr: vec![1, 2, 3], partition_epoch: 5 }));
    // A change that failed to commit may be decided again.
    p.isr_change_failed(expand.as_ref().unwrap());
    assert!(p.record_follower_fetch(3, 4, -1, 5_000 + LAG_MS).unwrap().is_some());
}

#[test]
fn a_replica_proposed_to_join_the_isr_holds_the_high_watermark_back_until_an_image_settles_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(NODE, 0, 5, &[1, 2, 3], &[1, 2]));
    append(&p, 4);
    p.record_follower_fetch(2, 4, -1, 1_000).unwrap();
    assert_eq!(p.high_watermark(), 4);
    let expand = p.record_follower_fetch(3, 4, -1, 1_000).unwrap().expect("follower 3 reached the high watermark");
    assert_eq!(expand, IsrChange { isr: vec![1, 2, 3], partition_epoch: 5 });
    // The expansion may be committed (and follower 3 electable) before this node takes the
    // image: the high watermark must not pass what follower 3 holds.
    append(&p, 3);
    p.record_follower_fetch(2, 7, -1, 1_100).unwrap();
    assert_eq!(p.high_watermark(), 4, "follower 3, proposed to join, has only 4");
    // A proposal that seemed to fail may still have committed: still held back.
    p.isr_change_failed(&expand);
    p.record_follower_fetch(2, 7, -1, 1_200).unwrap();
    assert_eq!(p.high_watermark(), 4, "a timed-out proposal can still land");
    p.record_follower_fetch(3, 6, -1, 1_300).unwrap();
    assert_eq!(p.high_watermark(), 6);
    // An image with a newer partition epoch settles it: here follower 3 did not join.
    p.apply_image(&image(NODE, 0, 6, &[1, 2, 3], &[1, 2]), 1_400).unwrap();
    assert_eq!(p.high_watermark(), 7, "only the ISR counts once the change is settled");
}

#[test]
fn a_replica_that_stopped_leading_refuses_writes_for_its_old_epoch_and_never_reports_them_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(NODE, 3, 0, &[1, 2], &[1, 2]));
    let batch = build_batch(0, &[b"v".as_slice()]);
    let (written, _) = p.append_batch(&batch, 3, false, 0).expect("the leader of epoch 3 appends");
    assert!(!p.replicated_to(written.last_offset + 1, 3).unwrap(), "follower 2 has not fetched");
    assert!(matches!(p.append_batch(&batch, 2, false, 0), Err(PartitionError::NotLeader)), "an older epoch");
    // Node 2 takes over in epoch 4. A write checked against epoch 3 must not land here, in
    // particular not stamped with epoch 4, where truncation would not remove it.
    p.apply_image(&image(2, 4, 1, &[1, 2], &[1, 2]), 0).unwrap();
    let end = p.log_end_offset();
    assert!(matches!(p.append_batch(&batch, 3, false, 0), Err(PartitionError::NotLeader)));
    assert!(matches!(p.append_batch(&batch, 4, false, 0), Err(PartitionError::NotLeader)), "epoch 4 is node 2's");
    assert_eq!(p.log_end_offset(), end, "nothing appended");
    // As a follower it truncates the unreplicated write and takes the new leader's records
    // and high watermark past that offset: the write of epoch 3 is still not replicated.
    assert_eq!(p.truncate_to((2, 4), written.base_offset).unwrap(), Some(written.base_offset));
    let mut theirs = build_batch(0, &[b"new leader".as_slice()]);
    runnel_protocol::batch::BatchMut::new(&mut theirs).set_partition_leader_epoch(4);
    assert!(p.append_as_follower((2, 4), &theirs, 1, 0).unwrap());
    assert_eq!(p.high_watermark(), 1);
    assert!(matches!(p.replicated_to(written.last_offset + 1, 3), Err(PartitionError::NotLeader)));
    // Leading again, in a newer epoch, does not revive the old one.
    p.apply_image(&image(NODE, 5, 2, &[1, 2], &[1, 2]), 0).unwrap();
    assert!(matches!(p.replicated_to(written.last_offset + 1, 3), Err(PartitionError::NotLeader)));
    assert!(p.append_batch(&batch, 5, false, 0).is_ok(), "the leader of epoch 5 appends");
}

#[test]
fn becoming_leader_starts_the_new_epoch_at_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(2, 3, 0, &[1, 2], &[1, 2]));
    assert_eq!(p.role(), Role::Follower { leader: 2 });
    let mut batch = build_batch(0, &[b"a".as_slice(), b"b".as_slice()]);
    runnel_protocol::batch::BatchMut::new(&mut batch).set_partition_leader_epoch(3);
    assert!(p.append_as_follower((2, 3), &batch, 2, 0).unwrap());
    assert_eq!((p.log_end_offset(), p.high_watermark()), (2, 2));
    let became = p.apply_image(&image(NODE, 4, 1, &[1, 2], &[1, 2]), 0).unwrap();
    assert_eq!(became, Transition::BecameLeader);
    assert_eq!(p.latest_epoch().unwrap(), Some(4));
    assert_eq!(p.end_offset_for_epoch(3).unwrap(), (3, 2), "epoch 3 ends where epoch 4 starts");
    assert_eq!(p.end_offset_for_epoch(4).unwrap(), (4, 2));
}

#[test]
fn a_late_answer_from_a_deposed_leader_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(2, 5, 0, &[1, 2, 3], &[1, 2, 3]));
    let batch = build_batch(0, &[b"x".as_slice()]);
    assert!(!p.append_as_follower((2, 4), &batch, 1, 0).unwrap(), "an older epoch of the same leader");
    assert!(!p.append_as_follower((3, 5), &batch, 1, 0).unwrap(), "another broker");
    let moved = p.apply_image(&image(3, 6, 1, &[1, 2, 3], &[1, 3]), 0).unwrap();
    assert_eq!(moved, Transition::BecameFollower { leader: 3, leader_epoch: 6 });
    assert!(!p.append_as_follower((2, 5), &batch, 1, 0).unwrap(), "the deposed leader's answer");
    assert_eq!(p.truncate_to((2, 5), 0).unwrap(), None);
    assert_eq!(p.log_end_offset(), 0);
    assert!(p.append_as_follower((3, 6), &batch, 1, 0).unwrap());
    assert_eq!(p.log_end_offset(), 1);
}

#[test]
fn a_request_epoch_older_than_the_replica_is_fenced_and_a_newer_one_unknown() {
    use runnel_protocol::ResponseError;
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &image(NODE, 5, 0, &[1], &[1]));
    assert_eq!(p.check_leader_epoch(-1), Ok(()), "no epoch named");
    assert_eq!(p.check_leader_epoch(5), Ok(()));
    assert_eq!(p.check_leader_epoch(4), Err(ResponseError::FencedLeaderEpoch));
    assert_eq!(p.check_leader_epoch(6), Err(ResponseError::UnknownLeaderEpoch));
}

/// One step of the high-watermark model: the leader appends, a follower fetches from some
/// offset (possibly a lie beyond the log end), the ISR shrinks or expands through the
/// image, or the ISR shrink check runs.
#[derive(Clone, Debug)]
enum Step {
    Append(usize),
    Fetch { replica: i32, offset: i64 },
    Image { isr: Vec<i32> },
    Shrink { at_ms: i64 },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (1usize..4).prop_map(Step::Append),
        (2i32..=4, -2i64..40).prop_map(|(replica, offset)| Step::Fetch { replica, offset }),
        proptest::sample::subsequence(vec![2, 3], 0..=2).prop_map(|mut isr| {
            isr.insert(0, NODE);
            Step::Image { isr }
        }),
        (0i64..100_000).prop_map(|at_ms| Step::Shrink { at_ms }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// The high watermark never moves back, never passes the leader's log end, and never
    /// passes what every ISR member has fetched (whatever offsets fetches claim).
    #[test]
    fn the_high_watermark_never_goes_backwards_nor_past_the_isr(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let p = partition(dir.path(), &image(NODE, 0, 0, &[1, 2, 3], &[1, 2, 3]));
        let mut fetched = std::collections::BTreeMap::from([(2, -1i64), (3, -1i64)]);
        let mut isr = vec![1, 2, 3];
        let mut partition_epoch = 0;
        let mut last = p.high_watermark();
        for (now, step) in steps.into_iter().enumerate() {
            match step {
                Step::Append(n) => append(&p, n),
                Step::Fetch { replica, offset } => {
                    if p.record_follower_fetch(replica, offset, -1, now as i64).is_ok() && fetched.contains_key(&replica) {
                        fetched.insert(replica, offset);
                    }
                }
                Step::Image { isr: next } => {
                    partition_epoch += 1;
                    p.apply_image(&image(NODE, 0, partition_epoch, &[1, 2, 3], &next), now as i64).unwrap();
                    isr = next;
                }
                Step::Shrink { at_ms } => {
                    if let Some(change) = p.isr_shrink(at_ms, LAG_MS) {
                        p.isr_change_failed(&change);
                    }
                }
            }
            let hw = p.high_watermark();
            proptest::prop_assert!(hw >= last, "the high watermark moved back from {} to {}", last, hw);
            proptest::prop_assert!(hw <= p.log_end_offset());
            // It moves only to what every ISR member holds (a refused claim counts for nothing).
            let isr_holds = isr.iter().filter(|id| **id != NODE).map(|id| fetched[id]).min().unwrap_or(i64::MAX);
            proptest::prop_assert!(hw == last || hw <= isr_holds, "moved to {} past what the ISR {:?} holds", hw, isr);
            last = hw;
        }
    }
}

#[test]
fn the_time_based_flush_syncs_outside_the_log_lock_and_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { flush_ms: 10, ..LogConfig::default() };
    let log = PartitionLog::open(dir.path(), config, 0, 0, true, 0).expect("open log");
    let settings = topic_config::settings(&BrokerConfig::default(), None);
    let p =
        Partition::new("t".into(), uuid::Uuid::from_u128(1), NODE, &image(NODE, 0, 0, &[1], &[1]), log, settings, 0, 0);
    append(&p, 3);
    let recovery_point = || p.with_log(|log| Ok(log.recovery_point())).unwrap();
    p.flush_if_due(5).unwrap();
    assert_eq!(recovery_point(), 0, "not due yet");
    p.flush_if_due(20).unwrap();
    assert_eq!(recovery_point(), 3);
    append(&p, 1);
    p.flush_if_due(25).unwrap();
    assert_eq!(recovery_point(), 3, "the last flush was 5 ms ago");
    p.flush_if_due(31).unwrap();
    assert_eq!(recovery_point(), 4);
}
