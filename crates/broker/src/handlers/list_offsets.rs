//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4),
//! latest tiered (-5, KIP-1005), and by timestamp through the time index. Version 0
//! answers Kafka 3.9's `OldStyleOffsets` instead: up to `max_num_offsets` segment
//! boundaries (`legacy_offsets`).
//!
//! With tiered storage, as Kafka: earliest is the remote log start when remote storage
//! holds older data than the local log, earliest local is the local log start, latest
//! tiered is the highest offset remote storage holds (-1 when none), and a timestamp is
//! looked up in the remote segments below the local log first (their time and offset
//! indexes, then their batches); max timestamp searches the local log only.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use runnel_protocol::ResponseError;

use runnel_metadata::remote_log::RemoteSegment;
use runnel_tiered::SegmentRef;

use super::fetch_remote::Tiered;
use super::Context;
use crate::partition::{Partition, PartitionError};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// (timestamp, offset, leader epoch) for one lookup. The epoch is the one the returned
/// offset was written in (the latest for LATEST, as Kafka answers), -1 when unknown, so a
/// consumer validating its position after a leader change (KIP-320) asks about the right one.
fn lookup(partition: &Partition, timestamp: i64, read_committed: bool) -> Result<(i64, i64, i32), ResponseError> {
    // What the consumer may see: below the high watermark, and for read_committed below the
    // last stable offset.
    let high_watermark = if read_committed { partition.last_stable_offset() } else { partition.high_watermark() };
    let result = partition.inspect_log(|log| {
        let (ts, offset) = match timestamp {
            LATEST => (-1, high_watermark),
            EARLIEST | EARLIEST_LOCAL | LATEST_TIERED => (-1, log.log_start_offset()),
            MAX_TIMESTAMP => log.max_timestamp_and_offset().map_or((-1, -1), |(ts, offset)| (ts, offset)),
            ts if ts >= 0 => log.offset_for_timestamp(ts)?.map_or((-1, -1), |(offset, ts)| (ts, offset)),
            _ => (-1, -1),
        };
        let epoch = match timestamp {
            LATEST => log.latest_epoch(),
            _ if offset >= 0 => log.epoch_for_offset(offset),
            _ => None,
        };
        Ok((ts, offset, epoch.unwrap_or(-1)))
    });
    // Consumers see nothing at or above the high watermark (not yet on every ISR member),
    // as in Kafka: a lookup that lands there finds nothing.
    let result = result.map(|(ts, offset, epoch)| match timestamp {
        LATEST | EARLIEST | EARLIEST_LOCAL | LATEST_TIERED => (ts, offset, epoch),
        _ if offset >= high_watermark => (-1, -1, -1),
        _ => (ts, offset, epoch),
    });
    result.map_err(lookup_error)
}

/// The epoch of `offset` in a remote segment (the last epoch that starts at or below it).
fn remote_epoch(segment: &RemoteSegment, offset: i64) -> i32 {
    segment.leader_epochs.iter().rev().find(|(_, start)| *start <= offset).map_or(-1, |(epoch, _)| *epoch)
}

/// [`lookup`] with tiered storage (see the module doc); `local` is the local answer.
async fn tiered_lookup(
    ctx: &Context<'_>,
    tiered: &Tiered<'_>,
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64, i32), ResponseError> {
    let local = lookup(partition, timestamp, read_committed)?;
    let Some(remote) = tiered.remote_log(partition) else {
        return Ok(if timestamp == LATEST_TIERED { (-1, -1, -1) } else { local });
    };
    let local_start = partition.inspect_log(|log| Ok(log.log_start_offset())).map_err(lookup_error)?;
    match timestamp {
        EARLIEST => {
            let start = tiered.log_start_offset(partition, local_start);
            match remote.segment_for(start).filter(|_| start < local_start) {
                Some(segment) => Ok((-1, start, remote_epoch(segment, start))),
                None => Ok(local),
            }
        }
        LATEST_TIERED => match remote.highest_remote_offset() {
            Some(high) => Ok((-1, high, remote.segment_for(high).map_or(-1, |segment| remote_epoch(segment, high)))),
            None => Ok((-1, -1, -1)),
        },
        ts if ts >= 0 => {
            let Some(reader) = ctx.broker.remote.as_ref() else { return Ok(local) };
            let start = remote.start_offset().unwrap_or(local_start);
            let candidates = remote
                .readable
                .values()
                .filter_map(|id| remote.segments.get(id))
                .filter(|s| s.end_offset >= start && s.start_offset < local_start && s.max_timestamp_ms >= ts);
            let prefix = &ctx.broker.config.tiered.prefix;
            for segment in candidates {
                let reference = SegmentRef::new(prefix, partition.topic_id, partition.index, segment);
                match reader.offset_for_timestamp(&reference, ts, start).await {
                    Ok(Some((offset, found))) => {
                        return Ok((found, offset, remote_epoch(segment, offset)));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "remote time lookup failed");
                        return Err(ResponseError::KafkaStorageError);
                    }
                }
            }
            Ok(local)
        }
        _ => Ok(local),
    }
}

fn lookup_error(error: PartitionError) -> ResponseError {
    match error {
        PartitionError::Deleted => ResponseError::UnknownTopicOrPartition,
        _ => ResponseError::KafkaStorageError,
    }
}

/// Version 0: the offsets of segment boundaries at or before `timestamp` (LATEST: from the
/// log end, EARLIEST: the log start), newest first, at most `max_num_offsets`, as Kafka 3.9's
/// `legacyFetchOffsetsForTimestamp`. A consumer (replica id -1) sees nothing above the high
/// watermark: offsets past it are dropped and the high watermark leads the list.
fn legacy_offsets(
    partition: &Partition,
    timestamp: i64,
    max_num_offsets: i32,
    from_consumer: bool,
) -> Result<Vec<i64>, ResponseError> {
    // Kafka's negative-length array fails the partition with an unexpected error.
    let max = usize::try_from(max_num_offsets).map_err(|_| ResponseError::UnknownServerError)?;
    let now_ms = crate::clock::now_ms();
    let candidates = partition.inspect_log(|log| log.legacy_offset_times(now_ms)).map_err(lookup_error)?;
    let offsets = runnel_storage::legacy_offsets::offsets_before(&candidates, timestamp, max);
    let high_watermark = partition.high_watermark();
    if !from_consumer || offsets.iter().all(|&offset| offset <= high_watermark) {
        return Ok(offsets);
    }
    let mut capped = vec![high_watermark];
    capped.extend(offsets.into_iter().skip_while(|&offset| offset > high_watermark));
    Ok(capped)
}

pub async fn handle(ctx: &Context<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let image = ctx.broker.metadata.image();
    let tiered = Tiered::new(ctx.broker, &image);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            partitions.push(answer(ctx, &tiered, &image, &request, topic.name.0.as_str(), p).await);
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

async fn answer(
    ctx: &Context<'_>,
    tiered: &Tiered<'_>,
    image: &runnel_metadata::MetadataImage,
    request: &ListOffsetsRequest,
    topic: &str,
    p: &kafka_protocol::messages::list_offsets_request::ListOffsetsPartition,
) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
    let partition = match ctx.broker.replicas.led_partition(image, topic, p.partition_index) {
        Ok(partition) => partition,
        Err(error) => return response.with_error_code(error.code()).with_offset(-1).with_timestamp(-1),
    };
    if ctx.version == 0 {
        // Kafka 3.9 refuses the negative timestamps other than LATEST and EARLIEST.
        if p.timestamp < EARLIEST {
            return response.with_error_code(ResponseError::UnsupportedVersion.code());
        }
        let from_consumer = request.replica_id.0 == -1;
        return match legacy_offsets(&partition, p.timestamp, p.max_num_offsets, from_consumer) {
            Ok(offsets) => response.with_old_style_offsets(offsets),
            Err(error) => response.with_error_code(error.code()),
        };
    }
    if let Err(error) = partition.check_leader_epoch(p.current_leader_epoch) {
        return response.with_error_code(error.code());
    }
    // -5 exists from v9 (KIP-1005).
    if p.timestamp < LATEST_TIERED || (p.timestamp == LATEST_TIERED && ctx.version < 9) {
        return response.with_error_code(ResponseError::UnsupportedVersion.code()).with_offset(-1).with_timestamp(-1);
    }
    // isolation_level 1 (v2+): LATEST is the last stable offset, and nothing above it is found.
    let read_committed = request.isolation_level == 1;
    match tiered_lookup(ctx, tiered, &partition, p.timestamp, read_committed).await {
        Ok((timestamp, offset, offset_epoch)) => {
            let response = response.with_timestamp(timestamp).with_offset(offset);
            // The field exists from v4; setting it earlier is an encoding error.
            if ctx.version >= 4 {
                response.with_leader_epoch(offset_epoch)
            } else {
                response
            }
        }
        Err(error) => response.with_error_code(error.code()).with_offset(-1).with_timestamp(-1),
    }
}
