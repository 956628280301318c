//! The metrics endpoint under a known workload (issue 20, first part): per-topic bytes and
//! messages in equal what was appended, bytes out cover what a consumer read, per-partition
//! gauges show the log, every served request is in the per-API latency histogram, the
//! whole output parses as Prometheus text, and `/health` answers 200 once the node is
//! registered.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use support::*;
use tempfile::TempDir;

/// `GET path` on the metrics listener: (status line, body).
fn get(metrics_url: &str, path: &str) -> (String, String) {
    let (head, body) = get_accepting(metrics_url, path, "*/*");
    (head.lines().next().unwrap().to_string(), body)
}

/// `GET path` with an `Accept` header: (the response's head, its body).
fn get_accepting(metrics_url: &str, path: &str, accept: &str) -> (String, String) {
    let addr = metrics_url.strip_prefix("http://").unwrap().split('/').next().unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// The requests of `api` (all versions) the latency histogram counted, in `body`.
fn timed_requests(body: &str, api: &str) -> u64 {
    let prefix = format!("runnel_request_seconds_count{{api=\"{api}\"");
    body.lines().filter(|l| l.starts_with(&prefix)).map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap()).sum()
}

/// Every sample line is `name{labels} value` with a valid name and a number; every sample
/// belongs to a family announced by a `# TYPE` line.
fn check_prometheus_text(body: &str) {
    let mut families = std::collections::BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok(), "value of {line}");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "name of {line}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "labels of {line}");
        }
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(families.contains(name) || families.contains(family), "no # TYPE for {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_shows_in_the_metrics() {
    let data = TempDir::new().unwrap();
    let node = Node::start_with_metrics(data.path(), &[]);
    let url = node.metrics_url().to_string();
    assert_eq!(get(&url, "/health").0, "HTTP/1.1 200 OK", "registered: ready");
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "m", 1, &[]).await;
    let producer = producer(&bootstrap, &[("linger.ms", "5")]);
    let messages: Vec<Msg> = (0..2_000).map(|i| Msg::new(format!("k{i}"), format!("value {i}").repeat(20))).collect();
    produce_all(&producer, "m", Some(0), &messages, None).await;

    let partition = |name: &str| metric(&url, &format!("{name}{{topic=\"m\",partition=\"0\"}}"));
    assert_eq!(partition("runnel_partition_high_watermark"), 2_000);
    assert_eq!(partition("runnel_partition_log_end_offset"), 2_000);
    assert_eq!(partition("runnel_partition_log_start_offset"), 0);
    assert_eq!(partition("runnel_partition_leader"), 1);
    assert_eq!(partition("runnel_partition_under_replicated"), 0);
    let size = partition("runnel_partition_log_size_bytes");
    assert_eq!(metric(&url, "runnel_topic_bytes_in_total{topic=\"m\"}"), size, "bytes in = bytes appended");
    assert_eq!(metric(&url, "runnel_topic_messages_in_total{topic=\"m\"}"), 2_000);

    let consumer = consumer(&bootstrap, &[("auto.offset.reset", "earliest"), ("group.id", "g")]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset("m", 0, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    for _ in 0..2_000 {
        tokio::time::timeout(IO_TIMEOUT, consumer.recv()).await.expect("in time").expect("a record");
    }
    assert!(metric(&url, "runnel_topic_bytes_out_total{topic=\"m\"}") >= size, "the consumer read the whole log");
    // The group commits 1500 of 2000: its lag is 500.
    let mut committed = rdkafka::TopicPartitionList::new();
    committed.add_partition_offset("m", 0, rdkafka::Offset::Offset(1_500)).unwrap();
    consumer.commit(&committed, rdkafka::consumer::CommitMode::Sync).unwrap();
    let group = |name: &str| metric(&url, &format!("{name}{{group=\"g\",topic=\"m\",partition=\"0\"}}"));
    assert_eq!(group("runnel_group_committed_offset"), 1_500);
    assert_eq!(group("runnel_group_lag"), 500, "lag = high watermark - committed offset");
    // A subscribing consumer joins its group: one member, Stable, a generation of 1 or more.
    let member = support::consumer(&bootstrap, &[("auto.offset.reset", "earliest"), ("group.id", "sub")]);
    member.subscribe(&["m"]).unwrap();
    tokio::time::timeout(IO_TIMEOUT, member.recv()).await.expect("in time").expect("a record");
    assert_eq!(metric(&url, "runnel_group_members{group=\"sub\"}"), 1);
    assert_eq!(metric(&url, "runnel_group_state{group=\"sub\",state=\"Stable\"}"), 1);
    assert!(metric(&url, "runnel_group_generation{group=\"sub\"}") >= 1);
    assert_eq!(metric(&url, "runnel_registered_brokers"), 1);
    assert!(metric(&url, "runnel_metadata_commit_seconds_count") >= 1, "creating the topic was a commit");
    assert_eq!(metric(&url, "runnel_fenced_brokers"), 0);
    assert!(metric(&url, "process_open_fds") > 0 && metric(&url, "process_resident_memory_bytes") > 1 << 20);

    assert!(metric(&url, "runnel_connections{listener=\"PLAINTEXT\"}") >= 1, "the clients' connections are open");
    assert!(metric(&url, "runnel_topic_produce_requests_total{topic=\"m\"}") > 0);
    assert_eq!(metric(&url, "runnel_topic_produce_failures_total{topic=\"m\"}"), 0);
    assert!(metric(&url, "runnel_topic_fetch_requests_total{topic=\"m\"}") > 0);
    // Errors are counted by API and Kafka's error name: Metadata for a topic that does not
    // exist (and may not be created) answers UNKNOWN_TOPIC_OR_PARTITION.
    let unknown = "runnel_request_errors_total{api=\"Metadata\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"}";
    let mut conn = runnel_client::Connection::connect(&bootstrap).await.unwrap();
    let request = kafka_protocol::messages::MetadataRequest::default()
        .with_topics(Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
            Some(kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_static_str("nowhere"))),
        )]))
        .with_allow_auto_topic_creation(false);
    let answer = conn.send(&request, 12).await.unwrap();
    assert_eq!(answer.topics[0].error_code, 3);
    assert_eq!(metric(&url, unknown), 1);
    let (status, body) = get(&url, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    check_prometheus_text(&body);
    // OpenMetrics when asked for.
    let (head, open) = get_accepting(&url, "/metrics", "application/openmetrics-text; version=1.0.0");
    assert!(head.contains("content-type: application/openmetrics-text; version=1.0.0"), "{head}");
    assert!(open.ends_with("# EOF\n") && open.contains("# TYPE runnel_requests counter\n"));
    assert!(timed_requests(&body, "Produce") > 0, "Produce requests are timed");
    assert!(timed_requests(&body, "Fetch") > 0, "Fetch requests are timed");
    // The split: the consumer's long polls waited (remote time), every request was handled
    // (local time), and the parts add up to the total.
    let fetch_sum = |family: &str| seconds(&body, &format!("{family}_sum{{api=\"Fetch\""));
    assert!(fetch_sum("runnel_request_remote_seconds") > 0.0, "long polls count as remote time");
    assert!(fetch_sum("runnel_request_local_seconds") > 0.0);
    let parts: f64 = ["queue", "local", "remote", "send"]
        .iter()
        .map(|part| fetch_sum(&format!("runnel_request_{part}_seconds")))
        .sum();
    let total = fetch_sum("runnel_request_seconds");
    assert!((parts - total).abs() <= total * 0.01 + 1e-3, "parts {parts} vs total {total}");
}

/// The sum of the values of the samples whose series starts with `prefix`.
fn seconds(body: &str, prefix: &str) -> f64 {
    body.lines().filter(|l| l.starts_with(prefix)).map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap()).sum()
}

/// On three nodes: the leader's under-replicated flag goes to 1 when a follower dies and
/// back to 0 once it has caught up again; every node counts the fenced broker meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_replication_shows_while_a_follower_is_down() {
    use support::cluster::*;
    let mut cluster = three_agreed_nodes(FAST_FAILURE_DETECTION, Duration::from_secs(60)).await;
    create_topic_via(cluster.kafka_addr(1), "r", 1, 2).await.unwrap();
    let p = eventually(Duration::from_secs(60), "both replicas in sync", || async {
        let view = cluster.view(1).await?;
        let p = view.topic("r").ok_or("no topic yet")?.partitions[0].clone();
        (p.isr.len() == 2).then_some(p.clone()).ok_or(format!("{p:?}"))
    })
    .await;
    let follower = *p.replicas.iter().find(|id| **id != p.leader).unwrap();
    let leader_url = cluster.node(p.leader).metrics_url().to_string();
    // Every node knows the quorum's leader and applies the metadata log; the quorum leader
    // reports each member's progress.
    let quorum_leader = metric(&leader_url, "runnel_quorum_leader");
    assert!([1, 2, 3].contains(&(quorum_leader as i32)), "{quorum_leader}");
    let quorum_url = cluster.node(quorum_leader as i32).metrics_url().to_string();
    for id in [1, 2, 3] {
        assert!(metric(cluster.node(id).metrics_url(), "runnel_quorum_last_applied_index") > 0);
        assert!(metric(&quorum_url, &format!("runnel_quorum_replicated_index{{node=\"{id}\"}}")) > 0);
    }
    let under = |url: &str| metric(url, "runnel_partition_under_replicated{topic=\"r\",partition=\"0\"}");
    assert_eq!(under(&leader_url), 0);
    cluster.kill9(follower);
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "the partition under-replicated", || {
        (under(&leader_url) == 1).then_some(())
    });
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "the dead broker fenced", || {
        (metric(&leader_url, "runnel_fenced_brokers") == 1).then_some(())
    });
    let elections = metric(&leader_url, "runnel_leader_elections_total");
    cluster.restart(&[follower]);
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "the follower back in sync", || {
        (under(&leader_url) == 0).then_some(())
    });
    // Leadership moves to the other replica when the leader goes: one more election.
    cluster.kill9(p.leader);
    let survivor_url = cluster.node(follower).metrics_url().to_string();
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "an election counted", || {
        (metric(&survivor_url, "runnel_leader_elections_total") > elections).then_some(())
    });
    assert_eq!(metric(&survivor_url, "runnel_unclean_leader_elections_total"), 0, "the new leader was in sync");
}

/// `--log-format json`: every line the node logs is a JSON object, and with
/// `request.log.slow.ms` a request that takes that long (here a consumer's long poll on an
/// empty partition) is logged with a request id, its API and its client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_slow_requests() {
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &["--log-format", "json", "--set", "request.log.slow.ms=200"]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "quiet", 1, &[]).await;
    let consumer = consumer(&bootstrap, &[("auto.offset.reset", "earliest"), ("fetch.wait.max.ms", "400")]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset("quiet", 0, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let slow = poll_until(Duration::from_secs(30), Duration::from_millis(100), "a slow Fetch logged", || {
        // librdkafka's fetcher long-polls on its own once the partition is assigned.
        node.logged_lines("slow request").into_iter().find(|line| line.contains("\"Fetch\""))
    });
    let event: serde_json::Value = serde_json::from_str(&slow).unwrap_or_else(|e| panic!("{e}: {slow}"));
    let fields = &event["fields"];
    assert_eq!(fields["api"], "Fetch");
    assert!(fields["request_id"].as_u64().is_some_and(|id| id > 0), "{event}");
    assert!(fields["elapsed_ms"].as_u64().is_some_and(|ms| ms >= 200), "{event}");
    assert!(fields["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:")), "{event}");
    for line in node.logged_lines("").iter().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not JSON: {line}");
    }
}
