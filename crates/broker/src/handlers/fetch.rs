//! Fetch: resolve each partition to a range of one segment file, long-poll until
//! `min_bytes` are available or `max_wait_ms` passes, then write the response with the
//! record bytes sent by sendfile(2).
//!
//! This is the one response Runnel encodes by hand, because `kafka-protocol` can only
//! encode records it holds in memory. [`FetchEncoder`] writes the fields of FetchResponse
//! v4-v16 exactly as the schema orders them; a test checks it byte for byte against the
//! crate's own encoder for every version.
//!
//! Fetch sessions (KIP-227) are declined: a request for a new session gets session id 0,
//! which tells the client to keep sending full fetch requests.
//!
//! A fetch with a replica id is a follower's: it reads up to the log end rather than the
//! high watermark, waits on the log end, and tells the leader how far the follower is (its
//! fetch offset), which moves the high watermark and may return it to the ISR. Only Fetch
//! v15+ is taken as a follower's, and only when its `ReplicaState` names a registered
//! broker with its current broker epoch (older versions are answered as a consumer's); a
//! fetch offset beyond the leader's log end is OFFSET_OUT_OF_RANGE and moves nothing, so a
//! client claiming a follower's id can neither advance the high watermark nor join the ISR.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::select_all;
use kafka_protocol::messages::{ApiKey, FetchRequest};
use runnel_protocol::ResponseError;
use runnel_storage::{FileSlice, StorageError};
use tokio::sync::watch;
use uuid::Uuid;

use super::fetch_remote::{self, RemoteTarget, Tiered};
use super::{Context, DispatchError};
use crate::access::topics::FetchDenied;
use crate::partition::Partition;
use crate::replica_selector::{preferred_read_replica, Candidate, ReplicaSelector};
use crate::response::{Chunk, Frame};

/// What the request asked of one partition.
struct Target {
    partition_index: i32,
    partition: Result<Arc<Partition>, ResponseError>,
    fetch_offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    /// A follower's own log start offset (-1 from consumers).
    log_start_offset: i64,
    /// KIP-392: the replica the consumer should read this partition from instead.
    preferred_read_replica: Option<i32>,
}

struct TopicTarget {
    name: String,
    topic_id: Uuid,
    partitions: Vec<Target>,
}

/// What one partition answers.
#[derive(Debug)]
pub struct PartitionData {
    pub partition_index: i32,
    pub error: i16,
    pub high_watermark: i64,
    /// The last stable offset (-1 with an error).
    pub last_stable_offset: i64,
    /// For read_committed, the aborted transactions (producer id, first offset) the records
    /// may hold; `None` (null) otherwise.
    pub aborted: Option<Vec<(i64, i64)>>,
    pub log_start_offset: i64,
    pub records: Option<Records>,
    /// -1, or the replica the consumer should fetch from (v11+).
    pub preferred_read_replica: i32,
    /// A read below the local log that remote storage answers (`fetch_remote.rs`).
    pub remote: Option<RemoteTarget>,
}

/// The records of one partition: a range of a segment file (sent by sendfile(2)), or
/// consecutive pieces read from remote storage (slices of the reader's cached chunks).
#[derive(Debug)]
pub enum Records {
    File(FileSlice),
    Bytes(Vec<Bytes>),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::File(slice) => slice.len as usize,
            Records::Bytes(pieces) => pieces.iter().map(Bytes::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct TopicData {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionData>,
}

/// Who sent a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fetcher {
    Consumer,
    /// A registered broker, with the broker epoch of its current registration.
    Follower(i32),
    /// A fetch that names a replica id the image does not register with that epoch.
    Unrecognised(i32),
}

/// Fetch v15+ carries the follower's id and broker epoch in `ReplicaState`; earlier
/// versions cannot prove who sends them and are consumers' fetches.
fn fetcher(version: i16, request: &FetchRequest, image: &runnel_metadata::MetadataImage) -> Fetcher {
    if version < 15 || request.replica_state.replica_id.0 < 0 {
        return Fetcher::Consumer;
    }
    let id = request.replica_state.replica_id.0;
    match image.brokers.get(&id) {
        Some(broker) if broker.epoch == request.replica_state.replica_epoch && !broker.fenced => Fetcher::Follower(id),
        _ => Fetcher::Unrecognised(id),
    }
}

/// `consumer`: the fetch is a consumer's; from v11 it carries the client's rack and may be
/// served by a follower, or pointed at one (KIP-392, `replica_selector.rs`).
fn resolve(ctx: &Context, request: &FetchRequest, denied: &FetchDenied, consumer: bool) -> Vec<TopicTarget> {
    let image = ctx.broker.metadata.image();
    let follower_reads = consumer && ctx.version >= 11;
    let selector = ctx.broker.config.replica_selector;
    let rack_of = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
    let preferred = |partition: &Arc<Partition>, fetch_offset: i64| {
        if !follower_reads || selector == ReplicaSelector::Leader || !partition.is_leader() {
            return None;
        }
        let followers: Vec<(i32, i64)> = partition.in_sync_follower_log_ends();
        let candidates: Vec<Candidate> = followers
            .iter()
            .map(|(id, log_end)| Candidate { id: *id, rack: rack_of(*id), log_end: *log_end })
            .collect();
        let client_rack = request.rack_id.as_str();
        preferred_read_replica(selector, client_rack, rack_of(ctx.broker.config.node_id), &candidates, fetch_offset)
    };
    request
        .topics
        .iter()
        .enumerate()
        .map(|(index, topic)| {
            let refused = denied.contains(index);
            let (name, missing) = if ctx.version >= 13 {
                match image.topic_by_id(&topic.topic_id) {
                    Some(t) => (t.name.clone(), ResponseError::UnknownTopicOrPartition),
                    None => (String::new(), ResponseError::UnknownTopicId),
                }
            } else {
                (topic.topic.0.to_string(), ResponseError::UnknownTopicOrPartition)
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let partition = if refused {
                        Err(ResponseError::TopicAuthorizationFailed)
                    } else if name.is_empty() {
                        Err(missing)
                    } else {
                        ctx.broker.replicas.readable_partition(&image, &name, p.partition, follower_reads)
                    };
                    let preferred_read_replica =
                        partition.as_ref().ok().and_then(|part| preferred(part, p.fetch_offset));
                    Target {
                        partition_index: p.partition,
                        partition,
                        fetch_offset: p.fetch_offset,
                        max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                        current_leader_epoch: p.current_leader_epoch,
                        log_start_offset: p.log_start_offset,
                        preferred_read_replica,
                    }
                })
                .collect();
            TopicTarget { name, topic_id: topic.topic_id, partitions }
        })
        .collect()
}

fn error_data(index: i32, error: ResponseError) -> PartitionData {
    PartitionData {
        partition_index: index,
        error: error.code(),
        high_watermark: -1,
        last_stable_offset: -1,
        aborted: None,
        log_start_offset: -1,
        records: None,
        preferred_read_replica: -1,
        remote: None,
    }
}

/// Reads one partition. `budget` is what the response may still carry.
fn read_target(
    target: &Target,
    budget: usize,
    min_one_batch: bool,
    replica: bool,
    read_committed: bool,
    tiered: &Tiered,
) -> PartitionData {
    let index = target.partition_index;
    let partition = match &target.partition {
        Ok(partition) => partition,
        Err(error) => return error_data(index, *error),
    };
    if let Err(error) = partition.check_leader_epoch(target.current_leader_epoch) {
        return error_data(index, error);
    }
    let high_watermark = partition.high_watermark();
    if let Some(replica) = target.preferred_read_replica {
        // Kafka sends the consumer to the replica instead of reading here.
        let log_start_offset = partition.with_log(|log| Ok(log.log_start_offset())).unwrap_or(-1);
        return PartitionData {
            partition_index: index,
            error: 0,
            high_watermark,
            last_stable_offset: partition.last_stable_offset(),
            aborted: None,
            log_start_offset: tiered.log_start_offset(partition, log_start_offset),
            records: None,
            preferred_read_replica: replica,
            remote: None,
        };
    }
    let max_bytes = target.max_bytes.min(budget);
    let crate::partition::Read { info: read, log_start_offset: local_start, last_stable_offset, aborted } =
        match partition.read(target.fetch_offset, max_bytes, min_one_batch, replica, read_committed) {
            Ok(read) => read,
            // The only failure left outside the read itself: the partition was deleted meanwhile.
            Err(_) => return error_data(index, ResponseError::UnknownTopicOrPartition),
        };
    let mut data = PartitionData {
        partition_index: index,
        error: 0,
        high_watermark,
        last_stable_offset,
        aborted,
        log_start_offset: tiered.log_start_offset(partition, local_start),
        records: None,
        preferred_read_replica: -1,
        remote: None,
    };
    match read {
        Ok(read) => data.records = read.slice.map(Records::File),
        Err(StorageError::OffsetOutOfRange { .. }) if target.fetch_offset < local_start => {
            let committed = read_committed.then_some(last_stable_offset);
            match tiered.below_local(partition, target.fetch_offset, (max_bytes, min_one_batch), replica, committed) {
                Ok(remote) => data.remote = Some(remote),
                Err(error) => data.error = error.code(),
            }
        }
        Err(StorageError::OffsetOutOfRange { .. }) => data.error = ResponseError::OffsetOutOfRange.code(),
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = index, error = %e, "fetch read failed");
            data.error = ResponseError::KafkaStorageError.code();
        }
    }
    data
}

/// One pass over every partition; returns the data, its byte count, and whether any
/// partition answered with an error or waits for a remote read (either ends a long poll at
/// once, as in Kafka). A remote read's budget is reserved as if it were full.
fn read_all(
    targets: &[TopicTarget],
    max_bytes: usize,
    replica: bool,
    read_committed: bool,
    tiered: &Tiered,
) -> (Vec<TopicData>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let topics = targets
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|target| {
                    let budget = max_bytes.saturating_sub(total);
                    let data = read_target(target, budget, total == 0, replica, read_committed, tiered);
                    total += data.records.as_ref().map_or(0, Records::len);
                    total += data.remote.as_ref().map_or(0, |r| r.max_bytes.max(1));
                    any_error |= data.error != 0 || data.remote.is_some();
                    data
                })
                .collect();
            TopicData { name: topic.name.clone(), topic_id: topic.topic_id, partitions }
        })
        .collect();
    (topics, total, any_error)
}

/// `denied`: the topics the request gate refused (answered TOPIC_AUTHORIZATION_FAILED).
/// Writes `ms` into the `throttle_time_ms` of a Fetch response frame this module encoded:
/// the body's first field, after the size, the correlation id and (v12+, flexible) the
/// header's empty tagged fields.
pub fn set_throttle_time(frame: &mut Frame, version: i16, ms: i32) {
    if ms == 0 {
        return;
    }
    let at = if version >= 12 { 9 } else { 8 };
    if let Some(Chunk::Bytes(first)) = frame.chunks.first_mut() {
        if first.len() >= at + 4 {
            let mut patched = BytesMut::from(&first[..]);
            patched[at..at + 4].copy_from_slice(&ms.to_be_bytes());
            *first = patched.freeze();
        }
    }
}

pub async fn handle(ctx: &Context<'_>, request: FetchRequest, denied: &FetchDenied) -> Result<Frame, DispatchError> {
    let version = ctx.version;
    let correlation_id = ctx.header.correlation_id;
    if request.session_id != 0 || request.session_epoch > 0 {
        return FetchEncoder::new(version, correlation_id).finish(ResponseError::FetchSessionIdNotFound.code(), &[]);
    }
    let who = fetcher(version, &request, &ctx.broker.metadata.image());
    // isolation_level 1 (v4+): a consumer reads only below the last stable offset.
    let read_committed = who == Fetcher::Consumer && request.isolation_level == 1;
    let mut targets = resolve(ctx, &request, denied, who == Fetcher::Consumer);
    let replica = match who {
        Fetcher::Consumer => None,
        Fetcher::Follower(id) => {
            record_follower_fetches(ctx, &mut targets, id);
            Some(id)
        }
        Fetcher::Unrecognised(id) => {
            tracing::warn!(
                replica = id,
                epoch = request.replica_state.replica_epoch,
                "refused a replica fetch from an unregistered broker or a stale broker epoch"
            );
            for target in targets.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                target.partition = Err(ResponseError::NotLeaderOrFollower);
            }
            Some(id)
        }
    };
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms).unwrap_or(0).min(ctx.broker.config.fetch_max_wait_ms_max),
    );
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut stop = ctx.stop.clone();
    let topics = loop {
        // Subscribe before reading, so an append between the read and the wait still wakes us.
        let mut watchers: Vec<watch::Receiver<i64>> = targets
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|t| {
                let partition = t.partition.as_ref().ok()?;
                Some(if replica.is_some() { partition.subscribe_log_end() } else { partition.subscribe() })
            })
            .collect();
        let image = ctx.broker.metadata.image();
        let tiered = Tiered::new(ctx.broker, &image);
        let (topics, total, any_error) = read_all(&targets, max_bytes, replica.is_some(), read_committed, &tiered);
        if total >= min_bytes
            || any_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
            || *stop.borrow()
        {
            break topics;
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        let waiting = std::time::Instant::now();
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stop.changed() => {}
        }
        ctx.waited(waiting.elapsed());
    };
    let mut topics = topics;
    let reading = std::time::Instant::now();
    fetch_remote::complete(ctx.broker, &mut topics).await;
    ctx.waited(reading.elapsed());
    // Errors by code (every fetch), and consumers' per-topic traffic (Kafka counts bytes out
    // to consumers only), in one pass.
    let image = (replica.is_none()).then(|| ctx.broker.metadata.image());
    for topic in &topics {
        let failures = topic.partitions.iter().filter(|p| p.error != 0);
        failures.clone().for_each(|p| ctx.broker.request_metrics.error(ApiKey::Fetch as i16, p.error));
        let stats = image
            .as_ref()
            .and_then(|image| image.topic(&topic.name))
            .and_then(|_| ctx.broker.request_metrics.topic(&topic.name));
        let Some(stats) = stats else { continue };
        use std::sync::atomic::Ordering::Relaxed;
        let bytes: usize = topic.partitions.iter().filter_map(|p| p.records.as_ref()).map(Records::len).sum();
        stats.bytes_out.fetch_add(bytes as u64, Relaxed);
        stats.fetch_requests.fetch_add(topic.partitions.len() as u64, Relaxed);
        stats.fetch_failures.fetch_add(failures.count() as u64, Relaxed);
    }
    FetchEncoder::new(version, correlation_id).finish(0, &topics)
}

/// A follower's fetch offsets tell the leader how far it is; ISR expansions this allows
/// are proposed in the background (the fetch does not wait for the quorum). A partition
/// whose offset the leader refuses (beyond its log end, or not a replica) answers the error.
fn record_follower_fetches(ctx: &Context, targets: &mut [TopicTarget], replica: i32) {
    let now = crate::clock::now_ms();
    for target in targets.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        let Ok(partition) = &target.partition else { continue };
        if partition.check_leader_epoch(target.current_leader_epoch).is_err() {
            continue;
        }
        match partition.record_follower_fetch(replica, target.fetch_offset, target.log_start_offset, now) {
            Ok(Some(change)) => crate::isr::propose(ctx.broker.clone(), partition.clone(), change),
            Ok(None) => {}
            Err(error) => target.partition = Err(error),
        }
    }
}

/// Hand encoder for FetchResponse v4-v16 (see the module doc).
pub struct FetchEncoder {
    version: i16,
    flexible: bool,
    buf: BytesMut,
    /// Record chunks (file ranges or bytes) and the buffer position they follow.
    files: Vec<(usize, Chunk)>,
}

impl FetchEncoder {
    pub fn new(version: i16, correlation_id: i32) -> Self {
        let flexible = version >= 12;
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // size, patched in finish
        buf.put_i32(correlation_id);
        if ApiKey::Fetch.response_header_version(version) >= 1 {
            buf.put_u8(0); // no tagged fields in the header
        }
        FetchEncoder { version, flexible, buf, files: Vec::new() }
    }

    fn uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    fn array_len(&mut self, len: usize) {
        if self.flexible {
            self.uvarint(len as u64 + 1);
        } else {
            self.buf.put_i32(len as i32);
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.buf.put_i16(s.len() as i16);
        }
        self.buf.put_slice(s.as_bytes());
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.buf.put_u8(0);
        }
    }

    fn records(&mut self, records: &Option<Records>) {
        let len = records.as_ref().map_or(0, Records::len);
        if self.flexible {
            self.uvarint(len as u64 + 1);
        } else {
            self.buf.put_i32(len as i32);
        }
        match records {
            Some(Records::File(slice)) => self.files.push((self.buf.len(), Chunk::File(slice.clone()))),
            Some(Records::Bytes(pieces)) => {
                let at = self.buf.len();
                self.files.extend(pieces.iter().map(|piece| (at, Chunk::Bytes(piece.clone()))));
            }
            None => {}
        }
    }

    fn partition(&mut self, p: &PartitionData) {
        self.buf.put_i32(p.partition_index);
        self.buf.put_i16(p.error);
        self.buf.put_i64(p.high_watermark);
        self.buf.put_i64(p.last_stable_offset);
        if self.version >= 5 {
            self.buf.put_i64(p.log_start_offset);
        }
        match &p.aborted {
            None if self.flexible => self.uvarint(0),
            None => self.buf.put_i32(-1),
            Some(aborted) => {
                if self.flexible {
                    self.uvarint(aborted.len() as u64 + 1);
                } else {
                    self.buf.put_i32(i32::try_from(aborted.len()).unwrap_or(i32::MAX));
                }
                for (producer_id, first_offset) in aborted {
                    self.buf.put_i64(*producer_id);
                    self.buf.put_i64(*first_offset);
                    self.no_tagged_fields();
                }
            }
        }
        if self.version >= 11 {
            self.buf.put_i32(p.preferred_read_replica);
        }
        self.records(&p.records);
        self.no_tagged_fields();
    }

    /// Writes the body and returns the frame, chunked around the file ranges.
    pub fn finish(mut self, error: i16, topics: &[TopicData]) -> Result<Frame, DispatchError> {
        self.buf.put_i32(0); // throttle time
        if self.version >= 7 {
            self.buf.put_i16(error);
            self.buf.put_i32(0); // session id: sessions declined
        }
        self.array_len(topics.len());
        for topic in topics {
            if self.version >= 13 {
                self.buf.put_slice(topic.topic_id.as_bytes());
            } else {
                self.string(&topic.name);
            }
            self.array_len(topic.partitions.len());
            for p in &topic.partitions {
                self.partition(p);
            }
            self.no_tagged_fields();
        }
        self.no_tagged_fields();
        let file_bytes: usize = self.files.iter().map(|(_, f)| f.len()).sum();
        let size = self.buf.len() - 4 + file_bytes;
        let size =
            i32::try_from(size).map_err(|_| crate::response::EncodeError(format!("fetch response of {size} bytes")))?;
        self.buf[0..4].copy_from_slice(&size.to_be_bytes());
        let mut chunks = Vec::with_capacity(self.files.len() * 2 + 1);
        let mut consumed = 0;
        let mut buf = self.buf;
        for (position, file) in self.files {
            chunks.push(Chunk::Bytes(buf.split_to(position - consumed).freeze()));
            consumed = position;
            chunks.push(file);
        }
        chunks.push(Chunk::Bytes(buf.freeze()));
        chunks.retain(|c| !c.is_empty());
        Ok(Frame { chunks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData as KpPartition};
    use kafka_protocol::messages::{BrokerId, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn flatten(frame: Frame) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in frame.chunks {
            match chunk {
                Chunk::Bytes(b) => out.extend_from_slice(&b),
                Chunk::File(f) => {
                    let mut bytes = vec![0u8; f.len as usize];
                    f.file.read_exact_at(&mut bytes, f.position).unwrap();
                    out.extend_from_slice(&bytes);
                }
            }
        }
        out
    }

    #[test]
    fn hand_encoding_matches_the_schema_for_every_version() {
        let mut file = tempfile::tempfile().unwrap();
        let records = b"0123456789record-bytes";
        file.write_all(b"xx").unwrap();
        file.write_all(records).unwrap();
        let slice = FileSlice { file: Arc::new(file), position: 2, len: records.len() as u32 };
        let id = Uuid::from_u128(0xabcdef);
        for version in 4..=16i16 {
            let ours = TopicData {
                name: "topic-a".into(),
                topic_id: id,
                partitions: vec![
                    PartitionData {
                        partition_index: 0,
                        error: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        aborted: Some(vec![(7, 3)]),
                        log_start_offset: 2,
                        records: Some(Records::File(slice.clone())),
                        preferred_read_replica: -1,
                        remote: None,
                    },
                    PartitionData {
                        partition_index: 1,
                        error: 1,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        aborted: None,
                        log_start_offset: -1,
                        records: None,
                        preferred_read_replica: if version >= 11 { 3 } else { -1 },
                        remote: None,
                    },
                    // Records read from remote storage travel as bytes.
                    PartitionData {
                        partition_index: 2,
                        error: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        aborted: None,
                        log_start_offset: 0,
                        records: Some(Records::Bytes(vec![
                            Bytes::from_static(&records[..10]),
                            Bytes::from_static(&records[10..]),
                        ])),
                        preferred_read_replica: -1,
                        remote: None,
                    },
                ],
            };
            let mut frame = FetchEncoder::new(version, 77).finish(0, &[ours]).unwrap();
            set_throttle_time(&mut frame, version, 250);
            let encoded = flatten(frame);
            let theirs = FetchResponse::default()
                .with_responses(vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("topic-a")))
                    .with_topic_id(id)
                    .with_partitions(vec![
                        KpPartition::default()
                            .with_partition_index(0)
                            .with_high_watermark(10)
                            .with_last_stable_offset(10)
                            .with_log_start_offset(2)
                            .with_aborted_transactions(Some(vec![
                                kafka_protocol::messages::fetch_response::AbortedTransaction::default()
                                    .with_producer_id(kafka_protocol::messages::ProducerId(7))
                                    .with_first_offset(3),
                            ]))
                            .with_records(Some(Bytes::from_static(records))),
                        KpPartition::default()
                            .with_partition_index(1)
                            .with_error_code(1)
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)
                            .with_aborted_transactions(None)
                            .with_preferred_read_replica(BrokerId(if version >= 11 { 3 } else { -1 }))
                            .with_records(Some(Bytes::new())),
                        KpPartition::default()
                            .with_partition_index(2)
                            .with_high_watermark(10)
                            .with_last_stable_offset(10)
                            .with_log_start_offset(0)
                            .with_aborted_transactions(None)
                            .with_records(Some(Bytes::from_static(records))),
                    ])])
                .with_throttle_time_ms(250);
            let header_version = ApiKey::Fetch.response_header_version(version);
            let expected = flatten(crate::response::encode(77, header_version, &theirs, version).unwrap());
            assert_eq!(encoded, expected, "FetchResponse v{version}");
        }
    }
}
