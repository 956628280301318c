//! The metadata log interface of a single node: a local, fsynced log. A cluster keeps its
//! metadata in the Raft quorum instead, a separate variant of the broker's metadata store
//! (not an implementation of this trait).

use crate::records::MetadataRecord;

/// An error from a part the metadata crate does not know by type (the storage engine, the
/// quorum): kept as its source, not flattened to text.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata log i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A stored batch or record could not be read back.
    #[error("metadata log corrupt: {0}")]
    Corrupt(#[source] SourceError),
    /// A stored record without a value (every metadata record has one).
    #[error("metadata log corrupt: a record without a value at offset {offset}")]
    NullRecord { offset: i64 },
    #[error("metadata log storage: {0}")]
    Storage(#[source] SourceError),
    /// The records may or may not have been committed: the caller must read the image to
    /// learn which.
    #[error("metadata commit outcome unknown: {0}")]
    OutcomeUnknown(UnknownOutcome),
    /// The records were not committed: the quorum refused them or has no leader to take
    /// them. Retrying may succeed.
    #[error("metadata commit refused: {0}")]
    Refused(#[source] SourceError),
    /// Every attempt to be granted a block of producer ids lost its race.
    #[error("no producer id block granted after {attempts} attempts")]
    ProducerIdBlock { attempts: u32 },
}

/// Why a commit's outcome is unknown.
#[derive(Debug, thiserror::Error)]
pub enum UnknownOutcome {
    #[error("the commit timed out")]
    TimedOut,
    #[error("the committed entry was not applied on this node in time")]
    NotApplied,
    #[error("the node began shutting down while the commit waited for the quorum")]
    ShuttingDown,
    /// The quorum lost the answer (a timeout inside it, a leader change mid-flight).
    #[error("metadata quorum: {0}")]
    Quorum(#[source] SourceError),
}

/// An append-only, durable sequence of metadata records.
pub trait MetadataLog: Send {
    /// Appends records atomically (one batch) and makes them durable before returning.
    /// Returns the offset of the last record.
    fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataError>;
    /// Every record in the log, in order, for rebuilding the image at start-up.
    fn replay(&mut self) -> Result<Vec<MetadataRecord>, MetadataError>;
}
