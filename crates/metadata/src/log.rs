//! The metadata log interface. Today a local, fsynced log on one node; the Raft quorum
//! implements the same interface later, so nothing above it changes.

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
}

/// An append-only, durable sequence of metadata records.
pub trait MetadataLog: Send {
    /// Appends records atomically (one batch) and makes them durable before returning.
    /// Returns the offset of the last record.
    fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataError>;
    /// Every record in the log, in order, for rebuilding the image at start-up.
    fn replay(&mut self) -> Result<Vec<MetadataRecord>, MetadataError>;
}
