//! The metadata log interface of a single node: a local, fsynced log. A cluster keeps its
//! metadata in the Raft quorum instead, a separate variant of the broker's metadata store
//! (not an implementation of this trait).

use crate::records::MetadataRecord;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata log i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata log corrupt: {0}")]
    Corrupt(String),
    #[error("metadata log storage: {0}")]
    Storage(String),
    /// The records may or may not have been committed (a timeout, a lost answer, a node
    /// stopping while it waited): the caller must read the image to learn which.
    #[error("metadata commit outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The records were not committed: the quorum refused them or has no leader to take
    /// them. Retrying may succeed.
    #[error("metadata commit refused: {0}")]
    Refused(String),
}

/// An append-only, durable sequence of metadata records.
pub trait MetadataLog: Send {
    /// Appends records atomically (one batch) and makes them durable before returning.
    /// Returns the offset of the last record.
    fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataError>;
    /// Every record in the log, in order, for rebuilding the image at start-up.
    fn replay(&mut self) -> Result<Vec<MetadataRecord>, MetadataError>;
}
