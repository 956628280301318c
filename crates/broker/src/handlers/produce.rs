//! Produce: validate each partition's batch whole (header, lengths, count, CRC32C, size),
//! stamp offsets and leader epoch in place, append, and answer per partition.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::batch::{recompress_batch, single_produce_batch, RecordChecks};
use runnel_protocol::ResponseError;
use runnel_storage::{AppendInfo, ProducerError, StorageError};

use super::Context;
use crate::clock::now_ms;
use crate::groups::OFFSETS_TOPIC;
use crate::partition::{Partition, PartitionError};
use crate::request_metrics::TopicStats;
use crate::transactions::TRANSACTION_STATE_TOPIC;

/// A partition's answer before it is put into the response.
struct Outcome {
    error: ResponseError,
    message: Option<String>,
    append: Option<AppendInfo>,
    log_start_offset: i64,
}

impl Outcome {
    fn error(error: ResponseError, message: impl Into<Option<String>>) -> Self {
        Outcome { error, message: message.into(), append: None, log_start_offset: -1 }
    }
}

/// `stats`: the topic's traffic counters (`None` past the bound of topics with series).
async fn produce_partition(
    ctx: &Context<'_>,
    partition: &Partition,
    stats: Option<&TopicStats>,
    records: Option<&Bytes>,
    acks: i16,
    transactional_id: Option<&str>,
    deadline: tokio::time::Instant,
) -> Outcome {
    let settings = partition.settings();
    // The epoch this write is for: the append is refused unless the partition still leads
    // in it, and an acks=all wait ends once it does not.
    let leader_epoch = partition.leader_epoch();
    if acks == -1 {
        let isr = partition.isr_len();
        if isr < settings.min_insync_replicas {
            return Outcome::error(
                ResponseError::NotEnoughReplicas,
                format!("{isr} in-sync replicas, min.insync.replicas is {}", settings.min_insync_replicas),
            );
        }
    }
    let Some(records) = records else {
        return Outcome::error(ResponseError::InvalidRecord, "null record set".to_string());
    };
    let checks = RecordChecks::for_topic(settings.compacted);
    let batch = match single_produce_batch(records, settings.max_message_bytes, checks) {
        Ok(batch) => batch,
        Err((error, message)) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, %message, "produce refused");
            return Outcome::error(error, message);
        }
    };
    // Kafka's LogValidator: clients never write markers, and only a transactional producer
    // (a request naming its transactional id) writes transactional batches; otherwise a
    // client could open a transaction nobody ends and hold the last stable offset back.
    if batch.is_control() {
        return Outcome::error(
            ResponseError::InvalidRecord,
            "control batches are written by partition leaders only".to_string(),
        );
    }
    if batch.is_transactional() && transactional_id.is_none() {
        return Outcome::error(
            ResponseError::InvalidRecord,
            "a transactional batch needs the Produce request's transactional id".to_string(),
        );
    }
    if !settings.timestamps_allowed(batch.base_timestamp(), batch.max_timestamp(), now_ms()) {
        let message = format!(
            "a timestamp of the batch ({}..{}) lies outside message.timestamp.before.max.ms / after.max.ms",
            batch.base_timestamp(),
            batch.max_timestamp()
        );
        return Outcome::error(ResponseError::InvalidTimestamp, message);
    }
    // A topic whose compression.type names another codec stores the batch recompressed
    // (the one case that copies the records); otherwise it is stored as it came.
    let recompressed = match settings.compression {
        Some((codec, level)) if batch.compression().ok() != Some(codec) => {
            match recompress_batch(&batch, codec, level, checks.decompressed_max_bytes) {
                Ok(bytes) => Some(Bytes::from(bytes)),
                Err(e) => return Outcome::error(e.response_error(), e.to_string()),
            }
        }
        _ => None,
    };
    let records = recompressed.as_ref().unwrap_or(records);
    // Appended straight from the request frame: the header is stamped in a copy, the
    // records go from this buffer to the file.
    let append = |transaction: Option<(i64, i16)>| match transaction {
        Some(producer) => {
            partition.append_transactional_batch(records, producer, leader_epoch, settings.log_append_time, now_ms())
        }
        None => partition.append_batch(records, leader_epoch, settings.log_append_time, now_ms()),
    };
    let transaction = batch.is_transactional().then(|| (batch.producer_id(), batch.producer_epoch()));
    let mut appended = append(transaction);
    // A transactional batch that would open its producer's transaction here needs the
    // coordinator's word first (KIP-890): asked only then, and the batch tried again.
    let unconfirmed = matches!(
        &appended,
        Err(PartitionError::Storage(StorageError::Producer(ProducerError::NotInTransaction { .. })))
    );
    if let (true, Some(id), Some(producer)) = (unconfirmed, transactional_id, transaction) {
        if let Err(error) = verified(ctx, partition, id, producer).await {
            return Outcome::error(error, format!("transaction verification: {error:?}"));
        }
        appended = append(transaction);
    }
    let (info, log_start_offset) = match appended {
        Ok(appended) => appended,
        Err(PartitionError::Deleted) => return Outcome::error(ResponseError::UnknownTopicOrPartition, None),
        Err(PartitionError::NotLeader) => return Outcome::error(ResponseError::NotLeaderOrFollower, None),
        Err(PartitionError::Storage(StorageError::Producer(e))) => {
            let error = match e {
                ProducerError::InvalidEpoch { .. } => ResponseError::InvalidProducerEpoch,
                // Its transaction ended between the coordinator's answer and the append.
                ProducerError::NotInTransaction { .. } => ResponseError::InvalidTxnState,
                _ => ResponseError::OutOfOrderSequenceNumber,
            };
            tracing::debug!(topic = %partition.topic, partition = partition.index, error = %e, "idempotent produce refused");
            return Outcome::error(error, e.to_string());
        }
        Err(PartitionError::Storage(StorageError::RecordSetTooLarge { .. })) => {
            return Outcome::error(ResponseError::RecordListTooLarge, "batch larger than segment.bytes".to_string())
        }
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "append failed");
            return Outcome::error(ResponseError::KafkaStorageError, e.to_string());
        }
    };
    ctx.broker.stats.produce_bytes.fetch_add(records.len() as u64, Ordering::Relaxed);
    if let Some(topic) = stats {
        topic.bytes_in.fetch_add(records.len() as u64, Ordering::Relaxed);
        topic.messages_in.fetch_add((info.last_offset - info.base_offset + 1).max(0) as u64, Ordering::Relaxed);
    }
    if acks != 0 && ctx.broker.config.log_flush_before_ack {
        match partition.make_durable(info.last_offset + 1).await {
            Ok(()) => {}
            // The records are in the log: the node halts rather than deny them.
            Err(PartitionError::Sync(e)) => crate::storage_failure::fatal(&partition.topic, partition.index, &e),
            Err(e) => return Outcome::error(ResponseError::KafkaStorageError, e.to_string()),
        }
    }
    if acks == -1 {
        let waiting = std::time::Instant::now();
        let replicated =
            wait_for_isr(ctx, partition, leader_epoch, info.last_offset + 1, settings.min_insync_replicas, deadline)
                .await;
        ctx.waited(waiting.elapsed());
        if let Err((error, message)) = replicated {
            return Outcome::error(error, message);
        }
    }
    Outcome { error: ResponseError::UnknownServerError, message: None, append: Some(info), log_start_offset }
}

/// Asks the coordinator whether `partition` is in the producer's transaction (KIP-890), for
/// a batch that would open the transaction here, and notes its confirmation for the next
/// append. The coordinator's retriable answers become NOT_ENOUGH_REPLICAS, which every
/// producer retries (as Kafka maps them for Produce).
async fn verified(
    ctx: &Context<'_>,
    partition: &Partition,
    id: &str,
    producer: (i64, i16),
) -> Result<(), ResponseError> {
    let asked = crate::transactions::decide::ProducerIdAndEpoch { producer_id: producer.0, producer_epoch: producer.1 };
    let waiting = std::time::Instant::now();
    let answer =
        crate::transactions::verify::in_transaction(ctx.broker, id, &partition.topic, partition.index, asked).await;
    ctx.waited(waiting.elapsed());
    match answer {
        Ok(()) => {
            partition.txn_confirmed(producer.0, producer.1);
            Ok(())
        }
        Err(ResponseError::ProducerFenced) => Err(ResponseError::InvalidProducerEpoch),
        Err(ResponseError::InvalidTxnState | ResponseError::InvalidProducerIdMapping) => {
            Err(ResponseError::InvalidTxnState)
        }
        Err(error) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, ?error, "transaction verification failed");
            Err(ResponseError::NotEnoughReplicas)
        }
    }
}

/// acks=all: waits until the high watermark covers `required` (every ISR member holds the
/// batch), bounded by the request's timeout, while the partition still leads in the epoch
/// the batch was written in (after losing it, this replica may have truncated the batch
/// away and taken a new leader's high watermark past it: NOT_LEADER_OR_FOLLOWER, and the
/// producer retries). Each connection parks at most one request, so waiting produces are
/// bounded by `max.connections` (Kafka's delayed-produce purgatory).
async fn wait_for_isr(
    ctx: &Context<'_>,
    partition: &Partition,
    leader_epoch: i32,
    required: i64,
    min_insync: usize,
    deadline: tokio::time::Instant,
) -> Result<(), (ResponseError, Option<String>)> {
    let mut watermark = partition.subscribe();
    let mut stop = ctx.stop.clone();
    loop {
        match partition.replicated_to(required, leader_epoch) {
            Ok(true) => {
                let isr = partition.isr_len();
                if isr < min_insync {
                    let why = format!("written, but the ISR shrank to {isr} below min.insync.replicas {min_insync}");
                    return Err((ResponseError::NotEnoughReplicasAfterAppend, Some(why)));
                }
                return Ok(());
            }
            Ok(false) => {}
            Err(_) => return Err((ResponseError::NotLeaderOrFollower, None)),
        }
        tokio::select! {
            changed = watermark.changed() => if changed.is_err() {
                return Err((ResponseError::UnknownTopicOrPartition, None));
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Err((ResponseError::RequestTimedOut, Some("the in-sync replicas did not acknowledge in time".into())));
            }
            _ = stop.changed() => return Err((ResponseError::NotLeaderOrFollower, Some("broker shutting down".into()))),
        }
    }
}

fn partition_response(index: i32, outcome: Outcome) -> PartitionProduceResponse {
    let response =
        PartitionProduceResponse::default().with_index(index).with_log_start_offset(outcome.log_start_offset);
    match outcome.append {
        Some(info) => response.with_base_offset(info.base_offset).with_log_append_time_ms(info.log_append_time_ms),
        None => response
            .with_error_code(outcome.error.code())
            .with_base_offset(-1)
            .with_error_message(outcome.message.map(StrBytes::from_string)),
    }
}

/// The answer of the benchmark sink (`runnel.bench.discard.produce`).
const DISCARDED: AppendInfo = AppendInfo {
    base_offset: 0,
    last_offset: 0,
    max_timestamp: -1,
    offset_of_max_timestamp: 0,
    log_append_time_ms: -1,
};

/// What the connection does with a produce.
pub enum Reply {
    Respond(ProduceResponse),
    /// acks=0 and every partition succeeded: the producer expects no response.
    Nothing,
    /// acks=0 and a partition failed: Kafka closes the connection, the only signal an
    /// acks=0 producer can get.
    Close(String),
}

pub async fn handle(ctx: &Context<'_>, request: ProduceRequest) -> Reply {
    let acks = request.acks;
    let timeout_ms = u64::try_from(request.timeout_ms).unwrap_or(0).min(ctx.broker.config.request_timeout_ms);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    let acks_valid = matches!(acks, -1..=1);
    let image = ctx.broker.metadata.image();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in &request.topic_data {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        // Kafka's per-topic BrokerTopicMetrics, looked up once per topic (existing topics only).
        let stats = image.topic(name).and_then(|_| ctx.broker.request_metrics.topic(name));
        for data in &topic.partition_data {
            let outcome = if !acks_valid {
                Outcome::error(ResponseError::InvalidRequiredAcks, None)
            } else if name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC {
                // Only the group coordinator writes its internal topic, as in Kafka.
                Outcome::error(ResponseError::InvalidTopicException, format!("cannot append to internal topic {name}"))
            } else if ctx.broker.config.discard_produce {
                Outcome {
                    error: ResponseError::UnknownServerError,
                    message: None,
                    append: Some(DISCARDED),
                    log_start_offset: 0,
                }
            } else {
                match ctx.broker.replicas.led_partition(&image, name, data.index) {
                    Ok(partition) => {
                        let records = data.records.as_ref();
                        let id = request.transactional_id.as_ref().map(|id| id.0.as_str());
                        produce_partition(ctx, &partition, stats.as_deref(), records, acks, id, deadline).await
                    }
                    Err(error) => Outcome::error(error, None),
                }
            };
            // Kafka's TotalProduceRequestsPerSec / FailedProduceRequestsPerSec.
            if let Some(stats) = &stats {
                stats.produce_requests.fetch_add(1, Ordering::Relaxed);
                if outcome.append.is_none() {
                    stats.produce_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            partitions.push(partition_response(data.index, outcome));
        }
        responses
            .push(TopicProduceResponse::default().with_name(topic.name.clone()).with_partition_responses(partitions));
    }
    if acks != 0 {
        return Reply::Respond(ProduceResponse::default().with_responses(responses));
    }
    let failed = responses
        .iter()
        .flat_map(|t| t.partition_responses.iter().map(move |p| (t, p)))
        .find(|(_, p)| p.error_code != 0);
    match failed {
        Some((topic, p)) => {
            Reply::Close(format!("acks=0 produce to {}-{} failed with error {}", topic.name.0, p.index, p.error_code))
        }
        None => Reply::Nothing,
    }
}
