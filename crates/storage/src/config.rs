//! Per-log configuration, with Kafka's defaults and names (`segment.bytes` -> `segment_bytes`).

use crate::StorageError;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Configuration of one partition log. Units are in the field names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll when the active segment would exceed this size. At most `i32::MAX` (file
    /// positions in the index are 32-bit, as in Kafka).
    pub segment_bytes: u64,
    /// Roll when the active segment's first append is older than this (checked on append).
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much before `segment_ms` (a
    /// per-segment amount, so that partitions created together do not roll together).
    pub segment_jitter_ms: i64,
    /// Maximum size of an index file; the segment rolls when either index is full.
    pub segment_index_bytes: u64,
    /// Add an index entry whenever at least this many bytes were appended since the last one.
    pub index_interval_bytes: u32,
    /// Delete closed segments whose largest timestamp is older than this; -1 = infinite.
    pub retention_ms: i64,
    /// Delete oldest closed segments while the log stays at least this large; -1 = infinite.
    pub retention_bytes: i64,
    /// Tiered storage (`local.retention.ms` / `local.retention.bytes`): how long and how
    /// much of a log whose segments are copied to remote storage stays on local disk; -2:
    /// as `retention_ms` / `retention_bytes`. Used only by [`crate::PartitionLog::apply_local_retention`].
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
    /// The log's segments go to remote storage: every producer snapshot (one per roll) is
    /// kept until [`crate::PartitionLog::keep_snapshots_above`] says what is uploaded.
    pub tiered: bool,
    /// fsync after this many records were appended since the last flush.
    pub flush_messages: u64,
    /// fsync when the last flush is older than this.
    pub flush_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            tiered: false,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// The local retention of a tiered log, with -2 resolved to the total retention.
    pub fn local_retention(&self) -> (i64, i64) {
        let ms = if self.local_retention_ms == -2 { self.retention_ms } else { self.local_retention_ms };
        let bytes = if self.local_retention_bytes == -2 { self.retention_bytes } else { self.local_retention_bytes };
        (ms, bytes)
    }

    /// Rejects values the on-disk format cannot represent.
    pub fn validate(&self) -> Result<(), StorageError> {
        if self.segment_bytes < runnel_protocol::batch::HEADER_BYTES as u64 {
            return Err(StorageError::InvalidConfig("segment_bytes below one batch header"));
        }
        if self.segment_bytes > i32::MAX as u64 {
            return Err(StorageError::InvalidConfig("segment_bytes above i32::MAX"));
        }
        // Two time index entries (12 bytes each) is the least that lets a segment hold data.
        if self.segment_index_bytes < 24 || self.segment_index_bytes > i32::MAX as u64 {
            return Err(StorageError::InvalidConfig("segment_index_bytes out of [24, i32::MAX]"));
        }
        if self.segment_ms <= 0 {
            return Err(StorageError::InvalidConfig("segment_ms must be positive"));
        }
        Ok(())
    }
}
