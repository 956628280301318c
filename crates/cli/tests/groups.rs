//! Consumer groups end to end: real librdkafka consumers (through rdkafka) in groups against
//! the real `runnel` binary. Each consumer runs on its own thread, processes a message and
//! then commits it, and publishes what it holds and what it saw; the tests poll those views
//! with deadlines, never sleeping to synchronise.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use support::*;
use tempfile::TempDir;

/// Bound for each awaited condition (a rebalance, a consumer catching up).
const WAIT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Server settings: a short initial rebalance delay and fewer offsets partitions than the
/// default 50 keep the tests quick.
const OFFSETS_PARTITIONS: i32 = 5;
const SERVER_ARGS: &[&str] =
    &["--set", "group.initial.rebalance.delay.ms=200", "--set", "offsets.topic.num.partitions=5"];

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(future)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assigned(BTreeSet<i32>),
    Revoked(BTreeSet<i32>),
}

#[derive(Debug, Clone)]
struct Got {
    partition: i32,
    offset: i64,
    value: Vec<u8>,
}

/// What one consumer thread publishes.
#[derive(Default, Debug)]
struct Seen {
    assignment: BTreeSet<i32>,
    received: Vec<Got>,
    events: Vec<Event>,
    errors: Vec<String>,
    protocol: Option<String>,
}

fn partitions_of(list: &TopicPartitionList) -> BTreeSet<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

/// Every user of `Seen` takes the lock even when poisoned: a test that fails while holding
/// it must not make the consumer's rebalance callback (which also runs while the consumer
/// is dropped) panic in turn, which aborts the test and leaves its broker running.
///
/// The rebalance protocol is asked only while the consumer runs: librdkafka answers
/// `rd_kafka_rebalance_protocol` through its group thread, which no longer serves it once
/// the consumer is closing, so asking from the revocation that close triggers can block
/// the closing thread for ever.
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match rebalance {
            Rebalance::Assign(list) => seen.events.push(Event::Assigned(partitions_of(list))),
            Rebalance::Revoke(list) => seen.events.push(Event::Revoked(partitions_of(list))),
            Rebalance::Error(e) => seen.errors.push(format!("rebalance: {e}")),
        }
        if self.stop.load(Ordering::SeqCst) {
            return;
        }
        let protocol = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => "cooperative",
            RebalanceProtocol::Eager => "eager",
            RebalanceProtocol::None => "none",
        };
        seen.protocol = Some(protocol.to_string());
    }
}

/// A group member on its own thread: polls, records each message, then commits it.
struct Worker {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    /// Asked to pause, and the thread's acknowledgement that it no longer polls.
    paused: Arc<(AtomicBool, AtomicBool)>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> Worker {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("broker.address.family", "v4")
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300")
            .set("max.poll.interval.ms", "20000")
            .set("fetch.wait.max.ms", "100");
        for (key, value) in extra {
            config.set(*key, *value);
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let recorder = Recorder { seen: seen.clone(), stop: stop.clone() };
        let consumer: BaseConsumer<Recorder> = config.create_with_context(recorder).expect("group consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let paused = Arc::new((AtomicBool::new(false), AtomicBool::new(false)));
        let thread = {
            let (seen, stop, paused) = (seen.clone(), stop.clone(), paused.clone());
            std::thread::spawn(move || consume_loop(consumer, &seen, &stop, &paused))
        };
        Worker { seen, stop, paused, thread: Some(thread) }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).assignment.clone()
    }

    fn values(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).received.iter().map(|g| g.value.clone()).collect()
    }

    fn events(&self) -> Vec<Event> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).events.clone()
    }

    /// Stops polling, once the thread says it has (the consumer stays in the group:
    /// librdkafka heartbeats on its own thread), or resumes.
    fn pause(&self, paused: bool) {
        self.paused.0.store(paused, Ordering::SeqCst);
        if paused {
            poll_until(WAIT, Duration::from_millis(5), "the consumer pausing", || {
                self.paused.1.load(Ordering::SeqCst).then_some(())
            });
        }
    }

    /// Closes the consumer (a dynamic member leaves the group) and returns what it saw.
    fn stop(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("consumer thread");
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn consume_loop(
    consumer: BaseConsumer<Recorder>,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
    paused: &(AtomicBool, AtomicBool),
) {
    while !stop.load(Ordering::SeqCst) {
        let pause = paused.0.load(Ordering::SeqCst);
        paused.1.store(pause, Ordering::SeqCst);
        if pause {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match consumer.poll(POLL_EVERY) {
            Some(Ok(message)) => {
                let value = message.payload().unwrap_or_default().to_vec();
                let got = Got { partition: message.partition(), offset: message.offset(), value };
                seen.lock().unwrap_or_else(PoisonError::into_inner).received.push(got);
                // Processed: now commit it.
                if let Err(e) = consumer.commit_message(&message, CommitMode::Sync) {
                    seen.lock().unwrap_or_else(PoisonError::into_inner).errors.push(format!("commit: {e}"));
                }
            }
            Some(Err(e)) => seen.lock().unwrap_or_else(PoisonError::into_inner).errors.push(format!("poll: {e}")),
            None => {}
        }
        if let Ok(list) = consumer.assignment() {
            seen.lock().unwrap_or_else(PoisonError::into_inner).assignment = partitions_of(&list);
        }
    }
    // Dropping the consumer closes it: a dynamic member sends LeaveGroup.
    drop(consumer);
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<Msg> {
    range.map(|i| Msg::new(format!("key-{}", i % 37), format!("{prefix}-{i}"))).collect()
}

fn produce(bootstrap: &str, topic: &str, partition: Option<i32>, messages: &[Msg], timestamps: Option<&[i64]>) {
    let producer = producer(bootstrap, &[]);
    block_on(produce_all(&producer, topic, partition, messages, timestamps));
}

fn value_set(messages: &[Msg]) -> BTreeSet<Vec<u8>> {
    messages.iter().map(|m| m.value.clone()).collect()
}

/// The partitions assigned to `workers`, if they are pairwise disjoint, none empty, and
/// together exactly `all`.
fn split_covers(workers: &[&Worker], all: &BTreeSet<i32>) -> Option<Vec<BTreeSet<i32>>> {
    let sets: Vec<BTreeSet<i32>> = workers.iter().map(|w| w.assignment()).collect();
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    (sets.iter().all(|s| !s.is_empty()) && total == union.len() && &union == all).then_some(sets)
}

/// Committed offsets of `group` for `topic`, asked the way a client asks (OffsetFetch).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("broker.address.family", "v4").set("group.id", group);
    let consumer: BaseConsumer = config.create().expect("offsets consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let list = consumer.committed_offsets(list, Duration::from_secs(10)).expect("committed offsets");
    list.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions).map(|p| (p, watermarks(bootstrap, topic, p).1)).collect()
}

/// librdkafka's view of the group (ListGroups + DescribeGroups): state and member count.
fn group_state(bootstrap: &str, group: &str) -> (String, usize, String) {
    let consumer = base_consumer(bootstrap);
    let list = consumer.fetch_group_list(Some(group), Duration::from_secs(10)).expect("group list");
    let info = list.groups().iter().find(|g| g.name() == group).expect("the group is described");
    (info.state().to_string(), info.members().len(), info.protocol().to_string())
}

#[test]
fn three_consumers_split_six_partitions_and_survivors_take_over_without_loss() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), SERVER_ARGS);
    let (topic, all) = ("orders", (0..6).collect::<BTreeSet<i32>>());
    block_on(create_topic(node.bootstrap(), topic, 6, &[]));
    let first = numbered("first", 0..600);
    produce(node.bootstrap(), topic, None, &first, None);
    let workers: Vec<Worker> = (0..3).map(|_| Worker::start(node.bootstrap(), "trio", topic, &[])).collect();
    let refs: Vec<&Worker> = workers.iter().collect();
    let split = poll_until(WAIT, POLL_EVERY, "three disjoint assignments covering six partitions", || {
        split_covers(&refs, &all)
    });
    assert!(split.iter().all(|s| s.len() == 2), "range assigns two partitions each: {split:?}");
    let (state, members, protocol) = group_state(node.bootstrap(), "trio");
    assert_eq!((state.as_str(), members, protocol.as_str()), ("Stable", 3, "range"));

    let mut workers = workers;
    let leaving = workers.pop().unwrap();
    let left_with = leaving.assignment();
    let left_seen = leaving.stop();
    let refs: Vec<&Worker> = workers.iter().collect();
    let split = poll_until(WAIT, POLL_EVERY, "the survivors covering all six partitions", || split_covers(&refs, &all));
    assert_eq!(left_with.len(), 2, "the leaving member held two partitions: {left_with:?}");
    assert!(split.iter().all(|s| s.len() == 3), "the two survivors hold three partitions each: {split:?}");

    let second = numbered("second", 600..1200);
    produce(node.bootstrap(), topic, None, &second, None);
    let expected: BTreeSet<Vec<u8>> = value_set(&first).union(&value_set(&second)).cloned().collect();
    let left_values: Vec<Vec<u8>> = left_seen.received.iter().map(|g| g.value.clone()).collect();
    poll_until(WAIT, POLL_EVERY, "every message processed by some member", || {
        let mut got: BTreeSet<Vec<u8>> = left_values.iter().cloned().collect();
        for w in &workers {
            got.extend(w.values());
        }
        expected.is_subset(&got).then_some(())
    });
    // Every message was processed and committed: the group's offsets reach the log end.
    let ends = high_watermarks(node.bootstrap(), topic, 6);
    poll_until(WAIT, POLL_EVERY, "committed offsets at the log end", || {
        (committed(node.bootstrap(), "trio", topic, 6) == ends).then_some(())
    });
}

#[test]
fn two_groups_each_read_every_message() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), SERVER_ARGS);
    block_on(create_topic(node.bootstrap(), "fanout", 3, &[]));
    let messages = numbered("fan", 0..300);
    produce(node.bootstrap(), "fanout", None, &messages, None);
    let alpha = Worker::start(node.bootstrap(), "alpha", "fanout", &[]);
    let beta = Worker::start(node.bootstrap(), "beta", "fanout", &[]);
    let expected = value_set(&messages);
    for worker in [&alpha, &beta] {
        poll_until(WAIT, POLL_EVERY, "a group reading every message", || {
            (worker.values().into_iter().collect::<BTreeSet<_>>() == expected).then_some(())
        });
    }
    let ends = high_watermarks(node.bootstrap(), "fanout", 3);
    for group in ["alpha", "beta"] {
        poll_until(WAIT, POLL_EVERY, "each group's own committed offsets", || {
            (committed(node.bootstrap(), group, "fanout", 3) == ends).then_some(())
        });
    }
}

#[test]
fn committed_offsets_and_group_state_survive_kill9_and_restart() {
    let dir = TempDir::new().unwrap();
    // The default 50 offsets partitions here.
    let mut node = Node::start(dir.path(), &["--set", "group.initial.rebalance.delay.ms=200"]);
    block_on(create_topic(node.bootstrap(), "ledger", 4, &[]));
    let before = numbered("before", 0..400);
    produce(node.bootstrap(), "ledger", None, &before, None);
    let worker = Worker::start(node.bootstrap(), "durable", "ledger", &[]);
    let ends = high_watermarks(node.bootstrap(), "ledger", 4);
    poll_until(WAIT, POLL_EVERY, "everything committed", || {
        (committed(node.bootstrap(), "durable", "ledger", 4) == ends).then_some(())
    });
    worker.stop();
    poll_until(WAIT, POLL_EVERY, "the group empty after its member left", || {
        (group_state(node.bootstrap(), "durable").0 == "Empty").then_some(())
    });
    let after = numbered("after", 400..500);
    produce(node.bootstrap(), "ledger", None, &after, None);
    let committed_before = committed(node.bootstrap(), "durable", "ledger", 4);

    node.kill9();
    node.restart();
    assert_eq!(committed(node.bootstrap(), "durable", "ledger", 4), committed_before, "offsets exactly as committed");
    let (state, members, _) = group_state(node.bootstrap(), "durable");
    assert_eq!((state.as_str(), members), ("Empty", 0));
    let described = run_cli(node.bootstrap(), &["describe", "durable"]);
    let lag: i64 = partition_rows(&described, "ledger").values().map(|row| row.lag).sum();
    assert_eq!(lag, 100, "lag is what was produced after the last commit:\n{described}");

    let worker = Worker::start(node.bootstrap(), "durable", "ledger", &[]);
    poll_until(WAIT, POLL_EVERY, "the new messages", || (worker.values().len() >= after.len()).then_some(()));
    let seen = worker.stop();
    let values: BTreeSet<Vec<u8>> = seen.received.iter().map(|g| g.value.clone()).collect();
    assert_eq!(values, value_set(&after), "resumes exactly at the committed offsets");
    for (partition, offset) in &committed_before {
        let first = seen.received.iter().filter(|g| g.partition == *partition).map(|g| g.offset).min();
        assert!(first.is_none_or(|f| f == *offset), "partition {partition} resumed at {first:?}, committed {offset}");
    }
}

/// One partition's row of `runnel group describe`.
#[derive(Debug)]
struct Row {
    current: i64,
    end: i64,
    lag: i64,
    consumer: String,
}

fn run_cli(bootstrap: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("group")
        .args(args)
        .args(["--bootstrap", bootstrap])
        .output()
        .expect("run runnel group");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "runnel group {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn cli_fails(bootstrap: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("group")
        .args(args)
        .args(["--bootstrap", bootstrap])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run runnel group");
    assert!(!output.status.success(), "runnel group {args:?} should fail");
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Partition rows of `topic` in describe output (columns as the header names them).
fn partition_rows(output: &str, topic: &str) -> BTreeMap<i32, Row> {
    let number = |s: &str| s.parse::<i64>().unwrap_or(-1);
    output
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells.len() == 8 && cells[0] == topic).then(|| {
                let row = Row {
                    current: number(cells[2]),
                    end: number(cells[3]),
                    lag: number(cells[4]),
                    consumer: cells[5].into(),
                };
                (cells[1].parse().unwrap(), row)
            })
        })
        .collect()
}

/// (partition, new offset) rows printed by reset-offsets.
fn reset_rows(output: &str) -> BTreeMap<i32, i64> {
    output
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells.len() == 4 && cells[0] == "laggy").then(|| (cells[2].parse().unwrap(), cells[3].parse().unwrap()))
        })
        .collect()
}

#[test]
fn cli_describes_lag_of_a_running_consumer_and_resets_and_deletes_an_inactive_group() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), SERVER_ARGS);
    let bootstrap = node.bootstrap();
    block_on(create_topic(bootstrap, "lagging", 2, &[]));
    let base_ts = now_ms() - 1_000_000;
    for partition in 0..2 {
        let messages = numbered(&format!("p{partition}"), 0..50);
        let timestamps: Vec<i64> = (0..50).map(|i| base_ts + i * 1_000).collect();
        produce(bootstrap, "lagging", Some(partition), &messages, Some(&timestamps));
    }
    let worker = Worker::start(bootstrap, "laggy", "lagging", &[]);
    poll_until(WAIT, POLL_EVERY, "the consumer caught up", || {
        (committed(bootstrap, "laggy", "lagging", 2) == BTreeMap::from([(0, 50), (1, 50)])).then_some(())
    });
    worker.pause(true);
    produce(bootstrap, "lagging", Some(0), &numbered("late", 0..30), None);
    let described = run_cli(bootstrap, &["describe", "laggy"]);
    assert!(described.contains("state Stable"), "{described}");
    assert!(described.contains("lagging:0,1"), "the member's assignment is shown:\n{described}");
    let rows = partition_rows(&described, "lagging");
    assert_eq!((rows[&0].current, rows[&0].end, rows[&0].lag), (50, 80, 30), "{described}");
    assert_eq!((rows[&1].current, rows[&1].end, rows[&1].lag), (50, 50, 0), "{described}");
    assert_ne!(rows[&0].consumer, "-", "the owning member is shown");
    let refused = cli_fails(bootstrap, &["reset-offsets", "laggy", "--topic", "lagging", "--to-earliest", "--execute"]);
    assert!(refused.contains("inactive"), "{refused}");

    worker.pause(false);
    poll_until(WAIT, POLL_EVERY, "the consumer caught up again", || {
        (committed(bootstrap, "laggy", "lagging", 2) == BTreeMap::from([(0, 80), (1, 50)])).then_some(())
    });
    worker.stop();
    poll_until(WAIT, POLL_EVERY, "the group empty", || (group_state(bootstrap, "laggy").0 == "Empty").then_some(()));
    let at = |args: &[&str]| reset_rows(&run_cli(bootstrap, args));
    let dry = at(&["reset-offsets", "laggy", "--topic", "lagging", "--to-earliest"]);
    assert_eq!(dry, BTreeMap::from([(0, 0), (1, 0)]));
    assert_eq!(
        committed(bootstrap, "laggy", "lagging", 2),
        BTreeMap::from([(0, 80), (1, 50)]),
        "a dry run changes nothing"
    );
    at(&["reset-offsets", "laggy", "--topic", "lagging", "--to-earliest", "--execute"]);
    assert_eq!(committed(bootstrap, "laggy", "lagging", 2), BTreeMap::from([(0, 0), (1, 0)]));
    at(&["reset-offsets", "laggy", "--topic", "lagging:1", "--to-offset", "1000", "--execute"]);
    assert_eq!(
        committed(bootstrap, "laggy", "lagging", 2),
        BTreeMap::from([(0, 0), (1, 50)]),
        "clamped to the log end"
    );
    let ts = (base_ts + 10_000).to_string();
    at(&["reset-offsets", "laggy", "--topic", "lagging", "--to-datetime", &ts, "--execute"]);
    assert_eq!(committed(bootstrap, "laggy", "lagging", 2), BTreeMap::from([(0, 10), (1, 10)]));
    at(&["reset-offsets", "laggy", "--topic", "lagging", "--to-latest", "--execute"]);
    assert_eq!(committed(bootstrap, "laggy", "lagging", 2), BTreeMap::from([(0, 80), (1, 50)]));

    assert!(run_cli(bootstrap, &["list"]).lines().any(|l| l.starts_with("laggy ") && l.contains("Empty")));
    run_cli(bootstrap, &["delete", "laggy"]);
    assert!(!run_cli(bootstrap, &["list"]).contains("laggy"));
    assert!(cli_fails(bootstrap, &["describe", "laggy"]).contains("does not exist"));
    assert!(committed(bootstrap, "laggy", "lagging", 2).is_empty(), "its offsets went with it");
}

/// Java's `String.hashCode`, for the group's `__consumer_offsets` partition.
fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    (if hash == i32::MIN { 0 } else { hash.abs() }) % partitions
}

/// One stored generation of a group: (generation, [(member id, instance id)]).
type StoredGeneration = (i32, Vec<(String, Option<String>)>);

/// A reader over a record value.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn string(&mut self) -> Option<String> {
        let n = self.i16();
        (n >= 0).then(|| String::from_utf8(self.take(n as usize).to_vec()).unwrap())
    }
    fn bytes(&mut self) {
        let n = self.i32();
        self.take(n.max(0) as usize);
    }
}

/// Decodes `GroupMetadataValue` v3 far enough for the generation and members: an
/// independent reading of the format Kafka's tools read.
fn decode_generation(value: &[u8]) -> StoredGeneration {
    let mut c = Cursor(value);
    assert_eq!(c.i16(), 3, "group metadata value v3");
    let _protocol_type = c.string();
    let generation = c.i32();
    let (_protocol, _leader) = (c.string(), c.string());
    c.take(8);
    let count = c.i32();
    let mut members = Vec::new();
    for _ in 0..count {
        let member = c.string().unwrap();
        let instance = c.string();
        let (_client, _host) = (c.string(), c.string());
        c.take(8);
        c.bytes();
        c.bytes();
        members.push((member, instance));
    }
    assert!(c.0.is_empty(), "nothing after the members");
    (generation, members)
}

/// Every generation record of `group` in `__consumer_offsets`, in log order.
fn stored_generations(bootstrap: &str, group: &str) -> Vec<StoredGeneration> {
    let partition = offsets_partition(group, OFFSETS_PARTITIONS);
    let end = watermarks(bootstrap, "__consumer_offsets", partition).1;
    let consumer = base_consumer(bootstrap);
    let mut list = TopicPartitionList::new();
    list.add_partition_offset("__consumer_offsets", partition, Offset::Beginning).unwrap();
    consumer.assign(&list).unwrap();
    let mut generations = Vec::new();
    let mut next = 0;
    poll_until(WAIT, Duration::from_millis(1), "reading __consumer_offsets", || {
        if let Some(message) = consumer.poll(POLL_EVERY) {
            let message = message.expect("reading __consumer_offsets");
            next = message.offset() + 1;
            let key = message.key().expect("group records have keys");
            let is_group = i16::from_be_bytes([key[0], key[1]]) == 2 && &key[4..] == group.as_bytes();
            if let (true, Some(value)) = (is_group, message.payload()) {
                generations.push(decode_generation(value));
            }
        }
        (next >= end).then_some(())
    });
    generations
}

#[test]
fn static_member_restarting_within_its_session_causes_no_rebalance() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), SERVER_ARGS);
    let bootstrap = node.bootstrap();
    let all: BTreeSet<i32> = (0..4).collect();
    block_on(create_topic(bootstrap, "statics", 4, &[]));
    let config = |instance: &'static str| {
        [("group.instance.id", instance), ("session.timeout.ms", "30000"), ("max.poll.interval.ms", "30000")]
    };
    let alpha = Worker::start(bootstrap, "fixed", "statics", &config("alpha"));
    let beta = Worker::start(bootstrap, "fixed", "statics", &config("beta"));
    let split = poll_until(WAIT, POLL_EVERY, "a stable split", || split_covers(&[&alpha, &beta], &all));
    let (generation, members) = poll_until(WAIT, POLL_EVERY, "the stored generation", || {
        stored_generations(bootstrap, "fixed").pop().filter(|(_, m)| m.len() == 2)
    });
    let beta_id = members.iter().find(|(_, i)| i.as_deref() == Some("beta")).unwrap().0.clone();
    let alpha_events = alpha.events();

    // A static member does not leave the group when it closes; it comes back as the same
    // instance within its session timeout.
    beta.stop();
    let beta = Worker::start(bootstrap, "fixed", "statics", &config("beta"));
    poll_until(WAIT, POLL_EVERY, "the restarted member's assignment", || (!beta.assignment().is_empty()).then_some(()));
    assert_eq!(beta.assignment(), split[1], "it got its old partitions back");
    let (new_generation, new_members) = poll_until(WAIT, POLL_EVERY, "the new member id stored", || {
        let last = stored_generations(bootstrap, "fixed").pop()?;
        last.1.iter().any(|(m, i)| i.as_deref() == Some("beta") && *m != beta_id).then_some(last)
    });
    assert_eq!(new_generation, generation, "same generation: no rebalance happened");
    assert_eq!(new_members.len(), 2);
    assert_eq!(alpha.events(), alpha_events, "the other member saw no rebalance");
    assert_eq!(alpha.assignment(), split[0]);
    assert_eq!(group_state(bootstrap, "fixed").0, "Stable");
}

#[test]
fn cooperative_sticky_rebalances_incrementally() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), SERVER_ARGS);
    let bootstrap = node.bootstrap();
    let all: BTreeSet<i32> = (0..6).collect();
    block_on(create_topic(bootstrap, "sticky", 6, &[]));
    produce(bootstrap, "sticky", None, &numbered("s", 0..120), None);
    let strategy = [("partition.assignment.strategy", "cooperative-sticky")];
    let first = Worker::start(bootstrap, "coop", "sticky", &strategy);
    poll_until(WAIT, POLL_EVERY, "the first member holding everything", || (first.assignment() == all).then_some(()));
    let events_before = first.events().len();
    let second = Worker::start(bootstrap, "coop", "sticky", &strategy);
    let split = poll_until(WAIT, POLL_EVERY, "a cooperative split", || split_covers(&[&first, &second], &all));
    assert_eq!(split.iter().map(BTreeSet::len).collect::<Vec<_>>(), vec![3, 3]);
    let seen = first.seen.lock().unwrap_or_else(PoisonError::into_inner);
    assert_eq!(seen.protocol.as_deref(), Some("cooperative"));
    let after: Vec<&Event> = seen.events[events_before..].iter().collect();
    let revoked: BTreeSet<i32> =
        after.iter().filter_map(|e| if let Event::Revoked(r) = e { Some(r.clone()) } else { None }).flatten().collect();
    assert_eq!(revoked, split[1], "only the partitions that moved were revoked: {after:?}");
    assert!(
        after.iter().all(|e| !matches!(e, Event::Revoked(r) if r.len() == all.len())),
        "an eager rebalance would revoke everything: {after:?}"
    );
    // A commit racing the rebalance may be refused (REBALANCE_IN_PROGRESS while the group
    // completes it, ILLEGAL_GENERATION from the generation before), as Kafka refuses it;
    // the rebalance callbacks themselves must not fail.
    assert!(seen.errors.iter().all(|e| !e.starts_with("rebalance:")), "{:?}", seen.errors);
}
