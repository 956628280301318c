//! What tiered storage's uploader reads from a log: its closed segments, each with the
//! range it holds and handles to its files, taken under the log's lock and read without
//! it (an upload never holds up produce or fetch). A segment deleted or cleaned meanwhile
//! stays readable through its open `.log` handle; its index files are read by path, and a
//! missing one makes that round's upload fail and be planned again.
//!
//! Invariants: the active segment is never listed; the segments are in offset order and
//! each one's `next_offset` is the following segment's base offset.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::PartitionLog;

/// One closed segment, for an upload.
#[derive(Debug, Clone)]
pub struct ClosedSegment {
    pub base_offset: i64,
    /// One past its last offset: the next segment's base.
    pub next_offset: i64,
    pub size_bytes: u64,
    /// The largest record timestamp in it (-1 when none).
    pub max_timestamp_ms: i64,
    pub log: Arc<File>,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
}

impl PartitionLog {
    /// Every closed segment, in offset order (see the module doc).
    pub fn closed_segments(&self) -> Vec<ClosedSegment> {
        self.segments
            .iter()
            .zip(self.segments.iter().skip(1))
            .map(|(segment, next)| ClosedSegment {
                base_offset: segment.base_offset,
                next_offset: next.base_offset,
                size_bytes: segment.size_bytes,
                max_timestamp_ms: segment.max_timestamp,
                log: segment.log.clone(),
                offset_index: segment.path("index"),
                time_index: segment.path("timeindex"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use crate::{LogConfig, PartitionLog};

    #[test]
    fn closed_segments_are_contiguous_and_readable_without_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 1_000, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), config, 0, 0, true, 0).unwrap();
        assert!(log.closed_segments().is_empty(), "only the active segment");
        for i in 0..40u8 {
            let mut batch = runnel_protocol::batch::build_batch(1_000 + i64::from(i), &[[i; 100].as_slice()]);
            log.append(&mut batch, 0, false, 5_000).unwrap();
        }
        let closed = log.closed_segments();
        assert!(closed.len() >= 3, "{} closed segments", closed.len());
        assert_eq!(closed[0].base_offset, 0);
        for pair in closed.windows(2) {
            assert_eq!(pair[0].next_offset, pair[1].base_offset);
        }
        let last = closed.last().unwrap();
        assert!(last.next_offset < log.log_end_offset(), "the active segment is not listed");
        assert!(closed.iter().all(|s| s.offset_index.exists() && s.time_index.exists()), "{closed:?}");
        assert!(closed
            .windows(2)
            .all(|p| p[0].max_timestamp_ms >= 1_000 && p[0].max_timestamp_ms < p[1].max_timestamp_ms));
        // The bytes are the log's own: a batch header at the start of every segment.
        let mut header = [0u8; 8];
        closed[1].log.read_exact_at(&mut header, 0).unwrap();
        assert_eq!(i64::from_be_bytes(header), closed[1].base_offset);
        drop(log);
        let mut again = [0u8; 8];
        closed[0].log.read_exact_at(&mut again, 0).unwrap();
        assert_eq!(i64::from_be_bytes(again), 0, "readable after the log is closed");
    }
}
