//! Follower appends and the leader epoch cache: what replication relies on in a log.

mod common;

use common::{batch, open, read_all, small_config};
use runnel_storage::leader_epoch::{EpochEntry, LEADER_EPOCH_CHECKPOINT};
use runnel_storage::{PartitionLog, StorageError};

fn append_in_epoch(log: &mut PartitionLog, epoch: i32, count: usize) {
    for i in 0..count {
        let mut bytes = batch(i as i64, 2, 300);
        log.append(&mut bytes, epoch, false, 1_000).expect("leader append");
    }
}

fn all_bytes(log: &PartitionLog) -> Vec<u8> {
    read_all(log).into_iter().flat_map(|(_, b)| b).collect()
}

#[test]
fn a_follower_copy_is_byte_identical_and_learns_the_epochs() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), small_config(), 0, true);
    append_in_epoch(&mut leader, 0, 40);
    append_in_epoch(&mut leader, 2, 150);
    let mut follower = open(follower_dir.path(), small_config(), 0, true);
    for (_, bytes) in read_all(&leader) {
        follower.append_as_follower(&bytes, 1_000).expect("follower append");
    }
    assert_eq!(all_bytes(&follower), all_bytes(&leader));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert!(follower.segment_count() > 1, "the copy rolled segments too");
    let expected = [EpochEntry { epoch: 0, start_offset: 0 }, EpochEntry { epoch: 2, start_offset: 80 }];
    assert_eq!(follower.epoch_entries(), &expected);
    assert_eq!(leader.epoch_entries(), &expected);
    assert_eq!(follower.end_offset_for_epoch(0), (0, 80));
    assert_eq!(follower.end_offset_for_epoch(1), (0, 80));
    assert_eq!(follower.end_offset_for_epoch(2), (2, 380));
}

#[test]
fn a_follower_takes_a_gap_a_cleaned_leader_leaves_and_refuses_an_overlap_and_a_corrupt_batch() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), small_config(), 0, true);
    append_in_epoch(&mut leader, 1, 3);
    let batches = read_all(&leader);
    let mut follower = open(follower_dir.path(), small_config(), 0, true);
    let mut corrupt = [batches[0].1.clone(), batches[1].1.clone()].concat();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(follower.append_as_follower(&corrupt, 1_000).is_err());
    assert_eq!(follower.log_end_offset(), 0, "a bad set appends nothing, not even its good prefix");
    // The leader's cleaner dropped the batch at 0: the next one starts at 2.
    follower.append_as_follower(&batches[1].1, 1_000).unwrap();
    assert_eq!(follower.log_end_offset(), 4);
    let overlap = follower.append_as_follower(&batches[0].1, 1_000);
    assert!(matches!(overlap, Err(StorageError::NonContiguous { expected: 4, found: 0 })), "{overlap:?}");
    let read = follower.read(0, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(read.first_offset, 2, "a read below the gap starts at the next batch");
}

#[test]
fn truncation_drops_later_epochs_and_the_cache_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    append_in_epoch(&mut log, 1, 5);
    log.assign_leader_epoch(3).unwrap();
    append_in_epoch(&mut log, 3, 5);
    assert_eq!(log.latest_epoch(), Some(3));
    log.truncate_to(10).unwrap();
    assert_eq!(log.latest_epoch(), Some(1), "epoch 3 started at offset 10, which is gone");
    append_in_epoch(&mut log, 4, 2);
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    assert_eq!(
        log.epoch_entries(),
        &[EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 4, start_offset: 10 }]
    );
    drop(log);
    // Without the checkpoint file (a log written before it existed) it is rebuilt from headers.
    std::fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
    let log = open(dir.path(), small_config(), 0, false);
    assert_eq!(
        log.epoch_entries(),
        &[EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 4, start_offset: 10 }]
    );
}

#[test]
fn a_follower_takes_a_gap_wider_than_a_segments_relative_offsets() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), small_config(), 0, true);
    append_in_epoch(&mut leader, 1, 2);
    let batches = read_all(&leader);
    let mut follower = open(follower_dir.path(), small_config(), 0, true);
    follower.append_as_follower(&batches[0].1, 1_000).unwrap();
    let far = 10 * i64::from(u32::MAX);
    let mut next = batches[1].1.clone();
    runnel_protocol::batch::BatchMut::new(&mut next).set_base_offset(far);
    follower.append_as_follower(&next, 1_000).unwrap();
    assert_eq!(follower.log_end_offset(), far + 2);
    let read = follower.read(2, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(read.first_offset, far, "a read in the gap starts at the next batch");
    drop(follower);
    let reopened = open(follower_dir.path(), small_config(), 0, false);
    assert_eq!(reopened.log_end_offset(), far + 2);
}
