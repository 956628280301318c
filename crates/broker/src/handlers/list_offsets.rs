//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), and
//! by timestamp through the time index. Version 0 answers Kafka 3.9's `OldStyleOffsets`
//! instead: up to `max_num_offsets` segment boundaries (`legacy_offsets`).

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use runnel_protocol::ResponseError;

use super::Context;
use crate::partition::{Partition, PartitionError};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// (timestamp, offset, leader epoch) for one lookup. The epoch is the one the returned
/// offset was written in (the latest for LATEST, as Kafka answers), -1 when unknown, so a
/// consumer validating its position after a leader change (KIP-320) asks about the right one.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64, i32), ResponseError> {
    let high_watermark = partition.high_watermark();
    let result = partition.inspect_log(|log| {
        let (ts, offset) = match timestamp {
            LATEST => (-1, high_watermark),
            EARLIEST | EARLIEST_LOCAL => (-1, log.log_start_offset()),
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
        LATEST | EARLIEST | EARLIEST_LOCAL => (ts, offset, epoch),
        _ if offset >= high_watermark => (-1, -1, -1),
        _ => (ts, offset, epoch),
    });
    result.map_err(lookup_error)
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

pub fn handle(ctx: &Context, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let image = ctx.broker.metadata.image();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let partition =
                        match ctx.broker.replicas.led_partition(&image, topic.name.0.as_str(), p.partition_index) {
                            Ok(partition) => partition,
                            Err(error) => {
                                return response.with_error_code(error.code()).with_offset(-1).with_timestamp(-1)
                            }
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
                    if p.timestamp < EARLIEST_LOCAL {
                        return response
                            .with_error_code(ResponseError::UnsupportedVersion.code())
                            .with_offset(-1)
                            .with_timestamp(-1);
                    }
                    match lookup(&partition, p.timestamp) {
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
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
