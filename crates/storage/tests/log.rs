//! PartitionLog behaviour: reads, rolls, retention, timestamps, truncation, flush policy.

mod common;

use common::{append, batch, open, read_all, small_config};
use runnel_storage::{LogConfig, StorageError};

#[test]
fn read_returns_whole_batches_bounded_by_max_bytes_and_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let acked: Vec<_> = (0..50).map(|i| append(&mut log, batch(i, 2, 100), 1_000)).collect();
    let size = acked[0].1.len();
    // Offset 5 lies inside batch 2 (offsets 4..=5): the read starts at that batch.
    let info = log.read(5, size * 3 + size / 2, i64::MAX, false).unwrap();
    assert_eq!(info.first_offset, 4);
    assert_eq!(info.slice.unwrap().len as usize, size * 3);
    // The high watermark cuts at a batch: offsets 10 and 11 are batch 5, excluded when max_offset is 11.
    let info = log.read(0, 1 << 20, 11, false).unwrap();
    assert_eq!(info.slice.unwrap().len as usize, size * 5);
    let info = log.read(10, 1 << 20, 11, true).unwrap();
    assert!(info.slice.is_none());
    // KIP-74: a first batch larger than max_bytes comes whole only with min_one_batch.
    assert!(log.read(0, 10, i64::MAX, false).unwrap().slice.is_none());
    assert_eq!(log.read(0, 10, i64::MAX, true).unwrap().slice.unwrap().len as usize, size);
}

#[test]
fn read_at_the_log_end_is_empty_and_beyond_it_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    append(&mut log, batch(0, 3, 10), 1_000);
    let info = log.read(3, 1024, i64::MAX, true).unwrap();
    assert!(info.slice.is_none());
    assert_eq!(info.first_offset, 3);
    assert!(matches!(
        log.read(4, 1024, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { requested: 4, log_start: 0, log_end: 3 })
    ));
}

#[test]
fn reads_never_cross_a_segment_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    append(&mut log, batch(0, 1, 10), 1_000);
    log.roll(1_000).unwrap();
    append(&mut log, batch(0, 1, 10), 1_000);
    let info = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(info.slice.unwrap().len as usize, batch(0, 1, 10).len());
    assert_eq!(log.read(1, 1 << 20, i64::MAX, true).unwrap().first_offset, 1);
}

#[test]
fn record_set_larger_than_a_segment_is_refused_and_nothing_appended() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 1024, ..LogConfig::default() };
    let mut log = open(dir.path(), config, 0, true);
    let mut big = batch(0, 1, 2000);
    assert!(matches!(log.append(&mut big, 0, false, 0), Err(StorageError::RecordSetTooLarge { .. })));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
}

#[test]
fn segment_rolls_by_size_by_age_and_when_the_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 1024, segment_ms: 100, ..LogConfig::default() };
    let mut log = open(dir.path(), config, 0, true);
    for _ in 0..10 {
        append(&mut log, batch(0, 1, 200), 1_000);
    }
    assert!(log.segment_count() >= 3, "rolled by size");
    let before = log.segment_count();
    append(&mut log, batch(0, 1, 10), 1_099);
    assert_eq!(log.segment_count(), before);
    append(&mut log, batch(0, 1, 10), 5_000);
    assert_eq!(log.segment_count(), before + 1, "rolled by age");

    let dir = tempfile::tempdir().unwrap();
    // Room for 3 offset index entries; one entry per batch (interval 1 byte).
    let config = LogConfig { segment_index_bytes: 24, index_interval_bytes: 1, ..LogConfig::default() };
    let mut log = open(dir.path(), config, 0, true);
    let acked: Vec<_> = (0..12).map(|i| append(&mut log, batch(i, 1, 10), 1_000)).collect();
    assert!(log.segment_count() >= 4, "rolled when the index was full: {}", log.segment_count());
    assert_eq!(read_all(&log), acked);
}

#[test]
fn retention_by_time_deletes_expired_closed_segments_and_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_ms: 1_000, ..small_config() };
    let mut log = open(dir.path(), config, 0, true);
    for timestamp in [100, 200, 5_000] {
        append(&mut log, batch(timestamp, 2, 10), 1_000);
        log.roll(1_000).unwrap();
    }
    let acked_last = append(&mut log, batch(9_000, 1, 10), 1_000);
    assert_eq!(log.segment_count(), 4);
    assert_eq!(log.apply_retention(2_000).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.segment_count(), 2);
    assert!(matches!(log.read(0, 100, i64::MAX, true), Err(StorageError::OffsetOutOfRange { .. })));
    // The active segment is never deleted, however old.
    assert_eq!(log.apply_retention(100_000).unwrap(), 1);
    assert_eq!(read_all(&log), vec![acked_last]);
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(0, 1, 100).len() as u64;
    let config = LogConfig { retention_bytes: (one * 2) as i64, retention_ms: -1, ..small_config() };
    let mut log = open(dir.path(), config, 0, true);
    for _ in 0..5 {
        append(&mut log, batch(0, 1, 100), 1_000);
        log.roll(1_000).unwrap();
    }
    append(&mut log, batch(0, 1, 100), 1_000);
    assert_eq!(log.size_bytes(), one * 6);
    assert_eq!(log.apply_retention(1_000).unwrap(), 4);
    assert_eq!(log.size_bytes(), one * 2);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.apply_retention(1_000).unwrap(), 0);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_reaching_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { index_interval_bytes: 200, ..small_config() };
    let mut log = open(dir.path(), config, 0, true);
    // Batch i holds offsets 3i..3i+2 with timestamps 1000i..1000i+2; batch 7 goes back in time.
    for i in 0..40i64 {
        let timestamp = if i == 7 { 10 } else { i * 1000 };
        append(&mut log, batch(timestamp, 3, 50), 1_000);
        if i == 20 {
            log.roll(1_000).unwrap();
        }
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(5_001).unwrap(), Some((16, 5_001)));
    assert_eq!(log.offset_for_timestamp(5_003).unwrap(), Some((18, 6_000)));
    assert_eq!(log.offset_for_timestamp(25_500).unwrap(), Some((78, 26_000)));
    assert_eq!(log.offset_for_timestamp(39_002).unwrap(), Some((119, 39_002)));
    assert_eq!(log.offset_for_timestamp(39_003).unwrap(), None);
    assert_eq!(log.max_timestamp_and_offset(), Some((39_002, 119)));
}

#[test]
fn log_append_time_is_stamped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let mut records = batch(5, 2, 10);
    let info = log.append(&mut records, 1, true, 77_000).unwrap();
    assert_eq!((info.log_append_time_ms, info.max_timestamp, info.offset_of_max_timestamp), (77_000, 77_000, 1));
    assert_eq!(log.max_timestamp_and_offset(), Some((77_000, 1)));
}

#[test]
fn truncate_to_removes_later_segments_and_never_splits_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let acked: Vec<_> = (0..600).map(|i| append(&mut log, batch(i, 2, 100), 1_000)).collect();
    assert!(log.segment_count() > 2);
    log.truncate_to(301).unwrap(); // inside batch 150 (offsets 300..=301)
    assert_eq!(log.log_end_offset(), 300);
    assert_eq!(read_all(&log), acked[..150]);
    assert_eq!(log.max_timestamp_and_offset(), Some((150, 299)));
    let (offset, _) = append(&mut log, batch(0, 1, 10), 1_000);
    assert_eq!(offset, 300);
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_end_offset(), log.segment_count(), log.size_bytes()), (0, 1, 0));
}

#[test]
fn flush_policy_by_messages_and_by_time_advances_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { flush_messages: 5, flush_ms: 1_000, ..small_config() };
    let mut log = open(dir.path(), config, 0, true);
    append(&mut log, batch(0, 3, 10), 1_000);
    assert_eq!(log.recovery_point(), 0);
    append(&mut log, batch(0, 3, 10), 1_000);
    assert_eq!(log.recovery_point(), 6, "flushed after 5 messages");
    append(&mut log, batch(0, 1, 10), 1_000);
    assert!(!log.maybe_flush(1_500).unwrap());
    assert!(log.maybe_flush(2_000).unwrap());
    assert_eq!(log.recovery_point(), 7);
    append(&mut log, batch(0, 1, 10), 2_000);
    let (files, _dir, offset) = log.flush_target();
    for file in files {
        file.sync_data().unwrap();
    }
    log.mark_flushed(offset);
    assert_eq!(log.recovery_point(), 8);
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = open(&path, small_config(), 0, true);
    append(&mut log, batch(0, 1, 10), 1_000);
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn append_batch_without_copy_stores_what_append_in_place_stores() {
    for log_append_time in [false, true] {
        let (copy_dir, zero_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut in_place = open(copy_dir.path(), small_config(), 0, true);
        let mut zero_copy = open(zero_dir.path(), small_config(), 0, true);
        for i in 0..200i64 {
            let original = batch(i * 10, 1 + (i as usize % 4), 300);
            let mut copy = original.clone();
            let a = in_place.append(&mut copy, 7, log_append_time, 5_000 + i).unwrap();
            let b = zero_copy.append_batch(&original, 7, log_append_time, 5_000 + i).unwrap();
            assert_eq!(a, b, "batch {i}");
        }
        assert_eq!(in_place.segment_count(), zero_copy.segment_count(), "both roll alike");
        assert_eq!(read_all(&in_place), read_all(&zero_copy));
        assert_eq!(in_place.offset_for_timestamp(555).unwrap(), zero_copy.offset_for_timestamp(555).unwrap());
        drop(zero_copy);
        let reopened = open(zero_dir.path(), small_config(), 0, false);
        assert_eq!(read_all(&reopened), read_all(&in_place), "recovery accepts what append_batch wrote");
    }
}
