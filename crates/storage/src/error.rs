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
    Corrupt(#[from] Corruption),
    #[error("record set of {size_bytes} bytes exceeds the segment size of {segment_bytes} bytes")]
    RecordSetTooLarge { size_bytes: usize, segment_bytes: u64 },
    /// The record set handed to `append` does not frame as v2 batches (the caller must
    /// validate first, so this is a caller bug surfaced as an error rather than a crash).
    #[error("invalid record set: {0}")]
    InvalidRecords(#[from] runnel_protocol::batch::BatchError),
    #[error("invalid log configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("producer snapshot from remote storage unreadable")]
    UnreadableSnapshot,
    #[error("invalid checkpoint file {}: {fault}", path.display())]
    InvalidCheckpoint { path: std::path::PathBuf, fault: CheckpointFault },
    /// Replicated batches must start at or after the log end (after it: a cleaned leader's gap).
    #[error("replicated batch starts at offset {found}, below the log end {expected}")]
    NonContiguous { expected: i64, found: i64 },
    /// The cleaner is stopping: the pass was abandoned (its files are removed).
    #[error("log cleaning cancelled")]
    CleaningCancelled,
    /// An idempotent producer's batch was refused (epoch or sequence).
    #[error(transparent)]
    Producer(#[from] crate::producer_state::ProducerError),
}

/// What is wrong with a log's own files: the batch framing or the indexes. Which of these refuse a start and which only rebuild an index is the reader's
/// decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("batch length {length} at position {position}")]
    BatchLength { position: u64, length: i32 },
    #[error("magic {magic} at position {position}")]
    Magic { position: u64, magic: i8 },
    #[error("negative lastOffsetDelta at position {position}")]
    NegativeLastOffsetDelta { position: u64 },
    #[error("offsets out of range at position {position}")]
    OffsetsOutOfRange { position: u64 },
    #[error("partial batch header at position {position}")]
    PartialHeader { position: u64 },
    #[error("batch at position {position} extends past the segment")]
    PastSegmentEnd { position: u64 },
    #[error("batch at position {position}: {error}")]
    Batch { position: u64, error: runnel_protocol::batch::BatchError },
    #[error("offset {offset} after next offset {next_offset}")]
    OffsetGoesBack { offset: i64, next_offset: i64 },
    #[error("offset {offset} too far from the segment base {base_offset}")]
    TooFarFromBase { offset: i64, base_offset: i64 },
    #[error("offset index entry ({offset}, {position}) names a batch ending at {last_offset}")]
    IndexEntryMismatch { offset: i64, position: u64, last_offset: i64 },
    #[error("{index} index has {entries} entries, at most {entries_max}")]
    IndexTooLong { index: IndexKind, entries: usize, entries_max: usize },
    #[error("{index} index entries do not increase")]
    IndexNotIncreasing { index: IndexKind },
    #[error("offset index entry position {position} beyond the log of {log_bytes} bytes")]
    IndexPastLog { position: u32, log_bytes: u64 },
    #[error("time index names offset {offset}, beyond the segment's next offset {next_offset}")]
    TimeIndexPastSegment { offset: i64, next_offset: i64 },
}

/// The two sparse indexes of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Offset,
    Time,
}

impl std::fmt::Display for IndexKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IndexKind::Offset => "offset",
            IndexKind::Time => "time",
        })
    }
}

/// Why a producer-state snapshot cannot be read (the reader then discards it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotFault {
    #[error("not a producer snapshot")]
    NotASnapshot,
    #[error("unknown snapshot version {0}")]
    Version(u16),
    #[error("checksum mismatch")]
    Checksum,
    #[error("truncated")]
    Truncated,
    #[error("{count} batches kept for producer {producer_id}")]
    TooManyBatches { producer_id: i64, count: usize },
    #[error("trailing bytes")]
    TrailingBytes,
}

/// Why a checkpoint file (recovery points, leader epochs) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFault {
    #[error("unsupported version line {0:?}")]
    Version(String),
    #[error("missing or malformed entry count")]
    Count,
    #[error("expected {expected} entries, found {found}")]
    EntryCount { expected: usize, found: usize },
    #[error("malformed entry {0:?}")]
    Entry(String),
    #[error("entries out of order")]
    OutOfOrder,
    #[error("trailing lines after the entries")]
    TrailingLines,
}
