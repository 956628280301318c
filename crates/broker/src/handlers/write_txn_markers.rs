//! WriteTxnMarkers: a transaction coordinator asks this node, the leader of some of a
//! transaction's partitions, to write their commit or abort markers. Each marker is
//! appended and answered once the partition's in-sync replicas hold it.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use runnel_protocol::control::Marker;

use super::Context;
use crate::transactions::markers::write_marker;

pub async fn handle(ctx: &Context<'_>, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(request.markers.len());
    for requested in &request.markers {
        let marker = Marker { commit: requested.transaction_result, coordinator_epoch: requested.coordinator_epoch };
        let producer = (requested.producer_id.0, requested.producer_epoch);
        let mut topics = Vec::with_capacity(requested.topics.len());
        for topic in &requested.topics {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for &index in &topic.partition_indexes {
                let written = write_marker(ctx.broker, topic.name.0.as_str(), index, marker, producer).await;
                let code = written.err().map_or(0, |e| e.code());
                partitions.push(
                    WritableTxnMarkerPartitionResult::default().with_partition_index(index).with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions),
            );
        }
        markers.push(WritableTxnMarkerResult::default().with_producer_id(requested.producer_id).with_topics(topics));
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
