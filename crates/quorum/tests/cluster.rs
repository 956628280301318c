//! Named scenarios for a quorum of in-process nodes talking over real TCP on 127.0.0.1.

mod support;

use std::time::Duration;

use runnel_quorum::{QuorumError, QuorumNode, QuorumTuning, Roles};
use support::{bounded, config_value, record, tuning, Cluster, CLUSTER_ID, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_leader_and_apply_identical_images() {
    bounded("three voters", async {
        let cluster = Cluster::start(3, tuning()).await;
        let leader = cluster.leader().await;
        let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();

        // Through the leader, and through a follower (forwarded to the leader).
        cluster.propose_range(leader, 0, 5).await;
        let last = cluster.propose_range(follower, 5, 10).await;
        cluster.all_applied(last).await;

        let image = cluster.agreed_image();
        for n in 0..10 {
            assert_eq!(config_value(&image, n), Some(&n.to_string()));
        }
        assert_eq!(image.records_applied, 10);
        let metrics = cluster.node(leader).metrics();
        assert_eq!(metrics.members.len(), 3);
        assert!(metrics.members.values().all(|(_, voter)| *voter));
        assert!(metrics.replicated_index.values().all(|i| i.is_some()));
        // Any node reports any other's progress over the transport.
        let status = cluster.node(follower).node_status(leader).await.unwrap();
        assert!(status.last_applied_index >= Some(last));
        assert_eq!(cluster.node(follower).current_leader().unwrap().0, leader);
        let mut cluster = cluster;
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_commits_alone_and_keeps_its_records_across_a_restart() {
    bounded("single voter", async {
        let mut cluster = Cluster::start(1, tuning()).await;
        assert_eq!(cluster.leader().await, 1);
        let last = cluster.propose_range(1, 0, 3).await;
        cluster.applied(1, last).await;
        let before = cluster.node(1).image();
        let mut images = cluster.node(1).subscribe();
        assert_eq!(*images.borrow_and_update(), before);
        let last = cluster.node(1).propose(vec![record(3)]).await.unwrap();
        images.changed().await.unwrap();
        assert!(config_value(&images.borrow_and_update(), 3).is_some(), "each applied batch is published");
        let before = cluster.node(1).image();

        cluster.stop(1).await;
        cluster.start_node(1, true, None).await;
        assert!(!cluster.node(1).initialize().await.unwrap());
        cluster.applied(1, last).await;
        assert_eq!(*cluster.node(1).image(), *before);
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_proposals_continue() {
    bounded("leader killed", async {
        let mut cluster = Cluster::start(3, tuning()).await;
        let old = cluster.leader().await;
        let before = cluster.propose_range(old, 0, 3).await;
        cluster.all_applied(before).await;

        cluster.stop(old).await;
        let new = cluster.leader().await;
        assert_ne!(new, old);
        let survivor = *cluster.nodes.keys().find(|id| **id != new).unwrap();
        let last = cluster.propose_range(survivor, 3, 6).await;
        cluster.all_applied(last).await;
        let image = cluster.agreed_image();
        assert!((0..6).all(|n| config_value(&image, n).is_some()));

        // The old leader comes back as a follower and catches up.
        cluster.start_node(old, true, None).await;
        cluster.applied(old, last).await;
        cluster.agreed_image();
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_keeps_every_committed_record() {
    bounded("full restart", async {
        let mut cluster = Cluster::start(3, tuning()).await;
        let leader = cluster.leader().await;
        let last = cluster.propose_range(leader, 0, 20).await;
        cluster.all_applied(last).await;
        let before = cluster.agreed_image();

        cluster.stop_all().await;
        for id in 1..=3 {
            cluster.start_node(id, true, None).await;
        }
        for node in cluster.nodes.values() {
            assert!(!node.initialize().await.unwrap(), "a restarted node is already initialized");
        }
        cluster.leader().await;
        cluster.all_applied(last).await;
        assert_eq!(*cluster.agreed_image(), *before);

        let leader = cluster.leader().await;
        let more = cluster.propose_range(leader, 20, 22).await;
        assert!(more > last);
        cluster.all_applied(more).await;
        assert_eq!(cluster.agreed_image().records_applied, 22);
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit() {
    bounded("minority", async {
        let tuning = QuorumTuning { propose_timeout: Duration::from_millis(1500), ..tuning() };
        let mut cluster = Cluster::start(3, tuning).await;
        let leader = cluster.leader().await;
        let last = cluster.propose_range(leader, 0, 1).await;
        cluster.all_applied(last).await;

        // The leader survives alone: it cannot reach a majority.
        let others: Vec<_> = cluster.nodes.keys().copied().filter(|id| *id != leader).collect();
        for id in others {
            cluster.stop(id).await;
        }
        let outcome = cluster.node(leader).propose(vec![record(1)]).await;
        assert!(matches!(outcome, Err(QuorumError::Timeout { .. })), "got {outcome:?}");
        let metrics = cluster.node(leader).metrics();
        assert_eq!(metrics.last_applied_index, Some(last), "nothing past the majority's commit is applied");
        assert_eq!(config_value(&cluster.node(leader).image(), 1), None);
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_receives_the_log_and_can_propose_through_the_leader() {
    bounded("learner", async {
        let mut cluster = Cluster::start(3, tuning()).await;
        let leader = cluster.leader().await;
        let before = cluster.propose_range(leader, 0, 5).await;

        cluster.start_node(4, false, None).await;
        let learner = QuorumNode {
            kafka_addr: "127.0.0.1:9004".into(),
            controller_addr: cluster.addrs[&4].clone(),
            roles: Roles::BROKER,
            rack: Some("r1".into()),
        };
        let follower = *cluster.nodes.keys().find(|id| **id != leader && **id != 4).unwrap();
        // Added through a follower: forwarded to the leader.
        cluster.node(follower).add_learner(4, learner.clone()).await.unwrap();
        cluster.applied(4, before).await;

        // The learner proposes too (forwarded), and receives what others propose.
        let mid = cluster.propose_range(4, 5, 7).await;
        let last = cluster.propose_range(leader, 7, 9).await;
        assert!(last > mid);
        cluster.all_applied(last).await;
        let image = cluster.agreed_image();
        assert!((0..9).all(|n| config_value(&image, n).is_some()));

        let metrics = cluster.node(4).metrics();
        assert_eq!(metrics.state, runnel_quorum::ServerState::Learner);
        assert_eq!(metrics.members.get(&4), Some(&(learner, false)));
        assert!(cluster.node(4).initialize().await.is_err(), "a learner cannot initialize");
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_lagging_or_new_nodes_catch_up_from_one() {
    bounded("snapshots", async {
        let tuning = QuorumTuning {
            snapshot_logs_since_last: 10,
            logs_kept_after_snapshot: 0,
            segment_bytes_max: 1024,
            ..tuning()
        };
        let mut cluster = Cluster::start(3, tuning).await;
        let leader = cluster.leader().await;
        let lagging = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
        cluster.stop(lagging).await;

        let last = cluster.propose_range(leader, 0, 40).await;
        // The leader snapshots and purges the log behind the snapshot.
        let metrics = cluster
            .node(leader)
            .raft()
            .wait(Some(WAIT))
            .metrics(|m| m.purged.is_some_and(|p| p.index >= 20), "leader purged its log")
            .await
            .expect("leader snapshots and purges");
        assert!(metrics.snapshot.is_some());

        // The lagging voter needs entries the leader no longer has: it gets the snapshot.
        cluster.start_node(lagging, true, None).await;
        cluster.applied(lagging, last).await;
        let lagging_metrics = cluster.node(lagging).metrics();
        assert!(lagging_metrics.snapshot_index.is_some(), "caught up from a snapshot");

        // So does a brand-new learner.
        cluster.start_node(5, false, None).await;
        let node = QuorumNode::voter(cluster.addrs[&5].clone());
        let node = QuorumNode { roles: Roles::BROKER, ..node };
        cluster.node(leader).add_learner(5, node).await.unwrap();
        let last = cluster.propose_range(leader, 40, 41).await;
        cluster.all_applied(last).await;
        assert!(cluster.node(5).metrics().snapshot_index.is_some());
        let image = cluster.agreed_image();
        assert!((0..41).all(|n| config_value(&image, n).is_some()));

        // Restarting from a snapshot plus the log after it rebuilds the same image.
        cluster.stop(5).await;
        cluster.start_node(5, false, None).await;
        cluster.applied(5, last).await;
        assert_eq!(*cluster.node(5).image(), *image);
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_the_connection_and_the_node_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded("oversized frame", async {
        let cluster = Cluster::start(1, tuning()).await;
        cluster.leader().await;
        let mut raw = tokio::net::TcpStream::connect(&cluster.addrs[&1]).await.unwrap();
        // Claims 4 GiB; the node must refuse it on the header, without reserving memory.
        raw.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(WAIT, raw.read(&mut byte)).await.expect("closed promptly");
        assert!(matches!(read, Ok(0) | Err(_)), "connection closed, got {read:?}");

        let mut connection =
            runnel_quorum::network::Connection::new(cluster.addrs[&1].clone(), 1024 * 1024, CLUSTER_ID);
        let response = connection.call(&runnel_quorum::rpc::Request::Status, WAIT).await.unwrap();
        assert!(matches!(response, runnel_quorum::rpc::Response::Status(s) if s.node_id == 1));
        cluster.propose_range(1, 0, 1).await;

        // A proposal that could never be replicated in one frame is refused up front.
        let huge = runnel_metadata::MetadataRecord::Config {
            resource: runnel_metadata::ConfigResource::Broker(1),
            name: "big".into(),
            value: Some("x".repeat(40 * 1024 * 1024)),
        };
        let outcome = cluster.node(1).propose(vec![huge]).await;
        assert!(matches!(outcome, Err(QuorumError::TooLarge { .. })), "got {outcome:?}");
        let mut cluster = cluster;
        cluster.stop_all().await;
    })
    .await;
}

/// A node of another cluster that reaches a member (say, restarted on an address one of
/// this cluster's nodes used before) is refused at the opening hello: its vote for a far
/// higher term cannot depose the leader, and the member keeps serving its own cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_refused_and_cannot_disturb_the_quorum() {
    use runnel_quorum::network::Connection;
    use runnel_quorum::rpc::{Request, Response, TransportError};
    bounded("another cluster", async {
        let mut cluster = Cluster::start(3, tuning()).await;
        let leader = cluster.leader().await;
        let last = cluster.propose_range(leader, 0, 3).await;
        cluster.all_applied(last).await;
        let term_before = cluster.node(leader).raft().metrics().borrow().current_term;

        let vote = openraft::raft::VoteRequest::new(openraft::Vote::new(term_before + 100, 3), None);
        for (id, addr) in &cluster.addrs {
            let mut stranger = Connection::new(addr.clone(), 1024 * 1024, "another-cluster");
            match stranger.call(&Request::Vote(vote.clone()), WAIT).await {
                Err(TransportError::OtherCluster { theirs, .. }) => assert_eq!(theirs, CLUSTER_ID, "node {id}"),
                Err(e) => panic!("node {id}: expected a refusal naming its cluster, got {e}"),
                Ok(_) => panic!("node {id} answered a node of another cluster"),
            }
        }
        assert_eq!(cluster.leader().await, leader, "the leader kept its place");
        let term_after = cluster.node(leader).raft().metrics().borrow().current_term;
        assert_eq!(term_after, term_before, "no member took the stranger's term");

        let mut member = Connection::new(cluster.addrs[&leader].clone(), 1024 * 1024, CLUSTER_ID);
        let status = member.call(&Request::Status, WAIT).await.expect("a member is still served");
        assert!(matches!(status, Response::Status(s) if s.node_id == leader));
        let more = cluster.propose_range(leader, 3, 6).await;
        cluster.all_applied(more).await;
        cluster.stop_all().await;
    })
    .await;
}
