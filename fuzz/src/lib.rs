//! Bodies of Runnel's fuzz targets, one module per target (`fuzz_targets/<name>.rs` calls
//! `<name>::run`). The same files are compiled into the stable corpus-replay tests
//! (`crates/*/tests/fuzz_corpus.rs`, with `#[path]`), so every module may use only the
//! crates its replaying test can see: `request_frame` and `produce_batch` the protocol
//! crate; `record_batch`, `storage_files` and `scratch` the storage crate; `group_records` and
//! `sasl_messages` the broker; `metadata_records` the metadata crate; `quorum_messages` the quorum crate.

pub mod corpus;
pub mod group_records;
pub mod metadata_records;
pub mod produce_batch;
pub mod quorum_messages;
pub mod record_batch;
pub mod request_frame;
pub mod sasl_messages;
pub mod scratch;
pub mod storage_files;
