//! Tiered storage (KIP-405): where a partition's closed segments live in object storage,
//! the object stores themselves, and reading records back. Decisions are pure (`layout`,
//! `upload_plan`, `expiry_plan`, `cache`); `backend` is the one module that talks to a store, and
//! `reader` reads batches back through a bounded cache.

pub mod backend;
pub mod cache;
pub mod expiry_plan;
pub mod layout;
pub mod reader;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod upload_plan;

pub use backend::{BackendSettings, RemoteError, RemoteStore};
pub use layout::{ObjectKind, SegmentKey};
pub use reader::{RemoteReader, SegmentRef};
