//! Replication with real `runnel server` processes: followers copy their leaders byte for
//! byte, acks=all waits for the in-sync replicas, a killed leader loses no acknowledged
//! write and comes back as a follower that truncates and catches up, and acks=all is
//! refused when the ISR is below `min.insync.replicas`, and committed offsets survive the
//! group coordinator's broker being killed (the coordinator moves with leadership).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FindCoordinatorRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use runnel_client::Connection;
use support::cluster::*;
use support::*;

/// Replicas may take this long to converge after the last write or a restart.
const CONVERGE: Duration = Duration::from_secs(60);

/// Three combined nodes, once every node lists all three brokers.
async fn three_nodes() -> Cluster {
    three_agreed_nodes(FAST_FAILURE_DETECTION, CONVERGE).await
}

fn bootstrap(cluster: &Cluster, ids: &[i32]) -> String {
    ids.iter().map(|id| cluster.kafka_addr(*id)).collect::<Vec<_>>().join(",")
}

/// The bytes of every segment of `topic`-`partition` on `node`, in offset order.
fn log_bytes(node: &Node, topic: &str, partition: i32) -> Vec<u8> {
    let dir = node.data_dir().join(format!("{topic}-{partition}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.map(|e| e.expect("dir entry").path()).collect())
        .unwrap_or_default();
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "log"));
    files.sort();
    files.iter().flat_map(|f| std::fs::read(f).expect("segment readable")).collect()
}

/// Waits until the replicas on `nodes` of every partition hold the same bytes, at least
/// `min_bytes`.
async fn replicas_identical(cluster: &Cluster, nodes: &[i32], topic: &str, partitions: i32, min_bytes: usize) {
    eventually(CONVERGE, "every replica to hold the same bytes", || async {
        for p in 0..partitions {
            let logs: BTreeMap<i32, Vec<u8>> =
                nodes.iter().map(|id| (*id, log_bytes(cluster.node(*id), topic, p))).collect();
            let sizes: BTreeMap<i32, usize> = logs.iter().map(|(id, b)| (*id, b.len())).collect();
            let first = logs.values().next().expect("a node");
            if first.len() < min_bytes || logs.values().any(|b| b != first) {
                return Err(format!("partition {p}: bytes per node {sizes:?}"));
            }
        }
        Ok(())
    })
    .await;
}

/// Waits until every node in `ids` lists every partition of `topic` with a leader and a
/// full ISR, the same everywhere; returns that view.
async fn fully_in_sync(cluster: &Cluster, ids: &[i32], topic: &str) -> TopicView {
    topic_settled(cluster, ids, topic, CONVERGE, |p| p.isr.len() == p.replicas.len(), |_| Ok(())).await
}

/// Creates `topic` with one partition on two of the three nodes, with `configs`, and
/// returns that partition once every node lists both replicas in sync.
async fn in_sync_pair(cluster: &Cluster, topic: &str, configs: &[(&str, &str)]) -> PartitionView {
    create_topic_with_configs_via(cluster.kafka_addr(1), topic, 1, 2, configs)
        .await
        .unwrap_or_else(|e| panic!("creating {topic}: {e}"));
    fully_in_sync(cluster, &[1, 2, 3], topic).await.partitions[0].clone()
}

/// Waits until node `via` lists `topic`-0 with exactly `isr` in sync.
async fn isr_becomes(cluster: &Cluster, via: i32, topic: &str, isr: &[i32]) {
    eventually(CONVERGE, &format!("the ISR of {topic}-0 to become {isr:?}"), || async {
        let view = cluster.view(via).await?;
        let now = view.topic(topic).ok_or("topic missing")?.partitions[0].clone();
        if now.isr == isr {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
}

fn messages(tag: &str, count: usize) -> Vec<Msg> {
    (0..count).map(|i| Msg::new(format!("k{}", i % 17), format!("{tag}-{i:06}-{}", "x".repeat(200)))).collect()
}

/// Every acknowledged message is read back exactly once, at the offset it was acknowledged with.
fn assert_exactly_once(sent: &[(Msg, Placed)], read: &[Received]) {
    let by_place: BTreeMap<Placed, &Msg> = read.iter().map(|r| (r.placed, &r.msg)).collect();
    assert_eq!(by_place.len(), read.len(), "no offset read twice");
    for (msg, placed) in sent {
        assert_eq!(by_place.get(placed), Some(&msg), "acknowledged at {placed:?}");
    }
    let mut values: Vec<&Vec<u8>> = read.iter().map(|r| &r.msg.value).collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), read.len(), "no message stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_writes_reach_every_replica_byte_for_byte() {
    let cluster = three_nodes().await;
    create_topic_via(cluster.kafka_addr(1), "rep", 3, 3).await.unwrap_or_else(|e| panic!("creating rep: {e}"));
    let all = bootstrap(&cluster, &[1, 2, 3]);
    let producer = producer(&all, &[("acks", "all")]);
    let sent = messages("a", 3_000);
    let placed = produce_all(&producer, "rep", None, &sent, None).await;
    let view = fully_in_sync(&cluster, &[1, 2, 3], "rep").await;
    assert!(view.partitions.iter().all(|p| p.replicas.len() == 3));
    replicas_identical(&cluster, &[1, 2, 3], "rep", 3, 1).await;
    let read = read_back(&all, "rep", 3, sent.len()).await;
    let pairs: Vec<(Msg, Placed)> = sent.into_iter().zip(placed).collect();
    assert_exactly_once(&pairs, &read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_loses_no_acknowledged_write_and_returns_as_an_identical_follower() {
    let mut cluster = three_nodes().await;
    create_topic_with_configs_via(cluster.kafka_addr(1), "fail", 1, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap_or_else(|e| panic!("creating fail: {e}"));
    let before = fully_in_sync(&cluster, &[1, 2, 3], "fail").await;
    let leader = before.partitions[0].leader;
    let survivors: Vec<i32> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();

    let first = messages("before", 1_000);
    let producer_all = producer(&bootstrap(&cluster, &[1, 2, 3]), &[("acks", "all")]);
    let placed_first = produce_all(&producer_all, "fail", Some(0), &first, None).await;
    drop(producer_all);

    cluster.kill9(leader);
    let moved = eventually(CONVERGE, "a survivor to lead", || async {
        let view = cluster.view(survivors[0]).await?;
        let p = view.topic("fail").ok_or("topic missing")?.partitions[0].clone();
        if survivors.contains(&p.leader) {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    assert!(!moved.isr.contains(&leader), "the dead leader left the ISR: {moved:?}");

    let second = messages("after", 1_000);
    let producer_survivors = producer(&bootstrap(&cluster, &survivors), &[("acks", "all")]);
    let placed_second = produce_all(&producer_survivors, "fail", Some(0), &second, None).await;
    assert!(placed_second.iter().all(|p| p.offset >= 1_000), "written after the acknowledged ones");

    cluster.restart(&[leader]);
    let now = fully_in_sync(&cluster, &[1, 2, 3], "fail").await.partitions[0].clone();
    replicas_identical(&cluster, &[1, 2, 3], "fail", 1, 1).await;
    // ListOffsets names the epoch each offset was written in (KIP-320): the first records
    // in the first epoch, the log end in the current one.
    let leader_addr = cluster.kafka_addr(now.leader).to_string();
    let (earliest, latest) =
        eventually(CONVERGE, "the leader to answer ListOffsets", || offset_epochs(&leader_addr, "fail")).await;
    assert_eq!(earliest, 0, "offset 0 was written in the first epoch");
    assert!(latest > 0, "the leader changed, so the latest epoch is newer: {latest}");
    let read = read_back(&bootstrap(&cluster, &[1, 2, 3]), "fail", 1, 2_000).await;
    let pairs: Vec<(Msg, Placed)> =
        first.into_iter().zip(placed_first).chain(second.into_iter().zip(placed_second)).collect();
    assert_exactly_once(&pairs, &read);
}

/// The leader epochs ListOffsets v7 gives for the earliest and the latest offset of `topic`-0.
async fn offset_epochs(addr: &str, topic: &str) -> Result<(i32, i32), String> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::ListOffsetsRequest;
    let mut epochs = Vec::new();
    for timestamp in [-2, -1] {
        let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp)])]);
        let mut conn = Connection::connect(addr).await.expect("connect");
        let response = conn.send(&request, 7).await.expect("list offsets response");
        let partition = &response.topics[0].partitions[0];
        if partition.error_code != 0 {
            return Err(format!("ListOffsets {timestamp} on {addr}: error {}", partition.error_code));
        }
        epochs.push(partition.leader_epoch);
    }
    Ok((epochs[0], epochs[1]))
}

/// A raw Produce v9 of one small batch with `acks`; returns the partition's error code.
async fn raw_produce(addr: &str, topic: &str, acks: i16) -> i16 {
    raw_produce_within(addr, topic, acks, 5_000).await
}

/// Error codes that only mean a node has not yet applied the metadata a test waited for
/// through another node's view (a leadership, an ISR change), or that followers listed in
/// sync have not started fetching yet: retried by [`accepted`].
const OFFSET_OUT_OF_RANGE: i16 = 1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const NOT_ENOUGH_REPLICAS: i16 = 19;

/// Produces with `acks` until the partition accepts, retrying the codes in `transient`
/// (the node catching up with metadata) and failing on any other error.
async fn accepted(addr: &str, topic: &str, acks: i16, transient: &[i16]) {
    eventually(CONVERGE, &format!("{topic} to accept a write with acks={acks}"), || async {
        match raw_produce_within(addr, topic, acks, 1_000).await {
            0 => Ok(()),
            code if transient.contains(&code) => Err(format!("error {code}")),
            code => panic!("{topic}: acks={acks} refused with error {code}"),
        }
    })
    .await;
}

async fn raw_produce_within(addr: &str, topic: &str, acks: i16, timeout_ms: i32) -> i16 {
    raw_produce_at(addr, topic, 0, acks, timeout_ms).await
}

/// One record to `topic`-`partition` with a hand-made Produce v9; its error code.
async fn raw_produce_at(addr: &str, topic: &str, partition: i32, acks: i16, timeout_ms: i32) -> i16 {
    let batch = runnel_protocol::batch::build_batch(0, &[b"raw".as_slice()]);
    let request = ProduceRequest::default().with_acks(acks).with_timeout_ms(timeout_ms).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_data(
            vec![PartitionProduceData::default().with_index(partition).with_records(Some(Bytes::from(batch)))],
        ),
    ]);
    let mut conn = Connection::connect(addr).await.expect("connect");
    let response = conn.send(&request, 9).await.expect("produce response");
    response.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_while_the_isr_is_below_min_insync_replicas() {
    let mut cluster = three_nodes().await;
    let p = in_sync_pair(&cluster, "strict", &[("min.insync.replicas", "2")]).await;
    let follower = *p.replicas.iter().find(|id| **id != p.leader).expect("two replicas");
    let leader_addr = cluster.kafka_addr(p.leader).to_string();
    accepted(&leader_addr, "strict", -1, &[NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT]).await;

    cluster.kill9(follower);
    isr_becomes(&cluster, p.leader, "strict", &[p.leader]).await;
    // The leader takes the shrunk ISR from the image a moment after its Metadata shows it.
    eventually(CONVERGE, "acks=all to be refused with NOT_ENOUGH_REPLICAS", || async {
        match raw_produce_within(&leader_addr, "strict", -1, 1_000).await {
            NOT_ENOUGH_REPLICAS => Ok(()),
            REQUEST_TIMED_OUT => Err("still waiting for the dead follower".to_string()),
            code => panic!("strict: acks=all answered {code} with the ISR below min.insync.replicas"),
        }
    })
    .await;
    assert_eq!(raw_produce(&leader_addr, "strict", 1).await, 0, "acks=1 does not need the ISR");

    cluster.restart(&[follower]);
    fully_in_sync(&cluster, &[1, 2, 3], "strict").await;
    accepted(&leader_addr, "strict", -1, &[NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT]).await;
    replicas_identical(&cluster, &p.replicas, "strict", 1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_times_out_while_a_hung_follower_is_in_sync_and_succeeds_once_it_is_dropped() {
    let cluster = three_nodes().await;
    let p = in_sync_pair(&cluster, "hung", &[]).await;
    let follower = *p.replicas.iter().find(|id| **id != p.leader).expect("two replicas");
    let leader_addr = cluster.kafka_addr(p.leader).to_string();
    accepted(&leader_addr, "hung", -1, &[NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT]).await;

    cluster.node(follower).pause();
    assert_eq!(
        raw_produce_within(&leader_addr, "hung", -1, 500).await,
        REQUEST_TIMED_OUT,
        "the hung follower is still in the ISR: the write is not acknowledged"
    );
    isr_becomes(&cluster, p.leader, "hung", &[p.leader]).await;
    // min.insync.replicas=1: the leader alone acknowledges, once it has taken the shrunk ISR.
    accepted(&leader_addr, "hung", -1, &[REQUEST_TIMED_OUT]).await;
    let metrics = cluster.node(p.leader).metrics_url().to_string();
    eventually(CONVERGE, "the partition to count as under-replicated", || async {
        match metric(&metrics, "runnel_under_replicated_partitions") {
            1 => Ok(()),
            n => Err(format!("{n} under-replicated")),
        }
    })
    .await;
    cluster.node(follower).resume();
    fully_in_sync(&cluster, &[1, 2, 3], "hung").await;
    eventually(CONVERGE, "the partition to count as fully replicated again", || async {
        match metric(&metrics, "runnel_under_replicated_partitions") {
            0 => Ok(()),
            n => Err(format!("{n} under-replicated")),
        }
    })
    .await;
    // The counter moves when the leader's commit returns, which may be just after the image
    // carrying the expansion reached the partition.
    eventually(CONVERGE, "the leader to count the follower taken back", || async {
        match metric(&metrics, "runnel_isr_expands_total") {
            0 => Err("no ISR expansion counted".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    let follower_metrics = cluster.node(follower).metrics_url();
    assert!(metric(follower_metrics, "runnel_replicated_bytes_total") > 0, "the follower copied records");
    replicas_identical(&cluster, &p.replicas, "hung", 1, 1).await;
}

/// The coordinator of `group` as node `via` names it (FindCoordinator v3), once it names one.
async fn coordinator_of(cluster: &Cluster, via: i32, group: &str) -> i32 {
    eventually(CONVERGE, "a coordinator to be named", || async {
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
        let mut conn = Connection::connect(cluster.kafka_addr(via)).await.map_err(|e| e.to_string())?;
        let response = conn.send(&request, 3).await.map_err(|e| e.to_string())?;
        if response.error_code == 0 && response.node_id.0 >= 0 {
            Ok(response.node_id.0)
        } else {
            Err(format!("error {}", response.error_code))
        }
    })
    .await
}

/// Committed offset of `group` for `topic`-0, asked through `bootstrap`, once one is known.
async fn committed(bootstrap: &str, group: &str, topic: &str) -> i64 {
    let bootstrap = bootstrap.to_string();
    let (group, topic) = (group.to_string(), topic.to_string());
    eventually(CONVERGE, "the committed offset to be readable", || {
        let (bootstrap, group, topic) = (bootstrap.clone(), group.clone(), topic.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let consumer = group_consumer(&bootstrap, &group);
                let mut list = TopicPartitionList::new();
                list.add_partition(&topic, 0);
                let offsets = consumer.committed_offsets(list, Duration::from_secs(5)).map_err(|e| e.to_string())?;
                match offsets.find_partition(&topic, 0).map(|p| p.offset()) {
                    Some(Offset::Offset(offset)) => Ok(offset),
                    other => Err(format!("committed: {other:?}")),
                }
            })
            .await
            .map_err(|e| e.to_string())?
        }
    })
    .await
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("group consumer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_coordinator_being_killed() {
    let mut cluster = three_nodes().await;
    create_topic_via(cluster.kafka_addr(1), "tracked", 1, 3).await.unwrap_or_else(|e| panic!("creating tracked: {e}"));
    let all = bootstrap(&cluster, &[1, 2, 3]);
    let coordinator = coordinator_of(&cluster, 1, "keeper").await;
    fully_in_sync(&cluster, &[1, 2, 3], "__consumer_offsets").await;

    let consumer = group_consumer(&all, "keeper");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset("tracked", 0, Offset::Offset(42)).expect("offset");
    let commit = tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync));
    commit.await.expect("commit task").expect("commit of offset 42");

    cluster.kill9(coordinator);
    let survivors: Vec<i32> = [1, 2, 3].into_iter().filter(|id| *id != coordinator).collect();
    let moved = coordinator_of(&cluster, survivors[0], "keeper").await;
    let moved = if moved == coordinator {
        eventually(CONVERGE, "the coordinator to move", || async {
            match coordinator_of(&cluster, survivors[0], "keeper").await {
                id if id == coordinator => Err(format!("still {id}")),
                id => Ok(id),
            }
        })
        .await
    } else {
        moved
    };
    assert!(survivors.contains(&moved), "a survivor coordinates now: {moved}");
    assert_eq!(committed(&bootstrap(&cluster, &survivors), "keeper", "tracked").await, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_copies_the_data_before_the_new_replica_joins_and_then_drops_the_old_one() {
    let mut cluster = three_nodes().await;
    let p = in_sync_pair(&cluster, "moved", &[]).await;
    let (kept, dropped) = (p.replicas[0], p.replicas[1]);
    let newcomer = [1, 2, 3].into_iter().find(|id| !p.replicas.contains(id)).expect("a third node");
    let sent = messages("moved", 2_000);
    let producer = producer(&bootstrap(&cluster, &[1, 2, 3]), &[("acks", "all")]);
    let placed = produce_all(&producer, "moved", Some(0), &sent, None).await;

    // With the newcomer down, the move starts but cannot complete: nothing is trusted to it.
    cluster.kill9(newcomer);
    let via = cluster.kafka_addr(kept).to_string();
    let target = format!("{newcomer},{kept}");
    let started = runnel_topic(&via, &["reassign", "moved", "--partition", "0", "--replicas", &target]);
    assert_eq!(started.trim(), format!("reassigning moved-0 to {target}"));
    let listed = runnel_topic(&via, &["reassignments"]);
    assert_eq!(listed.trim(), format!("moved-0 replicas {target},{dropped} adding {newcomer} removing {dropped}"));

    cluster.restart(&[newcomer]);
    let done = eventually(CONVERGE, "the reassignment to complete", || async {
        let view = cluster.view(kept).await?;
        let now = view.topic("moved").ok_or("topic missing")?.partitions[0].clone();
        let mut replicas = now.replicas.clone();
        replicas.sort_unstable();
        let mut target = vec![newcomer, kept];
        target.sort_unstable();
        if replicas == target && now.isr.len() == 2 {
            Ok(now)
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    assert!(done.replicas.contains(&done.leader), "a target replica leads: {done:?}");
    assert_eq!(runnel_topic(&via, &["reassignments"]), "", "nothing in progress any more");
    replicas_identical(&cluster, &[newcomer, kept], "moved", 1, 1).await;
    eventually(CONVERGE, "the dropped replica to delete its copy", || async {
        let dir = cluster.node(dropped).data_dir().join("moved-0");
        if dir.exists() {
            Err(format!("{} still exists", dir.display()))
        } else {
            Ok(())
        }
    })
    .await;
    let read = read_back(&bootstrap(&cluster, &[1, 2, 3]), "moved", 1, sent.len()).await;
    assert_exactly_once(&sent.into_iter().zip(placed).collect::<Vec<_>>(), &read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_while_the_isr_shrinks_below_min_insync_replicas_is_answered_after_append() {
    // Controllers apart from brokers, so freezing two brokers leaves the quorum a majority.
    let specs: Vec<Spec> = [Spec::controller(1), Spec::controller(2), Spec::controller(3)]
        .into_iter()
        .chain((4..=6).map(Spec::broker))
        .map(|spec| spec.with_args(FAST_FAILURE_DETECTION))
        .collect();
    let cluster = Cluster::start(&specs);
    eventually(CONVERGE, "the three brokers to be listed", || async {
        let view = cluster.view(4).await?;
        if view.brokers.len() == 3 {
            Ok(())
        } else {
            Err(format!("{:?}", view.brokers.keys()))
        }
    })
    .await;
    create_topic_with_configs_via(cluster.kafka_addr(4), "shrinking", 1, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap_or_else(|e| panic!("creating shrinking: {e}"));
    let p = fully_in_sync(&cluster, &[4, 5, 6], "shrinking").await.partitions[0].clone();
    let leader_addr = cluster.kafka_addr(p.leader).to_string();
    accepted(&leader_addr, "shrinking", -1, &[NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT]).await;

    let followers: Vec<i32> = p.replicas.iter().copied().filter(|id| *id != p.leader).collect();
    for follower in &followers {
        cluster.node(*follower).pause();
    }
    // Appended while the frozen followers are still in sync; the ISR then shrinks to the
    // leader alone, which lets the high watermark pass the write but leaves fewer in-sync
    // replicas than min.insync.replicas.
    const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    assert_eq!(raw_produce_within(&leader_addr, "shrinking", -1, 30_000).await, NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    assert_eq!(raw_produce(&leader_addr, "shrinking", -1).await, NOT_ENOUGH_REPLICAS, "now refused before appending");
    for follower in &followers {
        cluster.node(*follower).resume();
    }
    fully_in_sync(&cluster, &[4, 5, 6], "shrinking").await;
    accepted(&leader_addr, "shrinking", -1, &[NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_election_when_configured_trades_unreplicated_writes_for_availability() {
    let mut cluster = three_nodes().await;
    let p = in_sync_pair(&cluster, "dirty", &[("unclean.leader.election.enable", "true")]).await;
    let (leader, follower) = (p.leader, *p.replicas.iter().find(|id| **id != p.leader).expect("two replicas"));
    let third = [1, 2, 3].into_iter().find(|id| !p.replicas.contains(id)).expect("a third node");
    let all = bootstrap(&cluster, &[1, 2, 3]);
    let replicated = messages("replicated", 50);
    let placed = produce_all(&producer(&all, &[("acks", "all")]), "dirty", Some(0), &replicated, None).await;

    // The follower dies; the leader alone takes acks=1 writes the follower never sees.
    cluster.kill9(follower);
    isr_becomes(&cluster, third, "dirty", &[leader]).await;
    produce_all(&producer(&all, &[("acks", "1")]), "dirty", Some(0), &messages("unreplicated", 30), None).await;
    // Then the leader dies too, and the stale follower comes back: with unclean election
    // allowed it leads with what it has, rather than the partition staying offline.
    cluster.kill9(leader);
    cluster.restart(&[follower]);
    eventually(CONVERGE, "the stale follower to be elected", || async {
        let view = cluster.view(third).await?;
        let now = view.topic("dirty").ok_or("topic missing")?.partitions[0].clone();
        if now.leader == follower && now.isr == vec![follower] {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    let after = messages("after", 10);
    let survivors = bootstrap(&cluster, &[follower, third]);
    let placed_after = produce_all(&producer(&survivors, &[("acks", "all")]), "dirty", Some(0), &after, None).await;
    assert_eq!(placed_after[0].offset, 50, "the unreplicated writes are gone: the new leader continues at 50");

    // The old leader returns as a follower and truncates its unreplicated suffix away.
    cluster.restart(&[leader]);
    fully_in_sync(&cluster, &[1, 2, 3], "dirty").await;
    replicas_identical(&cluster, &[leader, follower], "dirty", 1, 1).await;
    let truncations = metric(cluster.node(leader).metrics_url(), "runnel_follower_truncations_total");
    assert!(truncations >= 1, "the returning leader truncated ({truncations})");
    let read = read_back(&all, "dirty", 1, 60).await;
    let pairs: Vec<(Msg, Placed)> =
        replicated.into_iter().zip(placed).chain(after.into_iter().zip(placed_after)).collect();
    assert_exactly_once(&pairs, &read);
    assert_eq!(read.len(), 60, "exactly the replicated and the later writes");
    let elected = runnel_topic(cluster.kafka_addr(third), &["elect-leaders", "dirty"]);
    assert!(elected.trim() == "dirty-0 elected" || elected.trim() == "dirty-0 ElectionNotNeeded", "{elected}");
}

/// A follower whose leader's address now leads to a node of another cluster (here: node 2
/// advertises a separate single-node server, which has a topic of the same name with data)
/// refuses to copy from it: it checks the cluster id when it connects. Without the check it
/// would append the other cluster's records as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_does_not_copy_from_a_node_of_another_cluster() {
    let stranger_dir = tempfile::TempDir::new().unwrap();
    let stranger = Node::start(stranger_dir.path(), &[]);
    create_topic(stranger.bootstrap(), "shared", 2, &[]).await;
    for _ in 0..3 {
        for partition in 0..2 {
            assert_eq!(raw_produce_at(stranger.bootstrap(), "shared", partition, 1, 5_000).await, 0);
        }
    }
    let cluster =
        Cluster::start(&[Spec::combined(1), Spec::combined(2).with_advertise(stranger.bootstrap().to_string())]);
    eventually(CONVERGE, "node 1 to list both brokers", || async {
        match cluster.view(1).await?.brokers.len() {
            2 => Ok(()),
            n => Err(format!("{n} brokers listed")),
        }
    })
    .await;
    create_topic_via(cluster.kafka_addr(1), "shared", 2, 2).await.unwrap_or_else(|e| panic!("creating shared: {e}"));
    let listed = eventually(CONVERGE, "node 1 to list shared", || async {
        cluster.view(1).await?.topic("shared").cloned().ok_or_else(|| "not yet".to_string())
    })
    .await;
    let led_by_2 = listed.partitions.iter().position(|p| p.leader == 2).expect("node 2 leads a partition");
    let copy = cluster.node(1).data_dir().join(format!("shared-{led_by_2}")).join(format!("{:020}.log", 0));
    let copied = || std::fs::metadata(&copy).map(|m| m.len()).unwrap_or(0);
    // Either outcome ends the wait: the refusal, or records copied from the stranger.
    eventually(CONVERGE, "node 1 to refuse the node at node 2's address", || async {
        if cluster.node(1).logged("belongs to another cluster") || copied() > 0 {
            Ok(())
        } else {
            Err("no refusal logged yet".to_string())
        }
    })
    .await;
    assert_eq!(copied(), 0, "node 1 copied another cluster's shared-{led_by_2}");
}

/// The offset ListOffsets v7 gives for the latest offset of `topic`-0 (the high watermark).
async fn high_watermark(addr: &str, topic: &str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::ListOffsetsRequest;
    let request =
        ListOffsetsRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
        ]);
    let mut conn = Connection::connect(addr).await.expect("connect");
    let response = conn.send(&request, 7).await.expect("list offsets response");
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "ListOffsets latest on {addr}");
    partition.offset
}

/// A hand-made Fetch v12 naming `replica` as the fetcher, from `fetch_offset`; the
/// partition's error code.
async fn fetch_claiming_to_be(addr: &str, topic: &str, replica: i32, fetch_offset: i64) -> i16 {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest};
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(replica))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(fetch_offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut conn = Connection::connect(addr).await.expect("connect");
    let response = conn.send(&request, 12).await.expect("fetch response");
    response.responses[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_claiming_to_be_a_follower_moves_neither_the_high_watermark_nor_the_isr() {
    let cluster = three_nodes().await;
    let p = in_sync_pair(&cluster, "claimed", &[]).await;
    let follower = *p.replicas.iter().find(|id| **id != p.leader).expect("two replicas");
    let leader_addr = cluster.kafka_addr(p.leader).to_string();
    accepted(&leader_addr, "claimed", -1, &[NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT]).await;

    // The real follower hangs, still in the ISR: new records stay above the high watermark.
    cluster.node(follower).pause();
    let committed = high_watermark(&leader_addr, "claimed").await;
    for _ in 0..3 {
        assert_eq!(raw_produce(&leader_addr, "claimed", 1).await, 0);
    }
    let log_end = committed + 3;
    assert_eq!(high_watermark(&leader_addr, "claimed").await, committed);

    // Before the fix a Fetch v12 naming the follower was taken at its word: the high
    // watermark moved to its fetch offset and acks=all was acknowledged unreplicated. Now
    // only Fetch v15+ with the follower's broker epoch is a follower's fetch.
    fetch_claiming_to_be(&leader_addr, "claimed", follower, log_end).await;
    assert_eq!(
        fetch_claiming_to_be(&leader_addr, "claimed", follower, log_end + 1_000).await,
        OFFSET_OUT_OF_RANGE,
        "beyond the log end, as for any consumer"
    );
    assert_eq!(high_watermark(&leader_addr, "claimed").await, committed, "the claim moved the high watermark");
    assert_eq!(
        raw_produce_within(&leader_addr, "claimed", -1, 500).await,
        REQUEST_TIMED_OUT,
        "acks=all is not acknowledged while the real follower lacks the records"
    );

    cluster.node(follower).resume();
    eventually(CONVERGE, "the real follower to move the high watermark", || async {
        match high_watermark(&leader_addr, "claimed").await {
            hw if hw >= log_end => Ok(()),
            hw => Err(format!("high watermark {hw}")),
        }
    })
    .await;
    replicas_identical(&cluster, &p.replicas, "claimed", 1, 1).await;
}

/// A simple-consumer commit (generation -1, no member) of `offset` for `topic`-0 with
/// OffsetCommit v7; the partition's error code.
async fn raw_commit(addr: &str, group: &str, topic: &str, offset: i64) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    use kafka_protocol::messages::{GroupId, OffsetCommitRequest};
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let mut conn = Connection::connect(addr).await.expect("connect");
    conn.set_timeout(Duration::from_secs(30));
    let response = conn.send(&request, 7).await.expect("offset commit response");
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch v7 of `topic`-0 for `group`: the top-level error and the committed offset.
async fn raw_offset_fetch(addr: &str, group: &str, topic: &str) -> (i16, i64) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest};
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_indexes(vec![0])]));
    let mut conn = Connection::connect(addr).await.expect("connect");
    conn.set_timeout(Duration::from_secs(30));
    let response = conn.send(&request, 7).await.expect("offset fetch response");
    let offset = response.topics.first().and_then(|t| t.partitions.first()).map_or(-1, |p| p.committed_offset);
    (response.error_code, offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_the_in_sync_replicas_do_not_hold_is_never_read_back() {
    const GROUP: &str = "durable-reads";
    let cluster = three_nodes().await;
    let coordinator = coordinator_of(&cluster, 1, GROUP).await;
    let addr = cluster.kafka_addr(coordinator).to_string();
    create_topic_with_configs_via(cluster.kafka_addr(1), "orders", 1, 3, &[]).await.expect("create orders");
    eventually(CONVERGE, "a first commit to be replicated", || async {
        match raw_commit(&addr, GROUP, "orders", 5).await {
            0 => Ok(()),
            code => Err(format!("error {code}")),
        }
    })
    .await;
    assert_eq!(raw_offset_fetch(&addr, GROUP, "orders").await, (0, 5));

    // The other replicas of the offsets partition hang: a new commit is written and applied
    // on the coordinator but not replicated, and its request times out.
    let others: Vec<i32> = cluster.ids().into_iter().filter(|id| *id != coordinator).collect();
    for id in &others {
        cluster.node(*id).pause();
    }
    assert_ne!(raw_commit(&addr, GROUP, "orders", 42).await, 0, "the commit cannot be acknowledged");
    // Before the fix OffsetFetch answered 42 here: a commit a new coordinator might never
    // have. Now the read waits for the ISR and gives up with a retriable error.
    let (error, offset) = raw_offset_fetch(&addr, GROUP, "orders").await;
    assert_ne!((error, offset), (0, 42), "an unreplicated commit was read back");
    assert_ne!(error, 0, "the read could not be answered with replicated state only: {offset}");

    for id in &others {
        cluster.node(*id).resume();
    }
    // The resumed replicas may have been fenced while paused: they re-register and catch up
    // first, which on a loaded machine takes longer than the usual convergence.
    eventually(CONVERGE * 3, "the commit to be replicated and read back", || async {
        match raw_offset_fetch(&addr, GROUP, "orders").await {
            (0, 42) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}
