//! DescribeProducers v0 (KIP-664): a partition leader lists the producers its producer state
//! holds: id, epoch, last sequence, last timestamp, and the first offset of the open
//! transaction (-1 when none), as `kafka-transactions.sh describe-producers` shows them. The
//! coordinator epoch is -1: markers do not record it in the producer state yet.

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::Context;

pub fn handle(ctx: &Context, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let image = ctx.broker.metadata.image();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    let partition = match ctx.broker.replicas.led_partition(&image, name, *index) {
                        Ok(partition) => partition,
                        Err(error) => return response.with_error_code(error.code()),
                    };
                    let producers = partition.inspect_log(|log| {
                        Ok(log
                            .producer_state()
                            .producers()
                            .map(|(id, entry)| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(id))
                                    .with_producer_epoch(i32::from(entry.epoch))
                                    .with_last_sequence(entry.batches.back().map_or(-1, |b| b.last_seq))
                                    .with_last_timestamp(entry.last_timestamp)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(entry.txn_first_offset.unwrap_or(-1))
                            })
                            .collect::<Vec<_>>())
                    });
                    match producers {
                        Ok(mut producers) => {
                            producers.sort_by_key(|p| p.producer_id.0);
                            response.with_active_producers(producers)
                        }
                        Err(_) => {
                            response.with_error_code(runnel_protocol::ResponseError::UnknownTopicOrPartition.code())
                        }
                    }
                })
                .collect();
            TopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
