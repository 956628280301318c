//! openraft's [`RaftLogStorage`] over [`LogFiles`]: the durable Raft log and vote.
//!
//! Every write runs on the blocking pool and is complete (written and fsynced) before the
//! call returns, which serializes writes as openraft requires. An append's entries become
//! readable under the lock; the fsync happens outside it, so replication readers are not
//! held up by the disk, and the flush callback fires only after the fsync.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, OptionalSend, RaftLogReader, StorageIOError};

use crate::log_files::{LogError, LogFiles};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Bytes of entries one read returns at most (at least one entry is always returned), so a
/// replication batch for a lagging follower stays bounded.
const READ_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The Raft log store. Cloning shares the same files.
#[derive(Clone)]
pub struct LogStore {
    files: Arc<Mutex<LogFiles>>,
}

impl LogStore {
    /// Opens the log in `dir` (created if missing), recovering from a torn tail.
    pub fn open(dir: &Path, segment_bytes_max: u64) -> Result<LogStore, LogError> {
        let files = LogFiles::open(dir, segment_bytes_max)?;
        Ok(LogStore { files: Arc::new(Mutex::new(files)) })
    }

    fn lock(&self) -> MutexGuard<'_, LogFiles> {
        lock(&self.files)
    }

    /// Runs a write on the blocking pool with the files locked.
    async fn write<T, F>(&self, op: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&mut LogFiles) -> Result<T, LogError> + Send + 'static,
    {
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || op(&mut lock(&files))).await.expect("log writes do not panic")
    }
}

fn lock(files: &Mutex<LogFiles>) -> MutexGuard<'_, LogFiles> {
    // A panic while holding the lock is a bug in this module; the files may be inconsistent.
    files.lock().expect("raft log lock poisoned")
}

/// `range` as `start..end`.
fn bounds<RB: RangeBounds<u64>>(range: RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds(range);
        self.lock().read(start, end, u64::MAX).map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.lock().read(start, end, READ_BYTES_MAX).map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let files = self.lock();
        Ok(LogState { last_purged_log_id: files.state().last_purged, last_log_id: files.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.write(move |files| files.save_vote(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().state().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write(move |files| files.save_committed(committed))
            .await
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().state().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let written = self.write(move |files| files.append(entries)).await;
        let files = written.map_err(|e| StorageError::from(StorageIOError::write_logs(AnyError::new(&e))))?;
        let flushed = tokio::task::spawn_blocking(move || files.iter().try_for_each(|file| file.sync_data()))
            .await
            .expect("fsync does not panic");
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(move |files| files.truncate(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(move |files| files.purge(log_id))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
