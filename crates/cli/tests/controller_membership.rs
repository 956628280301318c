//! Controller membership (KIP-853) with real `runnel server` processes: a fourth node joins
//! as an observer, `runnel cluster add-controller` makes it a voter, one of the original
//! controllers is killed with SIGKILL and `runnel cluster remove-controller` takes it out,
//! all while a librdkafka producer writes with acks=all to a replicated topic; every
//! acknowledged record is then read back, DescribeQuorum shows the new voter set, and the
//! membership survives a restart.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::cluster::*;
use support::*;

/// Elections, fencing and catching up may take this long on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(60);
const TOPIC: &str = "membership";
const PARTITIONS: i32 = 3;

/// The quorum as node `addr` describes it (DescribeQuorum v2).
#[derive(Debug, Clone, PartialEq)]
struct QuorumView {
    leader: i32,
    voters: Vec<i32>,
    observers: Vec<i32>,
    /// Node ids with endpoints (v2's `nodes`): the voters.
    endpoints: Vec<i32>,
}

async fn describe_quorum(cluster: &Cluster, id: i32) -> Result<QuorumView, String> {
    let mut conn = connect_with(cluster.kafka_addr(id), cluster.client_security()).await?;
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = conn.send(&request, 2).await.map_err(|e| format!("node {id}: {e}"))?;
    let partition =
        response.topics.first().and_then(|t| t.partitions.first()).ok_or(format!("node {id}: no quorum partition"))?;
    let mut voters: Vec<i32> = partition.current_voters.iter().map(|v| v.replica_id.0).collect();
    let mut observers: Vec<i32> = partition.observers.iter().map(|o| o.replica_id.0).collect();
    let mut endpoints: Vec<i32> = response.nodes.iter().map(|n| n.node_id.0).collect();
    voters.sort_unstable();
    observers.sort_unstable();
    endpoints.sort_unstable();
    Ok(QuorumView { leader: partition.leader_id.0, voters, observers, endpoints })
}

/// Waits until every node in `ids` describes exactly `voters` as the voters, with a leader
/// among them; returns node `ids[0]`'s view.
async fn voters_become(cluster: &Cluster, ids: &[i32], voters: &[i32]) -> QuorumView {
    eventually(CONVERGE, &format!("nodes {ids:?} to describe voters {voters:?}"), || async {
        let mut first = None;
        for &id in ids {
            let view = describe_quorum(cluster, id).await?;
            if view.voters != voters || view.endpoints != voters || !voters.contains(&view.leader) {
                return Err(format!("node {id}: {view:?}"));
            }
            first.get_or_insert(view);
        }
        Ok(first.expect("at least one node"))
    })
    .await
}

/// Runs `runnel ARGS --bootstrap BOOTSTRAP`: whether it succeeded, and its stdout or stderr.
fn runnel(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_runnel")).args(args).args(["--bootstrap", bootstrap]).output().unwrap();
    let text = if output.status.success() { output.stdout } else { output.stderr };
    (output.status.success(), String::from_utf8_lossy(&text).into_owned())
}

/// Runs a CLI command until it succeeds (a voter change is refused while another is pending
/// or while the quorum elects a leader), through any of `ids`. A later attempt failing with
/// `done` (DuplicateVoter, VoterNotFound) means an earlier one whose answer was lost went
/// through.
async fn runnel_until_done(cluster: &Cluster, ids: &[i32], args: &[&str], done: &str) -> String {
    let mut round = 0usize;
    eventually(CONVERGE, &format!("runnel {args:?} to succeed"), || {
        round += 1;
        let bootstrap = cluster.kafka_addr(ids[round % ids.len()]).to_string();
        async move {
            let (ok, text) = tokio::task::block_in_place(|| runnel(&bootstrap, args));
            if ok || (round > 1 && text.contains(done)) {
                Ok(text)
            } else {
                Err(text)
            }
        }
    })
    .await
}

/// What the background producer had acknowledged, and how many sends failed.
#[derive(Default)]
struct Produced {
    acked: Vec<(Msg, Placed)>,
    failed: usize,
}

/// Produces rounds of small batches with acks=all until `stop`, keeping every acknowledged
/// message and where it landed.
fn produce_in_background(
    producer: FutureProducer,
    stop: Arc<AtomicBool>,
    produced: Arc<std::sync::Mutex<Produced>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let mut pending = Vec::new();
            for _ in 0..20 {
                let msg = Msg::new(format!("k{}", n % 11), format!("m-{n:07}"));
                n += 1;
                let record = FutureRecord::<[u8], [u8]>::to(TOPIC)
                    .key(msg.key.as_deref().expect("keyed"))
                    .payload(&msg.value[..]);
                match producer.send_result(record) {
                    Ok(future) => pending.push((msg, future)),
                    Err(_) => produced.lock().unwrap().failed += 1,
                }
            }
            for (msg, future) in pending {
                let delivery = tokio::time::timeout(IO_TIMEOUT * 2, future).await;
                let mut produced = produced.lock().unwrap();
                match delivery {
                    Ok(Ok(Ok(d))) => produced.acked.push((msg, Placed { partition: d.partition, offset: d.offset })),
                    _ => produced.failed += 1,
                }
            }
        }
    })
}

/// Waits until the background producer has acknowledged at least `count` messages.
async fn acked_at_least(produced: &Arc<std::sync::Mutex<Produced>>, count: usize, what: &str) {
    eventually(CONVERGE, what, || async {
        let produced = produced.lock().unwrap();
        if produced.acked.len() >= count {
            Ok(())
        } else {
            Err(format!("{} acknowledged, {} failed", produced.acked.len(), produced.failed))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_controller_is_replaced_by_a_new_node_while_clients_produce() {
    let mut cluster = three_agreed_nodes(FAST_FAILURE_DETECTION, CONVERGE).await;
    create_topic_with_configs_via(cluster.kafka_addr(1), TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap_or_else(|e| panic!("creating {TOPIC}: {e}"));
    topic_settled(&cluster, &[1, 2, 3], TOPIC, CONVERGE, |p| p.isr.len() == 3, |_| Ok(())).await;

    // A fourth controller, not among the initial voters, joins as an observer.
    cluster.join(Spec::combined(4).with_args(FAST_FAILURE_DETECTION));
    let view = eventually(CONVERGE, "node 4 to observe the quorum", || async {
        let view = describe_quorum(&cluster, 1).await?;
        if view.voters == [1, 2, 3] && view.observers.contains(&4) {
            Ok(view)
        } else {
            Err(format!("{view:?}"))
        }
    })
    .await;
    assert_eq!(view.endpoints, [1, 2, 3], "v2 lists the voters' endpoints");
    let (ok, info) = tokio::task::block_in_place(|| runnel(cluster.kafka_addr(2), &["cluster", "info"]));
    assert!(ok, "{info}");
    assert!(info.contains("observers: 4"), "{info}");

    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(std::sync::Mutex::new(Produced::default()));
    let bootstrap_all = [1, 2, 3, 4].map(|id| cluster.kafka_addr(id).to_string()).join(",");
    let producer = producer(&bootstrap_all, &[("acks", "all"), ("message.timeout.ms", "60000")]);
    let background = produce_in_background(producer, stop.clone(), produced.clone());
    acked_at_least(&produced, 200, "the producer to start").await;

    // Node 4 becomes a voter, through the CLI on another node.
    let address = cluster.controller_addr(4).to_string();
    let added = runnel_until_done(
        &cluster,
        &[1, 2, 3],
        &["cluster", "add-controller", "--node-id", "4", "--address", &address],
        "DuplicateVoter",
    )
    .await;
    assert!(added.contains("node 4 is now a controller voter") || added.contains("DuplicateVoter"), "{added}");
    voters_become(&cluster, &[1, 2, 3, 4], &[1, 2, 3, 4]).await;
    let (ok, again) =
        tokio::task::block_in_place(|| runnel(cluster.kafka_addr(1), &["cluster", "add-controller", "--node-id", "4"]));
    assert!(!ok && again.contains("DuplicateVoter"), "{again}");

    // The active controller's host dies; the others remove it while the producer goes on.
    let dead = describe_quorum(&cluster, 4).await.expect("node 4 answers").leader;
    let dead = if dead == 4 { 1 } else { dead };
    let before_kill = produced.lock().unwrap().acked.len();
    cluster.kill9(dead);
    let live: Vec<i32> = [1, 2, 3, 4].into_iter().filter(|id| *id != dead).collect();
    let dead_id = dead.to_string();
    let removed =
        runnel_until_done(&cluster, &live, &["cluster", "remove-controller", "--node-id", &dead_id], "VoterNotFound")
            .await;
    assert!(removed.contains("no longer a controller voter") || removed.contains("VoterNotFound"), "{removed}");
    let view = voters_become(&cluster, &live, &live).await;
    assert!(!view.voters.contains(&dead));
    let (ok, missing) = tokio::task::block_in_place(|| {
        runnel(cluster.kafka_addr(live[0]), &["cluster", "remove-controller", "--node-id", &dead.to_string()])
    });
    assert!(!ok && missing.contains("VoterNotFound"), "{missing}");
    acked_at_least(&produced, before_kill + 300, "the producer to go on after the removal").await;
    stop.store(true, Ordering::Relaxed);
    background.await.expect("producer task");

    // Every acknowledged record is readable, where it was acknowledged.
    let live_bootstrap = live.iter().map(|id| cluster.kafka_addr(*id)).collect::<Vec<_>>().join(",");
    let stored: usize = (0..PARTITIONS)
        .map(|p| {
            let (low, high) = watermarks(&live_bootstrap, TOPIC, p);
            usize::try_from(high - low).expect("a non-negative count")
        })
        .sum();
    let read = read_back(&live_bootstrap, TOPIC, PARTITIONS, stored).await;
    let by_place: BTreeMap<Placed, &Msg> = read.iter().map(|r| (r.placed, &r.msg)).collect();
    let produced = std::mem::take(&mut *produced.lock().unwrap());
    eprintln!(
        "killed controller {dead}; {} records acknowledged, {} failed, {stored} stored",
        produced.acked.len(),
        produced.failed
    );
    for (msg, placed) in &produced.acked {
        assert_eq!(by_place.get(placed), Some(&msg), "acknowledged at {placed:?}");
    }

    // The membership is in the log: a restarted new voter is still one.
    cluster.terminate(&[4]);
    cluster.restart(&[4]);
    voters_become(&cluster, &live, &live).await;
    let (ok, info) = tokio::task::block_in_place(|| runnel(cluster.kafka_addr(4), &["cluster", "info"]));
    assert!(ok, "{info}");
    assert!(info.contains("observers: -"), "the dead node left the membership: {info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_is_promoted_and_the_active_controller_removes_itself() {
    let mut cluster = three_agreed_nodes(FAST_FAILURE_DETECTION, CONVERGE).await;
    cluster.join(Spec::broker(4).with_args(FAST_FAILURE_DETECTION));
    eventually(CONVERGE, "broker 4 to observe the quorum", || async {
        let view = describe_quorum(&cluster, 1).await?;
        if view.observers == [4] {
            Ok(())
        } else {
            Err(format!("{view:?}"))
        }
    })
    .await;

    // An observer needs no address; asked through itself, the change is forwarded.
    runnel_until_done(&cluster, &[4], &["cluster", "add-controller", "--node-id", "4"], "DuplicateVoter").await;
    voters_become(&cluster, &[1, 2, 3, 4], &[1, 2, 3, 4]).await;

    // The active controller removes itself: it steps down, the others elect a leader, and
    // it follows the log again as an observer.
    let leader = describe_quorum(&cluster, 1).await.expect("node 1 answers").leader;
    let leader_id = leader.to_string();
    runnel_until_done(&cluster, &[leader], &["cluster", "remove-controller", "--node-id", &leader_id], "VoterNotFound")
        .await;
    let rest: Vec<i32> = [1, 2, 3, 4].into_iter().filter(|id| *id != leader).collect();
    voters_become(&cluster, &[1, 2, 3, 4], &rest).await;
    eventually(CONVERGE, "the old leader to be an observer", || async {
        let view = describe_quorum(&cluster, rest[0]).await?;
        if view.observers == [leader] {
            Ok(())
        } else {
            Err(format!("{view:?}"))
        }
    })
    .await;

    // Metadata still changes, also through the node that left the voters.
    create_topic_via(cluster.kafka_addr(leader), "after", 1, 3).await.unwrap_or_else(|e| panic!("creating after: {e}"));
    topic_settled(&cluster, &[1, 2, 3, 4], "after", CONVERGE, |p| p.isr.len() == 3, |_| Ok(())).await;
    let (ok, info) =
        tokio::task::block_in_place(|| runnel(cluster.kafka_addr(4), &["cluster", "info", "--output", "json"]));
    assert!(ok, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).expect("JSON");
    assert_eq!(info["voters"], serde_json::json!(rest));
    assert_eq!(info["observers"], serde_json::json!([leader]));
}
