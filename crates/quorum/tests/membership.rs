//! Changing the voter set on a running quorum (KIP-853): promoting a learner, adding a node
//! that was not a member, removing a voter (the leader too), and the refusals.

mod support;

use std::time::Duration;

use runnel_quorum::{ForwardError, QuorumError, QuorumNode, Roles, ServerState};
use support::{bounded, config_value, tuning, Cluster, WAIT};

const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);

fn voters(cluster: &Cluster, via: u64) -> Vec<u64> {
    let metrics = cluster.node(via).metrics();
    metrics.members.iter().filter(|(_, (_, voter))| *voter).map(|(id, _)| *id).collect()
}

/// Waits until node `via` sees exactly `expected` as voters.
async fn voters_become(cluster: &Cluster, via: u64, expected: &[u64]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while voters(cluster, via) != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {via} sees voters {:?}, not {expected:?}",
            voters(cluster, via)
        );
        let _ = cluster.node(via).raft().wait(Some(Duration::from_millis(100))).metrics(|_| false, "change").await;
    }
}

/// A voter other than `leader` and node 4.
fn dead_candidate(cluster: &Cluster, leader: u64) -> u64 {
    *cluster.nodes.keys().find(|id| **id != leader && **id != 4).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_becomes_a_voter_and_the_leader_can_remove_itself() {
    bounded("promote and remove the leader", async {
        let mut cluster = Cluster::start(3, tuning()).await;
        let leader = cluster.leader().await;
        let before = cluster.propose_range(leader, 0, 5).await;

        // Node 4 joins as a learner (an observer), then is made a voter through a follower.
        cluster.start_node(4, false, None).await;
        let node = QuorumNode {
            kafka_addr: "127.0.0.1:9004".into(),
            controller_addr: cluster.addrs[&4].clone(),
            roles: Roles::COMBINED,
            rack: None,
        };
        cluster.node(leader).add_learner(4, node).await.unwrap();
        let follower = *cluster.nodes.keys().find(|id| **id != leader && **id != 4).unwrap();
        cluster.node(follower).add_voter(4, None, CHANGE_TIMEOUT).await.unwrap();
        cluster.applied(4, before).await;
        voters_become(&cluster, 4, &[1, 2, 3, 4]).await;

        // Refusals, with Kafka's meanings.
        let duplicate = cluster.node(4).add_voter(2, None, CHANGE_TIMEOUT).await;
        assert!(matches!(duplicate, Err(QuorumError::VoterChange(ForwardError::DuplicateVoter { node_id: 2 }))));
        let missing = cluster.node(4).remove_voter(9, CHANGE_TIMEOUT).await;
        assert!(matches!(missing, Err(QuorumError::VoterChange(ForwardError::VoterNotFound { node_id: 9 }))));
        let unknown = cluster.node(4).add_voter(9, None, CHANGE_TIMEOUT).await;
        assert!(matches!(unknown, Err(QuorumError::VoterChange(ForwardError::Invalid { .. }))), "{unknown:?}");

        // The leader removes itself: it leaves the membership and steps down, another voter
        // takes over. A removed node that still runs is added back as a learner (the broker
        // does this on its own), and then follows the new leader.
        let old = cluster.node(leader).metrics().members[&leader].0.clone();
        cluster.node(leader).remove_voter(leader, CHANGE_TIMEOUT).await.unwrap();
        let rest: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|id| *id != leader).collect();
        voters_become(&cluster, 4, &rest).await;
        assert!(!cluster.node(leader).is_member().await.unwrap());
        // Added back only once it has stepped down, or it would go on leading as a learner.
        let wait = cluster.node(leader).raft().wait(Some(WAIT));
        wait.metrics(|m| !m.state.is_leader(), "step down").await.expect("the removed leader steps down");
        cluster.node(4).add_learner(leader, old).await.unwrap();
        let new = cluster.leader().await;
        assert_ne!(new, leader);
        assert_eq!(cluster.node(leader).metrics().state, ServerState::Learner);
        let last = cluster.propose_range(leader, 5, 8).await;
        cluster.all_applied(last).await;
        assert!((0..8).all(|n| config_value(&cluster.agreed_image(), n).is_some()));

        // The membership is in the log: a restarted voter is still one and still a member.
        cluster.stop(4).await;
        cluster.start_node(4, false, None).await;
        assert!(cluster.node(4).is_member().await.unwrap());
        voters_become(&cluster, 4, &rest).await;
        let last = cluster.propose_range(4, 8, 9).await;
        cluster.all_applied(last).await;
        cluster.stop_all().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_a_member_is_added_by_address_and_a_dead_voter_is_replaced() {
    bounded("replace a dead voter", async {
        let mut cluster = Cluster::start(3, tuning()).await;
        let leader = cluster.leader().await;
        let before = cluster.propose_range(leader, 0, 3).await;

        cluster.start_node(4, false, None).await;
        assert!(!cluster.node(4).is_member().await.unwrap());
        let node = QuorumNode::voter(cluster.addrs[&4].clone());
        cluster.node(leader).add_voter(4, Some(node), CHANGE_TIMEOUT).await.unwrap();
        cluster.applied(4, before).await;

        // An address where nothing answers: the node never catches up and is not left behind.
        // One change at a time: while that one waits, another is refused.
        let nowhere = QuorumNode::voter("127.0.0.1:9");
        let waiting = cluster.node(leader).add_voter(7, Some(nowhere), Duration::from_secs(3));
        let second = async {
            let wait = cluster.node(leader).raft().wait(Some(WAIT));
            wait.metrics(|m| m.membership_config.membership().get_node(&7).is_some(), "7 added").await.unwrap();
            cluster.node(4).remove_voter(dead_candidate(&cluster, leader), CHANGE_TIMEOUT).await
        };
        let (first, second) = tokio::join!(waiting, second);
        assert!(matches!(first, Err(QuorumError::VoterChange(ForwardError::NotCaughtUp { node_id: 7 }))), "{first:?}");
        assert!(matches!(second, Err(QuorumError::VoterChange(ForwardError::ChangeInProgress))), "{second:?}");
        let members = cluster.node(leader).metrics().members;
        assert!(!members.contains_key(&7), "the learner added for it is taken back: {members:?}");

        // A follower dies; the others remove it and keep committing.
        let dead = *cluster.nodes.keys().find(|id| **id != leader && **id != 4).unwrap();
        cluster.stop(dead).await;
        cluster.node(4).remove_voter(dead, CHANGE_TIMEOUT).await.unwrap();
        let rest: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|id| *id != dead).collect();
        voters_become(&cluster, leader, &rest).await;
        let last = cluster.propose_range(4, 3, 6).await;
        cluster.all_applied(last).await;
        cluster.stop_all().await;
    })
    .await;
}
