//! Reading partitions with raw Fetch requests: record batches are not decoded, only their
//! headers walked to advance the offsets. This is the fastest consumer the protocol allows,
//! used by `runnel perf consume --client runnel` to measure what the broker can serve when
//! the client is not the bottleneck.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::batch::BatchIter;

use crate::{ClientError, Connection};

/// Fetch v12: topic names, flexible encoding.
const FETCH_VERSION: i16 = 12;

/// Where one partition's read stands, and where it stops.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub end: i64,
}

/// What a fetch loop moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    pub bytes: u64,
    pub records: u64,
}

/// Fetches until every cursor reaches its end. `on_progress` sees the running totals.
pub async fn fetch_to_end(
    conn: &mut Connection,
    cursors: &mut [Cursor],
    max_bytes: i32,
    partition_max_bytes: i32,
    mut on_progress: impl FnMut(Moved),
) -> Result<Moved, ClientError> {
    let mut moved = Moved::default();
    while cursors.iter().any(|c| c.offset < c.end) {
        let topics = cursors
            .iter()
            .filter(|c| c.offset < c.end)
            .map(|c| {
                FetchTopic::default().with_topic(TopicName(StrBytes::from_string(c.topic.clone()))).with_partitions(
                    vec![FetchPartition::default()
                        .with_partition(c.partition)
                        .with_fetch_offset(c.offset)
                        .with_partition_max_bytes(partition_max_bytes)],
                )
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(topics);
        let response = conn.send(&request, FETCH_VERSION).await?;
        for topic in &response.responses {
            for p in &topic.partitions {
                if p.error_code != 0 {
                    return Err(ClientError::Codec(format!(
                        "fetch error {} on {}-{}",
                        p.error_code, topic.topic.0, p.partition_index
                    )));
                }
                let cursor = cursors
                    .iter_mut()
                    .find(|c| c.topic == topic.topic.0.as_str() && c.partition == p.partition_index)
                    .ok_or_else(|| ClientError::Codec("response for a partition not asked for".into()))?;
                let Some(records) = &p.records else { continue };
                for (_, batch) in BatchIter::new(records).flatten() {
                    if batch.last_offset() < cursor.offset {
                        continue;
                    }
                    moved.bytes += batch.size() as u64;
                    moved.records += batch.record_count() as u64;
                    cursor.offset = batch.last_offset() + 1;
                }
            }
        }
        on_progress(moved);
    }
    Ok(moved)
}
