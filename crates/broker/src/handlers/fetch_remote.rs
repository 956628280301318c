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
    /// For read_committed, where to find the aborted transactions the read must report.
    pub aborted: Option<AbortedScan>,
}

/// The aborted transactions overlapping a remote read (Kafka's
/// `RemoteLogManager.collectAbortedTransactions`): those of the transaction indexes of the
/// segment read and the following ones, remote then local, whose marker is at or after the
/// read's offset and whose first offset is below `upper` (the segment's end, at most the
/// last stable offset); the scan stops at the first entry whose last stable offset reaches
/// `upper`, as the local scan does.
#[derive(Debug)]
pub struct AbortedScan {
    pub remote: Vec<SegmentRef>,
    pub upper: i64,
    /// The local segments' entries overlapping the read, for a scan that reaches them.
    pub local: Vec<runnel_storage::txn_index::AbortedTxn>,
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
    /// `read_committed`: the last stable offset, for a read_committed consumer.
    pub fn below_local(
        &self,
        partition: &Partition,
        offset: i64,
        (max_bytes, min_one_batch): (usize, bool),
        replica: bool,
        read_committed: Option<i64>,
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
        let aborted = read_committed.map(|last_stable_offset| {
            let upper = (segment.end_offset + 1).min(last_stable_offset);
            let mut remote: Vec<&runnel_metadata::remote_log::RemoteSegment> =
                log.segments.values().filter(|s| s.base_offset >= segment.base_offset).collect();
            remote.sort_by_key(|s| s.base_offset);
            let remote = remote
                .into_iter()
                .map(|s| SegmentRef::new(self.prefix, partition.topic_id, partition.index, s))
                .collect();
            let local = partition.with_log(|log| Ok(log.aborted_transactions(offset, upper))).unwrap_or_default();
            AbortedScan { remote, upper, local }
        });
        Ok(RemoteTarget {
            segment: SegmentRef::new(self.prefix, partition.topic_id, partition.index, segment),
            offset,
            max_bytes: max_bytes.min(REMOTE_READ_BYTES_MAX),
            min_one_batch,
            aborted,
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

/// The aborted transactions `scan` finds for a read from `from` (see [`AbortedScan`]).
async fn collect_aborted(reader: &RemoteReader, scan: &AbortedScan, from: i64) -> Result<Vec<(i64, i64)>, RemoteError> {
    let mut found: Vec<(i64, i64)> = Vec::new();
    let mut take = |entry: &runnel_storage::txn_index::AbortedTxn| {
        if entry.last_offset >= from
            && entry.first_offset < scan.upper
            && !found.contains(&(entry.producer_id, entry.first_offset))
        {
            found.push((entry.producer_id, entry.first_offset));
        }
        entry.last_stable_offset >= scan.upper
    };
    for segment in &scan.remote {
        let Some(bytes) = reader.transaction_index(segment).await? else { continue };
        for entry in runnel_storage::txn_index::parse_entries(&bytes) {
            if take(&entry) {
                return Ok(found);
            }
        }
    }
    for entry in &scan.local {
        if take(entry) {
            break;
        }
    }
    Ok(found)
}

async fn read_into(reader: &Arc<RemoteReader>, mut target: RemoteTarget, wait: Duration, data: &mut PartitionData) {
    if let Some(scan) = target.aborted.take() {
        // The transaction indexes are small and cached: read them first, within the wait.
        match tokio::time::timeout(wait, collect_aborted(reader, &scan, target.offset)).await {
            Ok(Ok(aborted)) => data.aborted = Some(aborted),
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading remote transaction indexes failed");
                data.error = ResponseError::KafkaStorageError.code();
                return;
            }
            // No records without their aborted transactions: the client asks again.
            Err(_) => return,
        }
    }
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
