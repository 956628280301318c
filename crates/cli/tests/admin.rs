//! Topic administration through a real Kafka admin client (librdkafka): growing a topic
//! with CreatePartitions, and the errors Kafka gives for bad requests.

mod support;

use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewPartitions};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use support::*;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_a_topic_that_clients_then_use() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), "grow", 2, &[]).await;
    let admin = admin(node.bootstrap());
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));

    let results = admin.create_partitions([&NewPartitions::new("grow", 5)], &options).await.unwrap();
    assert_eq!(results, vec![Ok("grow".to_string())]);
    let results = admin.create_partitions([&NewPartitions::new("grow", 3)], &options).await.unwrap();
    assert_eq!(results, vec![Err(("grow".to_string(), RDKafkaErrorCode::InvalidPartitions))], "cannot shrink");
    let results = admin.create_partitions([&NewPartitions::new("missing", 3)], &options).await.unwrap();
    assert_eq!(results, vec![Err(("missing".to_string(), RDKafkaErrorCode::UnknownTopicOrPartition))]);

    let producer = producer(node.bootstrap(), &[]);
    let messages: Vec<Msg> = (0..10).map(|i| Msg::new(format!("k{i}"), format!("v{i}"))).collect();
    let placed = produce_all(&producer, "grow", Some(4), &messages, None).await;
    assert!(placed.iter().all(|p| p.partition == 4));
    let got = consume(node.bootstrap(), "grow", &[(4, Offset::Beginning)], 10).await;
    assert_eq!(got.iter().map(|r| r.msg.clone()).collect::<Vec<_>>(), messages);

    // The new partitions survive a restart.
    let mut node = node;
    node.terminate();
    node.restart();
    assert_eq!(watermarks(node.bootstrap(), "grow", 4), (0, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_append_to_the_internal_offsets_topic() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::producer::FutureRecord;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &["--set", "offsets.topic.num.partitions=1"]);
    create_topic(node.bootstrap(), "plain", 1, &[]).await;
    // A group member makes the coordinator create __consumer_offsets.
    let member: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("group.id", "creator")
        .create()
        .unwrap();
    member.subscribe(&["plain"]).unwrap();
    poll_until(Duration::from_secs(20), Duration::from_millis(50), "__consumer_offsets to exist", || {
        let _ = member.poll(Duration::from_millis(0));
        let metadata = member.fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(5)).ok()?;
        metadata.topics().first().filter(|t| !t.partitions().is_empty()).map(|_| ())
    });
    let (_, before) = watermarks(node.bootstrap(), "__consumer_offsets", 0);
    let producer = producer(node.bootstrap(), &[("message.send.max.retries", "0")]);
    let sent = producer
        .send(
            FutureRecord::<[u8], [u8]>::to("__consumer_offsets").partition(0).payload(b"forged"),
            Duration::from_secs(10),
        )
        .await;
    match sent {
        Err((KafkaError::MessageProduction(code), _)) => assert_eq!(code, RDKafkaErrorCode::InvalidTopic),
        other => panic!("expected InvalidTopic, got {other:?}"),
    }
    assert_eq!(watermarks(node.bootstrap(), "__consumer_offsets", 0).1, before, "nothing was appended");
}
