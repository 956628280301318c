//! The Raft metadata quorum: cluster metadata as a replicated log, on `openraft`.
//!
//! Owns: the openraft type configuration ([`types`]), the durable Raft log and vote on disk
//! ([`LogStore`], format in [`log_files`]), the state machine that applies committed
//! [`runnel_metadata::MetadataRecord`]s to a [`runnel_metadata::MetadataImage`] and snapshots
//! it ([`StateMachine`], format in [`snapshot`]), the transport between nodes ([`rpc`]: the
//! wire format, [`network`]: openraft's client side, [`server`]: the controller listener),
//! and the [`Quorum`] façade the broker uses.
//!
//! Controllers are voters; broker-only nodes are learners that follow the committed log.

// A lossy `as` on an outside length or count silently wraps: `try_from` and handle it, or say why it fits.
#![warn(clippy::cast_possible_truncation)]

pub mod disk;
pub mod log_files;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod quorum;
pub mod rpc;
pub mod server;
pub mod snapshot;
pub mod snapshot_buffer;
pub mod state_machine;
pub mod types;

pub use log_files::LogError;
pub use log_store::LogStore;
pub use openraft::ServerState;
pub use quorum::{Quorum, QuorumConfig, QuorumError, QuorumMetrics, QuorumTuning};
pub use rpc::{ForwardError, NodeStatus, QuorumTls, TransportError};
pub use snapshot::SnapshotError;
pub use snapshot_buffer::SNAPSHOT_BYTES_MAX_DEFAULT;
pub use state_machine::StateMachine;
pub use types::{MetadataBatch, NodeId, QuorumNode, Roles, TypeConfig};
