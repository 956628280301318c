//! Typed errors of the storage engine.

/// Everything a log operation can fail with. Programmer errors are assertions, not variants.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { requested: i64, log_start: i64, log_end: i64 },
    #[error("corrupt log data: {0}")]
    Corrupt(String),
    #[error("record set of {size_bytes} bytes exceeds the segment size of {segment_bytes} bytes")]
    RecordSetTooLarge { size_bytes: usize, segment_bytes: u64 },
    /// The record set handed to `append` does not frame as v2 batches (the caller must
    /// validate first, so this is a caller bug surfaced as an error rather than a crash).
    #[error("invalid record set: {0}")]
    InvalidRecords(#[from] runnel_protocol::batch::BatchError),
    #[error("invalid log configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("invalid checkpoint file: {0}")]
    InvalidCheckpoint(String),
    /// Replicated batches must continue the log exactly.
    #[error("replicated batch starts at offset {found}, the log ends at {expected}")]
    NonContiguous { expected: i64, found: i64 },
    /// An idempotent producer's batch was refused (epoch or sequence).
    #[error(transparent)]
    Producer(#[from] crate::producer_state::ProducerError),
}
