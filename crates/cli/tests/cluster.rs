//! Cluster scenarios with real `runnel server` processes on loopback: the Raft metadata
//! quorum forms, every node serves the same metadata, topic administration works through
//! any node and survives losing the active controller and restarting everything, controllers
//! and brokers run in separate roles, and replicas are spread over racks.
//!
//! Replication itself (followers, ISR, acks=all, failover without loss) is exercised in
//! `replication.rs` and `chaos.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use support::cluster::*;
use support::*;

/// How long the survivors may take to elect a new controller and accept a topic after the
/// active one is killed: "within a few seconds" (election timeouts are 0.5–1 s), with
/// room for a loaded machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(15);

/// Polls until every node in `ids` lists exactly `brokers`, the same cluster id and the
/// same known controller; returns node `ids[0]`'s view.
async fn agreed(cluster: &Cluster, ids: &[i32], brokers: &[i32]) -> ClusterView {
    let views = eventually(CONVERGE_TIMEOUT, &format!("nodes {ids:?} to agree on brokers {brokers:?}"), || async {
        let mut views = Vec::with_capacity(ids.len());
        for &id in ids {
            let view = cluster.view(id).await.map_err(|e| format!("node {id}: {e}"))?;
            if view.broker_ids() != brokers {
                return Err(format!("node {id} lists brokers {:?}", view.broker_ids()));
            }
            if view.controller_id < 0 {
                return Err(format!("node {id} knows no controller"));
            }
            views.push(view);
        }
        let controllers: BTreeSet<i32> = views.iter().map(|v| v.controller_id).collect();
        if controllers.len() != 1 {
            return Err(format!("nodes name different controllers {controllers:?}"));
        }
        Ok(views)
    })
    .await;
    let first = &views[0];
    assert!(!first.cluster_id.is_empty(), "node {} reports an empty cluster id", ids[0]);
    for (view, id) in views.iter().zip(ids) {
        assert_eq!(view.cluster_id, first.cluster_id, "node {id} and node {} name different clusters", ids[0]);
        assert_eq!(view.brokers, first.brokers, "node {id} and node {} list brokers differently", ids[0]);
    }
    for (&broker, listed) in &first.brokers {
        assert_eq!(listed.addr, cluster.kafka_addr(broker), "broker {broker} is listed at its own Kafka address");
    }
    first.clone()
}

/// Polls until every node in `ids` lists `topic` the same way (id, leaders, replicas): each
/// node applies the metadata log on its own, so one may briefly lag the others. Returns
/// that listing.
async fn topic_everywhere(cluster: &Cluster, ids: &[i32], topic: &str) -> TopicView {
    eventually(CONVERGE_TIMEOUT, &format!("nodes {ids:?} to list topic {topic} alike"), || async {
        let mut first: Option<TopicView> = None;
        for &id in ids {
            let view = cluster.view(id).await.map_err(|e| format!("node {id}: {e}"))?;
            let listed = view.topic(topic).ok_or_else(|| format!("node {id} does not list {topic} yet"))?;
            match &first {
                None => first = Some(listed.clone()),
                Some(first) if first != listed => {
                    return Err(format!("node {id} lists {listed:?}, node {} {first:?}", ids[0]));
                }
                Some(_) => {}
            }
        }
        first.ok_or_else(|| "no node asked".to_string())
    })
    .await
}

/// How many partitions each broker leads.
fn leader_counts(topic: &TopicView) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for partition in &topic.partitions {
        *counts.entry(partition.leader).or_insert(0) += 1;
    }
    counts
}

/// With replication factor 1, every partition's only replica is its leader.
fn assert_single_replica_leaders(topic: &TopicView, name: &str) {
    for (index, partition) in topic.partitions.iter().enumerate() {
        assert_eq!(partition.replicas, vec![partition.leader], "{name}-{index}: the leader is the only replica");
    }
}

/// Partition directories (`topic-N`) of `topic` in a node's data directory.
fn hosted_partitions(node: &Node, topic: &str) -> BTreeSet<i32> {
    let prefix = format!("{topic}-");
    std::fs::read_dir(node.data_dir())
        .unwrap_or_else(|e| panic!("reading {}: {e}", node.data_dir().display()))
        .filter_map(|entry| {
            let name = entry.expect("dir entry").file_name().to_string_lossy().to_string();
            name.strip_prefix(&prefix)?.parse::<i32>().ok()
        })
        .collect()
}

/// Every node hosts exactly the partitions of `topic` it leads (replication factor 1).
fn assert_hosted_by_leaders(cluster: &Cluster, topic: &TopicView, name: &str) {
    for id in cluster.ids() {
        let led: BTreeSet<i32> = (0..)
            .zip(&topic.partitions)
            .filter(|(_, partition)| partition.leader == id)
            .map(|(index, _)| index)
            .collect();
        assert_eq!(
            hosted_partitions(cluster.node(id), name),
            led,
            "node {id} hosts exactly the {name} partitions it leads"
        );
    }
}

/// `count` messages over `keys` distinct keys.
fn keyed_messages(tag: &str, count: usize, keys: usize) -> Vec<Msg> {
    (0..count).map(|i| Msg::new(format!("{tag}-key-{}", i % keys), format!("{tag} value {i}"))).collect()
}

/// Has `__consumer_offsets` created through one FindCoordinator and waits until every
/// broker lists it. librdkafka's consumer needs a group id even to `assign()`, so it looks
/// up a coordinator on several connections at once; concurrent *first* lookups on one node
/// stall that node (see `concurrent_first_find_coordinator_requests_do_not_stall_a_node`),
/// and the data scenarios are not about that.
async fn create_offsets_topic(cluster: &Cluster) {
    let brokers = cluster.broker_ids();
    let addr = cluster.kafka_addr(brokers[0]).to_string();
    let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("runnel-tests-unused"));
    eventually(CONVERGE_TIMEOUT, "one FindCoordinator to create __consumer_offsets", || async {
        let mut conn = runnel_client::Connection::connect(&addr).await.map_err(|e| e.to_string())?;
        conn.send(&request, 3).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    topic_everywhere(cluster, &brokers, "__consumer_offsets").await;
}

/// Reads every partition of `topic` from the beginning through `bootstrap` and asserts each
/// message is exactly at the place its delivery report named, and nothing else is there.
async fn assert_read_back(bootstrap: &str, topic: &str, partitions: i32, sent: &[Msg], placed: &[Placed]) {
    assert_eq!(sent.len(), placed.len(), "one delivery report per message");
    let received = read_back(bootstrap, topic, partitions, sent.len()).await;
    let expected: BTreeMap<Placed, &Msg> = placed.iter().copied().zip(sent).collect();
    assert_eq!(expected.len(), sent.len(), "delivery reports name distinct offsets");
    let got: BTreeMap<Placed, &Msg> = received.iter().map(|r| (r.placed, &r.msg)).collect();
    assert_eq!(got.len(), received.len(), "no offset was read twice");
    assert_eq!(got, expected, "{topic} reads back exactly what was delivered, where it was delivered");
}

/// Messages with the same key land in the same partition, and the keys spread the
/// messages over more than one partition.
fn assert_spread_by_key(sent: &[Msg], placed: &[Placed]) {
    let mut partition_of_key: BTreeMap<&[u8], i32> = BTreeMap::new();
    for (msg, place) in sent.iter().zip(placed) {
        let key = msg.key.as_deref().expect("keyed message");
        let first = *partition_of_key.entry(key).or_insert(place.partition);
        assert_eq!(first, place.partition, "every message with key {:?} lands in one partition", msg.key);
    }
    let used: BTreeSet<i32> = partition_of_key.values().copied().collect();
    assert!(used.len() > 1, "keys spread over several partitions, got {used:?}");
}

/// `runnel topic describe` through one node.
fn describe_with_cli(bootstrap: &str, topic: &str) -> String {
    runnel_topic(bootstrap, &["describe", topic])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_combined_nodes_form_a_cluster_and_agree_on_metadata() {
    let cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    let view = agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    assert!([1, 2, 3].contains(&view.controller_id), "the controller is one of the voters: {}", view.controller_id);

    let topic_id = create_topic_via(cluster.kafka_addr(2), "spread", 6, 1)
        .await
        .unwrap_or_else(|e| panic!("creating spread through node 2: {e}"));
    let spread = topic_everywhere(&cluster, &[1, 2, 3], "spread").await;
    assert_eq!(spread.topic_id, topic_id, "every node lists the id node 2 answered with");
    assert_eq!(spread.partitions.len(), 6);
    assert_single_replica_leaders(&spread, "spread");
    let counts = leader_counts(&spread);
    assert_eq!(counts, BTreeMap::from([(1, 2), (2, 2), (3, 2)]), "6 leaders spread evenly over 3 brokers");

    // A client that knows only node 3 finds every leader from its metadata.
    let sent = keyed_messages("spread", 60, 20);
    let placed = produce_all(&producer(cluster.kafka_addr(3), &[]), "spread", None, &sent, None).await;
    assert_spread_by_key(&sent, &placed);
    create_offsets_topic(&cluster).await;
    assert_read_back(cluster.kafka_addr(1), "spread", 6, &sent, &placed).await;
    assert_hosted_by_leaders(&cluster, &spread, "spread");

    let described = describe_with_cli(cluster.kafka_addr(3), "spread");
    assert!(described.contains(&format!("id {topic_id} partitions 6")), "runnel topic describe:\n{described}");
    for (index, partition) in spread.partitions.iter().enumerate() {
        let line = format!("partition {index} leader {} ", partition.leader);
        assert!(described.contains(&line), "runnel topic describe shows '{line}':\n{described}");
    }
}

/// Creates `name` through `addr`, retrying while the quorum has no leader; an answer lost
/// with a dead controller may have committed, so "already exists" also counts as created.
async fn create_during_failover(addr: &str, name: &str, partitions: i32) -> Duration {
    let started = Instant::now();
    eventually(FAILOVER_TIMEOUT, &format!("creating {name} through {addr}"), || async {
        match create_topic_via(addr, name, partitions, 1).await {
            Ok(_) => Ok(()),
            Err(e) if e.is(ResponseError::TopicAlreadyExists) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_active_controller_elects_a_new_one_and_creation_continues() {
    let mut cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    let old_controller = agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await.controller_id;
    let survivors: Vec<i32> = cluster.ids().into_iter().filter(|&id| id != old_controller).collect();

    cluster.kill9(old_controller);
    let took = create_during_failover(cluster.kafka_addr(survivors[0]), "after-failover", 3).await;
    eprintln!("topic created through node {} {took:?} after killing controller {old_controller}", survivors[0]);

    let new_controller = eventually(CONVERGE_TIMEOUT, "the survivors to agree on a new controller", || async {
        let mut named = BTreeSet::new();
        for &id in &survivors {
            named.insert(cluster.view(id).await.map_err(|e| format!("node {id}: {e}"))?.controller_id);
        }
        match named.iter().copied().collect::<Vec<_>>()[..] {
            [one] if survivors.contains(&one) => Ok(one),
            _ => Err(format!("survivors {survivors:?} name controllers {named:?}")),
        }
    })
    .await;
    assert_ne!(new_controller, old_controller, "a survivor leads the quorum");
    let created = topic_everywhere(&cluster, &survivors, "after-failover").await;
    assert_eq!(created.partitions.len(), 3);

    // The killed node rejoins on its old ports and catches up with what it missed.
    cluster.restart(&[old_controller]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    let caught_up = topic_everywhere(&cluster, &[survivors[0], old_controller], "after-failover").await;
    assert_eq!(caught_up, created, "the restarted node lists the topic created while it was down");

    // And it can administer the cluster again: its proposal reaches the new leader.
    create_topic_via(cluster.kafka_addr(old_controller), "after-rejoin", 2, 1)
        .await
        .unwrap_or_else(|e| panic!("creating after-rejoin through the restarted node {old_controller}: {e}"));
    topic_everywhere(&cluster, &[1, 2, 3], "after-rejoin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_keeps_all_metadata_and_data() {
    let mut cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    create_topic_via(cluster.kafka_addr(1), "alpha", 3, 1).await.unwrap_or_else(|e| panic!("creating alpha: {e}"));
    create_topic_via(cluster.kafka_addr(2), "beta", 5, 1).await.unwrap_or_else(|e| panic!("creating beta: {e}"));
    create_partitions_via(cluster.kafka_addr(3), "alpha", 4).await.unwrap_or_else(|e| panic!("growing alpha: {e}"));
    let alpha = eventually(CONVERGE_TIMEOUT, "alpha to have 4 partitions on node 1", || async {
        let view = cluster.view(1).await?;
        match view.topic("alpha") {
            Some(alpha) if alpha.partitions.len() == 4 => Ok(alpha.clone()),
            other => Err(format!("node 1 lists alpha as {other:?}")),
        }
    })
    .await;
    assert_eq!(topic_everywhere(&cluster, &[1, 2, 3], "alpha").await, alpha);
    let beta = topic_everywhere(&cluster, &[1, 2, 3], "beta").await;
    assert_eq!(beta.partitions.len(), 5);

    let all = [cluster.kafka_addr(1), cluster.kafka_addr(2), cluster.kafka_addr(3)].join(",");
    let producer = producer(&all, &[]);
    let alpha_sent = keyed_messages("alpha", 40, 16);
    let alpha_placed = produce_all(&producer, "alpha", None, &alpha_sent, None).await;
    let beta_sent = keyed_messages("beta", 50, 16);
    let beta_placed = produce_all(&producer, "beta", None, &beta_sent, None).await;
    drop(producer);
    create_offsets_topic(&cluster).await;

    cluster.terminate(&[1, 2, 3]);
    cluster.restart(&[1, 2, 3]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    // With one replica per partition the leader cannot move, so the listings come back whole.
    eventually(CONVERGE_TIMEOUT, "every node to list alpha and beta as before the restart", || async {
        for id in [1, 2, 3] {
            let view = cluster.view(id).await.map_err(|e| format!("node {id}: {e}"))?;
            if view.topic("alpha") != Some(&alpha) || view.topic("beta") != Some(&beta) {
                return Err(format!("node {id} lists alpha {:?} beta {:?}", view.topic("alpha"), view.topic("beta")));
            }
        }
        Ok(())
    })
    .await;
    assert_read_back(cluster.kafka_addr(2), "alpha", 4, &alpha_sent, &alpha_placed).await;
    assert_read_back(cluster.kafka_addr(3), "beta", 5, &beta_sent, &beta_placed).await;
}

/// A node whose quorum has gone with the other nodes still stops cleanly, within the
/// harness's shutdown bound: its controlled shutdown cannot commit, and neither can the
/// background decisions that were waiting for the quorum. Its data is intact afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_node_stops_cleanly_after_its_quorum_is_gone() {
    let mut cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    create_topic_via(cluster.kafka_addr(1), "left", 3, 1).await.unwrap_or_else(|e| panic!("creating left: {e}"));
    let left = topic_everywhere(&cluster, &[1, 2, 3], "left").await;
    assert_eq!(leader_counts(&left).get(&3), Some(&1), "node 3 leads a partition it must hand over: {left:?}");
    let all = [cluster.kafka_addr(1), cluster.kafka_addr(2), cluster.kafka_addr(3)].join(",");
    let sent = keyed_messages("left", 30, 9);
    let placed = produce_all(&producer(&all, &[]), "left", None, &sent, None).await;

    cluster.kill9(1);
    cluster.kill9(2);
    // Panics unless node 3 exits successfully within the shutdown bound.
    cluster.terminate(&[3]);

    cluster.restart(&[1, 2, 3]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    create_offsets_topic(&cluster).await;
    assert_read_back(cluster.kafka_addr(3), "left", 3, &sent, &placed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_and_two_brokers_in_separate_roles() {
    let cluster = Cluster::start(&[
        Spec::controller(1),
        Spec::controller(2),
        Spec::controller(3),
        Spec::broker(4),
        Spec::broker(5),
    ]);
    assert_eq!(cluster.broker_ids(), vec![4, 5]);
    let view = agreed(&cluster, &[4, 5], &[4, 5]).await;
    assert!([1, 2, 3].contains(&view.controller_id), "a controller-only node leads the quorum: {}", view.controller_id);

    let topic_id = create_topic_via(cluster.kafka_addr(5), "split", 4, 1)
        .await
        .unwrap_or_else(|e| panic!("creating split through broker 5: {e}"));
    let split = topic_everywhere(&cluster, &[4, 5], "split").await;
    assert_eq!(split.topic_id, topic_id);
    assert_single_replica_leaders(&split, "split");
    assert_eq!(leader_counts(&split), BTreeMap::from([(4, 2), (5, 2)]), "only brokers lead, evenly");

    let sent = keyed_messages("split", 40, 12);
    let placed = produce_all(&producer(cluster.kafka_addr(4), &[]), "split", None, &sent, None).await;
    assert_spread_by_key(&sent, &placed);
    create_offsets_topic(&cluster).await;
    assert_read_back(cluster.kafka_addr(5), "split", 4, &sent, &placed).await;
    assert_hosted_by_leaders(&cluster, &split, "split");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racks_spread_replicas() {
    // Two brokers share rack a: a placement that ignores racks puts both in some partition.
    let cluster = Cluster::start(&[
        Spec::combined(1).with_rack("a"),
        Spec::combined(2).with_rack("a"),
        Spec::combined(3).with_rack("b"),
        Spec::broker(4).with_rack("c"),
    ]);
    let view = agreed(&cluster, &[1, 2, 3, 4], &[1, 2, 3, 4]).await;
    let rack_of: BTreeMap<i32, String> = view
        .brokers
        .iter()
        .map(|(&id, broker)| (id, broker.rack.clone().unwrap_or_else(|| panic!("broker {id} lists no rack"))))
        .collect();
    assert_eq!(rack_of, BTreeMap::from([(1, "a".into()), (2, "a".into()), (3, "b".into()), (4, "c".into())]));

    create_topic_via(cluster.kafka_addr(4), "racked", 8, 3).await.unwrap_or_else(|e| panic!("creating racked: {e}"));
    let racked = topic_everywhere(&cluster, &[1, 2, 3, 4], "racked").await;
    assert_eq!(racked.partitions.len(), 8);
    for (index, partition) in racked.partitions.iter().enumerate() {
        let brokers: BTreeSet<i32> = partition.replicas.iter().copied().collect();
        assert_eq!(brokers.len(), 3, "racked-{index}: 3 distinct replicas, got {:?}", partition.replicas);
        assert!(brokers.contains(&partition.leader), "racked-{index}: the leader is a replica: {partition:?}");
        let racks: BTreeSet<&str> = partition.replicas.iter().map(|b| rack_of[b].as_str()).collect();
        assert_eq!(racks.len(), 3, "racked-{index}: replicas {:?} span 3 racks, got {racks:?}", partition.replicas);
    }

    let refused = create_topic_via(cluster.kafka_addr(1), "too-many-replicas", 1, 5).await;
    assert!(
        matches!(&refused, Err(e) if e.is(ResponseError::InvalidReplicationFactor)),
        "replication factor 5 over 4 brokers is refused: {refused:?}"
    );
}

/// Enough requests in flight at once to occupy every runtime worker of a node (it runs one
/// per core) and then some: a handler that blocks a worker while its node's own quorum
/// member must make progress would stall the node.
fn requests_to_fill_every_worker() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get()) * 2 + 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_create_topics_through_one_node_all_succeed() {
    let cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    let count = requests_to_fill_every_worker();
    let addr = cluster.kafka_addr(3).to_string();
    let creations: Vec<_> = (0..count)
        .map(|i| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let name = format!("concurrent-{i}");
                let created = tokio::time::timeout(FAILOVER_TIMEOUT, create_topic_via(&addr, &name, 2, 1)).await;
                (name, created)
            })
        })
        .collect();
    for creation in creations {
        let (name, created) = creation.await.expect("creation task");
        match created {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("creating {name} among {count} concurrent creations through node 3: {e}"),
            Err(_) => panic!("creating {name} among {count} concurrent creations through node 3: no answer within {FAILOVER_TIMEOUT:?}"),
        }
    }
    for i in 0..count {
        topic_everywhere(&cluster, &[1, 2, 3], &format!("concurrent-{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_find_coordinator_requests_do_not_stall_a_node() {
    let cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    // The first lookups create __consumer_offsets through the quorum, all at once.
    let count = requests_to_fill_every_worker();
    let addr = cluster.kafka_addr(3).to_string();
    let lookups: Vec<_> = (0..count)
        .map(|i| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(format!("group-{i}")));
                let answered = tokio::time::timeout(FAILOVER_TIMEOUT, async {
                    let mut conn = runnel_client::Connection::connect(&addr).await.map_err(|e| e.to_string())?;
                    conn.send(&request, 3).await.map_err(|e| e.to_string())
                })
                .await;
                (i, answered)
            })
        })
        .collect();
    for lookup in lookups {
        let (i, answered) = lookup.await.expect("lookup task");
        match answered {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("FindCoordinator {i} of {count} concurrent ones to node 3 failed: {e}"),
            Err(_) => panic!(
                "FindCoordinator {i} of {count} concurrent ones to node 3: no answer within {FAILOVER_TIMEOUT:?}"
            ),
        }
    }
    let view = tokio::time::timeout(Duration::from_secs(5), cluster.view(3)).await;
    assert!(matches!(view, Ok(Ok(_))), "node 3 answers Metadata after the lookups: {view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_answering_is_fenced_and_leads_nothing_until_it_returns() {
    let mut cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    let controller = agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await.controller_id;
    // Replication factor 3: every replica is in sync, so a fenced leader's partitions move
    // to another in-sync replica, and the fenced broker leaves the ISRs.
    create_topic_via(cluster.kafka_addr(1), "moving", 6, 3).await.unwrap_or_else(|e| panic!("creating moving: {e}"));
    let before = topic_everywhere(&cluster, &[1, 2, 3], "moving").await;
    let victim =
        before.partitions.iter().map(|p| p.leader).find(|&l| l != controller).expect("a non-controller leader");
    let survivors: Vec<i32> = cluster.ids().into_iter().filter(|&id| id != victim).collect();

    cluster.kill9(victim);
    // Fenced after broker.session.timeout.ms (9 s): no longer offered to clients...
    let view = agreed(&cluster, &survivors, &survivors).await;
    assert!(!view.brokers.contains_key(&victim), "the fenced broker is not offered to clients");
    // ...leading nothing, and out of every ISR.
    let after = eventually(Duration::from_secs(30), "the silent broker to lead nothing", || async {
        let view = cluster.view(survivors[0]).await?;
        let topic = view.topic("moving").ok_or("topic missing")?.clone();
        match topic.partitions.iter().find(|p| p.leader == victim || p.isr.contains(&victim)) {
            Some(p) => Err(format!("the silent broker still leads or is in sync: {p:?}")),
            None => Ok(topic),
        }
    })
    .await;
    for (was, is) in before.partitions.iter().zip(&after.partitions) {
        assert_eq!(was.replicas, is.replicas, "fencing changes leaders, not replicas");
        if was.leader == victim {
            assert!(survivors.contains(&is.leader), "moved to a live in-sync replica: {is:?}");
        } else {
            assert_eq!(was.leader, is.leader, "partitions led elsewhere keep their leader");
        }
    }

    // Back again: registered, unfenced, listed, and in sync again on every partition.
    cluster.restart(&[victim]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    eventually(Duration::from_secs(30), "the returning broker to be in sync again", || async {
        let view = cluster.view(survivors[0]).await?;
        let topic = view.topic("moving").ok_or("topic missing")?.clone();
        match topic.partitions.iter().find(|p| p.leader < 0 || p.isr.len() != 3) {
            Some(p) => Err(format!("not fully in sync yet: {p:?}")),
            None => Ok(topic),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_cut_off_from_the_controllers_is_fenced_while_it_runs_and_unfenced_when_healed() {
    use support::proxy::Proxy;
    // Node 4's quorum listener sits behind a proxy; cutting the proxy cuts the controllers
    // off from node 4 while it keeps running and serving its own clients.
    let proxy = Proxy::start(0x6a_0001);
    let port = free_ports(1)[0];
    proxy.set_target(format!("127.0.0.1:{port}").parse().expect("an address"));
    let cluster = Cluster::start(&[
        Spec::combined(1),
        Spec::combined(2),
        Spec::combined(3),
        Spec::broker(4).with_controller(port, proxy.addr().to_string()),
    ]);
    agreed(&cluster, &[1, 2, 3, 4], &[1, 2, 3, 4]).await;
    create_topic_via(cluster.kafka_addr(1), "cut", 8, 1).await.unwrap_or_else(|e| panic!("creating cut: {e}"));
    let before = topic_everywhere(&cluster, &[1, 2, 3, 4], "cut").await;
    assert!(before.partitions.iter().any(|p| p.leader == 4), "node 4 leads some partitions: {before:?}");

    proxy.cut_for(Duration::from_secs(120));
    // The controllers fence node 4 after broker.session.timeout.ms; its partitions go
    // offline (their only in-sync replica is unreachable), the others keep their leaders.
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    let fenced = eventually(Duration::from_secs(30), "node 4's partitions to go offline", || async {
        let topic = cluster.view(1).await?.topic("cut").ok_or("topic missing")?.clone();
        match topic.partitions.iter().any(|p| p.leader == 4) {
            true => Err("node 4 still leads a partition".to_string()),
            false => Ok(topic),
        }
    })
    .await;
    for (was, is) in before.partitions.iter().zip(&fenced.partitions) {
        assert_eq!(is.leader, if was.leader == 4 { -1 } else { was.leader });
    }
    cluster.view(4).await.unwrap_or_else(|e| panic!("node 4 keeps serving its own clients: {e}"));
    assert!(proxy.stats().connections_cut + proxy.stats().connections_refused > 0, "{:?}", proxy.stats());

    proxy.end_outage();
    // Reachable again: unfenced, listed, and leading its partitions again.
    agreed(&cluster, &[1, 2, 3, 4], &[1, 2, 3, 4]).await;
    let healed = eventually(Duration::from_secs(30), "node 4 to lead its partitions again", || async {
        let topic = cluster.view(1).await?.topic("cut").ok_or("topic missing")?.clone();
        match topic.partitions.iter().any(|p| p.leader < 0) {
            true => Err("a partition is still offline".to_string()),
            false => Ok(topic),
        }
    })
    .await;
    let leaders = |t: &TopicView| t.partitions.iter().map(|p| p.leader).collect::<Vec<_>>();
    assert_eq!(leaders(&healed), leaders(&before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_cannot_open_hand_their_leadership_over_and_leave_the_isr() {
    let cluster = Cluster::start(&[Spec::combined(1), Spec::combined(2), Spec::combined(3)]);
    agreed(&cluster, &[1, 2, 3], &[1, 2, 3]).await;
    // Node 1 cannot create any partition folder of "hurt" (a file holds each name; in the
    // field a failing disk, a full file table): its replicas are offline from the start.
    for index in 0..6 {
        std::fs::write(cluster.node(1).data_dir().join(format!("hurt-{index}")), b"not a folder").unwrap();
    }
    create_topic_via(cluster.kafka_addr(2), "hurt", 6, 3).await.unwrap_or_else(|e| panic!("creating hurt: {e}"));
    // Node 1 reports them, and leadership moves to the other in-sync replicas: without the
    // report node 1 would keep leading the partitions placed on it first, answering
    // KAFKA_STORAGE_ERROR for ever.
    let topic = eventually(Duration::from_secs(30), "node 1 to lead nothing of hurt and leave its ISRs", || async {
        let view = cluster.view(2).await?;
        let topic = view.topic("hurt").ok_or("topic missing")?.clone();
        match topic.partitions.iter().find(|p| p.leader == 1 || p.leader < 0 || p.isr.contains(&1)) {
            Some(p) => Err(format!("not moved yet: {p:?}")),
            None => Ok(topic),
        }
    })
    .await;
    assert!(topic.partitions.iter().all(|p| p.replicas.contains(&1)), "replicas stay assigned: {topic:?}");
    assert!(topic.partitions.iter().all(|p| p.isr.len() == 2), "the two healthy replicas are in sync: {topic:?}");
    // Every node lists the reported replicas offline, not only node 1.
    let described = describe_with_cli(cluster.kafka_addr(3), "hurt");
    assert_eq!(described.matches("offline 1").count(), 6, "node 3 lists node 1's replicas offline:\n{described}");
    // acks=all writes succeed and read back through the node with the offline replicas.
    let sent = keyed_messages("hurt", 60, 12);
    let placed = produce_all(&producer(cluster.kafka_addr(1), &[("acks", "all")]), "hurt", None, &sent, None).await;
    assert_read_back(cluster.kafka_addr(1), "hurt", 6, &sent, &placed).await;
}
