//! openraft's [`RaftStateMachine`]: committed metadata records applied to the image.
//!
//! The state machine lives in memory and is persisted only through snapshots (openraft's
//! "persistent snapshot" mode): on start it loads the snapshot, and openraft re-applies the
//! committed entries after it from the log (the log store saves the committed id). Every
//! applied batch publishes the new image on a `watch` channel, so the broker swaps images
//! without locking.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use runnel_metadata::MetadataImage;
use tokio::sync::watch;

use crate::snapshot::{self, SnapshotError};
use crate::snapshot_buffer::{SnapshotBuffer, SNAPSHOT_BYTES_MAX_DEFAULT};
use crate::types::{Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// What the state machine and its snapshot builders share.
struct Shared {
    dir: PathBuf,
    /// Meta of the snapshot on disk. Held while the file is replaced, so a slow build cannot
    /// overwrite a newer installed snapshot.
    current: Mutex<Option<SnapshotMeta>>,
    builds: AtomicU64,
}

impl Shared {
    /// Stores a snapshot unless a newer one is already on disk.
    fn store(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), SnapshotError> {
        let mut current = self.current.lock().expect("snapshot lock poisoned");
        if current.as_ref().is_some_and(|c| c.last_log_id > meta.last_log_id) {
            return Ok(());
        }
        snapshot::write(&self.dir, meta, data)?;
        *current = Some(meta.clone());
        Ok(())
    }
}

/// The metadata state machine.
pub struct StateMachine {
    shared: Arc<Shared>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    image: Arc<MetadataImage>,
    images: watch::Sender<Arc<MetadataImage>>,
    /// A snapshot received from the leader may not grow past this.
    snapshot_bytes_max: u64,
}

impl StateMachine {
    /// Opens the state machine in `dir`, starting from the snapshot there if any.
    pub fn open(dir: &Path) -> Result<StateMachine, SnapshotError> {
        std::fs::create_dir_all(dir).map_err(|source| SnapshotError::Io { path: dir.to_path_buf(), source })?;
        let (current, image) = match snapshot::read(dir)? {
            Some((meta, data)) => (Some(meta), snapshot::decode_image(&data)?),
            None => (None, MetadataImage::default()),
        };
        let last_applied = current.as_ref().and_then(|m| m.last_log_id);
        let last_membership = current.as_ref().map(|m| m.last_membership.clone()).unwrap_or_default();
        let image = Arc::new(image);
        let (images, _) = watch::channel(image.clone());
        let shared =
            Arc::new(Shared { dir: dir.to_path_buf(), current: Mutex::new(current), builds: AtomicU64::new(0) });
        let snapshot_bytes_max = SNAPSHOT_BYTES_MAX_DEFAULT;
        Ok(StateMachine { shared, last_applied, last_membership, image, images, snapshot_bytes_max })
    }

    /// Refuses snapshots from the leader above `bytes_max` (default [`SNAPSHOT_BYTES_MAX_DEFAULT`]).
    pub fn with_snapshot_bytes_max(self, bytes_max: u64) -> StateMachine {
        StateMachine { snapshot_bytes_max: bytes_max, ..self }
    }

    /// A receiver of every image the state machine publishes, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }

    fn publish(&mut self, image: MetadataImage) {
        self.image = Arc::new(image);
        self.images.send_replace(self.image.clone());
    }
}

/// Builds a snapshot from a frozen view of the state machine.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    image: Arc<MetadataImage>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let data = snapshot::encode_image(&self.image);
        let build = self.shared.builds.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{build}", id.leader_id, id.index),
            None => format!("none-{build}"),
        };
        let meta =
            SnapshotMeta { last_log_id: self.last_applied, last_membership: self.last_membership.clone(), snapshot_id };
        let shared = self.shared.clone();
        let (stored_meta, data) = tokio::task::spawn_blocking(move || shared.store(&meta, &data).map(|_| (meta, data)))
            .await
            .expect("snapshot writes do not panic")
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        Ok(Snapshot { meta: stored_meta, snapshot: Box::new(SnapshotBuffer::holding(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        let mut replies = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => records.extend(batch.records),
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            // `MetadataImage::apply` counts every record it applies, so the count after this
            // entry is known without applying entry by entry.
            replies.push(Applied { records_applied: self.image.records_applied + records.len() as u64 });
        }
        if !records.is_empty() {
            let next = self.image.apply(&records);
            self.publish(next);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            image: self.image.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotBuffer>, StorageError> {
        Ok(Box::new(SnapshotBuffer::receiving(self.snapshot_bytes_max)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotBuffer>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let signature = Some(meta.signature());
        let image = snapshot::decode_image(&data)
            .map_err(|e| StorageIOError::read_snapshot(signature.clone(), AnyError::new(&e)))?;
        let shared = self.shared.clone();
        let stored = meta.clone();
        tokio::task::spawn_blocking(move || shared.store(&stored, &data))
            .await
            .expect("snapshot writes do not panic")
            .map_err(|e| StorageIOError::write_snapshot(signature, AnyError::new(&e)))?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.publish(image);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let shared = self.shared.clone();
        let read = tokio::task::spawn_blocking(move || snapshot::read(&shared.dir))
            .await
            .expect("snapshot reads do not panic")
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)))?;
        Ok(read.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(SnapshotBuffer::holding(data)) }))
    }
}
