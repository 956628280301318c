//! Tiered storage (KIP-405): where a partition's closed segments live in object storage,
//! and the object stores themselves. Decisions are pure (`layout`); `backend` is the one
//! module that talks to a store.
//!
//! Status: the object layout, the backends (a local directory and S3-compatible storage)
//! with their error classification and checksums, and the upload planner
//! (`upload_plan`, pure); the uploader itself, remote reads and retention come next (see `docs/plans/tiered-storage.md`). Nothing in the broker uses
//! this crate yet.

pub mod backend;
pub mod layout;
pub mod upload_plan;

pub use backend::{BackendSettings, RemoteError, RemoteStore};
pub use layout::{ObjectKind, SegmentKey};
