//! Compressed batches from real producers, read where Kafka reads them: librdkafka with gzip,
//! snappy, lz4 and zstd; a compacted topic refuses a keyless record with INVALID_RECORD and
//! appends nothing of its batch; ListOffsets by timestamp finds the exact record inside a
//! compressed batch; consumers read back what was sent.

mod support;

use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use support::cluster::read_back;
use support::*;
use tempfile::TempDir;

const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_refuse_keyless_records_in_any_codec_and_keep_nothing_of_the_batch() {
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap();
    create_topic(bootstrap, "cdc", 1, &[("cleanup.policy", "compact")]).await;
    let mut expected = Vec::new();
    for codec in CODECS {
        let producer = producer(bootstrap, &[("compression.type", codec), ("linger.ms", "50")]);
        // A keyless record: refused with Kafka's error.
        let refused = producer
            .send(FutureRecord::<[u8], [u8]>::to("cdc").payload(b"no key"), Duration::from_secs(10))
            .await
            .expect_err("a keyless record on a compacted topic");
        assert_eq!(refused.0.rdkafka_error_code(), Some(RDKafkaErrorCode::InvalidRecord), "{codec}");
        // Keyed records in one compressed batch: accepted.
        let messages: Vec<Msg> = (0..20).map(|i| Msg::new(format!("{codec}-{i}"), format!("value {i}"))).collect();
        produce_all(&producer, "cdc", Some(0), &messages, None).await;
        expected.extend(messages);
    }
    // Nothing of the refused batches was appended: the log holds exactly the keyed records.
    let consumer = base_consumer(bootstrap);
    let (low, high) = consumer.fetch_watermarks("cdc", 0, Duration::from_secs(10)).unwrap();
    assert_eq!((low, high), (0, expected.len() as i64));
    let read: Vec<Msg> = read_back(bootstrap, "cdc", 1, expected.len()).await.into_iter().map(|r| r.msg).collect();
    assert_eq!(read, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_lookup_finds_the_record_inside_a_compressed_batch() {
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap();
    create_topic(bootstrap, "timed", 1, &[]).await;
    let consumer = base_consumer(bootstrap);
    let mut base_offset = 0;
    for codec in CODECS {
        // Ten records in one batch (a long linger), timestamps 1000..1009 apart per codec.
        let producer = producer(bootstrap, &[("compression.type", codec), ("linger.ms", "200")]);
        let stamp = 1_000_000 * (base_offset + 1);
        let timestamps: Vec<i64> = (0..10).map(|i| stamp + i).collect();
        let messages: Vec<Msg> = (0..10).map(|i| Msg::new(format!("k{i}"), format!("v{i}"))).collect();
        let placed = produce_all(&producer, "timed", Some(0), &messages, Some(&timestamps)).await;
        assert_eq!(placed.first().unwrap().offset, base_offset);
        let mut query = TopicPartitionList::new();
        query.add_partition_offset("timed", 0, Offset::Offset(stamp + 6)).unwrap();
        let found = consumer.offsets_for_times(query, Duration::from_secs(10)).unwrap();
        let offset = found.find_partition("timed", 0).unwrap().offset();
        assert_eq!(offset, Offset::Offset(base_offset + 6), "{codec}: the seventh record of the batch");
        base_offset += 10;
    }
}

/// confluent-kafka (librdkafka from its wheel) and kafka-python (its own gzip) produce
/// compressed batches the broker validates and consumers read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_produce_compressed_batches() {
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "py", 1, &[("cleanup.policy", "compact")]).await;
    let script = r#"
import sys
from confluent_kafka import Producer
from kafka import KafkaProducer
bootstrap = sys.argv[1]
for codec in ["gzip", "snappy", "lz4", "zstd"]:
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20})
    for i in range(5):
        p.produce("py", key=f"ck-{codec}-{i}".encode(), value=b"x" * 100)
    assert p.flush(10) == 0
p = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
for i in range(5):
    p.send("py", key=f"kp-{i}".encode(), value=b"y" * 100)
p.flush()
try:
    p.send("py", value=b"keyless").get(timeout=10)
    print("keyless accepted")
except Exception as e:
    print("keyless refused", type(e).__name__)
"#;
    let output = Command::new("python3").args(["-c", script, &bootstrap]).output().expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("keyless refused"), "{stdout}");
    let read = read_back(&bootstrap, "py", 1, 25).await;
    let keys: Vec<String> = read.iter().map(|r| String::from_utf8(r.msg.key.clone().unwrap()).unwrap()).collect();
    assert_eq!(keys.len(), 25);
    assert!(keys.iter().filter(|k| k.starts_with("ck-")).count() == 20 && keys.iter().any(|k| k == "kp-4"));
}

/// The codecs of the batches in a partition's first segment, in order.
fn stored_codecs(data: &std::path::Path, topic: &str) -> Vec<runnel_protocol::batch::Compression> {
    let log = std::fs::read(data.join(format!("{topic}-0")).join("00000000000000000000.log")).unwrap();
    runnel_protocol::batch::BatchIter::new(&log).map(|batch| batch.unwrap().1.compression().unwrap()).collect()
}

/// A topic whose `compression.type` names a codec stores every batch in that codec,
/// whatever the producer sent (KIP-390 levels apply); `producer` keeps the producer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_codec_recompresses_what_producers_send() {
    use runnel_protocol::batch::Compression;
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap();
    create_topic(bootstrap, "as-zstd", 1, &[("compression.type", "zstd"), ("compression.zstd.level", "9")]).await;
    create_topic(bootstrap, "as-sent", 1, &[]).await;
    create_topic(bootstrap, "as-plain", 1, &[("compression.type", "uncompressed")]).await;
    let mut sent = Vec::new();
    for codec in ["none", "gzip", "lz4"] {
        let producer = producer(bootstrap, &[("compression.type", codec), ("linger.ms", "20")]);
        let messages: Vec<Msg> = (0..10).map(|i| Msg::new(format!("{codec}{i}"), vec![b'x'; 200])).collect();
        for topic in ["as-zstd", "as-sent", "as-plain"] {
            produce_all(&producer, topic, Some(0), &messages, None).await;
        }
        sent.extend(messages);
    }
    assert_eq!(stored_codecs(node.data_dir(), "as-zstd"), [Compression::Zstd; 3]);
    assert_eq!(stored_codecs(node.data_dir(), "as-sent"), [Compression::None, Compression::Gzip, Compression::Lz4]);
    assert_eq!(stored_codecs(node.data_dir(), "as-plain"), [Compression::None; 3]);
    for topic in ["as-zstd", "as-sent", "as-plain"] {
        let read: Vec<Msg> = read_back(bootstrap, topic, 1, sent.len()).await.into_iter().map(|r| r.msg).collect();
        assert_eq!(read, sent, "{topic}");
    }
}
