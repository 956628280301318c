//! Idempotent producers at the log: duplicates, fencing, and producer state that survives
//! clean and unclean restarts and truncation.

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::{active_log_file, batch, open, read_all, small_config};
use runnel_protocol::batch::BatchMut;
use runnel_storage::{PartitionLog, ProducerError, StorageError};

fn producer_batch(producer_id: i64, epoch: i16, base_sequence: i32, records: usize) -> Vec<u8> {
    let mut bytes = batch(1_000, records, 200);
    BatchMut::new(&mut bytes).set_producer(producer_id, epoch, base_sequence);
    bytes
}

fn send(
    log: &mut PartitionLog,
    producer_id: i64,
    epoch: i16,
    seq: i32,
    records: usize,
) -> Result<(i64, i64), StorageError> {
    let info = log.append_batch(&producer_batch(producer_id, epoch, seq, records), 0, false, 2_000)?;
    Ok((info.base_offset, info.last_offset))
}

#[test]
fn a_retried_batch_is_answered_with_its_offsets_and_not_appended_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    assert_eq!(send(&mut log, 1, 0, 0, 3).unwrap(), (0, 2));
    assert_eq!(send(&mut log, 1, 0, 3, 2).unwrap(), (3, 4));
    assert_eq!(send(&mut log, 1, 0, 0, 3).unwrap(), (0, 2), "duplicate of the first batch");
    assert_eq!(log.log_end_offset(), 5);
    assert!(matches!(
        send(&mut log, 1, 0, 9, 1),
        Err(StorageError::Producer(ProducerError::OutOfOrderSequence { .. }))
    ));
    assert!(matches!(send(&mut log, 1, -1, 5, 1), Err(StorageError::Producer(ProducerError::InvalidEpoch { .. }))));
    assert_eq!(log.log_end_offset(), 5, "refused batches append nothing");
}

#[test]
fn producer_state_survives_a_clean_restart_without_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    for i in 0..50 {
        send(&mut log, 7, 0, i * 2, 2).unwrap();
    }
    let state = log.producer_state().clone();
    log.close().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    assert_eq!(log.last_open_scanned_bytes(), 0);
    assert_eq!(log.producer_state(), &state);
    assert_eq!(send(&mut log, 7, 0, 98, 2).unwrap(), (98, 99), "a duplicate after restart");
    assert_eq!(send(&mut log, 7, 0, 100, 1).unwrap(), (100, 100));
}

#[test]
fn producer_state_is_rebuilt_after_a_crash_from_the_last_snapshot_and_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    for i in 0..400 {
        send(&mut log, 1 + i64::from(i % 3), 0, i / 3 * 2, 2).unwrap();
    }
    assert!(log.segment_count() > 2, "rolled, so snapshots exist");
    let state = log.producer_state().clone();
    let recovery_point = log.recovery_point();
    drop(log); // crash
    let mut file = OpenOptions::new().append(true).open(active_log_file(dir.path())).unwrap();
    file.write_all(&[0x5a; 100]).unwrap();
    let mut log = open(dir.path(), small_config(), recovery_point, false);
    assert_eq!(log.producer_state(), &state);
    let end = log.log_end_offset();
    // Producer 1 sent sequence 264 at i = 396, the fifth batch from the end: offsets end-8, end-7.
    assert_eq!(send(&mut log, 1, 0, 264, 2).unwrap(), (end - 8, end - 7), "a retry of a recent batch is a duplicate");
}

#[test]
fn truncation_rewinds_the_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    for i in 0..300 {
        send(&mut log, 5, 0, i, 1).unwrap();
    }
    log.truncate_to(150).unwrap();
    assert_eq!(read_all(&log).len(), 150);
    assert_eq!(send(&mut log, 5, 0, 150, 1).unwrap(), (150, 150), "sequence continues from what remains");
    assert!(matches!(send(&mut log, 5, 0, 299, 1), Err(StorageError::Producer(_))));
}

/// Tiered storage: the producer snapshot a roll writes at a segment's end is kept while
/// not uploaded, and a replica started from it (with no local data below) knows the
/// producer: a retry of its last batch is a duplicate, its next sequence continues.
#[test]
fn a_replica_started_from_a_remote_snapshot_knows_its_producers() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), small_config(), 0, true);
    leader.keep_snapshots_above(-1);
    let mut seq = 0;
    while leader.segment_count() < 6 {
        send(&mut leader, 7, 0, seq, 3).unwrap();
        seq += 3;
    }
    let closed = leader.closed_segments();
    assert!(
        closed.iter().all(|s| leader.producer_snapshot_file(s.next_offset).is_some()),
        "every segment end's snapshot is kept until uploaded"
    );
    let end = closed.last().unwrap().next_offset;
    let snapshot = std::fs::read(leader.producer_snapshot_file(end).unwrap()).unwrap();

    let replica_dir = tempfile::tempdir().unwrap();
    let mut replica = open(replica_dir.path(), small_config(), 0, true);
    replica.install_tiered_start(end, Some(&snapshot), &[(0, 0), (4, end - 1)]).unwrap();
    assert_eq!((replica.log_start_offset(), replica.log_end_offset()), (end, end));
    assert_eq!(replica.epoch_for_offset(end), Some(4));
    let known = *replica.producer_state().entry(7).expect("the producer is known").batches.back().unwrap();
    assert_eq!(known.last_offset, end - 1, "the state as of the segment's end");
    let retry = send(&mut replica, 7, 0, known.first_seq, 3).unwrap();
    assert_eq!(retry, (known.first_offset, known.last_offset), "a retry is a duplicate");
    assert_eq!(send(&mut replica, 7, 0, known.last_seq + 1, 3).unwrap(), (end, end + 2), "the sequence continues");
    let before = (replica.log_start_offset(), replica.log_end_offset());
    assert!(matches!(
        replica.install_tiered_start(end + 100, Some(b"garbage"), &[]),
        Err(StorageError::UnreadableSnapshot)
    ));
    assert_eq!((replica.log_start_offset(), replica.log_end_offset()), before, "a refused install changes nothing");
}

fn transactional_batch(producer_id: i64, epoch: i16, base_sequence: i32, records: usize) -> Vec<u8> {
    let mut bytes = producer_batch(producer_id, epoch, base_sequence, records);
    BatchMut::new(&mut bytes).set_transactional(false);
    bytes
}

/// Transactions at the log: a transactional batch opens its producer's transaction (the
/// first unstable offset bounds the LSO), its marker ends it; both survive a clean restart,
/// a crash (rebuilt from the snapshot and the tail) and truncation below the marker.
#[test]
fn open_transactions_survive_restarts_crashes_and_truncation() {
    use runnel_protocol::control::Marker;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    // Producer 1 opens at offset 0; producer 2 at 2; plain batches between them open nothing.
    log.append_batch(&transactional_batch(1, 0, 0, 2), 0, false, 2_000).unwrap();
    log.append_batch(&transactional_batch(2, 0, 0, 1), 0, false, 2_000).unwrap();
    for i in 0..100 {
        send(&mut log, 9, 0, i, 1).unwrap();
    }
    log.append_batch(&transactional_batch(1, 0, 2, 1), 0, false, 2_000).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(0));
    let mut commit = Marker { commit: true, coordinator_epoch: 0 }.batch(1, 0, 2_000);
    let marker = log.append(&mut commit, 0, false, 2_000).unwrap().base_offset;
    assert_eq!(log.first_unstable_offset(), Some(2), "producer 2's transaction is still open");
    log.close().unwrap();

    let log = open(dir.path(), small_config(), 0, true);
    assert_eq!(log.first_unstable_offset(), Some(2), "after a clean restart");
    let recovery_point = log.recovery_point();
    drop(log); // crash: the tail is replayed from the last snapshot
    let mut log = open(dir.path(), small_config(), recovery_point.min(50), false);
    assert_eq!(log.first_unstable_offset(), Some(2), "after a crash");

    // Truncated to below the marker, producer 1's transaction is open again.
    log.truncate_to(marker).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(0));
    let mut abort = Marker { commit: false, coordinator_epoch: 0 }.batch(2, 0, 2_000);
    let abort_offset = log.append(&mut abort, 0, false, 2_000).unwrap().base_offset;
    let mut commit = Marker { commit: true, coordinator_epoch: 0 }.batch(1, 0, 2_000);
    log.append(&mut commit, 0, false, 2_000).unwrap();
    assert_eq!(log.first_unstable_offset(), None, "every transaction ended");

    // The abort is in the transaction index: once, for the range it overlaps, across a
    // clean restart and a crash; a commit is not.
    let aborted = log.aborted_transactions(0, i64::MAX);
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset, aborted[0].last_offset), (2, 2, abort_offset));
    assert!(log.aborted_transactions(abort_offset + 1, i64::MAX).is_empty(), "ended before the range");
    assert!(log.aborted_transactions(0, 2).is_empty(), "began after the range");
    for i in 100..400 {
        send(&mut log, 9, 0, i, 1).unwrap();
    }
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 0, true);
    assert_eq!(log.aborted_transactions(0, i64::MAX), aborted);
    drop(log);
    let log = open(dir.path(), small_config(), 0, false);
    assert_eq!(log.aborted_transactions(0, i64::MAX), aborted, "not twice after an unclean open");
    drop(log);
    // Without the index file and the producer snapshots, a replay of the log derives it.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_string();
        if extension == "txnindex" || extension == "snapshot" {
            std::fs::remove_file(path).unwrap();
        }
    }
    let mut log = open(dir.path(), small_config(), 0, false);
    assert_eq!(log.aborted_transactions(0, i64::MAX), aborted, "recovery derives it again");
    log.truncate_to(abort_offset).unwrap();
    assert!(log.aborted_transactions(0, i64::MAX).is_empty(), "truncated with its marker");
    assert_eq!(log.first_unstable_offset(), Some(0));
}

/// A log emptied and restarted at an offset (a replica starting above remote storage, or a
/// truncation below the log start) forgets its aborted transactions with its segments, even
/// when the new log starts at the base of a segment that had one.
#[test]
fn a_log_started_afresh_forgets_its_aborted_transactions() {
    use runnel_protocol::control::Marker;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    log.append_batch(&transactional_batch(4, 0, 0, 1), 0, false, 2_000).unwrap();
    let mut abort = Marker { commit: false, coordinator_epoch: 0 }.batch(4, 0, 2_000);
    log.append(&mut abort, 0, false, 2_000).unwrap();
    assert_eq!(log.aborted_transactions(0, i64::MAX).len(), 1);
    log.truncate_fully_and_start_at(0).unwrap();
    assert!(log.aborted_transactions(0, i64::MAX).is_empty());
}
