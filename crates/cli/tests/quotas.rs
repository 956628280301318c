//! Client quotas through real clients: quotas set and described with `runnel quota`
//! (DescribeClientQuotas / AlterClientQuotas), stored in the metadata log; a librdkafka
//! producer under a `producer_byte_rate` quota converges to it over the 10-second quota
//! window while an unthrottled producer on the same broker keeps its rate; a librdkafka
//! consumer under a `consumer_byte_rate` quota reads at it; the quotas survive a restart.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use support::*;
use tempfile::TempDir;

const RECORD: usize = 1_000;

fn quota_cli(bootstrap: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["quota", "--bootstrap", bootstrap])
        .args(args)
        .output()
        .expect("run runnel quota");
    assert!(output.status.success(), "runnel quota {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Produces records of `RECORD` bytes as fast as the broker takes them (or at `pace` bytes
/// per second) for `WARM_UP` + `MEASURED` from the first send; returns the payload bytes
/// per second acknowledged within the measured part.
async fn produce_for(bootstrap: &str, client_id: &str, pace: Option<f64>) -> f64 {
    let producer = producer(
        bootstrap,
        &[
            ("client.id", client_id),
            ("batch.size", "16384"),
            ("linger.ms", "2"),
            ("queue.buffering.max.kbytes", "2048"),
        ],
    );
    let acked = Arc::new(AtomicU64::new(0));
    let payload = vec![b'x'; RECORD];
    let start = Instant::now();
    let (from, until) = (start + WARM_UP, start + WARM_UP + MEASURED);
    let mut deliveries = tokio::task::JoinSet::new();
    let mut sent = 0.0;
    while Instant::now() < until {
        if pace.is_some_and(|pace| sent > pace * start.elapsed().as_secs_f64()) {
            tokio::time::sleep(Duration::from_millis(1)).await; // pacing, not synchronisation
            continue;
        }
        match producer.send_result(FutureRecord::<[u8], [u8]>::to("q").key(b"k").payload(&payload[..])) {
            Ok(delivery) => {
                sent += RECORD as f64;
                let acked = acked.clone();
                deliveries.spawn(async move {
                    if matches!(delivery.await, Ok(Ok(_))) && (from..=until).contains(&Instant::now()) {
                        acked.fetch_add(RECORD as u64, Ordering::Relaxed);
                    }
                });
            }
            // The client's queue is full: back-pressure, wait for room.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
        while deliveries.try_join_next().is_some() {}
    }
    deliveries.abort_all();
    acked.load(Ordering::Relaxed) as f64 / MEASURED.as_secs_f64()
}

/// A quota's first window may be a burst; the rate is measured over the next ten seconds.
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURED: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_producer_converges_to_its_quota_and_others_keep_their_rate() {
    let data = TempDir::new().unwrap();
    let mut node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "q", 2, &[]).await;

    const QUOTA: f64 = 2_000_000.0;
    let out = quota_cli(&bootstrap, &["set", "--client-id", "throttled", "producer_byte_rate=2000000"]);
    assert_eq!(out, "updated quotas of client-id=throttled\n");
    quota_cli(&bootstrap, &["set", "--user-default", "--client-id", "slow-consumer", "consumer_byte_rate=1000000"]);
    let described = quota_cli(&bootstrap, &["describe"]);
    assert!(described.contains("client-id=throttled: producer_byte_rate=2000000"), "{described}");
    assert!(described.contains("user=<default>, client-id=slow-consumer: consumer_byte_rate=1000000"), "{described}");
    let json = quota_cli(&bootstrap, &["describe", "--client-id", "throttled", "--output", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["quotas"].as_array().unwrap().len(), 1, "{json}");

    // Both at once: the throttled one sends as fast as it is let through, the other at a
    // pace five times the quota, which it must keep.
    const FREE_PACE: f64 = 5.0 * QUOTA;
    let (throttled, free) =
        tokio::join!(produce_for(&bootstrap, "throttled", None), produce_for(&bootstrap, "free", Some(FREE_PACE)));
    eprintln!("throttled {throttled:.0} B/s under a {QUOTA} B/s quota; free {free:.0} B/s paced at {FREE_PACE}");
    assert!((throttled - QUOTA).abs() <= QUOTA * 0.1, "throttled producer at {throttled:.0} B/s, quota {QUOTA}");
    assert!(free >= FREE_PACE * 0.9, "the unthrottled producer fell to {free:.0} B/s");

    // A consumer under consumer_byte_rate (the user default with its client id) reads at it.
    let consumer: StreamConsumer = consumer(
        &bootstrap,
        &[
            ("client.id", "slow-consumer"),
            ("fetch.max.bytes", "262144"),
            ("message.max.bytes", "262144"),
            ("max.partition.fetch.bytes", "131072"),
        ],
    );
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions.add_partition_offset("q", 0, rdkafka::Offset::Beginning).unwrap();
    partitions.add_partition_offset("q", 1, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&partitions).unwrap();
    let start = Instant::now();
    let mut read = 0usize;
    while start.elapsed() < WARM_UP + MEASURED {
        if let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            if start.elapsed() >= WARM_UP {
                read += message.payload().map_or(0, <[u8]>::len);
            }
        }
    }
    let rate = read as f64 / MEASURED.as_secs_f64();
    eprintln!("consumer read {rate:.0} B/s under a 1000000 B/s quota");
    assert!((rate - 1_000_000.0).abs() <= 1_000_000.0 * 0.1, "consumer at {rate:.0} B/s");

    // The quotas are in the metadata log.
    node.terminate();
    node.restart();
    let described = quota_cli(node.bootstrap(), &["describe", "--client-id", "throttled"]);
    assert_eq!(described, "client-id=throttled: producer_byte_rate=2000000\n");
    quota_cli(node.bootstrap(), &["delete", "--client-id", "throttled", "producer_byte_rate"]);
    assert_eq!(quota_cli(node.bootstrap(), &["describe", "--client-id", "throttled"]), "");
}

/// A client that ignores `throttle_time_ms` (sends its next request as soon as the last is
/// answered) is held at its quota all the same: the broker reads nothing from its
/// connection until the throttle has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_ignores_the_throttle_is_still_held_to_its_quota() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "q", 1, &[]).await;
    const QUOTA: f64 = 1_000_000.0;
    quota_cli(&bootstrap, &["set", "--client-id", "impatient", "producer_byte_rate=1000000"]);

    let values: Vec<Vec<u8>> = (0..16).map(|_| vec![b'x'; RECORD]).collect();
    let batch = bytes::Bytes::from(runnel_protocol::batch::build_batch(
        0,
        &values.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    ));
    let request = ProduceRequest::default().with_acks(1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("q")))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch.clone()))]),
    ]);
    let mut conn = runnel_client::Connection::connect(&bootstrap).await.expect("connect");
    conn.set_client_id("impatient");
    let start = Instant::now();
    let (mut measured, mut throttled) = (0usize, 0usize);
    while start.elapsed() < WARM_UP + MEASURED {
        let response = conn.send(&request, 9).await.expect("produce");
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        if response.throttle_time_ms > 0 {
            throttled += 1;
        }
        if start.elapsed() >= WARM_UP && start.elapsed() <= WARM_UP + MEASURED {
            measured += batch.len();
        }
    }
    let rate = measured as f64 / MEASURED.as_secs_f64();
    eprintln!("an impatient client wrote {rate:.0} B/s under a {QUOTA} B/s quota ({throttled} throttled responses)");
    assert!(throttled > 0, "the responses told the client to wait");
    assert!((rate - QUOTA).abs() <= QUOTA * 0.1, "an impatient client wrote {rate:.0} B/s");
}

/// `controller_mutation_rate`: a client that has used up its partitions per second gets
/// THROTTLING_QUOTA_EXCEEDED for its next CreateTopics (v7 from the CLI), and is let through
/// again once its throttle has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_mutations_beyond_the_quota_are_refused_until_the_throttle_passes() {
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap().to_string();
    // The CLI's client id: 4 partitions per second.
    quota_cli(&bootstrap, &["set", "--client-id", "runnel-cli", "controller_mutation_rate=4"]);
    let topic = |name: &str, partitions: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["topic", "--bootstrap", &bootstrap, "create", name, "--partitions", partitions])
            .output()
            .expect("run runnel topic create");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    // Within the quota's burst: accepted, and 8 partitions leave a debt of one second.
    let (ok, err) = topic("first", "12");
    assert!(ok, "{err}");
    let start = Instant::now();
    let (ok, err) = topic("second", "1");
    assert!(!ok && err.contains("ThrottlingQuotaExceeded"), "{err}");
    poll_until(Duration::from_secs(10), Duration::from_millis(100), "the throttle to pass", || {
        topic("second", "1").0.then_some(())
    });
    assert!(start.elapsed() >= Duration::from_millis(500), "refused while the debt lasted");
}
