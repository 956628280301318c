//! Runnel's view of the Kafka wire protocol.
//!
//! Owns: frame limits and request-header parsing ([`frame`]), the table of API versions the
//! broker implements ([`api`]), the zero-copy RecordBatch v2 view with CRC32C validation and
//! in-place offset assignment ([`batch`]), decoders for the request versions `kafka-protocol`
//! dropped ([`legacy`]), and Kafka error codes (re-exported from
//! `kafka-protocol`). Message bodies themselves come from the `kafka-protocol` crate; this
//! crate never hand-encodes a body. No async runtime here.

// A lossy `as` on an outside length or count silently wraps: `try_from` and handle it, or say why it fits.
#![warn(clippy::cast_possible_truncation)]

pub mod api;
pub mod batch;
pub mod compression;
pub mod control;
pub mod frame;
pub mod legacy;
pub mod runnel_tags;

pub use kafka_protocol;
pub use kafka_protocol::error::ResponseError;

/// A Kafka offset within one partition.
pub type Offset = i64;
/// A partition leader epoch.
pub type LeaderEpoch = i32;
