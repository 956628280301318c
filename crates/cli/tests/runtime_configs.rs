//! Topic settings changed at runtime, through real admin clients: librdkafka's AlterConfigs
//! and confluent-kafka's IncrementalAlterConfigs change a topic on a running node, and the
//! change takes effect at once, with no restart (a lower `retention.bytes` deletes old
//! segments, a lower `max.message.bytes` refuses a larger batch); DescribeConfigs reports
//! the values as DYNAMIC_TOPIC_CONFIG; a bad value is refused with INVALID_CONFIG and
//! changes nothing; the settings survive a restart. DeleteRecords (librdkafka's admin
//! client and `runnel topic delete-records`) moves a partition's start: consumers below it
//! get OFFSET_OUT_OF_RANGE, and the new start survives a kill -9. `runnel produce` and
//! `runnel consume` move records through the command line; CLI errors are one line.

mod support;

use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, AlterConfig, ConfigSource, ResourceSpecifier};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use support::*;
use tempfile::TempDir;

async fn described(bootstrap: &str, topic: &str, name: &str) -> (String, ConfigSource) {
    let admin = admin(bootstrap);
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let resource = results.into_iter().next().unwrap().expect("the topic's configs");
    let entry = resource.entries.into_iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name} described"));
    (entry.value.unwrap_or_default(), entry.source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_settings_change_on_a_running_node_and_take_effect_at_once() {
    let data = TempDir::new().unwrap();
    let mut node = Node::start(data.path(), &["--set", "log.retention.check.interval.ms=100"]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "live", 1, &[("internal.segment.bytes", "20000")]).await;
    let producer = producer(&bootstrap, &[("batch.size", "4096"), ("linger.ms", "0")]);
    let messages: Vec<Msg> = (0..200).map(|i| Msg::new(format!("k{i}"), vec![b'v'; 1000])).collect();
    produce_all(&producer, "live", Some(0), &messages, None).await;
    assert_eq!(watermarks(&bootstrap, "live", 0), (0, 200));

    // AlterConfigs (librdkafka) replaces the topic's overrides: keep the segment size, bound
    // the log at about two segments. Retention deletes the oldest segments without a restart.
    let admin = admin(&bootstrap);
    let change = AlterConfig::new(ResourceSpecifier::Topic("live"))
        .set("internal.segment.bytes", "20000")
        .set("retention.bytes", "40000")
        .set("max.message.bytes", "4000");
    let results = admin.alter_configs([&change], &AdminOptions::new()).await.expect("alter configs");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let low = poll_until(Duration::from_secs(30), Duration::from_millis(100), "retention to delete segments", || {
        let (low, _) = watermarks(&bootstrap, "live", 0);
        (low > 100).then_some(low)
    });
    assert!(low < 200, "the active segment stays");
    assert_eq!(
        described(&bootstrap, "live", "retention.bytes").await,
        ("40000".to_string(), ConfigSource::DynamicTopic)
    );
    // A batch above the new max.message.bytes is refused at once.
    let refused = producer
        .send(
            FutureRecord::<[u8], [u8]>::to("live").partition(0).key(b"big").payload(&vec![b'x'; 8000][..]),
            IO_TIMEOUT,
        )
        .await
        .expect_err("larger than max.message.bytes");
    assert_eq!(refused.0.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge));

    // IncrementalAlterConfigs (confluent-kafka): SET, APPEND to a list, DELETE; a bad value
    // refuses the whole change with INVALID_CONFIG.
    let script = r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigEntry, AlterConfigOpType
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
def change(*entries):
    resource = ConfigResource("topic", "live", incremental_configs=[ConfigEntry(n, v, incremental_operation=op) for n, v, op in entries])
    try:
        admin.incremental_alter_configs([resource])[resource].result(10)
        return "ok"
    except Exception as e:
        return e.args[0].name()
print(change(("segment.bytes", "20", AlterConfigOpType.SET), ("retention.ms", "5000", AlterConfigOpType.SET)))
print(change(("retention.ms", "3600000", AlterConfigOpType.SET), ("cleanup.policy", "compact", AlterConfigOpType.APPEND),
             ("max.message.bytes", None, AlterConfigOpType.DELETE)))
"#;
    let output = Command::new("python3").args(["-c", script, &bootstrap]).output().expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["INVALID_CONFIG", "ok"]);
    assert_eq!(described(&bootstrap, "live", "retention.ms").await.0, "3600000");
    assert_eq!(described(&bootstrap, "live", "cleanup.policy").await.0, "delete,compact");
    assert_eq!(described(&bootstrap, "live", "max.message.bytes").await.1, ConfigSource::Default, "deleted");

    // The CLI: set, describe (sources, and what Runnel does not act on), delete.
    assert_eq!(
        runnel_cli(&bootstrap, &["config", "set", "--topic", "live", "retention.ms=7200000", "preallocate=true"]).1,
        "updated live\n"
    );
    let listing = runnel_cli(&bootstrap, &["config", "describe", "--topic", "live"]).1;
    assert!(listing.contains("retention.ms=7200000  DYNAMIC_TOPIC_CONFIG"), "{listing}");
    assert!(listing.contains("segment.ms=604800000  DEFAULT_CONFIG"), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("preallocate=true") && l.contains("not acted on")), "{listing}");
    let refused = runnel_cli(&bootstrap, &["config", "set", "--topic", "live", "min.cleanable.dirty.ratio=2"]);
    assert!(!refused.0 && refused.1.contains("InvalidConfig"), "{refused:?}");
    assert_eq!(runnel_cli(&bootstrap, &["config", "delete", "--topic", "live", "preallocate"]).1, "updated live\n");
    let topic = runnel_cli(&bootstrap, &["topic", "describe", "live"]).1;
    assert!(topic.contains("  config retention.ms=7200000") && !topic.contains("preallocate"), "{topic}");

    // The settings are in the metadata log: a restart keeps them.
    node.terminate();
    node.restart();
    let bootstrap = node.bootstrap().to_string();
    assert_eq!(
        described(&bootstrap, "live", "retention.bytes").await,
        ("40000".to_string(), ConfigSource::DynamicTopic)
    );
    assert_eq!(described(&bootstrap, "live", "cleanup.policy").await.0, "delete,compact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_and_survives_a_kill() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let data = TempDir::new().unwrap();
    let mut node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "history", 1, &[("internal.segment.bytes", "20000")]).await;
    let producer = producer(&bootstrap, &[("batch.size", "4096"), ("linger.ms", "0")]);
    let messages: Vec<Msg> = (0..200).map(|i| Msg::new(format!("k{i}"), vec![b'v'; 1000])).collect();
    produce_all(&producer, "history", Some(0), &messages, None).await;
    let segments = |node: &Node| {
        std::fs::read_dir(node.data_dir().join("history-0"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".log"))
            .count()
    };
    let before = segments(&node);

    // librdkafka's admin client: up to offset 120.
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset("history", 0, Offset::Offset(120)).unwrap();
    let deleted = admin(&bootstrap).delete_records(&offsets, &AdminOptions::new()).await.expect("delete records");
    assert_eq!(deleted.find_partition("history", 0).unwrap().offset(), Offset::Offset(120), "the low watermark");
    assert_eq!(watermarks(&bootstrap, "history", 0), (120, 200));
    assert!(segments(&node) < before, "segments wholly below the new start are gone");
    // A consumer below the start: OFFSET_OUT_OF_RANGE (with no reset policy to hide it).
    let consumer: BaseConsumer = assign_only_config(&bootstrap).set("auto.offset.reset", "error").create().unwrap();
    let mut from = TopicPartitionList::new();
    from.add_partition_offset("history", 0, Offset::Offset(50)).unwrap();
    consumer.assign(&from).unwrap();
    let error = poll_until(Duration::from_secs(30), Duration::from_millis(10), "an out-of-range error", || {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    });
    // librdkafka reports the broker's OFFSET_OUT_OF_RANGE under `auto.offset.reset=error` so.
    assert!(error.to_string().contains("AutoOffsetReset"), "{error}");
    // Beyond the high watermark: refused.
    let too_far =
        runnel_cli(&bootstrap, &["topic", "delete-records", "history", "--partition", "0", "--offset", "500"]);
    assert!(!too_far.0 && too_far.1.contains("OffsetOutOfRange"), "{too_far:?}");
    // The CLI, up to the high watermark (-1).
    let all = runnel_cli(&bootstrap, &["topic", "delete-records", "history", "--partition", "0", "--offset", "-1"]);
    assert_eq!(all, (true, "history-0 now starts at offset 200\n".to_string()));
    // A compact-only topic: its records are the cleaner's to delete (Kafka's rule).
    create_topic(&bootstrap, "table", 1, &[("cleanup.policy", "compact")]).await;
    let refused = runnel_cli(&bootstrap, &["topic", "delete-records", "table", "--partition", "0", "--offset", "0"]);
    assert!(!refused.0 && refused.1.contains("PolicyViolation"), "{refused:?}");
    // Every partition of a topic at once.
    create_topic(&bootstrap, "wide", 3, &[]).await;
    for p in 0..3 {
        produce_all(&producer, "wide", Some(p), &messages[..10], None).await;
    }
    let every = runnel_cli(&bootstrap, &["topic", "delete-records", "wide", "--offset", "-1"]);
    let expected = "wide-0 now starts at offset 10\nwide-1 now starts at offset 10\nwide-2 now starts at offset 10\n";
    assert_eq!(every, (true, expected.to_string()));
    // A kill -9 right after: the start is in the checkpoint.
    node.kill9();
    node.restart();
    assert_eq!(watermarks(node.bootstrap(), "history", 0), (200, 200));
}

/// On three nodes: a topic change made through one node reaches every replica, and records
/// deleted on the leader stay deleted when another replica takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_deleted_records_hold_after_a_leader_change() {
    use rdkafka::{Offset, TopicPartitionList};
    use support::cluster::*;
    let args = [FAST_FAILURE_DETECTION, &["--set", "log.retention.check.interval.ms=100"]].concat();
    let mut cluster = three_agreed_nodes(&args, Duration::from_secs(60)).await;
    create_topic_with_configs_via(cluster.kafka_addr(1), "shared", 1, 3, &[("internal.segment.bytes", "20000")])
        .await
        .unwrap();
    let bootstrap = [1, 2, 3].map(|id| cluster.kafka_addr(id).to_string()).join(",");
    let leader = eventually(Duration::from_secs(60), "three replicas in sync", || async {
        let view = cluster.view(1).await?;
        let p = view.topic("shared").ok_or("topic missing")?.partitions[0].clone();
        if p.isr.len() == 3 {
            Ok(p.leader)
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    let producer = producer(&bootstrap, &[("acks", "all"), ("batch.size", "4096"), ("linger.ms", "0")]);
    let messages: Vec<Msg> = (0..200).map(|i| Msg::new(format!("k{i}"), vec![b'v'; 500])).collect();
    produce_all(&producer, "shared", Some(0), &messages, None).await;
    // Through a node that does not lead the partition.
    let via = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let change = AlterConfig::new(ResourceSpecifier::Topic("shared")).set("max.message.bytes", "2000");
    let results = admin(cluster.kafka_addr(via)).alter_configs([&change], &AdminOptions::new()).await.unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset("shared", 0, Offset::Offset(100)).unwrap();
    admin(&bootstrap).delete_records(&offsets, &AdminOptions::new()).await.expect("delete records");
    // Every follower takes the new start from its next fetch, and its retention pass then
    // deletes the segments below it; then the leader goes.
    eventually(Duration::from_secs(30), "followers to follow the log start", || async {
        for id in [1, 2, 3].into_iter().filter(|id| *id != leader) {
            let first = cluster.node(id).data_dir().join("shared-0").join("00000000000000000000.log");
            if first.exists() {
                return Err(format!("node {id} still has its first segment"));
            }
        }
        Ok(())
    })
    .await;
    cluster.kill9(leader);
    let survivors: Vec<i32> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let bootstrap = survivors.iter().map(|id| cluster.kafka_addr(*id).to_string()).collect::<Vec<_>>().join(",");
    let (low, high) = eventually(Duration::from_secs(60), "a new leader with the deleted start", || async {
        use rdkafka::consumer::Consumer;
        let consumer = base_consumer(&bootstrap);
        let (low, high) =
            tokio::task::block_in_place(|| consumer.fetch_watermarks("shared", 0, Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
        if low == 100 {
            Ok((low, high))
        } else {
            Err(format!("low watermark {low}"))
        }
    })
    .await;
    assert_eq!((low, high), (100, 200));
    let survivor_producer = support::producer(&bootstrap, &[("acks", "all")]);
    let refused = survivor_producer
        .send(
            FutureRecord::<[u8], [u8]>::to("shared").partition(0).key(b"big").payload(&vec![b'x'; 5000][..]),
            IO_TIMEOUT,
        )
        .await
        .expect_err("larger than the new max.message.bytes on the new leader");
    assert_eq!(refused.0.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge));

    // A cluster-wide broker default set through one survivor holds at once on the new
    // leader, whichever node that is: min.insync.replicas=3 with two replicas left.
    let (ok, out) =
        runnel_cli(cluster.kafka_addr(survivors[0]), &["config", "set", "--broker-default", "min.insync.replicas=3"]);
    assert!(ok, "{out}");
    let strict = support::producer(&bootstrap, &[("acks", "all"), ("retries", "0"), ("message.timeout.ms", "10000")]);
    eventually(Duration::from_secs(30), "acks=all refused below the new default", || async {
        let sent = strict
            .send(FutureRecord::<[u8], [u8]>::to("shared").partition(0).key(b"k").payload(b"v"), IO_TIMEOUT)
            .await;
        match sent {
            Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NotEnoughReplicas) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let other = survivors[1];
    let described = described(cluster.kafka_addr(other), "shared", "min.insync.replicas").await;
    assert_eq!(described, ("3".to_string(), ConfigSource::DynamicDefaultBroker));
}

/// A CLI error is one line saying what went wrong and what to do, even with
/// `RUST_BACKTRACE=1`, and the exit status is 1.
#[test]
fn a_cli_error_is_one_line_without_a_backtrace() {
    let port = support::cluster::free_ports(1)[0];
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["topic", "list", "--bootstrap", &format!("127.0.0.1:{port}")])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: connecting to") && stderr.contains("--bootstrap"), "{stderr}");
}

/// `runnel produce` and `runnel consume`: keys, headers, kcat formats, JSON lines, starts
/// by offset and timestamp, a group's commits, and the end of what was there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_produces_and_consumes_records() {
    use std::io::Write;
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "lines", 1, &[]).await;
    let produce = |input: &str, extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["produce", "lines", "--bootstrap", &bootstrap])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    assert_eq!(
        produce("a:1\nb:2\nc:3\n", &["--key-separator", ":", "--header", "src=cli"]),
        (true, "produced 3 records to lines\n".to_string())
    );
    let before_last = now_ms();
    assert_eq!(produce("x;y", &["--delimiter", ";", "--key", "k"]).1, "produced 2 records to lines\n");
    let bad = produce("no separator\n", &["--key-separator", ":"]);
    assert!(!bad.0 && bad.1.contains("no key separator"), "{bad:?}");
    // What librdkafka reads back: the keys, values and headers the CLI sent.
    let read = support::cluster::read_back(&bootstrap, "lines", 1, 5).await;
    let pairs: Vec<(Option<Vec<u8>>, Vec<u8>)> =
        read.iter().map(|r| (r.msg.key.clone(), r.msg.value.clone())).collect();
    assert_eq!(pairs[0], (Some(b"a".to_vec()), b"1".to_vec()));
    assert_eq!(pairs[4], (Some(b"k".to_vec()), b"y".to_vec()));
    assert_eq!(read[0].msg.headers, [("src".to_string(), Some(b"cli".to_vec()))]);

    let consume = |extra: &[&str]| runnel_cli(&bootstrap, &[&["consume", "lines"][..], extra].concat());
    assert_eq!(
        consume(&["--format", "%o %k=%v [%h]\\n"]).1,
        "0 a=1 [src=cli]\n1 b=2 [src=cli]\n2 c=3 [src=cli]\n3 k=x []\n4 k=y []\n"
    );
    assert_eq!(consume(&["--offset", "3"]).1, "x\ny\n");
    assert_eq!(consume(&["--offset", &format!("@{before_last}"), "--format", "%k%v"]).1, "kxky");
    let json = consume(&["--output", "json", "--count", "1"]).1;
    let value: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (value["key"].as_str(), value["value"].as_str(), value["offset"].as_i64()),
        (Some("a"), Some("1"), Some(0))
    );
    assert_eq!(value["headers"]["src"], "cli");
    // A group reads from its committed offsets: the second run starts after the first.
    assert_eq!(consume(&["--group", "readers", "--count", "2"]).1, "1\n2\n");
    assert_eq!(consume(&["--group", "readers", "--count", "1"]).1, "3\n");
    // --follow waits for records written after it started (here until --count of them).
    let follower = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["consume", "lines", "--offset", "end", "--follow", "--count", "2", "--bootstrap", &bootstrap])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Records keep coming until the follower has seen two (it may start after the first).
    let waited = std::thread::spawn(move || follower.wait_with_output().unwrap());
    let mut sent = 0;
    while !waited.is_finished() {
        assert!(sent < 200, "the follower never saw two new records");
        produce(&format!("late-{sent}\n"), &[]);
        sent += 1;
    }
    let followed = String::from_utf8(waited.join().unwrap().stdout).unwrap();
    assert_eq!(followed.lines().count(), 2, "{followed}");
    assert!(followed.lines().all(|l| l.starts_with("late-")), "{followed}");
    let missing = runnel_cli(&bootstrap, &["consume", "nosuch"]);
    assert!(!missing.0 && missing.1.contains("does not exist"), "{missing:?}");
}

/// DescribeTopicPartitions (KIP-966) pages through every partition of every topic with a
/// cursor, in name order, and names an unknown topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    use kafka_protocol::messages::{DescribeTopicPartitionsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &[]);
    let bootstrap = node.bootstrap().to_string();
    for (name, partitions) in [("b", 5), ("a", 3), ("c", 1)] {
        create_topic(&bootstrap, name, partitions, &[]).await;
    }
    let mut conn = runnel_client::Connection::connect(&bootstrap).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let request =
            DescribeTopicPartitionsRequest::default().with_response_partition_limit(4).with_cursor(cursor.take());
        let response = conn.send(&request, 0).await.unwrap();
        pages += 1;
        for topic in &response.topics {
            assert_eq!(topic.error_code, 0);
            for p in &topic.partitions {
                assert_eq!((p.leader_id.0, p.isr_nodes.len()), (1, 1));
                seen.push((topic.name.as_ref().unwrap().to_string(), p.partition_index));
            }
        }
        match response.next_cursor {
            Some(next) => {
                cursor =
                    Some(Cursor::default().with_topic_name(next.topic_name).with_partition_index(next.partition_index))
            }
            None => break,
        }
        assert!(pages < 10);
    }
    let expected: Vec<(String, i32)> =
        [("a", 3), ("b", 5), ("c", 1)].iter().flat_map(|(t, n)| (0..*n).map(|p| (t.to_string(), p))).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3, "9 partitions, 4 a page");
    let named = DescribeTopicPartitionsRequest::default()
        .with_response_partition_limit(100)
        .with_topics(vec![TopicRequest::default().with_name(TopicName(StrBytes::from_static_str("nosuch")))]);
    let response = conn.send(&named, 0).await.unwrap();
    assert_eq!(response.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// Shell completions: bash takes the script, and every shell's names the subcommands.
#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    let script = |shell: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_runnel")).args(["completion", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        String::from_utf8(output.stdout).unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let text = script(shell);
        assert!(text.contains("delete-records") && text.contains("consume"), "{shell}: subcommands named");
    }
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("runnel.bash");
    std::fs::write(&path, script("bash")).unwrap();
    let registered = Command::new("bash")
        .args(["-c", &format!("source {} && complete -p runnel", path.display())])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&registered.stdout).contains("-F _runnel runnel"), "{registered:?}");
}

/// `--output json` on the list and describe commands: one JSON document each, with the
/// fields the text shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_commands_print_json() {
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &["--set", "group.initial.rebalance.delay.ms=0"]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "js", 2, &[("retention.ms", "123456")]).await;
    let json = |args: &[&str]| -> serde_json::Value {
        let (ok, text) = runnel_cli(&bootstrap, &[args, &["--output", "json"]].concat());
        assert!(ok, "{args:?}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    };
    let topics = json(&["topic", "list"]);
    assert!(topics["topics"].as_array().unwrap().iter().any(|t| t["name"] == "js" && t["partitions"] == 2));
    let topic = json(&["topic", "describe", "js"]);
    assert_eq!(topic["partitions"][1]["leader"], 1);
    assert_eq!(topic["partitions"][0]["isr"], serde_json::json!([1]));
    assert_eq!(topic["configs"]["retention.ms"], "123456");
    let configs = json(&["config", "describe", "--topic", "js"]);
    let retention = configs["configs"].as_array().unwrap().iter().find(|c| c["name"] == "retention.ms").unwrap();
    assert_eq!(
        (retention["value"].as_str(), retention["source"].as_str()),
        (Some("123456"), Some("DYNAMIC_TOPIC_CONFIG"))
    );
    let preallocate = configs["configs"].as_array().unwrap().iter().find(|c| c["name"] == "preallocate").unwrap();
    assert_eq!(preallocate["acted_on"], false);
    let cluster = json(&["cluster", "info"]);
    assert_eq!(cluster["nodes"][0]["roles"], serde_json::json!(["broker", "controller"]));
    assert_eq!(json(&["group", "list"])["groups"], serde_json::json!([]));
    assert_eq!(json(&["topic", "reassignments"])["reassignments"], serde_json::json!([]));
    // A group that committed offset 1 of js-0 (through the CLI's consume).
    let producer = producer(&bootstrap, &[]);
    produce_all(&producer, "js", Some(0), &[Msg::new("k", "v"), Msg::new("k", "w")], None).await;
    let consumed = runnel_cli(&bootstrap, &["consume", "js", "--partition", "0", "--group", "g1", "--count", "1"]);
    assert!(consumed.0, "{consumed:?}");
    let group = json(&["group", "describe", "g1"]);
    let offsets = group["offsets"].as_array().unwrap();
    let p0 = offsets.iter().find(|o| o["topic"] == "js" && o["partition"] == 0).unwrap();
    assert_eq!(
        (p0["current_offset"].as_i64(), p0["log_end_offset"].as_i64(), p0["lag"].as_i64()),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!(json(&["user", "scram", "list"])["users"], serde_json::json!([]));
}

async fn described_broker(bootstrap: &str, id: i32, name: &str) -> (Option<String>, ConfigSource, bool, bool) {
    let admin = admin(bootstrap);
    let results =
        admin.describe_configs([&ResourceSpecifier::Broker(id)], &AdminOptions::new()).await.expect("describe configs");
    let resource = results.into_iter().next().unwrap().expect("the broker's configs");
    let entry = resource.entries.into_iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name} described"));
    (entry.value, entry.source, entry.is_read_only, entry.is_sensitive)
}

/// Broker settings at runtime: the cluster-wide default and one node's own value, set with
/// the CLI and librdkafka's AlterConfigs, take effect at once on topics without their own
/// value (retention deletes segments, a lower `message.max.bytes` refuses a batch);
/// DescribeConfigs reports each level's source and synonyms (confluent-kafka), keeps
/// passwords hidden, refuses static settings, and everything survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_settings_change_at_runtime_with_kafkas_sources_and_synonyms() {
    let data = TempDir::new().unwrap();
    let static_settings = [
        "--set",
        "log.retention.check.interval.ms=100",
        "--set",
        "log.retention.hours=200",
        "--set",
        "ssl.key.password=hunter2",
    ];
    let mut node = Node::start(data.path(), &static_settings);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "defaults", 1, &[("internal.segment.bytes", "20000")]).await;
    let producer = producer(&bootstrap, &[("batch.size", "4096"), ("linger.ms", "0")]);
    let messages: Vec<Msg> = (0..200).map(|i| Msg::new(format!("k{i}"), vec![b'v'; 1000])).collect();
    produce_all(&producer, "defaults", Some(0), &messages, None).await;

    // The cluster-wide default bounds every topic without its own retention.bytes.
    let (ok, out) = runnel_cli(&bootstrap, &["config", "set", "--broker-default", "log.retention.bytes=40000"]);
    assert!(ok, "{out}");
    poll_until(Duration::from_secs(30), Duration::from_millis(100), "retention to delete segments", || {
        (watermarks(&bootstrap, "defaults", 0).0 > 100).then_some(())
    });
    // This node's own value, through librdkafka: a larger batch is refused at once.
    let change = AlterConfig::new(ResourceSpecifier::Broker(1)).set("message.max.bytes", "4000");
    let results = admin(&bootstrap).alter_configs([&change], &AdminOptions::new()).await.expect("alter configs");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let big = FutureRecord::<[u8], [u8]>::to("defaults").partition(0).key(b"big").payload(&[b'x'; 8000][..]);
    let refused = producer.send(big, IO_TIMEOUT).await.expect_err("larger than message.max.bytes");
    assert_eq!(refused.0.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge));
    // KIP-937: a CreateTime more than message.timestamp.after.max.ms (an hour) ahead.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let ahead =
        FutureRecord::<[u8], [u8]>::to("defaults").partition(0).key(b"t").payload(b"v").timestamp(now + 7_200_000);
    let refused = producer.send(ahead, IO_TIMEOUT).await.expect_err("two hours ahead");
    assert_eq!(refused.0.rdkafka_error_code(), Some(RDKafkaErrorCode::InvalidTimestamp));

    let check_sources = |bootstrap: String| async move {
        assert_eq!(
            described_broker(&bootstrap, 1, "message.max.bytes").await,
            (Some("4000".into()), ConfigSource::DynamicBroker, false, false)
        );
        assert_eq!(described_broker(&bootstrap, 1, "log.retention.bytes").await.1, ConfigSource::DynamicDefaultBroker);
        assert_eq!(described_broker(&bootstrap, 1, "log.retention.ms").await.1, ConfigSource::Default);
        assert!(described_broker(&bootstrap, 1, "node.id").await.2, "static settings are read-only");
        let password = described_broker(&bootstrap, 1, "ssl.key.password").await;
        assert_eq!((password.0, password.3), (None, true), "a password is never shown");
        assert_eq!(
            described(&bootstrap, "defaults", "retention.bytes").await,
            ("40000".into(), ConfigSource::DynamicDefaultBroker)
        );
        assert_eq!(
            described(&bootstrap, "defaults", "max.message.bytes").await,
            ("4000".into(), ConfigSource::DynamicBroker)
        );
        assert_eq!(
            described(&bootstrap, "defaults", "retention.ms").await,
            ("720000000".into(), ConfigSource::StaticBroker)
        );
    };
    check_sources(bootstrap.clone()).await;

    // Synonyms, most precedent first, as confluent-kafka reads them.
    let script = r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
resource = ConfigResource("topic", "defaults")
entries = admin.describe_configs([resource])[resource].result(10)
for name in ("retention.ms", "retention.bytes"):
    entry = entries[name]
    print(name, entry.value, int(entry.source), [(s.name, s.value, int(s.source)) for s in entry.synonyms.values()])
"#;
    let output = Command::new("python3").args(["-c", script, &bootstrap]).output().expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    // Sources by Kafka's numbers: 3 dynamic default, 4 static, 5 default. (The client keeps
    // synonyms in a map by name, so of two levels of one name it shows the last.)
    let expected = [
        "retention.ms 720000000 4 [('log.retention.hours', '200', 4), ('log.retention.ms', '604800000', 5)]",
        "retention.bytes 40000 3 [('log.retention.bytes', '-1', 5)]",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);

    // Static settings and bad values are refused, and change nothing.
    let (ok, out) = runnel_cli(&bootstrap, &["config", "set", "--broker", "1", "node.id=5"]);
    assert!(!ok && out.contains("cannot be changed at runtime"), "{out}");
    let (ok, out) = runnel_cli(&bootstrap, &["config", "set", "--broker-default", "log.segment.bytes=20"]);
    assert!(!ok && out.contains("InvalidRequest"), "{out}");
    let listing = runnel_cli(&bootstrap, &["config", "describe", "--broker", "1"]).1;
    assert!(listing.contains("message.max.bytes=4000  DYNAMIC_BROKER_CONFIG"), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("num.io.threads=8") && l.contains("not acted on")), "{listing}");
    let defaults = runnel_cli(&bootstrap, &["config", "describe", "--broker-default"]).1;
    assert_eq!(defaults.trim(), "log.retention.bytes=40000  DYNAMIC_DEFAULT_BROKER_CONFIG");

    // The values are in the metadata log: a restart runs with them.
    node.terminate();
    node.restart();
    let bootstrap = node.bootstrap().to_string();
    check_sources(bootstrap.clone()).await;
    let (ok, out) = runnel_cli(&bootstrap, &["config", "delete", "--broker", "1", "message.max.bytes"]);
    assert!(ok, "{out}");
    assert_eq!(described(&bootstrap, "defaults", "max.message.bytes").await.1, ConfigSource::Default);
}

/// `max.connections` is a dynamic setting: raised at runtime, a node that refused a
/// connection accepts the next one, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_changes_at_runtime() {
    use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::{ApiVersionsRequest, IncrementalAlterConfigsRequest};
    use kafka_protocol::protocol::StrBytes;
    use runnel_client::Connection;

    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &["--set", "max.connections=2"]);
    let bootstrap = node.bootstrap().to_string();
    let versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("t"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let mut held = Connection::connect(&bootstrap).await.expect("first");
    held.send(&versions, 3).await.expect("the first connection is served");
    let mut second = Connection::connect(&bootstrap).await.expect("second");
    second.send(&versions, 3).await.expect("the second connection is served");
    let answered = |mut conn: Connection| {
        let versions = versions.clone();
        async move { conn.send(&versions, 3).await.is_ok() }
    };
    let third = Connection::connect(&bootstrap).await.expect("the socket connects");
    assert!(!answered(third).await, "a third connection is closed at max.connections=2");

    let raise = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("1"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(StrBytes::from_static_str("max.connections"))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_static_str("3")))])]);
    let response = held.send(&raise, 1).await.expect("alter");
    assert_eq!(response.responses[0].error_code, 0, "{:?}", response.responses[0].error_message);
    let third = Connection::connect(&bootstrap).await.expect("the socket connects");
    assert!(answered(third).await, "served once the bound was raised");
}
