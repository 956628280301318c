//! What the tiered storage tests share: a node's settings for fast upload and retention
//! rounds, records that spell their own offset, a look at the files of a folder tree and at
//! a replica's local log start, ListOffsets v9, and a consumer that checks every record
//! from offset 0.

use std::path::{Path, PathBuf};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::Message;

use super::{consumer, IO_TIMEOUT};

/// Remote storage on (the local-directory store), upload and retention rounds every 100 ms.
pub const FAST_TIERING: [&str; 6] = [
    "--set",
    "remote.log.storage.system.enable=true",
    "--set",
    "remote.log.manager.task.interval.ms=100",
    "--set",
    "log.retention.check.interval.ms=100",
];

/// Record `i`'s 1000-byte value: its offset, spelled out 125 times.
pub fn value(i: usize) -> Vec<u8> {
    format!("{i:08}").repeat(125).into_bytes()
}

/// Every file below `dir` (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.map(Result::unwrap) {
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// The lowest base offset of the `.log` files in `data`'s `folder` (`None`: no folder).
pub fn local_start(data: &Path, folder: &str) -> Option<i64> {
    std::fs::read_dir(data.join(folder))
        .ok()?
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter_map(|p| p.file_stem()?.to_str()?.parse::<i64>().ok())
        .min()
}

/// ListOffsets v9 for partition 0 of `topic` at `timestamp`: (offset, timestamp).
pub async fn list_offset(bootstrap: &str, topic: &str, timestamp: i64) -> (i64, i64) {
    let mut conn = runnel_client::Connection::connect(bootstrap).await.expect("connect");
    let request =
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp)])]);
    let response = conn.send(&request, 9).await.expect("ListOffsets");
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "ListOffsets {timestamp}");
    (partition.offset, partition.timestamp)
}

/// [`list_offset`] from a blocking poll (`poll_until`) inside an async test.
pub fn list_offset_blocking(bootstrap: &str, topic: &str, timestamp: i64) -> (i64, i64) {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| runtime.block_on(list_offset(bootstrap, topic, timestamp)))
}

/// Reads partition 0 of `topic` from offset 0 with librdkafka and checks `count` records:
/// in order, none missing, each keyed `k<offset>` with [`value`] of its offset.
pub async fn reads_everything(bootstrap: &str, topic: &str, count: usize) {
    let consumer = consumer(bootstrap, &[("auto.offset.reset", "earliest"), ("fetch.max.bytes", "2097152")]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    for i in 0..count {
        let message = tokio::time::timeout(IO_TIMEOUT, consumer.recv()).await.expect("in time").expect("a record");
        assert_eq!(message.offset(), i as i64, "records in order, none missing");
        assert_eq!(message.key(), Some(format!("k{i}").as_bytes()), "key of {i}");
        assert!(message.payload() == Some(value(i).as_slice()), "value of {i} differs");
    }
}
