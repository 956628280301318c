//! Log compaction with real clients: a change-data-capture topic written by librdkafka (lz4)
//! and kafka-python (uncompressed, and the tombstones) compacts to the latest value of each
//! key, deleted keys vanish once `delete.retention.ms` has passed, offsets stay strictly
//! increasing, and the partition shrinks to a small fraction of what was written; offset
//! commits keep `__consumer_offsets` small, and a restart loads only its live content.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use support::*;
use tempfile::TempDir;

const KEYS: usize = 1_000;
const UPDATES: usize = 100_000;
const BY_PYTHON: usize = 20_000;
const DELETED: usize = 100;

/// A cleaner that looks every 50 ms.
const FAST_CLEANER: [&str; 2] = ["--set", "log.cleaner.backoff.ms=50"];

/// (offset, key, value or None for a tombstone) of every record from the beginning up to
/// the high watermark.
fn read_everything(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer: BaseConsumer = assign_only_config(bootstrap).create().expect("consumer");
    let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let mut out = Vec::new();
    while out.last().is_none_or(|(offset, _, _)| offset + 1 < high) {
        assert!(std::time::Instant::now() < deadline, "read {} records, high watermark {high}", out.len());
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8(m.key().expect("a compacted topic's records have keys").to_vec()).unwrap(),
                m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap()),
            )),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

fn partition_bytes(node: &Node, topic: &str) -> usize {
    partition_log_bytes(node.data_dir(), topic, 0).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdc_topic_keeps_the_latest_value_of_each_key_and_forgets_deleted_keys() {
    let data = TempDir::new().unwrap();
    let node = Node::start_with_metrics(data.path(), &FAST_CLEANER);
    let bootstrap = node.bootstrap().to_string();
    let configs = [
        ("cleanup.policy", "compact"),
        ("internal.segment.bytes", "262144"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "2000"),
    ];
    create_topic(&bootstrap, "cdc", 1, &configs).await;
    // The same records in a topic that keeps them all: what compaction is measured against
    // (the cleaner starts while the producers are still writing).
    create_topic(&bootstrap, "history", 1, &configs[1..]).await;
    // The model: the latest value of each key.
    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
    let value = |i: usize| format!("update {i:06} {}", "x".repeat(80));
    let from_rdkafka: Vec<Msg> =
        (0..UPDATES - BY_PYTHON).map(|i| Msg::new(format!("key-{:04}", i % KEYS), value(i))).collect();
    let producer = producer(&bootstrap, &[("compression.type", "lz4"), ("linger.ms", "5"), ("batch.size", "65536")]);
    produce_all(&producer, "cdc", Some(0), &from_rdkafka, None).await;
    produce_all(&producer, "history", Some(0), &from_rdkafka, None).await;
    for m in &from_rdkafka {
        model.insert(
            String::from_utf8(m.key.clone().unwrap()).unwrap(),
            Some(String::from_utf8(m.value.clone()).unwrap()),
        );
    }
    // kafka-python: the rest of the updates uncompressed, then tombstones for 100 keys, then
    // updates of ten other keys (more than a segment) so that the tombstones leave the
    // active segment.
    let script = r#"
import sys
from kafka import KafkaProducer
bootstrap, keys, start, count, deleted = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=65536)
for topic in ["cdc", "history"]:
    for i in range(start, start + count):
        p.send(topic, partition=0, key=b"key-%04d" % (i % keys), value=(("update %06d " % i) + "x" * 80).encode())
    for k in range(deleted):
        p.send(topic, partition=0, key=b"key-%04d" % k, value=None)
    for i in range(2000):
        p.send(topic, partition=0, key=b"tail-%d" % (i % 10), value=b"t%d " % i + b"y" * 300)
p.flush()
"#;
    let start = UPDATES - BY_PYTHON;
    let output = Command::new("python3")
        .args([
            "-c",
            script,
            &bootstrap,
            &KEYS.to_string(),
            &start.to_string(),
            &BY_PYTHON.to_string(),
            &DELETED.to_string(),
        ])
        .output()
        .expect("python3");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for i in start..UPDATES {
        model.insert(format!("key-{:04}", i % KEYS), Some(value(i)));
    }
    for k in 0..DELETED {
        model.insert(format!("key-{k:04}"), None);
    }
    for i in 0..2000 {
        model.insert(format!("tail-{}", i % 10), Some(format!("t{i} {}", "y".repeat(300))));
    }
    let written = watermarks(&bootstrap, "cdc", 0).1;
    assert_eq!(written as usize, UPDATES + DELETED + 2000);
    let written_bytes = partition_bytes(&node, "history");

    // Compacted, and past delete.retention.ms the tombstones are gone too.
    poll_until(Duration::from_secs(60), Duration::from_millis(200), "the cleaner to compact the topic", || {
        (partition_bytes(&node, "cdc") * 10 < written_bytes).then_some(())
    });
    let records = poll_until(Duration::from_secs(60), Duration::from_millis(500), "tombstones to expire", || {
        let records = read_everything(&bootstrap, "cdc");
        records.iter().all(|(_, key, _)| model[key].is_some()).then_some(records)
    });
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "offsets strictly increase");
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, key, value) in &records {
        latest.insert(key.clone(), value.clone());
    }
    let live: BTreeMap<String, Option<String>> = model.into_iter().filter(|(_, v)| v.is_some()).collect();
    assert_eq!(latest, live, "exactly the latest value of each live key, no deleted key");
    // The log end did not move, and only the active segment may still repeat a key.
    assert_eq!(watermarks(&bootstrap, "cdc", 0).1, written);
    assert!(records.len() < 2 * KEYS, "{} records left of {written}", records.len());
    assert!(partition_bytes(&node, "cdc") * 10 < written_bytes);
    // Visible: the cleaner's state in `topic describe`, its work in the metrics.
    let described = runnel_topic(&bootstrap, &["describe", "cdc"]);
    let cleaner =
        described.lines().find(|l| l.contains("partition 0 cleaner:")).unwrap_or_else(|| panic!("{described}"));
    let clean_below: i64 =
        cleaner.split("clean below offset ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(clean_below > 0 && clean_below <= written, "{cleaner}");
    assert!(cleaner.contains("last cleaned"), "{cleaner}");
    assert!(metric(node.metrics_url(), "runnel_log_cleaner_passes_total") >= 2, "a compaction and a tombstone pass");
    assert!(metric(node.metrics_url(), "runnel_log_cleaner_read_bytes_total") as usize >= written_bytes / 2);
    assert!(!runnel_topic(&bootstrap, &["describe", "history"]).contains("cleaner:"), "a topic that is not compacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commits_keep_the_offsets_topic_small_and_a_restart_loads_only_live_offsets() {
    let data = TempDir::new().unwrap();
    let offsets_topic = ["--set", "offsets.topic.num.partitions=1", "--set", "offsets.topic.segment.bytes=1048576"];
    let args = [&FAST_CLEANER[..], &offsets_topic].concat();
    let mut node = Node::start(data.path(), &args);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "events", 10, &[]).await;
    let consumer: BaseConsumer = group_config(&bootstrap, "many-commits").create().expect("consumer");
    // 500 commits of 10 partitions, each offset with 4 KB of metadata: about 20 MB of history.
    let metadata = "m".repeat(4000);
    let commits = 500;
    for round in 1..=commits {
        let mut offsets = TopicPartitionList::new();
        for partition in 0..10 {
            offsets.add_partition_offset("events", partition, Offset::Offset(round)).unwrap();
            offsets.find_partition("events", partition).unwrap().set_metadata(metadata.clone());
        }
        consumer.commit(&offsets, CommitMode::Sync).expect("commit");
    }
    assert_eq!(watermarks(&bootstrap, "__consumer_offsets", 0).1, commits * 10, "one record per committed offset");
    let size = poll_until(Duration::from_secs(60), Duration::from_millis(200), "the offsets topic to compact", || {
        let size = partition_log_bytes(node.data_dir(), "__consumer_offsets", 0).len();
        (size < 3 << 20).then_some(size)
    });
    assert!(size > 40_000, "the live offsets are still there: {size} bytes");
    node.terminate();
    node.restart();
    // The restart replayed the clean part (one record per live offset) and the active
    // segment, not the 5,000 commits.
    let line = node.log_tail().lines().rev().find(|l| l.contains("loaded consumer groups")).map(str::to_string);
    let line = line.expect("the load is logged");
    let records: u64 =
        line.split("records=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().parse().unwrap();
    assert!(records < 1_000, "replayed {records} records: {line}");
    let consumer: BaseConsumer = group_config(node.bootstrap(), "many-commits").create().expect("consumer");
    let mut query = TopicPartitionList::new();
    for partition in 0..10 {
        query.add_partition("events", partition);
    }
    let committed = consumer.committed_offsets(query, Duration::from_secs(10)).unwrap();
    for partition in 0..10 {
        let element = committed.find_partition("events", partition).unwrap();
        assert_eq!(element.offset(), Offset::Offset(commits), "partition {partition}");
        assert_eq!(element.metadata(), metadata);
    }
}

fn group_config(bootstrap: &str, group: &str) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("group.id", group).set("enable.auto.commit", "false");
    config
}

/// Every record in the `.log` files of `topic`-0 on `node`: (offset, key, value).
fn replica_records(node: &Node, topic: &str) -> Vec<(i64, String, Option<String>)> {
    use runnel_protocol::batch::{BatchIter, HEADER_BYTES};
    let bytes = partition_log_bytes(node.data_dir(), topic, 0);
    let mut out = Vec::new();
    for item in BatchIter::new(&bytes) {
        let (_, batch) = item.expect("a replica's files hold whole batches");
        let codec = batch.compression().unwrap();
        let mut records =
            runnel_protocol::compression::RecordStream::new(codec, &batch.bytes()[HEADER_BYTES..], 1 << 26).unwrap();
        while let Some(r) = records.next_record().unwrap() {
            let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
            out.push((batch.base_offset() + r.offset_delta, text(r.key.unwrap()), r.value.map(text)));
        }
    }
    out
}

/// Each replica cleans on its own; a replica added by reassignment copies a cleaned leader
/// (gaps, emptied batches, tombstones gone) and ends with the same latest value per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_clean_on_their_own_and_a_new_replica_copies_a_cleaned_leader() {
    use support::cluster::*;
    let args = [FAST_FAILURE_DETECTION, &FAST_CLEANER[..]].concat();
    let cluster = three_agreed_nodes(&args, Duration::from_secs(60)).await;
    let configs = [
        ("cleanup.policy", "compact"),
        ("internal.segment.bytes", "65536"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "1000"),
    ];
    create_topic_with_configs_via(cluster.kafka_addr(1), "cdc", 1, 2, &configs).await.unwrap();
    let replicas = eventually(Duration::from_secs(60), "both replicas in sync", || async {
        let view = cluster.view(1).await?;
        let p = view.topic("cdc").ok_or("topic missing")?.partitions[0].clone();
        if p.isr.len() == 2 {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    let bootstrap = [1, 2, 3].map(|id| cluster.kafka_addr(id).to_string()).join(",");
    let lz4 = producer(&bootstrap, &[("acks", "all"), ("batch.size", "16384"), ("compression.type", "lz4")]);
    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
    let updates: Vec<Msg> =
        (0..20_000).map(|i| Msg::new(format!("key-{:03}", i % 200), format!("v{i} {}", "x".repeat(60)))).collect();
    produce_all(&lz4, "cdc", Some(0), &updates, None).await;
    for m in &updates {
        model.insert(
            String::from_utf8(m.key.clone().unwrap()).unwrap(),
            Some(String::from_utf8(m.value.clone()).unwrap()),
        );
    }
    // Tombstones and a tail uncompressed: more than a segment, so they leave the active one.
    let producer = producer(&bootstrap, &[("acks", "all"), ("batch.size", "16384")]);
    for k in 0..20 {
        let key = format!("key-{k:03}");
        let delivery = producer
            .send(rdkafka::producer::FutureRecord::<str, [u8]>::to("cdc").partition(0).key(&key), IO_TIMEOUT)
            .await;
        delivery.unwrap_or_else(|(e, _)| panic!("tombstone for {key}: {e}"));
        model.insert(key, None);
    }
    let tail: Vec<Msg> =
        (0..2_000).map(|i| Msg::new(format!("tail-{}", i % 10), format!("t{i} {}", "y".repeat(100)))).collect();
    produce_all(&producer, "cdc", Some(0), &tail, None).await;
    for m in &tail {
        model.insert(
            String::from_utf8(m.key.clone().unwrap()).unwrap(),
            Some(String::from_utf8(m.value.clone()).unwrap()),
        );
    }
    let live: BTreeMap<String, Option<String>> =
        model.iter().filter(|(_, v)| v.is_some()).map(|(k, v)| (k.clone(), v.clone())).collect();
    // What a replica must converge to: the live keys' latest values, offsets increasing,
    // and compacted (the 22,020 records written are down to a few segments' worth).
    let converged = |id: i32| -> Result<usize, String> {
        let records = replica_records(cluster.node(id), "cdc");
        if !records.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(format!("node {id}: offsets out of order"));
        }
        let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (_, key, value) in &records {
            latest.insert(key.clone(), value.clone());
        }
        if latest != live {
            let tombstones: Vec<_> = records.iter().filter(|r| r.2.is_none()).map(|r| r.0).collect();
            let first = records.first().map(|r| r.0);
            return Err(format!(
                "node {id}: {} keys, {} records (first offset {first:?}), tombstones at {tombstones:?}, not the live ones yet",
                latest.len(),
                records.len()
            ));
        }
        if records.len() > 5_000 {
            return Err(format!("node {id}: {} records left", records.len()));
        }
        Ok(records.len())
    };
    for id in &replicas.replicas {
        eventually(Duration::from_secs(60), "each replica to compact", || async { converged(*id) }).await;
    }
    // Move the partition: the third node copies from the cleaned leader.
    let newcomer = [1, 2, 3].into_iter().find(|id| !replicas.replicas.contains(id)).unwrap();
    let kept = replicas.leader;
    let via = cluster.kafka_addr(kept).to_string();
    // `--wait` follows the move to its end (with a progress bar on a terminal).
    let target = format!("{newcomer},{kept}");
    let moved = runnel_topic(&via, &["reassign", "cdc", "--partition", "0", "--replicas", &target, "--wait"]);
    assert!(moved.ends_with(&format!("reassigned cdc-0 to {target}\n")), "{moved}");
    eventually(Duration::from_secs(60), "the reassignment to complete", || async {
        let view = cluster.view(kept).await?;
        let p = view.topic("cdc").ok_or("topic missing")?.partitions[0].clone();
        (p.replicas.contains(&newcomer) && p.replicas.len() == 2 && p.isr.len() == 2)
            .then_some(())
            .ok_or_else(|| format!("{p:?}"))
    })
    .await;
    eventually(Duration::from_secs(60), "the new replica to hold the latest values", || async { converged(newcomer) })
        .await;
    assert_eq!(watermarks(&bootstrap, "cdc", 0).1, 22_020, "offsets were never renumbered");
}

/// A node killed while its cleaner is writing `.cleaned` files (slowed down by
/// `log.cleaner.io.max.bytes.per.second`) restarts with the old segments, removes what the
/// pass left, and cleans again: every key's latest value survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_cleaning_loses_no_latest_value() {
    let data = TempDir::new().unwrap();
    let throttled = ["--set", "log.cleaner.backoff.ms=50", "--set", "log.cleaner.io.max.bytes.per.second=200000"];
    let mut node = Node::start(data.path(), &throttled);
    let bootstrap = node.bootstrap().to_string();
    let configs =
        [("cleanup.policy", "compact"), ("internal.segment.bytes", "65536"), ("min.cleanable.dirty.ratio", "0.01")];
    create_topic(&bootstrap, "cdc", 1, &configs).await;
    let producer = producer(&bootstrap, &[("batch.size", "16384")]);
    let updates: Vec<Msg> =
        (0..10_000).map(|i| Msg::new(format!("key-{:03}", i % 300), format!("v{i} {}", "x".repeat(100)))).collect();
    produce_all(&producer, "cdc", Some(0), &updates, None).await;
    drop(producer);
    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
    for m in &updates {
        model.insert(
            String::from_utf8(m.key.clone().unwrap()).unwrap(),
            Some(String::from_utf8(m.value.clone()).unwrap()),
        );
    }
    let dir = node.data_dir().join("cdc-0");
    let cleaning =
        || std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".cleaned"));
    poll_until(Duration::from_secs(60), Duration::from_millis(5), "a pass to write .cleaned files", || {
        cleaning().then_some(())
    });
    node.kill9();
    node.restart();
    assert!(!cleaning(), "recovery removed what the killed pass left");
    let bootstrap = node.bootstrap().to_string();
    let records = poll_until(Duration::from_secs(60), Duration::from_millis(500), "the cleaner to finish", || {
        let records = read_everything(&bootstrap, "cdc");
        (records.len() < 2_000).then_some(records)
    });
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, key, value) in &records {
        latest.insert(key.clone(), value.clone());
    }
    assert_eq!(latest, model);
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
}
