//! Changing the voter set (KIP-853's AddRaftVoter and RemoveRaftVoter) on the leader.
//!
//! Adding a voter makes the node a learner (unless it already is one), waits until the
//! leader has replicated to it everything that was in the log when the wait began, and
//! then changes the membership to include it. Removing one moves the membership through a
//! joint configuration to the voters without it. A removed follower stays a learner (Kafka's
//! observer: a running one keeps following the log, and only so does it learn of its
//! removal, since the leader stops replicating to non-members); one that does not answer
//! the leader (a dead host being replaced) leaves the membership. The leader removing itself
//! leaves the membership altogether, because openraft's leader steps down only once it is
//! no longer a member (kept as a learner, it would go on leading); the remaining voters
//! elect another, and the broker asks to be added back as a learner
//! (`cluster::stay_member`).
//!
//! One change at a time per leader ([`ChangeLock`]); a second one, or one while openraft
//! still has an uncommitted membership entry, is refused with
//! [`ForwardError::ChangeInProgress`] (Kafka answers REQUEST_TIMED_OUT) rather than queued.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use tokio::time::Instant;

use crate::network::Connection;
use crate::rpc::{ForwardError, Request, Response};
use crate::types::{NodeId, QuorumNode, Raft};

/// What a voter change on this node needs beside the Raft node: a lock held while one runs
/// (shared by the façade and the server, so a local and a forwarded change cannot overlap),
/// and how to reach a peer to see whether it is alive.
#[derive(Clone, Debug)]
pub struct VoterChanges {
    lock: Arc<tokio::sync::Mutex<()>>,
    cluster_id: String,
    frame_bytes_max: u32,
    tls: Option<Arc<rustls::ClientConfig>>,
    bind: Option<IpAddr>,
}

/// How long a removed voter has to answer before it is taken to be gone.
const ALIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long taking back a learner added for a voter that did not catch up may take.
const UNDO_TIMEOUT: Duration = Duration::from_secs(10);

impl VoterChanges {
    pub fn new(
        cluster_id: &str,
        frame_bytes_max: u32,
        tls: Option<Arc<rustls::ClientConfig>>,
        bind: Option<IpAddr>,
    ) -> VoterChanges {
        VoterChanges { lock: Arc::default(), cluster_id: cluster_id.to_string(), frame_bytes_max, tls, bind }
    }

    /// Whether the member at `addr` answers a status call.
    async fn answers(&self, addr: &str) -> bool {
        let mut connection = Connection::new(addr.to_string(), self.frame_bytes_max, &self.cluster_id)
            .bound_to(self.bind)
            .with_tls(self.tls.clone());
        matches!(connection.call(&Request::Status, ALIVE_TIMEOUT).await, Ok(Response::Status(_)))
    }
}

/// The membership as the decision sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// openraft is between two voter sets (a joint configuration not yet left).
    pub joint: bool,
}

/// What adding a voter takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddPlan {
    /// Already a learner: wait for it to catch up, then promote it.
    Promote,
    /// Not a member: add it as a learner at this address first.
    AddLearnerThenPromote(QuorumNode),
}

/// Whether `node_id` may become a voter, and how. `node` is the address given with the
/// request, needed only when the node is not a member yet.
pub fn plan_add(members: &Members, node_id: NodeId, node: Option<&QuorumNode>) -> Result<AddPlan, ForwardError> {
    if members.joint {
        return Err(ForwardError::ChangeInProgress);
    }
    if members.voters.contains(&node_id) {
        return Err(ForwardError::DuplicateVoter { node_id });
    }
    if members.learners.contains(&node_id) {
        return Ok(AddPlan::Promote);
    }
    match node {
        Some(node) if !node.controller_addr.is_empty() => Ok(AddPlan::AddLearnerThenPromote(node.clone())),
        _ => Err(ForwardError::Invalid {
            message: format!("node {node_id} is not an observer of the quorum and no controller address was given"),
        }),
    }
}

/// Whether `node_id` may leave the voter set.
pub fn plan_remove(members: &Members, node_id: NodeId) -> Result<(), ForwardError> {
    if members.joint {
        return Err(ForwardError::ChangeInProgress);
    }
    if !members.voters.contains(&node_id) {
        return Err(ForwardError::VoterNotFound { node_id });
    }
    if members.voters.len() == 1 {
        return Err(ForwardError::Invalid { message: format!("node {node_id} is the only voter") });
    }
    Ok(())
}

fn members(raft: &Raft) -> Members {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let learners = membership.learner_ids().collect();
    Members { voters, learners, joint: membership.get_joint_config().len() > 1 }
}

/// This node leads, or the leader it knows of, as the refusal a forwarder follows.
fn ensure_leader(raft: &Raft) -> Result<(), ForwardError> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.state == ServerState::Leader && metrics.current_leader == Some(metrics.id) {
        return Ok(());
    }
    let leader = metrics.current_leader.and_then(|id| metrics.membership_config.membership().get_node(&id).cloned());
    Err(ForwardError::NotLeader { leader_id: metrics.current_leader, leader })
}

/// Adds `node_id` as a voter through this node, which must lead. Returns the index of the
/// membership entry that made it a voter.
pub async fn add_voter_here(
    raft: &Raft,
    changes: &VoterChanges,
    node_id: NodeId,
    node: Option<QuorumNode>,
    timeout: Duration,
) -> Result<u64, ForwardError> {
    let deadline = Instant::now() + timeout;
    let _change = changes.lock.try_lock().map_err(|_| ForwardError::ChangeInProgress)?;
    ensure_leader(raft)?;
    let added = match plan_add(&members(raft), node_id, node.as_ref())? {
        AddPlan::AddLearnerThenPromote(node) => {
            crate::server::check_node(&node)?;
            bounded(deadline, raft.add_learner(node_id, node, false)).await?.map_err(write_error)?;
            true
        }
        AddPlan::Promote => false,
    };
    if let Err(e) = caught_up(raft, node_id, deadline).await {
        // Kafka adds nothing when the new voter does not catch up: take back the learner
        // this call added (best effort, bounded by a proposal's usual time).
        if added {
            let change = ChangeMembers::RemoveNodes(BTreeSet::from([node_id]));
            let undo = tokio::time::timeout(UNDO_TIMEOUT, raft.change_membership(change, false)).await;
            tracing::info!(node_id, undone = matches!(undo, Ok(Ok(_))), "the new voter did not catch up");
        }
        return Err(e);
    }
    // Checked again: the learner addition above was a membership change of its own.
    plan_add(&members(raft), node_id, None)?;
    let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
    let response = bounded(deadline, raft.change_membership(change, true)).await?.map_err(write_error)?;
    tracing::info!(node_id, index = response.log_id.index, "added a voter");
    Ok(response.log_id.index)
}

/// Removes `node_id` from the voters through this node, which must lead (and may be the node
/// removed: it steps down once the change is committed).
pub async fn remove_voter_here(
    raft: &Raft,
    changes: &VoterChanges,
    node_id: NodeId,
    timeout: Duration,
) -> Result<u64, ForwardError> {
    let deadline = Instant::now() + timeout;
    let _change = changes.lock.try_lock().map_err(|_| ForwardError::ChangeInProgress)?;
    ensure_leader(raft)?;
    plan_remove(&members(raft), node_id)?;
    let (me, address) = {
        let metrics = raft.metrics().borrow().clone();
        let node = metrics.membership_config.membership().get_node(&node_id).cloned();
        (metrics.id, node.map(|n| n.controller_addr).unwrap_or_default())
    };
    let keep_as_learner = node_id != me && changes.answers(&address).await;
    let change = ChangeMembers::RemoveVoters(BTreeSet::from([node_id]));
    let response = bounded(deadline, raft.change_membership(change, keep_as_learner)).await?.map_err(write_error)?;
    tracing::info!(node_id, index = response.log_id.index, keep_as_learner, "removed a voter");
    Ok(response.log_id.index)
}

/// Waits until the leader has replicated to `node_id` everything its log held when the wait
/// began (Kafka: the new voter has fetched up to the leader's end offset).
async fn caught_up(raft: &Raft, node_id: NodeId, deadline: Instant) -> Result<(), ForwardError> {
    let target = raft.metrics().borrow().last_log_index;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let waited = raft
        .wait(Some(remaining))
        .metrics(
            |m| {
                let matched = m.replication.as_ref().and_then(|r| r.get(&node_id).cloned()).flatten();
                m.state != ServerState::Leader || matched.map(|l| l.index) >= target
            },
            "the new voter catches up",
        )
        .await;
    match waited {
        Ok(_) => ensure_leader(raft),
        Err(_) => Err(ForwardError::NotCaughtUp { node_id }),
    }
}

async fn bounded<T>(deadline: Instant, call: impl std::future::Future<Output = T>) -> Result<T, ForwardError> {
    tokio::time::timeout_at(deadline, call).await.map_err(|_| ForwardError::Timeout)
}

/// openraft's refusal of a membership write, as a forwarded caller sees it.
fn write_error(error: RaftError<NodeId, ClientWriteError<NodeId, QuorumNode>>) -> ForwardError {
    match error {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(_))) => {
            ForwardError::ChangeInProgress
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ForwardError::Invalid { message: e.to_string() }
        }
        other => crate::server::write_error(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(voters: &[NodeId], learners: &[NodeId]) -> Members {
        Members { voters: voters.iter().copied().collect(), learners: learners.iter().copied().collect(), joint: false }
    }

    #[test]
    fn adding_a_voter() {
        let node = QuorumNode::voter("10.0.0.4:9193");
        let three = members(&[1, 2, 3], &[4]);
        assert_eq!(plan_add(&three, 4, None), Ok(AddPlan::Promote));
        assert_eq!(plan_add(&three, 4, Some(&node)), Ok(AddPlan::Promote), "a learner keeps its own addresses");
        assert_eq!(plan_add(&three, 5, Some(&node)), Ok(AddPlan::AddLearnerThenPromote(node.clone())));
        assert_eq!(plan_add(&three, 2, Some(&node)), Err(ForwardError::DuplicateVoter { node_id: 2 }));
        assert!(matches!(plan_add(&three, 5, None), Err(ForwardError::Invalid { .. })));
        assert!(matches!(plan_add(&three, 5, Some(&QuorumNode::default())), Err(ForwardError::Invalid { .. })));
        let joint = Members { joint: true, ..three };
        assert_eq!(plan_add(&joint, 4, None), Err(ForwardError::ChangeInProgress));
    }

    #[test]
    fn removing_a_voter() {
        let three = members(&[1, 2, 3], &[4]);
        assert_eq!(plan_remove(&three, 2), Ok(()));
        assert_eq!(plan_remove(&three, 4), Err(ForwardError::VoterNotFound { node_id: 4 }));
        assert_eq!(plan_remove(&three, 9), Err(ForwardError::VoterNotFound { node_id: 9 }));
        assert!(matches!(plan_remove(&members(&[1], &[]), 1), Err(ForwardError::Invalid { .. })));
        let joint = Members { joint: true, ..three };
        assert_eq!(plan_remove(&joint, 2), Err(ForwardError::ChangeInProgress));
    }
}
