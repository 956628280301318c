//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::Path;

use runnel_protocol::batch::{build_batch, BatchIter};
use runnel_storage::{LogConfig, PartitionLog};

/// A batch of `records` records of `value_bytes` bytes each, timestamps from `base_timestamp`.
pub fn batch(base_timestamp: i64, records: usize, value_bytes: usize) -> Vec<u8> {
    let value = vec![b'v'; value_bytes];
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    build_batch(base_timestamp, &values)
}

/// Appends `batch` and returns (base offset, the bytes as stored).
pub fn append(log: &mut PartitionLog, mut bytes: Vec<u8>, now_ms: i64) -> (i64, Vec<u8>) {
    let info = log.append(&mut bytes, 3, false, now_ms).expect("append");
    (info.base_offset, bytes)
}

/// Reads every batch from the log start to the log end: (base offset, bytes) each.
pub fn read_all(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    read_batches(log, false)
}

/// [`read_all`] for a compacted log, which may end in a gap (everything after some offset
/// cleaned away): the read stops where no data is left rather than at the log end.
pub fn read_all_compacted(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    read_batches(log, true)
}

fn read_batches(log: &PartitionLog, may_end_in_a_gap: bool) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let info = log.read(offset, 64 * 1024, end, true).expect("read");
        let slice = match info.slice {
            Some(slice) => slice,
            None if may_end_in_a_gap => break,
            None => panic!("data below the log end"),
        };
        let mut bytes = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut bytes, slice.position).expect("pread");
        for batch in BatchIter::new(&bytes) {
            let (_, view) = batch.expect("whole batches");
            out.push((view.base_offset(), view.bytes().to_vec()));
            offset = view.last_offset() + 1;
        }
    }
    out
}

/// The offset `per_mille` thousandths of the way from the log start to the log end.
pub fn offset_at_per_mille(log: &PartitionLog, per_mille: u16) -> i64 {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    start + (end - start) * i64::from(per_mille) / 1000
}

pub fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 64 * 1024, index_interval_bytes: 512, ..LogConfig::default() }
}

pub fn open(dir: &Path, config: LogConfig, recovery_point: i64, clean: bool) -> PartitionLog {
    PartitionLog::open(dir, config, recovery_point, 0, clean, 1_000).expect("open")
}

/// The one `.log` file with the largest base offset.
pub fn active_log_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}
