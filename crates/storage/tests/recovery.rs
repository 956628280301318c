//! Named fault scenarios: what an unclean or clean restart must preserve.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;

use common::{active_log_file, append, batch, open, read_all, small_config};

#[test]
fn torn_tail_is_truncated_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let acked: Vec<_> = (0..300).map(|i| append(&mut log, batch(i, 1 + (i as usize % 5), 100), 1_000)).collect();
    log.flush().unwrap();
    let (recovery_point, log_end) = (log.recovery_point(), log.log_end_offset());
    assert!(log.segment_count() > 1, "the scenario spans segments");
    drop(log); // a crash: no close
    let torn = batch(7, 10, 100);
    let mut file = OpenOptions::new().append(true).open(active_log_file(dir.path())).unwrap();
    file.write_all(&torn[..torn.len() / 2]).unwrap();

    let log = open(dir.path(), small_config(), recovery_point, false);
    assert_eq!(log.log_end_offset(), log_end);
    assert!(log.last_open_scanned_bytes() > 0);
    assert_eq!(read_all(&log), acked);
}

#[test]
fn corrupt_byte_in_the_middle_truncates_from_that_batch_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = runnel_storage::LogConfig { index_interval_bytes: 256, ..Default::default() };
    let mut log = open(dir.path(), config.clone(), 0, true);
    let acked: Vec<_> = (0..20).map(|i| append(&mut log, batch(i, 2, 50), 1_000)).collect();
    drop(log);
    // Flip a byte inside the records of batch 10 (covered by its CRC).
    let position: usize = acked[..10].iter().map(|(_, b)| b.len()).sum::<usize>() + 70;
    let file = OpenOptions::new().read(true).write(true).open(active_log_file(dir.path())).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position as u64).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], position as u64).unwrap();

    let mut log = open(dir.path(), config, 0, false);
    assert_eq!(log.log_end_offset(), acked[10].0);
    assert_eq!(read_all(&log), acked[..10]);
    // The log keeps working after recovery: the next append takes the freed offsets.
    let (offset, _) = append(&mut log, batch(0, 1, 10), 2_000);
    assert_eq!(offset, acked[10].0);
}

#[test]
fn clean_reopen_scans_nothing_and_unclean_reopen_scans() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let acked: Vec<_> = (0..300).map(|i| append(&mut log, batch(i * 10, 3, 80), 1_000)).collect();
    let max_before = log.max_timestamp_and_offset();
    let log_end = log.log_end_offset();
    log.close().unwrap();

    let log = open(dir.path(), small_config(), log_end, true);
    assert_eq!(log.last_open_scanned_bytes(), 0);
    assert_eq!(log.log_end_offset(), log_end);
    assert_eq!(log.recovery_point(), log_end);
    assert_eq!(log.max_timestamp_and_offset(), max_before);
    assert_eq!(read_all(&log), acked);
    drop(log);

    let log = open(dir.path(), small_config(), 0, false);
    assert!(log.last_open_scanned_bytes() > 0);
    assert_eq!(log.log_end_offset(), log_end);
    assert_eq!(log.max_timestamp_and_offset(), max_before);
    assert_eq!(read_all(&log), acked);
}

#[test]
fn unclean_reopen_trusts_segments_below_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let acked: Vec<_> = (0..300).map(|i| append(&mut log, batch(i, 3, 80), 1_000)).collect();
    log.roll(1_000).unwrap();
    assert!(log.recovery_point() < log.log_end_offset(), "a roll owes its fsyncs; they run after it");
    for flush in log.take_rolled_flushes() {
        flush.run().unwrap();
        log.mark_rolled_flushed(&flush);
    }
    let recovery_point = log.recovery_point();
    let total = log.size_bytes();
    assert_eq!(recovery_point, log.log_end_offset(), "the rolled flushes advance the recovery point");
    drop(log);
    let log = open(dir.path(), small_config(), recovery_point, false);
    assert!(log.last_open_scanned_bytes() < total);
    assert_eq!(read_all(&log), acked);
}

#[test]
fn corrupt_index_is_rebuilt_on_clean_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let acked: Vec<_> = (0..50).map(|i| append(&mut log, batch(i, 3, 80), 1_000)).collect();
    log.close().unwrap();
    let index = active_log_file(dir.path()).with_extension("index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 16);
    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes()); // a position beyond the log
    std::fs::write(&index, bytes).unwrap();

    let log = open(dir.path(), small_config(), 0, true);
    assert!(log.last_open_scanned_bytes() > 0, "the index was rebuilt");
    assert_eq!(read_all(&log), acked);
}

#[test]
fn file_slice_stays_readable_after_its_segment_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = runnel_storage::LogConfig { retention_bytes: 0, retention_ms: -1, ..small_config() };
    let mut log = open(dir.path(), config, 0, true);
    let (_, first) = append(&mut log, batch(0, 1, 100), 1_000);
    log.roll(1_000).unwrap();
    append(&mut log, batch(0, 1, 100), 1_000);
    let slice = log.read(0, 1 << 20, i64::MAX, true).unwrap().slice.unwrap();
    assert_eq!(log.apply_retention(1_000).unwrap(), 1);
    let mut bytes = vec![0u8; slice.len as usize];
    slice.file.read_exact_at(&mut bytes, slice.position).unwrap();
    assert_eq!(bytes, first);
}

#[test]
fn garbage_appended_after_a_clean_shutdown_is_recovered_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0, true);
    let acked: Vec<_> = (0..50).map(|i| append(&mut log, batch(i, 2, 100), 1_000)).collect();
    let log_end = log.log_end_offset();
    log.close().unwrap();
    let mut file = OpenOptions::new().append(true).open(active_log_file(dir.path())).unwrap();
    file.write_all(&[0xab; 777]).unwrap();

    let log = open(dir.path(), small_config(), log_end, true);
    assert_eq!(log.log_end_offset(), log_end);
    assert!(log.last_open_scanned_bytes() > 0, "fell back to a recovery scan");
    assert_eq!(read_all(&log), acked);
}
