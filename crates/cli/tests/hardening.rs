//! Requests, settings and disk states that used to destroy a node, against real `runnel`
//! processes. Each test is a reproduction from issue 15: it failed on the code before the
//! fix, and now asserts that the node refuses the input, keeps serving, restarts, and loses
//! no acknowledged record.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use support::*;
use tempfile::TempDir;

fn messages(count: usize) -> Vec<Msg> {
    (0..count).map(|i| Msg::new(format!("k{i}"), format!("value-{i}"))).collect()
}

async fn produce(bootstrap: &str, topic: &str, sent: &[Msg]) {
    let producer = producer(bootstrap, &[("acks", "all")]);
    let placed = produce_all(&producer, topic, Some(0), sent, None).await;
    assert_eq!(placed.len(), sent.len());
}

/// Consumes `topic`-0 from the start and checks it holds exactly `sent`, in order.
async fn assert_holds(bootstrap: &str, topic: &str, sent: &[Msg]) {
    let received = consume(bootstrap, topic, &[(0, Offset::Beginning)], sent.len()).await;
    let values: Vec<&Msg> = received.iter().map(|r| &r.msg).collect();
    assert_eq!(values, sent.iter().collect::<Vec<_>>(), "{topic} lost or changed records");
    assert_eq!(watermarks(bootstrap, topic, 0), (0, sent.len() as i64));
}

/// `runnel topic ...`; whether it succeeded, and everything it printed.
fn runnel_topic_outcome(addr: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["topic", "--bootstrap", addr])
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run runnel topic");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The result code the broker gives for creating `name` with `configs`.
async fn create_outcome(bootstrap: &str, name: &str, configs: &[(&str, &str)]) -> Result<String, RDKafkaErrorCode> {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = admin.create_topics([&topic], &AdminOptions::new()).await.expect("create_topics request");
    results.into_iter().next().expect("one result").map_err(|(_, code)| code)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    names
}

fn segment_bytes(dir: &Path) -> Vec<u8> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.iter().flat_map(|p| std::fs::read(p).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_log_cannot_be_created_deleted_or_written_as_a_topic() {
    let dir = TempDir::new().unwrap();
    let mut node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), "keep", 1, &[]).await;
    let sent = messages(10);
    produce(node.bootstrap(), "keep", &sent).await;

    // Before the fix: created, and deleting it deleted the metadata log, after which the
    // next start deleted every partition folder.
    let (created, text) =
        runnel_topic_outcome(node.bootstrap(), &["create", "__cluster_metadata", "--partitions", "1"]);
    assert!(!created, "creating __cluster_metadata must fail: {text}");
    assert_eq!(create_outcome(node.bootstrap(), "__cluster_metadata", &[]).await, Err(RDKafkaErrorCode::InvalidTopic));
    let (deleted, text) = runnel_topic_outcome(node.bootstrap(), &["delete", "__cluster_metadata"]);
    assert!(!deleted, "there is no such topic to delete: {text}");
    assert!(dir.path().join("__cluster_metadata-0").is_dir(), "the metadata log is where it was");

    node.terminate();
    node.restart();
    assert_holds(node.bootstrap(), "keep", &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_the_log_cannot_run_with_are_refused_before_anything_is_committed() {
    let dir = TempDir::new().unwrap();
    let mut node = Node::start(dir.path(), &[]);
    // Before the fix: committed, then the log refused to open, and the node refused to
    // start ever after ("segment_bytes below one batch header").
    for (key, value) in [
        ("segment.bytes", "20"),
        ("segment.bytes", "1000"), // below Kafka 4.0's 1 MiB minimum
        ("internal.segment.bytes", "20"),
        ("segment.index.bytes", "4"),
        ("max.message.bytes", "-5"),
        ("min.insync.replicas", "0"),
    ] {
        let outcome = create_outcome(node.bootstrap(), "zz", &[(key, value)]).await;
        assert_eq!(outcome, Err(RDKafkaErrorCode::InvalidConfig), "{key}={value}");
    }
    let listed = runnel_topic(node.bootstrap(), &["list"]);
    assert!(!listed.lines().any(|l| l.trim() == "zz"), "nothing was committed: {listed}");
    assert!(!dir.path().join("zz-0").exists());

    // The same holds for the broker's own settings: a node refuses to start with them.
    node.terminate();
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--set", "log.segment.bytes=20"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run runnel server");
    assert!(!output.status.success(), "log.segment.bytes=20 must be refused at start");
    node.restart();
    create_topic(node.bootstrap(), "ok", 1, &[("segment.bytes", "1048576")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_cannot_open_is_offline_and_every_other_partition_serves() {
    let dir = TempDir::new().unwrap();
    let mut node = Node::start_with_metrics(dir.path(), &[]);
    create_topic(node.bootstrap(), "good", 1, &[]).await;
    create_topic(node.bootstrap(), "bad", 1, &[]).await;
    let sent = messages(5);
    produce(node.bootstrap(), "good", &sent).await;
    produce(node.bootstrap(), "bad", &sent).await;
    node.terminate();

    // A partition folder the node cannot open (here a file in its place; in the field a
    // full file table, a failing disk, a name the file system refuses).
    let bad = dir.path().join("bad-0");
    let kept = dir.path().join("bad-0-kept-aside");
    std::fs::rename(&bad, &kept).unwrap();
    std::fs::write(&bad, b"not a folder").unwrap();

    // Before the fix the node exited at start-up.
    node.restart();
    assert_holds(node.bootstrap(), "good", &sent).await;
    assert_eq!(metric(node.metrics_url(), "runnel_offline_replicas"), 1);
    let described = runnel_topic(node.bootstrap(), &["describe", "bad"]);
    assert!(described.contains("offline 1"), "the replica is reported offline:\n{described}");
    create_topic(node.bootstrap(), "new", 1, &[]).await;
    produce(node.bootstrap(), "new", &sent).await;

    // Once the cause is gone, the next start opens it with its records.
    node.terminate();
    std::fs::remove_file(&bad).unwrap();
    std::fs::rename(&kept, &bad).unwrap();
    node.restart();
    assert_eq!(metric(node.metrics_url(), "runnel_offline_replicas"), 0);
    assert_holds(node.bootstrap(), "bad", &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_metadata_log_deletes_nothing_and_strays_are_moved_aside() {
    let dir = TempDir::new().unwrap();
    let mut node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), "t", 1, &[]).await;
    let sent = messages(10);
    produce(node.bootstrap(), "t", &sent).await;
    node.terminate();
    let before = segment_bytes(&dir.path().join("t-0"));
    assert!(!before.is_empty());

    // The metadata log is lost (a bad disk, an operator's mistake): the node starts with
    // an empty image. Before the fix it deleted every partition folder it found.
    std::fs::remove_dir_all(dir.path().join("__cluster_metadata-0")).unwrap();
    node.restart();
    let names = entries(dir.path());
    assert!(!names.contains(&"t-0".to_string()), "the folder is no longer a live partition: {names:?}");
    let stray = names
        .iter()
        .find(|n| n.starts_with("t-0.") && n.ends_with("-stray"))
        .unwrap_or_else(|| panic!("t-0 moved aside as a stray: {names:?}"));
    assert_eq!(segment_bytes(&dir.path().join(stray)), before, "every byte is kept");
    assert!(node.logged("moved a partition folder aside"), "the operator is told:\n{}", node.log_tail());

    // A new topic of the same name starts empty beside it; the stray stays untouched.
    create_topic(node.bootstrap(), "t", 1, &[]).await;
    assert_eq!(watermarks(node.bootstrap(), "t", 0), (0, 0));
    node.terminate();
    node.restart();
    assert_eq!(segment_bytes(&dir.path().join(stray)), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_name_of_kafkas_longest_length_is_served_and_a_longer_one_refused() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    // 249 characters is Kafka's limit; the folder check against the file system's name
    // limit (unit-tested in `log_dirs`) must let it through on the usual 255-byte limit.
    let long = "x".repeat(249);
    assert_eq!(create_outcome(node.bootstrap(), &long, &[]).await, Ok(long.clone()));
    let too_long = "y".repeat(250);
    assert_eq!(create_outcome(node.bootstrap(), &too_long, &[]).await, Err(RDKafkaErrorCode::InvalidTopic));
    produce(node.bootstrap(), &long, &messages(3)).await;
}
