//! Transactions end to end with librdkafka (the `rdkafka` crate): a transactional producer
//! commits and aborts across partitions; `read_committed` consumers see a transaction's
//! records all at once after its commit and never an aborted one, while `read_uncommitted`
//! sees everything; a second producer with the same transactional id fences the first and
//! aborts its open transaction; offsets sent to the transaction are committed with it; all
//! on one node and on a three-node cluster (markers and KIP-890 verification between nodes).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::cluster::{create_topic_via, Cluster, Spec};
use support::*;
use tempfile::TempDir;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Small state topic: creating it is part of the first InitProducerId.
const STATE_PARTITIONS: &str = "transaction.state.log.num.partitions=4";

fn producer_config(bootstrap: &str, transactional_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    config
}

fn transactional_producer(bootstrap: &str, transactional_id: &str) -> BaseProducer {
    let producer: BaseProducer = producer_config(bootstrap, transactional_id).create().expect("producer");
    producer.init_transactions(TIMEOUT).expect("init_transactions");
    producer
}

fn send(producer: &BaseProducer, topic: &str, partition: i32, value: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let record = BaseRecord::<str, str>::to(topic).partition(partition).key(value).payload(value);
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) if Instant::now() < deadline => {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => panic!("send to {topic}-{partition}: {error}"),
        }
    }
}

fn reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "transactions-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation);
    config.create().expect("consumer")
}

/// The high watermark (read_uncommitted) or last stable offset (read_committed) of a
/// partition, as librdkafka's ListOffsets for `isolation` answers.
fn end_offset(bootstrap: &str, isolation: &str, topic: &str, partition: i32) -> i64 {
    let consumer = reader(bootstrap, isolation);
    consumer.fetch_watermarks(topic, partition, TIMEOUT).expect("watermarks").1
}

/// Waits until no transaction is open on the partition (its last stable offset is its high
/// watermark) and returns that offset.
fn settled_end(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stable = end_offset(bootstrap, "read_committed", topic, partition);
        let high = end_offset(bootstrap, "read_uncommitted", topic, partition);
        if stable == high {
            return stable;
        }
        assert!(Instant::now() < deadline, "{topic}-{partition}: stable offset {stable} stays below {high}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the partition's last stable offset reaches `end` (every marker written and
/// replicated).
fn await_stable_end(bootstrap: &str, topic: &str, partition: i32, end: i64) {
    let deadline = Instant::now() + TIMEOUT;
    while end_offset(bootstrap, "read_committed", topic, partition) < end {
        assert!(Instant::now() < deadline, "{topic}-{partition}: the stable offset does not reach {end}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every value `isolation` reads from `partitions` of `topic`, from the beginning to the
/// end offset for that isolation, by partition.
fn read_all(bootstrap: &str, isolation: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<String>> {
    let consumer = reader(bootstrap, isolation);
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("assign");
        ends.insert(partition, end_offset(bootstrap, isolation, topic, partition));
    }
    consumer.assign(&assignment).expect("assign");
    let mut read: BTreeMap<i32, Vec<String>> = (0..partitions).map(|p| (p, Vec::new())).collect();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let done = (0..partitions).all(|p| {
            let position = consumer.position().ok().and_then(|list| {
                list.find_partition(topic, p).and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
            });
            ends[&p] == 0 || position.is_some_and(|o| o >= ends[&p])
        });
        if done {
            return read;
        }
        assert!(Instant::now() < deadline, "{isolation} read of {topic} did not reach {ends:?}; read {read:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("consume");
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
            read.get_mut(&message.partition()).expect("assigned partition").push(value);
        }
    }
}

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Commits, aborts and commits again over two partitions, then checks what each isolation
/// level reads, and that an open transaction holds read_committed back as a whole.
fn commit_abort_and_visibility(bootstrap: &str, topic: &str) {
    let producer = transactional_producer(bootstrap, "txn-basic");
    producer.begin_transaction().expect("begin");
    for value in values("first", 5) {
        send(&producer, topic, 0, &value);
        send(&producer, topic, 1, &value);
    }
    producer.commit_transaction(TIMEOUT).expect("commit");

    producer.begin_transaction().expect("begin");
    for value in values("aborted", 3) {
        send(&producer, topic, 0, &value);
        send(&producer, topic, 1, &value);
    }
    producer.flush(TIMEOUT).expect("flush");
    producer.abort_transaction(TIMEOUT).expect("abort");

    // An open transaction: written, not visible to read_committed until its commit. The
    // abort's markers are written after the abort returns: wait for them first.
    let stable_before = settled_end(bootstrap, topic, 0);
    producer.begin_transaction().expect("begin");
    for value in values("second", 2) {
        send(&producer, topic, 0, &value);
        send(&producer, topic, 1, &value);
    }
    producer.flush(TIMEOUT).expect("flush");
    let high = end_offset(bootstrap, "read_uncommitted", topic, 0);
    assert_eq!(end_offset(bootstrap, "read_committed", topic, 0), stable_before, "open transaction held back");
    assert_eq!(high, stable_before + 2, "the open transaction's records are written");
    let open = read_all(bootstrap, "read_committed", topic, 2);
    assert!(open.values().all(|v| !v.iter().any(|x| x.starts_with("second"))), "open transaction read: {open:?}");
    producer.commit_transaction(TIMEOUT).expect("commit");

    // Its markers are written after the commit returns.
    for partition in 0..2 {
        await_stable_end(bootstrap, topic, partition, 5 + 3 + 2 + 3);
    }
    let mut expected = values("first", 5);
    expected.extend(values("second", 2));
    let committed = read_all(bootstrap, "read_committed", topic, 2);
    for partition in 0..2 {
        assert_eq!(committed[&partition], expected, "read_committed of partition {partition}");
    }
    let uncommitted = read_all(bootstrap, "read_uncommitted", topic, 2);
    let mut everything = values("first", 5);
    everything.extend(values("aborted", 3));
    everything.extend(values("second", 2));
    for partition in 0..2 {
        assert_eq!(uncommitted[&partition], everything, "read_uncommitted of partition {partition}");
    }
}

/// A second producer with the same transactional id fences the first: the first's open
/// transaction is aborted and its commit refused; the second's commits.
fn fencing(bootstrap: &str, topic: &str) {
    let old = transactional_producer(bootstrap, "txn-fenced");
    old.begin_transaction().expect("begin");
    for value in values("zombie", 4) {
        send(&old, topic, 0, &value);
    }
    old.flush(TIMEOUT).expect("flush");
    let new = transactional_producer(bootstrap, "txn-fenced");
    let refused = old.commit_transaction(TIMEOUT).expect_err("a fenced producer cannot commit");
    let KafkaError::Transaction(refused) = refused else { panic!("not a transaction error: {refused}") };
    assert!(refused.is_fatal(), "a fenced producer's error is fatal: {refused}");
    new.begin_transaction().expect("begin");
    for value in values("successor", 3) {
        send(&new, topic, 0, &value);
    }
    new.commit_transaction(TIMEOUT).expect("commit");
    // Records, abort marker, records, commit marker.
    await_stable_end(bootstrap, topic, 0, 4 + 1 + 3 + 1);
    let read = read_all(bootstrap, "read_committed", topic, 1);
    assert_eq!(read[&0], values("successor", 3), "only the successor's records are committed");
    let all = read_all(bootstrap, "read_uncommitted", topic, 1);
    assert_eq!(all[&0].len(), 7, "the zombie's records were written, then aborted: {all:?}");
}

/// Offsets sent to a transaction are committed with it, and not at all when it aborts.
fn offsets_in_transactions(bootstrap: &str, topic: &str) {
    let group = "txn-group";
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let committed = |consumer: &BaseConsumer| {
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition(topic, 0);
        let list = consumer.committed_offsets(wanted, TIMEOUT).expect("committed offsets");
        list.find_partition(topic, 0).map(|e| e.offset()).expect("partition listed")
    };
    let producer = transactional_producer(bootstrap, "txn-offsets");
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(topic, 0, Offset::Offset(42)).expect("offset");
    producer.begin_transaction().expect("begin");
    send(&producer, topic, 0, "with-offsets-aborted");
    producer
        .send_offsets_to_transaction(&offsets, &consumer.group_metadata().expect("metadata"), TIMEOUT)
        .expect("send offsets");
    producer.flush(TIMEOUT).expect("flush");
    producer.abort_transaction(TIMEOUT).expect("abort");
    assert_eq!(committed(&consumer), Offset::Invalid, "an aborted transaction commits no offset");

    producer.begin_transaction().expect("begin");
    send(&producer, topic, 0, "with-offsets");
    producer
        .send_offsets_to_transaction(&offsets, &consumer.group_metadata().expect("metadata"), TIMEOUT)
        .expect("send offsets");
    // KIP-447: while the transaction is open its offset is unstable to whoever asks for
    // stable offsets, and the old (no) offset to whoever does not.
    assert_eq!(fetch_offset(bootstrap, group, topic, true), Err(UNSTABLE_OFFSET_COMMIT));
    assert_eq!(fetch_offset(bootstrap, group, topic, false), Ok(-1));
    producer.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(committed(&consumer), Offset::Offset(42), "the committed transaction's offset");
}

/// `runnel transactions list|describe|abort` and `runnel producers describe`: an open
/// transaction is listed and described as Ongoing with its partition, its producer shows the
/// transaction's first offset, and aborting it by hand (as for a hanging transaction)
/// releases the last stable offset.
fn the_cli_lists_describes_and_aborts(bootstrap: &str, topic: &str) {
    let producer = transactional_producer(bootstrap, "txn-cli");
    producer.begin_transaction().expect("begin");
    send(&producer, topic, 0, "hanging");
    producer.flush(TIMEOUT).expect("flush");
    let start = settled_start(bootstrap, topic);
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let (ok, out) = runnel_cli(bootstrap, &all);
        assert!(ok, "runnel {args:?}: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"))
    };
    let listed = json(&["transactions", "list", "--state", "Ongoing"]);
    let ids: Vec<&str> =
        listed["transactions"].as_array().unwrap().iter().map(|t| t["transactional_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["txn-cli"], "{listed}");
    let described = json(&["transactions", "describe", "txn-cli"]);
    assert_eq!(described["state"], "Ongoing", "{described}");
    assert_eq!(described["partitions"], serde_json::json!([format!("{topic}-0")]), "{described}");
    let producers = json(&["producers", "describe", topic]);
    let open: Vec<i64> = producers["producers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["current_transaction_start_offset"].as_i64().unwrap())
        .filter(|o| *o >= 0)
        .collect();
    assert_eq!(open, [start], "{producers}");
    let (ok, out) = runnel_cli(
        bootstrap,
        &["transactions", "abort", "--topic", topic, "--partition", "0", "--start-offset", &start.to_string()],
    );
    assert!(ok, "{out}");
    // The marker is written: the partition's stable offset passes it.
    await_stable_end(bootstrap, topic, 0, start + 2);
    let (ok, out) = runnel_cli(bootstrap, &["transactions", "describe", "no-such-id"]);
    assert!(!ok && out.contains("TransactionalIdNotFound"), "{out}");
}

/// The first offset of the one open transaction on partition 0 (the stable offset).
fn settled_start(bootstrap: &str, topic: &str) -> i64 {
    end_offset(bootstrap, "read_committed", topic, 0)
}

const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// OffsetFetch v8 of `group`'s offset of `topic`-0 from its coordinator, with or without
/// `require_stable`: the offset, or the partition's error code.
fn fetch_offset(bootstrap: &str, group: &str, topic: &str, require_stable: bool) -> Result<i64, i16> {
    use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
    use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, OffsetFetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    tokio::runtime::Handle::current().block_on(async {
        let mut conn = runnel_client::Connection::connect(bootstrap).await.unwrap();
        let found = conn
            .send(&FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.into())), 3)
            .await
            .unwrap();
        assert_eq!(found.error_code, 0, "FindCoordinator");
        let mut coordinator =
            runnel_client::Connection::connect(&format!("{}:{}", found.host.as_str(), found.port)).await.unwrap();
        let request = OffsetFetchRequest::default().with_require_stable(require_stable).with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(GroupId(StrBytes::from_string(group.into()))).with_topics(
                Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partition_indexes(vec![0])]),
            ),
        ]);
        let response = coordinator.send(&request, 8).await.unwrap();
        let partition = &response.groups[0].topics[0].partitions[0];
        match partition.error_code {
            0 => Ok(partition.committed_offset),
            code => Err(code),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_on_one_node() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &["--set", STATE_PARTITIONS]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "txn-basic", 2, &[]).await;
    create_topic(&bootstrap, "txn-fenced", 1, &[]).await;
    create_topic(&bootstrap, "txn-offsets", 1, &[]).await;
    create_topic(&bootstrap, "txn-cli", 1, &[]).await;
    tokio::task::block_in_place(|| {
        commit_abort_and_visibility(&bootstrap, "txn-basic");
        fencing(&bootstrap, "txn-fenced");
        offsets_in_transactions(&bootstrap, "txn-offsets");
        the_cli_lists_describes_and_aborts(&bootstrap, "txn-cli");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_on_three_nodes() {
    let args = ["--set", STATE_PARTITIONS, "--set", "transaction.state.log.replication.factor=3"];
    let cluster = Cluster::start(&[1, 2, 3].map(|id| Spec::combined(id).with_args(&args)));
    cluster.await_brokers_listed(Duration::from_secs(30)).await;
    let bootstrap = cluster.kafka_addr(1).to_string();
    for (topic, partitions) in [("txn-basic", 2), ("txn-fenced", 1), ("txn-offsets", 1)] {
        create_topic_via(&bootstrap, topic, partitions, 3).await.expect("create topic");
    }
    tokio::task::block_in_place(|| {
        commit_abort_and_visibility(&bootstrap, "txn-basic");
        fencing(&bootstrap, "txn-fenced");
        offsets_in_transactions(&bootstrap, "txn-offsets");
    });
    cluster.await_same_replica_sizes("txn-basic", 2);
}

/// Every (offset, commit?) of the markers in the partition's segment files.
fn markers_on_disk(node: &Node, topic: &str) -> Vec<(i64, bool)> {
    let bytes = partition_log_bytes(node.data_dir(), topic, 0);
    runnel_protocol::batch::BatchIter::new(&bytes)
        .filter_map(|item| item.ok())
        .filter_map(|(_, batch)| {
            let marker = runnel_protocol::control::Marker::of(&batch).ok().flatten()?;
            Some((batch.base_offset(), marker.commit))
        })
        .collect()
}

/// Log compaction and transactions (Kafka's cleaner rules): an aborted transaction's
/// records go (and never take the place of the committed values they followed), its abort
/// marker goes `delete.retention.ms` after, the markers of committed records stay, and the
/// cleaned log, restarted, gives read_committed and read_uncommitted readers the same
/// records with no transaction left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_removes_aborted_transactions_then_their_markers() {
    let dir = TempDir::new().unwrap();
    let mut node = Node::start(dir.path(), &["--set", STATE_PARTITIONS, "--set", "log.cleaner.backoff.ms=50"]);
    let bootstrap = node.bootstrap().to_string();
    let topic = "txn-compacted";
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.ms", "100"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "1000"),
    ];
    create_topic(&bootstrap, topic, 1, &configs).await;
    tokio::task::block_in_place(|| {
        let producer = transactional_producer(&bootstrap, "txn-compacted");
        let transaction = |records: &[(&str, &str)], commit: bool| {
            producer.begin_transaction().expect("begin");
            for (key, value) in records {
                let record = BaseRecord::<str, str>::to(topic).partition(0).key(*key).payload(*value);
                producer.send(record).expect("send");
            }
            producer.flush(TIMEOUT).expect("flush");
            match commit {
                true => producer.commit_transaction(TIMEOUT).expect("commit"),
                false => producer.abort_transaction(TIMEOUT).expect("abort"),
            }
            await_stable_end(&bootstrap, topic, 0, end_offset(&bootstrap, "read_uncommitted", topic, 0));
            // segment.ms: the next append rolls a new segment, so each transaction and its
            // marker end up in closed segments the cleaner may take.
            std::thread::sleep(Duration::from_millis(150));
        };
        transaction(&[("a", "committed-1"), ("b", "committed-1")], true);
        transaction(&[("a", "aborted"), ("c", "aborted")], false);
        transaction(&[("b", "committed-2")], true);
        transaction(&[("d", "tail")], true);
        let cleaned = |isolation: &str| read_all(&bootstrap, isolation, topic, 1)[&0].clone();
        poll_until(TIMEOUT, Duration::from_millis(50), "the aborted records and their marker to go", || {
            let all = cleaned("read_uncommitted");
            let aborts = markers_on_disk(&node, topic).iter().filter(|(_, commit)| !commit).count();
            (!all.iter().any(|v| v == "aborted") && aborts == 0 && all.len() == 3).then_some(())
        });
        assert_eq!(cleaned("read_uncommitted"), ["committed-1", "committed-2", "tail"]);
        assert_eq!(cleaned("read_committed"), ["committed-1", "committed-2", "tail"]);
        let commits = markers_on_disk(&node, topic).len();
        assert!(commits >= 2, "the markers of the transactions whose records stay stay: {commits}");
    });
    // A crash: recovery replays what was not yet checkpointed, cleaned segments included.
    node.kill9();
    node.restart();
    let bootstrap = node.bootstrap().to_string();
    tokio::task::block_in_place(|| {
        let end = end_offset(&bootstrap, "read_uncommitted", topic, 0);
        assert_eq!(end_offset(&bootstrap, "read_committed", topic, 0), end, "no transaction is open after a restart");
        for isolation in ["read_committed", "read_uncommitted"] {
            assert_eq!(read_all(&bootstrap, isolation, topic, 1)[&0], ["committed-1", "committed-2", "tail"]);
        }
    });
}

/// Tiered storage and transactions: segments go to remote storage with their transaction
/// indexes (once every transaction in them has ended), and a read_committed consumer
/// reading from remote storage, the local copies gone, still skips every aborted record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_from_tiered_storage_skips_aborted_transactions() {
    let dir = TempDir::new().unwrap();
    let mut args = vec!["--set", STATE_PARTITIONS];
    args.extend(support::tiered::FAST_TIERING);
    let node = Node::start(dir.path(), &args);
    let bootstrap = node.bootstrap().to_string();
    let topic = "txn-tiered";
    let configs =
        [("remote.storage.enable", "true"), ("internal.segment.bytes", "8000"), ("local.retention.bytes", "1")];
    create_topic(&bootstrap, topic, 1, &configs).await;
    let rounds = 12;
    let aborted_round = |round: usize| round % 3 == 1;
    tokio::task::block_in_place(|| {
        let producer = transactional_producer(&bootstrap, "txn-tiered");
        for round in 0..rounds {
            producer.begin_transaction().expect("begin");
            for i in 0..10 {
                let state = if aborted_round(round) { "aborted" } else { "kept" };
                let value = format!("{state}-{round}-{i}:{}", "x".repeat(200));
                send(&producer, topic, 0, &value);
            }
            producer.flush(TIMEOUT).expect("flush");
            match aborted_round(round) {
                true => producer.abort_transaction(TIMEOUT).expect("abort"),
                false => producer.commit_transaction(TIMEOUT).expect("commit"),
            }
        }
        // Rounds 0-3 (offsets below 44, an aborted transaction among them) only remote.
        poll_until(TIMEOUT, Duration::from_millis(50), "the first rounds to leave the local log", || {
            support::tiered::local_start(dir.path(), &format!("{topic}-0")).filter(|start| *start >= 44)
        });
        let remote_indexes = support::tiered::files_under(&dir.path().join("remote-log-storage"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
            .count();
        assert!(remote_indexes >= 1, "transaction indexes went up with their segments");
        let names = |isolation: &str| -> Vec<String> {
            read_all(&bootstrap, isolation, topic, 1)[&0]
                .iter()
                .map(|v| v.split_once(':').map_or(v.clone(), |(name, _)| name.to_string()))
                .collect()
        };
        let expected: Vec<String> = (0..rounds)
            .filter(|r| !aborted_round(*r))
            .flat_map(|r| (0..10).map(move |i| format!("kept-{r}-{i}")))
            .collect();
        assert_eq!(names("read_committed"), expected, "read_committed skips the aborted records, remote ones too");
        let everything = names("read_uncommitted");
        assert_eq!(everything.len(), rounds * 10);
        assert_eq!(everything.iter().filter(|v| v.starts_with("aborted")).count(), 40);
    });
}
