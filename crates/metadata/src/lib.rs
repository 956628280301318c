//! Cluster metadata as records, and the immutable image they build.
//!
//! Owns: [`MetadataRecord`] (what the metadata log holds), [`MetadataImage`] (the state those
//! records describe, immutable and shared behind an `Arc`), the [`MetadataLog`] interface
//! that stores records (local on a single node; a cluster replicates them in the Raft
//! quorum), the controller's pure decisions ([`controller`], [`election`], [`scram`], [`acl`], ...). No I/O, no clocks, no async.

// A lossy `as` on an outside length or count silently wraps: `try_from` and handle it, or say why it fits.
#![warn(clippy::cast_possible_truncation)]

pub mod acl;
pub mod controller;
pub mod election;
pub mod image;
pub mod liveness;
pub mod log;
pub mod pairs;
pub mod placement;
pub mod quota;
pub mod reassignment;
pub mod records;
pub mod remote_log;
pub mod scram;

pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use log::{MetadataError, MetadataLog, SourceError, UnknownOutcome};
pub use records::{BrokerEndpoint, ConfigResource, MetadataRecord};
