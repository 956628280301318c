//! End-to-end scenarios with a real Kafka client (librdkafka through rdkafka) against the
//! real `runnel` binary: what a client produces reads back byte for byte at the offsets the
//! delivery reports named, across codecs, partitions, restarts and crashes.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, Timestamp, TopicPartitionList};
use support::*;
use tempfile::TempDir;

const TOPIC: &str = "events";

/// Messages with keys (one without), values of varied sizes and headers (one null-valued).
fn messages_with_headers(count: usize, tag: &str) -> Vec<Msg> {
    (0..count)
        .map(|i| {
            let mut value = format!("{tag} message {i} ").repeat(i % 7 + 1).into_bytes();
            value.extend(pseudo_random_bytes(i as u64 + 1, i % 50));
            Msg {
                key: (i % 50 != 0).then(|| format!("key-{}", i % 17).into_bytes()),
                value,
                headers: vec![
                    ("seq".to_string(), Some(i.to_string().into_bytes())),
                    ("tag".to_string(), Some(tag.as_bytes().to_vec())),
                    ("nothing".to_string(), None),
                ],
            }
        })
        .collect()
}

/// Plain numbered messages: key "k{i}", value "value-{i}" padded to `value_bytes`.
fn numbered_messages(range: std::ops::Range<usize>, value_bytes: usize) -> Vec<Msg> {
    range
        .map(|i| {
            let mut value = format!("value-{i}-").into_bytes();
            value.resize(value_bytes.max(value.len()), b'x');
            Msg::new(format!("k{i}"), value)
        })
        .collect()
}

/// Asserts that `received` is exactly `sent`, in order, at the offsets the reports named.
fn assert_read_back(sent: &[Msg], placed: &[Placed], received: &[Received]) {
    assert_eq!(received.len(), sent.len(), "message count");
    for (i, ((msg, placed), got)) in sent.iter().zip(placed).zip(received).enumerate() {
        assert_eq!(got.placed, *placed, "message {i}: position differs from its delivery report");
        assert_eq!(got.msg, *msg, "message {i} at {placed:?}: content differs");
    }
}

/// Offsets the delivery reports gave a single partition must be 0, 1, 2, ... in send order.
fn assert_dense_from(placed: &[Placed], partition: i32, first_offset: i64) {
    for (i, p) in placed.iter().enumerate() {
        assert_eq!(*p, Placed { partition, offset: first_offset + i as i64 }, "delivery report {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_keys_headers_and_every_codec() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("round-trip-{codec}");
        create_topic(node.bootstrap(), &topic, 1, &[]).await;
        let producer = producer(node.bootstrap(), &[("compression.type", codec)]);
        let sent = messages_with_headers(200, codec);
        let placed = produce_all(&producer, &topic, None, &sent, None).await;
        assert_dense_from(&placed, 0, 0);
        let received = consume(node.bootstrap(), &topic, &[(0, Offset::Beginning)], sent.len()).await;
        assert_read_back(&sent, &placed, &received);
        for got in &received {
            assert!(matches!(got.timestamp, Timestamp::CreateTime(t) if t > 0), "{codec}: {:?}", got.timestamp);
        }
        assert_eq!(watermarks(node.bootstrap(), &topic, 0), (0, 200), "{codec}: watermarks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_messages_keep_order_per_partition_on_three_partitions() {
    const KEYS: usize = 30;
    const PER_KEY: usize = 100;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 3, &[]).await;
    // Interleave keys so every batch mixes them: message i is key i % KEYS, sequence i / KEYS.
    let sent: Vec<Msg> = (0..KEYS * PER_KEY)
        .map(|i| Msg::new(format!("key-{}", i % KEYS), format!("{}:{}", i % KEYS, i / KEYS)))
        .collect();
    let producer = producer(node.bootstrap(), &[("compression.type", "lz4")]);
    let placed = produce_all(&producer, TOPIC, None, &sent, None).await;

    let mut partition_of_key: HashMap<&[u8], i32> = HashMap::new();
    for (msg, p) in sent.iter().zip(&placed) {
        let key = msg.key.as_deref().unwrap();
        let first = *partition_of_key.entry(key).or_insert(p.partition);
        assert_eq!(first, p.partition, "key {:?} spread over partitions", String::from_utf8_lossy(key));
    }
    let per_partition = |partition: i32| placed.iter().filter(|p| p.partition == partition).count();
    for partition in 0..3 {
        assert!(per_partition(partition) > 0, "30 keys never hashed to partition {partition}");
    }

    let starts = [(0, Offset::Beginning), (1, Offset::Beginning), (2, Offset::Beginning)];
    let received = consume(node.bootstrap(), TOPIC, &starts, sent.len()).await;
    let expected: HashMap<&Msg, Placed> = sent.iter().zip(placed.iter().copied()).collect();
    let mut next_offset = [0i64; 3];
    let mut last_seq: HashMap<usize, usize> = HashMap::new();
    for got in &received {
        let partition = usize::try_from(got.placed.partition).unwrap();
        assert_eq!(got.placed.offset, next_offset[partition], "offsets in partition {partition} must be dense");
        next_offset[partition] += 1;
        assert_eq!(expected.get(&got.msg), Some(&got.placed), "{:?} is not where its delivery report put it", got.msg);
        let text = String::from_utf8(got.msg.value.clone()).unwrap();
        let (key, seq) = text.split_once(':').unwrap();
        let (key, seq): (usize, usize) = (key.parse().unwrap(), seq.parse().unwrap());
        if let Some(previous) = last_seq.insert(key, seq) {
            assert!(seq > previous, "key {key}: sequence {seq} after {previous}");
        }
    }
    assert_eq!(last_seq.len(), KEYS);
    for (partition, count) in (0..3).zip(next_offset) {
        assert_eq!(count, per_partition(partition) as i64, "partition {partition} count");
        assert_eq!(watermarks(node.bootstrap(), TOPIC, partition), (0, count), "partition {partition} watermarks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data() {
    let dir = TempDir::new().unwrap();
    let mut node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[]).await;
    let first = numbered_messages(0..300, 200);
    let placed_first = produce_all(&producer(node.bootstrap(), &[]), TOPIC, Some(0), &first, None).await;
    assert_dense_from(&placed_first, 0, 0);

    node.terminate();
    node.restart();
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], first.len()).await;
    assert_read_back(&first, &placed_first, &received);
    assert_eq!(watermarks(node.bootstrap(), TOPIC, 0), (0, 300));

    let second = numbered_messages(300..350, 200);
    let placed_second = produce_all(&producer(node.bootstrap(), &[]), TOPIC, Some(0), &second, None).await;
    assert_dense_from(&placed_second, 0, 300);
    let all: Vec<Msg> = first.iter().chain(&second).cloned().collect();
    let all_placed: Vec<Placed> = placed_first.iter().chain(&placed_second).copied().collect();
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], all.len()).await;
    assert_read_back(&all, &all_placed, &received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_every_message_acknowledged_with_acks_all() {
    let dir = TempDir::new().unwrap();
    let mut node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[]).await;
    let sent = numbered_messages(0..5_000, 100);
    let producer = producer(node.bootstrap(), &[("acks", "all")]);
    let placed = produce_all(&producer, TOPIC, Some(0), &sent, None).await;
    node.kill9();
    drop(producer);
    assert_dense_from(&placed, 0, 0);

    node.restart();
    assert_eq!(watermarks(node.bootstrap(), TOPIC, 0), (0, 5_000), "every acknowledged message, nothing more");
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], sent.len()).await;
    assert_read_back(&sent, &placed, &received);
}

/// A crash mid-write leaves a partial batch: here a plausible batch header (base offset and
/// length pointing past the end of the file) followed by noise from `seed`.
fn append_torn_batch(segment: &std::path::Path, next_offset: i64, seed: u64) {
    let mut garbage = Vec::new();
    garbage.extend_from_slice(&next_offset.to_be_bytes());
    garbage.extend_from_slice(&4_000i32.to_be_bytes());
    garbage.extend(pseudo_random_bytes(seed, 1_500));
    let mut file = std::fs::OpenOptions::new().append(true).open(segment).unwrap();
    file.write_all(&garbage).unwrap();
    file.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_truncated_on_restart() {
    const SEED: u64 = 0x5eed_7042;
    let dir = TempDir::new().unwrap();
    let mut node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[]).await;
    let sent = numbered_messages(0..500, 300);
    let placed = produce_all(&producer(node.bootstrap(), &[("acks", "all")]), TOPIC, Some(0), &sent, None).await;
    assert_dense_from(&placed, 0, 0);
    node.kill9();

    let segment = active_segment(dir.path(), TOPIC, 0);
    let size_before = std::fs::metadata(&segment).unwrap().len();
    append_torn_batch(&segment, 500, SEED);
    node.restart();
    let context = format!("seed {SEED:#x}, segment {} was {size_before} bytes", segment.display());
    let size_after = std::fs::metadata(&segment).unwrap().len();
    assert_eq!(size_after, size_before, "recovery must cut the file back to its last whole batch; {context}");

    assert_eq!(watermarks(node.bootstrap(), TOPIC, 0), (0, 500), "{context}");
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], sent.len()).await;
    assert_read_back(&sent, &placed, &received);

    let next = numbered_messages(500..501, 300);
    let placed_next = produce_all(&producer(node.bootstrap(), &[]), TOPIC, Some(0), &next, None).await;
    assert_eq!(placed_next, vec![Placed { partition: 0, offset: 500 }], "{context}");
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Offset(500))], 1).await;
    assert_read_back(&next, &placed_next, &received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp() {
    const COUNT: i64 = 100;
    const STEP_MS: i64 = 1_000;
    let base_ms = now_ms() - 3_600_000;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[]).await;
    let sent = numbered_messages(0..COUNT as usize, 50);
    let timestamps: Vec<i64> = (0..COUNT).map(|i| base_ms + i * STEP_MS).collect();
    // Two sends so the log holds more than one batch.
    let producer = producer(node.bootstrap(), &[]);
    let mut placed = produce_all(&producer, TOPIC, Some(0), &sent[..40], Some(&timestamps[..40])).await;
    placed.extend(produce_all(&producer, TOPIC, Some(0), &sent[40..], Some(&timestamps[40..])).await);
    assert_dense_from(&placed, 0, 0);

    let consumer = base_consumer(node.bootstrap());
    let offset_for = |timestamp_ms: i64| -> Offset {
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(TOPIC, 0, Offset::Offset(timestamp_ms)).unwrap();
        let answer = tokio::task::block_in_place(|| consumer.offsets_for_times(query, Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("offsets_for_times({timestamp_ms}): {e}"));
        let element = answer.find_partition(TOPIC, 0).expect("partition in answer");
        assert!(element.error().is_ok(), "offsets_for_times({timestamp_ms}): {:?}", element.error());
        element.offset()
    };
    let cases = [
        (0, Offset::Offset(0)),
        (base_ms - 1_000_000, Offset::Offset(0)),
        (base_ms, Offset::Offset(0)),
        (base_ms + 1, Offset::Offset(1)),
        (base_ms + 39 * STEP_MS, Offset::Offset(39)),
        (base_ms + 39 * STEP_MS + 500, Offset::Offset(40)),
        (base_ms + 57 * STEP_MS - 1, Offset::Offset(57)),
        (base_ms + 99 * STEP_MS, Offset::Offset(99)),
        (base_ms + 99 * STEP_MS + 1, Offset::End),
    ];
    for (query_ms, expected) in cases {
        assert_eq!(offset_for(query_ms), expected, "first offset with timestamp >= {query_ms} (base {base_ms})");
    }
    assert_eq!(watermarks(node.bootstrap(), TOPIC, 0), (0, COUNT));

    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Offset(57))], 1).await;
    assert_eq!(received[0].timestamp, Timestamp::CreateTime(timestamps[57]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_wakes_when_data_arrives() {
    const WAIT_MAX_MS: u64 = 10_000;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[]).await;
    let producer = producer(node.bootstrap(), &[("linger.ms", "0")]);
    let first = numbered_messages(0..1, 10);
    produce_all(&producer, TOPIC, Some(0), &first, None).await;

    let wait_max = WAIT_MAX_MS.to_string();
    let consumer = consumer(node.bootstrap(), &[("fetch.wait.max.ms", &wait_max), ("socket.timeout.ms", "30000")]);
    assign(&consumer, TOPIC, &[(0, Offset::Beginning)]);
    let got = recv_within(&consumer, IO_TIMEOUT).await.expect("the first message");
    assert_eq!(got.placed.offset, 0);
    // Nothing is produced for a while: no message may arrive, and meanwhile the consumer's
    // next fetch (at the log end) is parked at the broker.
    assert_eq!(recv_within(&consumer, Duration::from_millis(1_500)).await, None, "nothing was produced");

    let bootstrap = node.bootstrap().to_string();
    let produced = tokio::spawn(async move {
        let sent_at = Instant::now();
        let placed = produce_all(&producer, TOPIC, Some(0), &numbered_messages(1..2, 10), None).await;
        (sent_at, placed, bootstrap)
    });
    let got = recv_within(&consumer, Duration::from_millis(WAIT_MAX_MS)).await;
    let arrived_at = Instant::now();
    let (sent_at, placed, _) = produced.await.unwrap();
    let got = got.expect("the message produced while the fetch was waiting");
    assert_eq!(got.placed, placed[0]);
    let latency = arrived_at.duration_since(sent_at);
    assert!(
        latency < Duration::from_secs(5),
        "long poll woke only after {latency:?} (fetch.wait.max.ms={WAIT_MAX_MS})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_uses_sendfile() {
    let dir = TempDir::new().unwrap();
    let node = Node::start_with_metrics(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[]).await;
    let sent = numbered_messages(0..500, 1_000);
    let placed = produce_all(&producer(node.bootstrap(), &[]), TOPIC, Some(0), &sent, None).await;
    let before = metric(node.metrics_url(), "runnel_sendfile_bytes_total");

    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], sent.len()).await;
    assert_read_back(&sent, &placed, &received);
    // Key and value bytes are a lower bound of the record bytes that went out.
    let consumed_bytes: u64 =
        received.iter().map(|r| (r.msg.value.len() + r.msg.key.as_ref().map_or(0, Vec::len)) as u64).sum();
    // The counter is bumped after sendfile returns, which may be just after the client read.
    let after = poll_until(Duration::from_secs(5), Duration::from_millis(20), "sendfile byte count", || {
        let now = metric(node.metrics_url(), "runnel_sendfile_bytes_total");
        (now - before >= consumed_bytes).then_some(now)
    });
    assert!(after - before >= consumed_bytes, "sendfile sent {} bytes for {consumed_bytes} consumed", after - before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topic_stamps_broker_time() {
    const OLD_MS: i64 = 1_000_000_000_000; // September 2001
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    let sent = numbered_messages(0..20, 30);
    let before_ms = now_ms();
    let placed = produce_all(&producer(node.bootstrap(), &[]), TOPIC, Some(0), &sent, Some(&[OLD_MS; 20])).await;
    let after_ms = now_ms();
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], sent.len()).await;
    assert_read_back(&sent, &placed, &received);
    for got in &received {
        match got.timestamp {
            Timestamp::LogAppendTime(t) => {
                // Allow clock granularity, not minutes.
                assert!(
                    t >= before_ms - 1_000 && t <= after_ms + 1_000,
                    "append time {t} not within [{before_ms}, {after_ms}]"
                )
            }
            other => panic!("offset {}: expected LogAppendTime, got {other:?}", got.placed.offset),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batch_is_refused_and_nothing_appended() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), TOPIC, 1, &[("max.message.bytes", "1000")]).await;
    let producer = producer(node.bootstrap(), &[("message.max.bytes", "1000000"), ("linger.ms", "0")]);
    let small = numbered_messages(0..3, 20);
    let placed = produce_all(&producer, TOPIC, Some(0), &small, None).await;
    assert_dense_from(&placed, 0, 0);

    let big = pseudo_random_bytes(42, 5_000);
    let record = FutureRecord::<str, [u8]>::to(TOPIC).partition(0).key("big").payload(&big[..]);
    let result =
        tokio::time::timeout(IO_TIMEOUT, producer.send(record, Duration::from_secs(20))).await.expect("delivery");
    match result {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {}
        other => {
            panic!("expected MessageSizeTooLarge, got {:?}", other.map(|d| (d.partition, d.offset)).map_err(|e| e.0))
        }
    }
    assert_eq!(watermarks(node.bootstrap(), TOPIC, 0), (0, 3), "the refused batch must not be appended");

    let next = numbered_messages(3..4, 20);
    let placed_next = produce_all(&producer, TOPIC, Some(0), &next, None).await;
    assert_eq!(placed_next, vec![Placed { partition: 0, offset: 3 }]);
    let all: Vec<Msg> = small.iter().chain(&next).cloned().collect();
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], all.len()).await;
    assert_read_back(&all, &[placed, placed_next].concat(), &received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments() {
    const SEGMENT_BYTES: usize = 10_000;
    const RETENTION_BYTES: usize = 20_000;
    const VALUE_BYTES: usize = 1_000;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &["--set", "log.retention.check.interval.ms=200"]);
    let (segment, retention) = (SEGMENT_BYTES.to_string(), RETENTION_BYTES.to_string());
    create_topic(node.bootstrap(), TOPIC, 1, &[("internal.segment.bytes", &segment), ("retention.bytes", &retention)])
        .await;
    // Batches must stay below segment.bytes.
    let producer = producer(node.bootstrap(), &[("batch.size", "4000")]);
    let sent = numbered_messages(0..200, VALUE_BYTES);
    let placed = produce_all(&producer, TOPIC, Some(0), &sent, None).await;
    assert_dense_from(&placed, 0, 0);

    // After a retention pass the log keeps less than retention.bytes plus one segment, and
    // every record is larger than VALUE_BYTES. Wait until no further pass would delete a
    // segment (the rest without the oldest is below retention.bytes), so the log start
    // read below is the one the consumer finds.
    let records_max = ((RETENTION_BYTES + SEGMENT_BYTES) / VALUE_BYTES) as i64;
    let partition_dir = dir.path().join(format!("{TOPIC}-0"));
    let mut last_seen = (0, 0);
    let (low, high) =
        poll_until(Duration::from_secs(20), Duration::from_millis(50), "retention to delete segments", || {
            let settled = retention_settled(&partition_dir, RETENTION_BYTES as u64);
            last_seen = watermarks(node.bootstrap(), TOPIC, 0);
            let (low, high) = last_seen;
            (settled && low > 0 && high - low <= records_max).then_some(last_seen)
        });
    assert_eq!(high, 200, "retention must not touch the log end (last seen {last_seen:?})");
    let first_segment = partition_dir.join(format!("{:020}.log", 0));
    assert!(!first_segment.exists(), "{} survived retention", first_segment.display());

    let retained = usize::try_from(high - low).unwrap();
    let received = consume(node.bootstrap(), TOPIC, &[(0, Offset::Beginning)], retained).await;
    assert_eq!(received[0].placed.offset, low, "the earliest offset is readable");
    let from = usize::try_from(low).unwrap();
    assert_read_back(&sent[from..], &placed[from..], &received);
}

/// Whether a size-based retention pass would leave `dir` as it is: without its oldest
/// segment the log would be smaller than `retention_bytes` (the active segment stays anyway).
fn retention_settled(dir: &std::path::Path, retention_bytes: u64) -> bool {
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), e.metadata().ok()?.len())))
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    let total: u64 = sizes.iter().map(|(_, size)| size).sum();
    sizes.len() <= 1 || total - sizes[0].1 < retention_bytes
}
