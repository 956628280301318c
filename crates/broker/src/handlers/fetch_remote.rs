//! Fetch below a partition's local log start, from tiered storage (Kafka's
//! `ReplicaManager.handleOffsetOutOfRangeError` and `DelayedRemoteFetch`): a consumer's
//! read of an offset that only remote storage holds is answered from the remote segment
//! through the node's [`runnel_tiered::RemoteReader`]; a follower is told
//! OFFSET_MOVED_TO_TIERED_STORAGE and starts its copy above what remote storage holds.
//! Records from the local-directory backend go out with sendfile(2), as local ones do;
//! from other stores as slices of the reader's cached chunks.
//!
//! As in Kafka: only the first partition of a request that needs remote data is read (the
//! others answer no records, and are asked again); a fetch with a remote read does not
//! long-poll; the read waits at most `remote.fetch.max.wait.ms`, after which that
//! partition answers no records and no error (the read goes on: from an object store into
//! the reader's cache, from the local directory into the page cache, so the client's next
//! fetch is quicker). A failed read answers KAFKA_STORAGE_ERROR, which
//! clients retry (Kafka answers UNKNOWN_SERVER_ERROR); a batch that fails its checksum is
//! never served.
//!
//! Invariants: the log start a fetch reports is the remote log start when remote storage
//! holds a partition's oldest data; remote reads hold no partition lock; one fetch's remote
//! read holds at most [`REMOTE_READ_BYTES_MAX`] (or one larger batch) in memory.

use std::sync::Arc;
use std::time::Duration;

use runnel_metadata::remote_log::RemoteLogImage;
use runnel_metadata::MetadataImage;
use runnel_protocol::ResponseError;
use runnel_storage::FileSlice;
use runnel_tiered::reader::RemoteRecords;
use runnel_tiered::{RemoteError, RemoteReader, SegmentRef};

use super::fetch::{PartitionData, Records, TopicData};
use crate::broker::Broker;
use crate::partition::Partition;

/// The most a remote read brings into memory for one fetch (a local read costs no memory:
/// it is sent from the file). A larger `partition_max_bytes` gets this much, or one batch
/// when a single batch is larger, and the client fetches again.
pub const REMOTE_READ_BYTES_MAX: usize = 16 << 20;

/// A consumer's read that remote storage must answer.
#[derive(Debug)]
pub struct RemoteTarget {
    pub segment: SegmentRef,
    pub offset: i64,
    pub max_bytes: usize,
    pub min_one_batch: bool,
}

/// What a fetch knows about tiered storage: the node's reader and the image's remote logs.
pub struct Tiered<'a> {
    reader: Option<&'a Arc<RemoteReader>>,
    image: &'a MetadataImage,
    prefix: &'a str,
}

impl<'a> Tiered<'a> {
    pub fn new(broker: &'a Broker, image: &'a MetadataImage) -> Self {
        Tiered { reader: broker.remote.as_ref(), image, prefix: &broker.config.tiered.prefix }
    }

    /// The remote log of `partition`, when this node reads remote storage and its topic
    /// has `remote.storage.enable`.
    pub fn remote_log(&self, partition: &Partition) -> Option<&'a RemoteLogImage> {
        self.reader?;
        if !partition.remote_storage() {
            return None;
        }
        self.image.remote_logs.get(&(partition.topic_id, partition.index)).map(|log| log.as_ref())
    }

    /// The log start offset to report: remote storage's when it holds older data.
    pub fn log_start_offset(&self, partition: &Partition, local_start: i64) -> i64 {
        self.remote_log(partition).and_then(|log| log.start_offset()).map_or(local_start, |r| r.min(local_start))
    }

    /// A read of `offset` below the local log: the remote read for a consumer, the error
    /// for a follower, or `Err(OffsetOutOfRange)` when remote storage does not hold it.
    pub fn below_local(
        &self,
        partition: &Partition,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        replica: bool,
    ) -> Result<RemoteTarget, ResponseError> {
        let log = self.remote_log(partition).ok_or(ResponseError::OffsetOutOfRange)?;
        let start = log.start_offset().ok_or(ResponseError::OffsetOutOfRange)?;
        if offset < start {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let segment = log.segment_for(offset).ok_or(ResponseError::OffsetOutOfRange)?;
        if replica {
            return Err(ResponseError::OffsetMovedToTieredStorage);
        }
        Ok(RemoteTarget {
            segment: SegmentRef::new(self.prefix, partition.topic_id, partition.index, segment),
            offset,
            max_bytes: max_bytes.min(REMOTE_READ_BYTES_MAX),
            min_one_batch,
        })
    }
}

/// Answers the remote reads `topics` wait on: the first one from the store (bounded by
/// `remote.fetch.max.wait.ms`), the others with no records.
pub async fn complete(broker: &Broker, topics: &mut [TopicData]) {
    let Some(reader) = broker.remote.as_ref() else { return };
    let wait = Duration::from_millis(broker.config.tiered.fetch_max_wait_ms);
    let mut first = true;
    for data in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        let Some(target) = data.remote.take() else { continue };
        if !std::mem::replace(&mut first, false) {
            continue;
        }
        read_into(reader, target, wait, data).await;
    }
}

async fn read_into(reader: &Arc<RemoteReader>, target: RemoteTarget, wait: Duration, data: &mut PartitionData) {
    let reader = reader.clone();
    // The read runs on its own task: on timeout it still completes into the cache.
    let read = tokio::spawn(async move {
        reader.read(&target.segment, target.offset, target.max_bytes, target.min_one_batch).await
    });
    match tokio::time::timeout(wait, read).await {
        Ok(Ok(Ok(records))) if !records.is_empty() => {
            data.records = Some(match records {
                RemoteRecords::Pieces(pieces) => Records::Bytes(pieces),
                RemoteRecords::File { file, position, len } => {
                    Records::File(FileSlice { file, position, len: u32::try_from(len).unwrap_or(u32::MAX) })
                }
            })
        }
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(error))) => {
            match &error {
                RemoteError::Corrupt { .. } => tracing::error!(%error, "remote read refused a corrupt object"),
                _ => tracing::warn!(%error, "remote read failed"),
            }
            data.error = ResponseError::KafkaStorageError.code();
        }
        Ok(Err(join)) => {
            tracing::error!(error = %join, "remote read task failed");
            data.error = ResponseError::KafkaStorageError.code();
        }
        Err(_) => tracing::debug!("remote read slower than remote.fetch.max.wait.ms; answered without records"),
    }
}
