//! Operator tools on a three-node cluster: ElectLeaders gives a restarted broker back the
//! leadership it prefers (and says when no election is needed), DescribeLogDirs lists what
//! a node hosts with its sizes, and `runnel topic describe` shows leader, replicas, ISR and
//! offline replicas per partition.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, ElectLeadersRequest, ElectLeadersResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;
use support::cluster::*;
use support::*;

/// Replicas may take this long to converge after a write, a kill or a restart.
const CONVERGE: Duration = Duration::from_secs(60);

/// No automatic preferred leader election: the test asks for it and must not race the
/// controller doing it by itself.
const NO_AUTO_REBALANCE: &[&str] = &["--set", "auto.leader.rebalance.enable=false"];

const TOPIC: &str = "ops";
const PARTITIONS: i32 = 3;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ELECTION_NOT_NEEDED: i16 = 84;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Three combined nodes, once every node lists all three brokers.
async fn three_nodes() -> Cluster {
    three_agreed_nodes(&[FAST_FAILURE_DETECTION, NO_AUTO_REBALANCE].concat(), CONVERGE).await
}

/// Waits until every node in `ids` lists every partition of the topic with a leader and
/// `isr_len` in-sync replicas, the same on every node, and `check` accepts it; returns it.
async fn settled(
    cluster: &Cluster,
    ids: &[i32],
    isr_len: usize,
    what: &str,
    check: impl Fn(&TopicView) -> Result<(), String>,
) -> TopicView {
    eprintln!("waiting for {what}");
    topic_settled(cluster, ids, TOPIC, CONVERGE, |p| p.isr.len() == isr_len, check).await
}

/// Sends ElectLeaders to `addr`; returns each partition's error code by (topic, partition).
async fn elect(
    addr: &str,
    version: i16,
    election_type: i8,
    partitions: Option<&[(&str, &[i32])]>,
) -> BTreeMap<(String, i32), i16> {
    let topic_partitions = partitions.map(|ps| {
        ps.iter()
            .map(|(t, p)| TopicPartitions::default().with_topic(topic_name(t)).with_partitions(p.to_vec()))
            .collect()
    });
    let mut request = ElectLeadersRequest::default().with_topic_partitions(topic_partitions).with_timeout_ms(10_000);
    if version >= 1 {
        request = request.with_election_type(election_type);
    }
    let mut conn = Connection::connect(addr).await.expect("connect");
    let response: ElectLeadersResponse = conn.send(&request, version).await.expect("ElectLeaders response");
    assert_eq!(response.error_code, NONE, "top-level error");
    let mut results = BTreeMap::new();
    for t in &response.replica_election_results {
        for p in &t.partition_result {
            let message = p.error_message.as_ref().map(|m| m.to_string());
            assert_eq!(p.error_code == NONE, message.is_none(), "a message explains each error: {p:?}");
            results.insert((t.topic.0.to_string(), p.partition_id), p.error_code);
        }
    }
    results
}

async fn describe_log_dirs(addr: &str, version: i16, topics: Option<&[(&str, &[i32])]>) -> DescribeLogDirsResponse {
    let topics = topics.map(|ts| {
        ts.iter()
            .map(|(t, p)| DescribableLogDirTopic::default().with_topic(topic_name(t)).with_partitions(p.to_vec()))
            .collect()
    });
    let mut conn = Connection::connect(addr).await.expect("connect");
    conn.send(&DescribeLogDirsRequest::default().with_topics(topics), version).await.expect("DescribeLogDirs response")
}

/// `runnel topic describe` through one node, off the runtime's workers.
async fn describe_with_cli(bootstrap: &str) -> String {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || runnel_topic(&bootstrap, &["describe", TOPIC])).await.expect("describe task")
}

fn ids(ids: &[i32]) -> String {
    ids.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

/// Waits until `runnel topic describe` through `id` shows each partition as `id` lists it,
/// with the given offline replicas.
async fn described_as_listed(cluster: &Cluster, id: i32, offline: &str) -> String {
    eventually(CONVERGE, "runnel topic describe to show what Metadata lists", || async {
        let view = cluster.view(id).await?;
        let t = view.topic(TOPIC).ok_or("topic missing")?.clone();
        let described = describe_with_cli(cluster.kafka_addr(id)).await;
        for (index, p) in t.partitions.iter().enumerate() {
            // The leader epoch sits between the two; Metadata's view here does not keep it.
            let head = format!("  partition {index} leader {} epoch ", p.leader);
            let tail = format!(" replicas {} isr {} offline {offline}", ids(&p.replicas), ids(&p.isr));
            if !described.lines().any(|l| l.starts_with(&head) && l.ends_with(&tail)) {
                return Err(format!("expected '{head}<epoch>{tail}' in:\n{described}"));
            }
        }
        Ok(described)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_preferred_leader_is_elected_back_and_log_dirs_and_describe_show_the_replicas() {
    let mut cluster = three_nodes().await;
    create_topic_via(cluster.kafka_addr(1), TOPIC, PARTITIONS, 3).await.unwrap_or_else(|e| panic!("creating: {e}"));
    let created = settled(&cluster, &[1, 2, 3], 3, "a leader and a full ISR everywhere", |_| Ok(())).await;
    let preferred = created.partitions[0].replicas[0];
    assert_eq!(created.partitions[0].leader, preferred, "a new partition starts on its preferred replica");

    let all = [1, 2, 3].map(|id| cluster.kafka_addr(id).to_string()).join(",");
    let sent: Vec<Msg> =
        (0..300).map(|i| Msg::new(format!("k{i}"), format!("value-{i:04}-{}", "x".repeat(100)))).collect();
    let placed = produce_all(&producer(&all, &[("acks", "all")]), TOPIC, None, &sent, None).await;
    for p in 0..PARTITIONS {
        assert!(placed.iter().any(|placed| placed.partition == p), "messages reach partition {p}");
    }

    // The preferred leader of partition 0 crashes; a survivor takes over.
    let survivors: Vec<i32> = [1, 2, 3].into_iter().filter(|id| *id != preferred).collect();
    cluster.kill9(preferred);
    eventually(CONVERGE, "a survivor to lead partition 0", || async {
        let view = cluster.view(survivors[0]).await?;
        let p = view.topic(TOPIC).ok_or("topic missing")?.partitions[0].clone();
        if survivors.contains(&p.leader) {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;

    // Back and in sync, it does not lead by itself: the automatic rebalance is off.
    cluster.restart(&[preferred]);
    let rejoined = settled(&cluster, &[1, 2, 3], 3, "the restarted broker back in every ISR", |_| Ok(())).await;
    assert_ne!(rejoined.partitions[0].leader, preferred, "no election happened yet: {rejoined:?}");

    // (a) ElectLeaders, preferred, every partition: partition 0 goes back to its preferred
    // replica; partitions that already had theirs are left out of the answer.
    let elected = elect(cluster.kafka_addr(survivors[0]), 2, PREFERRED, None).await;
    assert_eq!(elected.get(&(TOPIC.to_string(), 0)), Some(&NONE), "{elected:?}");
    assert!(elected.values().all(|code| *code == NONE), "only elections that happened are listed: {elected:?}");
    let back = settled(&cluster, &[1, 2, 3], 3, "the preferred replica to lead partition 0 everywhere", |t| {
        if t.partitions[0].leader == preferred {
            Ok(())
        } else {
            Err(format!("partition 0: {:?}", t.partitions[0]))
        }
    })
    .await;
    assert!(back.partitions.iter().all(|p| p.leader == p.replicas[0]), "every preferred replica leads: {back:?}");

    let parts: &[i32] = &[0, 1, 2];
    let named: &[(&str, &[i32])] = &[(TOPIC, parts), (TOPIC, &[7]), ("no-such-topic", &[0])];
    let again = elect(cluster.kafka_addr(preferred), 2, PREFERRED, Some(named)).await;
    let expected: BTreeMap<(String, i32), i16> = [
        ((TOPIC.to_string(), 0), ELECTION_NOT_NEEDED),
        ((TOPIC.to_string(), 1), ELECTION_NOT_NEEDED),
        ((TOPIC.to_string(), 2), ELECTION_NOT_NEEDED),
        ((TOPIC.to_string(), 7), UNKNOWN_TOPIC_OR_PARTITION),
        (("no-such-topic".to_string(), 0), UNKNOWN_TOPIC_OR_PARTITION),
    ]
    .into();
    assert_eq!(again, expected, "a second election is not needed");
    assert!(elect(cluster.kafka_addr(preferred), 2, PREFERRED, None).await.is_empty(), "nothing to elect");
    let v0 = elect(cluster.kafka_addr(preferred), 0, PREFERRED, Some(&[(TOPIC, &[0])])).await;
    assert_eq!(v0.get(&(TOPIC.to_string(), 0)), Some(&ELECTION_NOT_NEEDED), "v0 (always preferred)");
    let unclean = elect(cluster.kafka_addr(preferred), 1, UNCLEAN, Some(&[(TOPIC, parts)])).await;
    assert!(unclean.values().all(|code| *code == ELECTION_NOT_NEEDED), "every partition has a leader: {unclean:?}");

    // (b) DescribeLogDirs: node 1 hosts a replica of every partition, each holding data.
    let node = 1;
    let data_dir = std::fs::canonicalize(cluster.node(node).data_dir()).expect("data dir");
    let dirs = describe_log_dirs(cluster.kafka_addr(node), 4, None).await;
    assert_eq!(dirs.error_code, NONE);
    assert_eq!(dirs.results.len(), 1, "one log dir: {dirs:?}");
    let dir = &dirs.results[0];
    assert_eq!((dir.error_code, dir.log_dir.as_str()), (NONE, data_dir.to_str().expect("utf-8 path")));
    assert!(dir.total_bytes > 0 && (0..=dir.total_bytes).contains(&dir.usable_bytes), "{dir:?}");
    let ops = dir.topics.iter().find(|t| t.name.0.as_str() == TOPIC).expect("the topic is listed");
    let indexes: Vec<i32> = ops.partitions.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, vec![0, 1, 2], "every partition node {node} hosts: {ops:?}");
    assert!(ops.partitions.iter().all(|p| p.partition_size > 0 && p.offset_lag == 0 && !p.is_future_key), "{ops:?}");

    let one = describe_log_dirs(cluster.kafka_addr(node), 1, Some(&[(TOPIC, &[1])])).await;
    let listed: Vec<(String, Vec<i32>)> = one.results[0]
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions.iter().map(|p| p.partition_index).collect()))
        .collect();
    assert_eq!(listed, vec![(TOPIC.to_string(), vec![1])], "only what was asked for (v1)");

    // (c) `runnel topic describe` shows leader, replicas and ISR; then offline replicas.
    let described = described_as_listed(&cluster, survivors[0], "-").await;
    assert!(described.contains(&format!("partitions {PARTITIONS} replication factor 3")), "{described}");
    let down = survivors[1];
    cluster.kill9(down);
    settled(&cluster, &[preferred, survivors[0]], 2, "the ISRs to shrink without the killed broker", |t| {
        match t.partitions.iter().find(|p| p.isr.contains(&down)) {
            Some(p) => Err(format!("{down} still in sync: {p:?}")),
            None => Ok(()),
        }
    })
    .await;
    described_as_listed(&cluster, survivors[0], &down.to_string()).await;
}
