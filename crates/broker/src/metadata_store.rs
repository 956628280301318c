//! The node's metadata: the durable metadata log and the current image built from it.
//!
//! [`LocalMetadataLog`] keeps records in `<data_dir>/__cluster_metadata-0`, a partition log
//! like any other whose batches hold one JSON record each, fsynced on every commit. In a
//! cluster the store's other variant is the Raft quorum; callers see the same `commit`
//! and `image` either way.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::locks::{MutexExt, RwLockExt};
use runnel_metadata::{MetadataError, MetadataImage, MetadataLog, MetadataRecord, UnknownOutcome};
use runnel_protocol::batch::{build_batch_with_keys, BatchIter};
use runnel_quorum::Quorum;
use runnel_storage::{LogConfig, PartitionLog};

pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// Bytes read per step while replaying the metadata log.
const REPLAY_READ_BYTES: usize = 1 << 20;

pub struct LocalMetadataLog {
    log: PartitionLog,
}

fn storage_error(e: impl std::error::Error + Send + Sync + 'static) -> MetadataError {
    MetadataError::Storage(Box::new(e))
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> MetadataError {
    MetadataError::Corrupt(Box::new(e))
}

impl LocalMetadataLog {
    pub fn open(data_dir: &Path, clean_shutdown: bool, now_ms: i64) -> Result<Self, MetadataError> {
        let dir = data_dir.join(METADATA_DIR);
        // Every commit is fsynced, so the whole log is below the recovery point only when
        // the shutdown was clean; otherwise recovery scans it (it is small).
        let log =
            PartitionLog::open(&dir, LogConfig::default(), 0, 0, clean_shutdown, now_ms).map_err(storage_error)?;
        Ok(LocalMetadataLog { log })
    }

    pub fn close(self) -> Result<(), MetadataError> {
        self.log.close().map_err(storage_error)
    }
}

impl MetadataLog for LocalMetadataLog {
    fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataError> {
        assert!(!records.is_empty(), "commit at least one record");
        let values: Vec<Vec<u8>> = records.iter().map(MetadataRecord::encode).collect();
        let pairs: Vec<(Option<&[u8]>, &[u8])> = values.iter().map(|v| (None, v.as_slice())).collect();
        let now_ms = crate::clock::now_ms();
        let mut batch = build_batch_with_keys(now_ms, &pairs);
        let info = self.log.append(&mut batch, 0, false, now_ms).map_err(storage_error)?;
        self.log.flush().map_err(storage_error)?;
        Ok(info.last_offset)
    }

    fn replay(&mut self) -> Result<Vec<MetadataRecord>, MetadataError> {
        let mut records = Vec::new();
        let mut offset = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        while offset < end {
            let read = self.log.read(offset, REPLAY_READ_BYTES, end, true).map_err(storage_error)?;
            let Some(slice) = read.slice else { break };
            let mut bytes = vec![0u8; slice.len as usize];
            slice.file.read_exact_at(&mut bytes, slice.position)?;
            for item in BatchIter::new(&bytes) {
                let (_, batch) = item.map_err(corrupt)?;
                for record in batch.records().map_err(corrupt)? {
                    let at = batch.base_offset() + record.offset_delta;
                    let value = record.value.ok_or(MetadataError::NullRecord { offset: at })?;
                    records.push(MetadataRecord::decode(value).map_err(corrupt)?);
                }
                offset = batch.last_offset() + 1;
            }
        }
        Ok(records)
    }
}

/// Where the metadata lives: a local log (single node) or the Raft quorum (cluster).
enum Backend {
    /// The log plus the image it has produced; commits are serialised by the log lock.
    Local { log: Mutex<Box<dyn MetadataLog>>, image: RwLock<Arc<MetadataImage>> },
    /// The replicated log; this node's state machine publishes the image.
    Raft { quorum: Box<Quorum>, commit_lock: Mutex<()> },
}

/// The node's metadata: the current image, and commits of new records. Readers take the
/// current image without waiting for writers.
pub struct MetadataStore {
    backend: Backend,
    /// How long commits that changed the image took (proposal to applied here).
    pub commit_latency: crate::request_metrics::Histogram,
    /// Set when the node starts shutting down: commits still waiting for the quorum give up
    /// (the quorum may be gone with the other nodes), except the bounded final one.
    closing: tokio::sync::watch::Sender<bool>,
}

/// How long a cluster commit waits for the quorum and then for this node to apply it.
const RAFT_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

impl MetadataStore {
    /// Replays the local log into a fresh image.
    pub fn load(mut log: Box<dyn MetadataLog>) -> Result<Self, MetadataError> {
        let records = log.replay()?;
        let image = MetadataImage::default().apply(&records);
        let backend = Backend::Local { log: Mutex::new(log), image: RwLock::new(Arc::new(image)) };
        Ok(MetadataStore {
            backend,
            commit_latency: Default::default(),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Metadata from the Raft quorum.
    pub fn raft(quorum: Quorum) -> Self {
        let backend = Backend::Raft { quorum: Box::new(quorum), commit_lock: Mutex::new(()) };
        MetadataStore { backend, commit_latency: Default::default(), closing: tokio::sync::watch::Sender::new(false) }
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        match &self.backend {
            Backend::Local { image, .. } => image.read_locked().clone(),
            Backend::Raft { quorum, .. } => quorum.image(),
        }
    }

    /// The quorum, in cluster mode.
    pub fn quorum(&self) -> Option<&Quorum> {
        match &self.backend {
            Backend::Raft { quorum, .. } => Some(quorum),
            Backend::Local { .. } => None,
        }
    }

    /// Makes `decide`'s records durable and returns the image that includes them.
    ///
    /// Single node: `decide` runs under the commit lock against the latest image, so
    /// check-then-write is atomic. Cluster: `decide` runs against this node's image, which
    /// may lag the leader; the records are proposed through the quorum, and applying them
    /// skips whatever conflicts with what committed first (see `MetadataImage::apply`), on
    /// every node alike. Callers read the returned image to see whether their change won.
    ///
    /// A cluster commit waits at most `RAFT_COMMIT_TIMEOUT`, and gives up once
    /// [`MetadataStore::begin_close`] has been called.
    pub fn commit<E>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, MetadataError> {
        self.commit_bounded(RAFT_COMMIT_TIMEOUT, Some(self.closing.subscribe()), decide)
    }

    /// The node is shutting down: commits waiting for the quorum give up now.
    pub fn begin_close(&self) {
        self.closing.send_replace(true);
    }

    /// A commit made while shutting down (controlled shutdown): not given up by
    /// [`MetadataStore::begin_close`], but bounded by `timeout`, so a node whose quorum is
    /// gone still stops.
    pub fn commit_final<E>(
        &self,
        timeout: Duration,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, MetadataError> {
        self.commit_bounded(timeout, None, decide)
    }

    fn commit_bounded<E>(
        &self,
        timeout: Duration,
        closing: Option<tokio::sync::watch::Receiver<bool>>,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, MetadataError> {
        let began = std::time::Instant::now();
        let committed = self.commit_unmeasured(timeout, closing, decide);
        if matches!(committed, Ok(Ok(_))) {
            self.commit_latency.record(began.elapsed());
        }
        committed
    }

    fn commit_unmeasured<E>(
        &self,
        timeout: Duration,
        closing: Option<tokio::sync::watch::Receiver<bool>>,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, MetadataError> {
        match &self.backend {
            Backend::Local { log, image } => blocking(|| {
                let mut log = log.locked();
                let current = image.read_locked().clone();
                let records = match decide(&current) {
                    Ok(records) => records,
                    Err(e) => return Ok(Err(e)),
                };
                if records.is_empty() {
                    return Ok(Ok(current));
                }
                log.append(&records)?;
                let next = Arc::new(current.apply(&records));
                *image.write_locked() = next.clone();
                Ok(Ok(next))
            }),
            Backend::Raft { quorum, commit_lock } => {
                // Waiting for the lock and for the quorum both happen off the runtime's
                // workers: a waiter parked on a worker would starve the quorum's own tasks
                // on a small machine, and the commit it waits for would never apply.
                blocking(|| {
                    let _one_at_a_time = commit_lock.locked();
                    let records = match decide(&quorum.image()) {
                        Ok(records) => records,
                        Err(e) => return Ok(Err(e)),
                    };
                    if records.is_empty() {
                        return Ok(Ok(quorum.image()));
                    }
                    let deadline = tokio::time::Instant::now() + timeout;
                    let committed = tokio::runtime::Handle::current().block_on(async {
                        match closing {
                            Some(mut closing) => tokio::select! {
                                committed = propose_and_apply(quorum, records, deadline) => committed,
                                _ = closing.wait_for(|closed| *closed) => Err(MetadataError::OutcomeUnknown(UnknownOutcome::ShuttingDown)),
                            },
                            None => propose_and_apply(quorum, records, deadline).await,
                        }
                    });
                    committed.map(Ok)
                })
            }
        }
    }
}

/// Runs `f`, which may block on locks, fsyncs or the quorum, without holding up the async
/// runtime's workers (on a multi-threaded runtime the worker hands its tasks to another
/// thread first). Elsewhere (unit tests, start-up) it just runs `f`.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The error a client gets when a metadata commit fails: REQUEST_TIMED_OUT when the outcome
/// is unknown (as Kafka answers when its controller does not answer in time; the client
/// reads the metadata to learn whether the change happened), NOT_CONTROLLER when the
/// quorum refused or had no leader (retriable), KAFKA_STORAGE_ERROR for the local log.
pub fn metadata_error_code(error: &runnel_metadata::MetadataError) -> runnel_protocol::ResponseError {
    use runnel_metadata::MetadataError as M;
    use runnel_protocol::ResponseError;
    match error {
        M::OutcomeUnknown(_) => ResponseError::RequestTimedOut,
        M::Refused(_) => ResponseError::NotController,
        _ => ResponseError::KafkaStorageError,
    }
}

/// Whether a failed proposal may have committed: a timeout or a lost answer leaves the
/// outcome unknown; a refusal (too large, refused by the leader) did not commit.
fn quorum_error(e: runnel_quorum::QuorumError) -> MetadataError {
    use runnel_quorum::QuorumError as Q;
    match e {
        Q::Timeout { .. } | Q::Unknown(_) => MetadataError::OutcomeUnknown(UnknownOutcome::Quorum(Box::new(e))),
        Q::Refused { .. } | Q::TooLarge { .. } => MetadataError::Refused(Box::new(e)),
        other => MetadataError::Storage(Box::new(other)),
    }
}

/// Proposes through the quorum and waits until this node has applied the entry, both
/// before `deadline`.
async fn propose_and_apply(
    quorum: &Quorum,
    records: Vec<MetadataRecord>,
    deadline: tokio::time::Instant,
) -> Result<Arc<MetadataImage>, MetadataError> {
    let index = tokio::time::timeout_at(deadline, quorum.propose(records))
        .await
        .map_err(|_| MetadataError::OutcomeUnknown(UnknownOutcome::TimedOut))?
        .map_err(quorum_error)?;
    let mut images = quorum.subscribe();
    while quorum.metrics().last_applied_index.is_none_or(|applied| applied < index) {
        // The watch fires per applied batch; the short bound covers entries that change no image.
        let wake = tokio::time::Instant::now() + Duration::from_millis(50);
        if tokio::time::timeout_at(wake.min(deadline), images.changed()).await.is_err()
            && tokio::time::Instant::now() >= deadline
        {
            return Err(MetadataError::OutcomeUnknown(UnknownOutcome::NotApplied));
        }
    }
    Ok(quorum.image())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_metadata::ConfigResource;

    #[test]
    fn an_unknown_outcome_stays_distinguishable_from_a_refusal() {
        use runnel_quorum::QuorumError;
        let timeout = quorum_error(QuorumError::Timeout { timeout_ms: 5 });
        assert!(matches!(timeout, MetadataError::OutcomeUnknown(_)));
        assert_eq!(metadata_error_code(&timeout), runnel_protocol::ResponseError::RequestTimedOut);
        let refused = quorum_error(QuorumError::Refused { message: "no".into() });
        assert!(matches!(refused, MetadataError::Refused(_)));
        assert_eq!(metadata_error_code(&refused), runnel_protocol::ResponseError::NotController);
        let too_large = quorum_error(QuorumError::TooLarge { bytes: 2, bytes_max: 1 });
        assert!(matches!(too_large, MetadataError::Refused(_)));
    }

    #[test]
    fn committed_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalMetadataLog::open(dir.path(), false, 0).unwrap();
        let store = MetadataStore::load(Box::new(log)).unwrap();
        for i in 0..3 {
            let record = MetadataRecord::Config {
                resource: ConfigResource::Broker(1),
                name: format!("k{i}"),
                value: Some("v".into()),
            };
            store.commit(|_| Ok::<_, ()>(vec![record])).unwrap().unwrap();
        }
        drop(store);
        let log = LocalMetadataLog::open(dir.path(), false, 0).unwrap();
        let store = MetadataStore::load(Box::new(log)).unwrap();
        assert_eq!(store.image().configs[&ConfigResource::Broker(1)].len(), 3);
    }
}
