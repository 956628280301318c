//! Runnel's storage engine: partition logs on local disk, in Kafka's on-disk format.
//!
//! Owns: segments (`.log` files of record batches exactly as on the wire), their sparse
//! offset and time indexes, the partition log built from them ([`PartitionLog`]: append
//! with in-place offset assignment, zero-copy reads as [`FileSlice`]s, roll, truncation,
//! recovery after an unclean shutdown, retention, flush policy), log compaction
//! ([`cleaner`]: the decisions, a pass over a log's files, the crash-safe swap), offset
//! checkpoint files ([`OffsetCheckpoint`]), and partition directory names. No async runtime: blocking file
//! I/O behind small types; callers (the broker) serialize access per log.

// A lossy `as` on an outside length or count silently wraps: `try_from` and handle it, or say why it fits.
#![warn(clippy::cast_possible_truncation)]

mod checkpoint;
pub mod cleaner;
mod config;
mod entry_file;
mod error;
mod header;
pub mod leader_epoch;
pub mod legacy_offsets;
mod log;
mod log_open;
mod offset_index;
mod partition_dir;
mod producer_snapshot;
pub mod producer_state;
mod retention;
mod rolled_flush;
mod segment;
mod segment_load;
mod stamp;
mod tiering;
mod time_index;
pub mod txn_index;

pub use checkpoint::OffsetCheckpoint;
pub use config::LogConfig;
pub use error::{CheckpointFault, Corruption, IndexKind, SnapshotFault, StorageError};
pub use log::{AppendInfo, FileSlice, PartitionLog, ReadInfo};
pub use partition_dir::{parse_partition_dir, partition_dir_name};
pub use producer_state::{ProducerError, ProducerStateManager};
pub use rolled_flush::RolledFlush;
pub use runnel_fs::{sync_dir, write_atomically};
pub use tiering::ClosedSegment;
pub use txn_index::AbortedTxn;
