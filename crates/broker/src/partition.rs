//! One partition this node hosts: its log behind a lock of its own, the high watermark that
//! fetchers wait on, and group commit for fsync-before-acknowledge.

use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use runnel_storage::{AppendInfo, PartitionLog, ReadInfo, StorageError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::topic_config::TopicSettings;

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    leader_epoch: AtomicI32,
    /// `None` once the partition has been deleted; handlers then answer UNKNOWN_TOPIC.
    log: Mutex<Option<PartitionLog>>,
    settings: RwLock<TopicSettings>,
    /// The high watermark. With one replica it is the log end offset.
    high_watermark: watch::Sender<i64>,
    /// Serialises fsyncs: whoever holds it syncs everything appended so far (group commit).
    flush_lock: tokio::sync::Mutex<()>,
    durable_offset: AtomicI64,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("partition was deleted")]
    Deleted,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("fsync failed: {0}")]
    Sync(std::io::Error),
}

impl Partition {
    pub fn new(
        topic: String,
        index: i32,
        topic_id: Uuid,
        leader_epoch: i32,
        log: PartitionLog,
        settings: TopicSettings,
    ) -> Self {
        let end = log.log_end_offset();
        let durable = log.recovery_point();
        Partition {
            topic,
            index,
            topic_id,
            leader_epoch: AtomicI32::new(leader_epoch),
            log: Mutex::new(Some(log)),
            settings: RwLock::new(settings),
            high_watermark: watch::Sender::new(end),
            flush_lock: tokio::sync::Mutex::new(()),
            durable_offset: AtomicI64::new(durable),
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
    }

    pub fn settings(&self) -> TopicSettings {
        self.settings.read().expect("settings lock").clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that wakes when the high watermark moves. Subscribe before reading so a
    /// concurrent append cannot slip between the read and the wait.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Runs `f` with the log locked.
    pub fn with_log<T>(
        &self,
        f: impl FnOnce(&mut PartitionLog) -> Result<T, StorageError>,
    ) -> Result<T, PartitionError> {
        let mut guard: MutexGuard<'_, Option<PartitionLog>> = self.log.lock().expect("partition log lock");
        let log = guard.as_mut().ok_or(PartitionError::Deleted)?;
        Ok(f(log)?)
    }

    /// Appends validated batches and publishes the new high watermark.
    pub fn append(&self, records: &mut [u8], log_append_time: bool, now_ms: i64) -> Result<AppendInfo, PartitionError> {
        let epoch = self.leader_epoch();
        let info = self.with_log(|log| log.append(records, epoch, log_append_time, now_ms))?;
        self.high_watermark.send_replace(info.last_offset + 1);
        Ok(info)
    }

    /// Appends one validated batch straight from the request buffer (no copy of the
    /// records) and publishes the new high watermark. Returns the offsets and the log start
    /// offset the response reports, under one acquisition of the log lock.
    pub fn append_batch(
        &self,
        batch: &[u8],
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<(AppendInfo, i64), PartitionError> {
        let epoch = self.leader_epoch();
        let (info, end, start) = self.with_log(|log| {
            let info = log.append_batch(batch, epoch, log_append_time, now_ms)?;
            Ok((info, log.log_end_offset(), log.log_start_offset()))
        })?;
        // From the log end, not the batch: a duplicate answers with older offsets.
        self.high_watermark.send_replace(end);
        Ok((info, start))
    }

    /// Reads up to the high watermark; returns the read and the log start offset the
    /// response reports (also when the read itself fails, e.g. out of range), under one
    /// acquisition of the log lock.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<(Result<ReadInfo, StorageError>, i64), PartitionError> {
        let high_watermark = self.high_watermark();
        self.with_log(|log| Ok((log.read(offset, max_bytes, high_watermark, min_one_batch), log.log_start_offset())))
    }

    /// Returns once everything up to `offset` (exclusive) is on disk. One fsync covers every
    /// append that arrived while the previous fsync ran.
    pub async fn make_durable(&self, offset: i64) -> Result<(), PartitionError> {
        if self.durable_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let _turn = self.flush_lock.lock().await;
        if self.durable_offset.load(Ordering::Acquire) >= offset {
            return Ok(());
        }
        let (file, target) = self.with_log(|log| Ok(log.flush_target()))?;
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| PartitionError::Sync(std::io::Error::other(e)))?
            .map_err(PartitionError::Sync)?;
        self.with_log(|log| {
            log.mark_flushed(target);
            Ok(())
        })?;
        self.durable_offset.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Takes the log out for closing or deleting; the partition answers as deleted after.
    pub fn take_log(&self) -> Option<PartitionLog> {
        self.log.lock().expect("partition log lock").take()
    }
}
