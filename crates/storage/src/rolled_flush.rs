//! The fsyncs a roll owes, done after the roll instead of during it.
//!
//! Kafka flushes a rolled segment in the background (`flushUptoOffsetExclusive` scheduled
//! at roll); so does Runnel. A roll seals the old segment (closing index entry, indexes
//! written) and records a [`RolledFlush`]: the old segment's log and index files, the new
//! producer-state snapshot and the directory, all to fsync, and the offset below which the
//! log is durable once they are. The caller runs it without the partition lock, then
//! [`crate::PartitionLog::mark_rolled_flushed`] raises the recovery point.
//!
//! Invariant: the recovery point never passes what has been fsynced. A truncation after a
//! roll bumps the log's generation, and a flush recorded in an older generation is ignored
//! when it completes (the offsets it covered may have been rewritten since).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// The fsyncs one roll owes. Cheap to clone (file handles are shared).
#[derive(Clone, Debug)]
pub struct RolledFlush {
    pub(crate) files: Vec<Arc<File>>,
    pub(crate) dir: PathBuf,
    /// Everything below this offset is durable once the files and the directory are synced.
    pub up_to: i64,
    pub(crate) generation: u64,
}

impl RolledFlush {
    /// fsyncs every file, then the directory (new segment and snapshot names). Blocking.
    pub fn run(&self) -> std::io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        runnel_fs::sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use runnel_protocol::batch::build_batch;

    use crate::{LogConfig, PartitionLog};

    fn tiny_segments() -> LogConfig {
        LogConfig { segment_bytes: 200, ..LogConfig::default() }
    }

    fn append(log: &mut PartitionLog, count: usize) {
        for _ in 0..count {
            log.append_batch(&build_batch(0, &[b"value".as_slice()]), 0, false, 0).unwrap();
        }
    }

    #[test]
    fn the_recovery_point_waits_for_the_rolled_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), tiny_segments(), 0, 0, true, 0).unwrap();
        append(&mut log, 6);
        assert!(log.segment_count() > 1, "the appends rolled");
        assert_eq!(log.recovery_point(), 0, "a roll does not claim durability it has not paid for");
        let owed = log.take_rolled_flushes();
        assert_eq!(owed.len(), log.segment_count() - 1);
        for flush in &owed {
            flush.run().unwrap();
            log.mark_rolled_flushed(flush);
        }
        let active_base = log.log_end_offset() - 1; // each batch holds one record
        assert!(log.recovery_point() >= owed.last().unwrap().up_to);
        assert!(log.recovery_point() <= active_base + 1);
    }

    #[test]
    fn a_flush_recorded_before_a_truncation_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), tiny_segments(), 0, 0, true, 0).unwrap();
        append(&mut log, 6);
        let owed = log.take_rolled_flushes();
        let last = owed.last().unwrap().clone();
        log.truncate_to(1).unwrap();
        append(&mut log, 5); // new, unsynced records over the old offsets
        last.run().unwrap();
        log.mark_rolled_flushed(&last);
        assert!(log.recovery_point() <= 1, "offsets rewritten since the flush are not durable");
    }

    #[test]
    fn flush_and_close_pay_what_rolls_owe() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), tiny_segments(), 0, 0, true, 0).unwrap();
        append(&mut log, 6);
        log.flush().unwrap();
        assert_eq!(log.recovery_point(), log.log_end_offset());
        assert!(log.take_rolled_flushes().is_empty());
    }
}
