//! Named scenarios for the on-disk Raft log: restarts, torn tails, purges and truncations.

use std::io::Write;

use openraft::{CommittedLeaderId, EntryPayload};
use runnel_metadata::{ConfigResource, MetadataRecord};

use super::*;
use crate::types::MetadataBatch;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry {
    let record = MetadataRecord::Config {
        resource: ConfigResource::Broker(1),
        name: format!("key-{index}"),
        value: Some("v".repeat(40)),
    };
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(MetadataBatch { records: vec![record] }) }
}

fn indexes(log: &LogFiles) -> Vec<u64> {
    log.read(0, u64::MAX, u64::MAX).unwrap().iter().map(|e| e.log_id.index).collect()
}

fn segment_files(dir: &Path) -> usize {
    segment_names(dir).unwrap().len()
}

#[test]
fn acknowledged_entries_and_vote_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogFiles::open(dir.path(), 300).unwrap();
        log.append((0..10).map(|i| entry(1, i)).collect()).unwrap();
        log.save_vote(Vote::new(1, 1)).unwrap();
        log.save_committed(Some(log_id(1, 7))).unwrap();
    }
    assert!(segment_files(dir.path()) > 1, "small segments roll");
    let log = LogFiles::open(dir.path(), 300).unwrap();
    assert_eq!(indexes(&log), (0..10).collect::<Vec<_>>());
    assert_eq!(log.read(3, 4, u64::MAX).unwrap(), vec![entry(1, 3)]);
    assert_eq!(log.state().vote, Some(Vote::new(1, 1)));
    assert_eq!(log.state().committed, Some(log_id(1, 7)));
    assert_eq!(log.last_log_id(), Some(log_id(1, 9)));
}

#[test]
fn torn_tail_is_truncated_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogFiles::open(dir.path(), SEGMENT_BYTES_DEFAULT).unwrap();
        log.append((0..5).map(|i| entry(1, i)).collect()).unwrap();
    }
    // A crash mid-write: half a frame at the end of the newest segment.
    let (_, newest) = segment_names(dir.path()).unwrap().pop().unwrap();
    let mut half = Vec::new();
    disk::encode_frame(&serde_json::to_vec(&entry(1, 5)).unwrap(), &mut half);
    half.truncate(half.len() / 2);
    OpenOptions::new().append(true).open(&newest).unwrap().write_all(&half).unwrap();

    let mut log = LogFiles::open(dir.path(), SEGMENT_BYTES_DEFAULT).unwrap();
    assert_eq!(indexes(&log), (0..5).collect::<Vec<_>>());
    log.append(vec![entry(1, 5)]).unwrap();
    drop(log);
    assert_eq!(indexes(&LogFiles::open(dir.path(), SEGMENT_BYTES_DEFAULT).unwrap()), (0..6).collect::<Vec<_>>());
}

#[test]
fn damage_before_the_newest_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogFiles::open(dir.path(), 300).unwrap();
        log.append((0..10).map(|i| entry(1, i)).collect()).unwrap();
    }
    let (_, oldest) = segment_names(dir.path()).unwrap().remove(0);
    let mut bytes = fs::read(&oldest).unwrap();
    bytes[20] ^= 0xff;
    fs::write(&oldest, bytes).unwrap();
    assert!(matches!(LogFiles::open(dir.path(), 300), Err(LogError::Corrupt { .. })));
}

#[test]
fn purge_deletes_whole_segments_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogFiles::open(dir.path(), 300).unwrap();
    log.append((0..20).map(|i| entry(1, i)).collect()).unwrap();
    let before = segment_files(dir.path());
    log.purge(log_id(1, 12)).unwrap();
    assert!(segment_files(dir.path()) < before);
    assert_eq!(indexes(&log), (13..20).collect::<Vec<_>>());
    drop(log);

    let mut log = LogFiles::open(dir.path(), 300).unwrap();
    assert_eq!(indexes(&log), (13..20).collect::<Vec<_>>());
    assert_eq!(log.state().last_purged, Some(log_id(1, 12)));

    // Beyond the last entry, as after installing a snapshot: the log continues after it.
    log.purge(log_id(2, 30)).unwrap();
    assert_eq!(segment_files(dir.path()), 0);
    assert_eq!(log.last_log_id(), Some(log_id(2, 30)));
    log.append(vec![entry(2, 31)]).unwrap();
    drop(log);
    let log = LogFiles::open(dir.path(), 300).unwrap();
    assert_eq!(indexes(&log), vec![31]);
}

#[test]
fn truncate_across_segments_leaves_a_prefix_that_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogFiles::open(dir.path(), 300).unwrap();
    log.append((0..20).map(|i| entry(1, i)).collect()).unwrap();
    log.truncate(7).unwrap();
    assert_eq!(indexes(&log), (0..7).collect::<Vec<_>>());
    log.append((7..9).map(|i| entry(2, i)).collect()).unwrap();
    drop(log);
    let log = LogFiles::open(dir.path(), 300).unwrap();
    assert_eq!(
        log.read(0, u64::MAX, u64::MAX).unwrap(),
        [(0..7).map(|i| entry(1, i)).collect::<Vec<_>>(), vec![entry(2, 7), entry(2, 8)]].concat()
    );
}

#[test]
fn a_hole_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogFiles::open(dir.path(), 300).unwrap();
    log.append(vec![entry(1, 0)]).unwrap();
    assert!(matches!(log.append(vec![entry(1, 2)]), Err(LogError::Hole { expected: 1, got: 2 })));
}

#[test]
fn reads_are_bounded_in_bytes_but_return_at_least_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogFiles::open(dir.path(), SEGMENT_BYTES_DEFAULT).unwrap();
    log.append((0..10).map(|i| entry(1, i)).collect()).unwrap();
    assert_eq!(log.read(0, 10, 1).unwrap().len(), 1);
    assert_eq!(log.read(0, 10, u64::MAX).unwrap().len(), 10);
}

#[test]
fn an_oversized_entry_is_refused_with_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogFiles::open(dir.path(), SEGMENT_BYTES_DEFAULT).unwrap();
    log.append(vec![entry(1, 0)]).unwrap();
    let record = MetadataRecord::Config {
        resource: ConfigResource::Broker(1),
        name: "big".into(),
        value: Some("x".repeat(usize::try_from(ENTRY_BYTES_MAX).unwrap())),
    };
    let big = Entry { log_id: log_id(1, 1), payload: EntryPayload::Normal(MetadataBatch { records: vec![record] }) };
    let refused = log.append(vec![big]);
    assert!(matches!(refused, Err(LogError::EntryTooLarge { index: 1, limit: ENTRY_BYTES_MAX, .. })), "{refused:?}");
    // Nothing of it was written: the log goes on at index 1.
    log.append(vec![entry(1, 1)]).unwrap();
    assert_eq!(indexes(&log), vec![0, 1]);
}
