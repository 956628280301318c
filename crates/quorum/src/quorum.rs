//! The façade the broker uses: start a node, initialize the voters once, propose records,
//! add learners, watch the image, read metrics, shut down.
//!
//! A proposal made on a node that is not the leader is forwarded over the transport to the
//! leader it knows of, which writes it through its own Raft node; while no leader is known
//! the proposal waits for one, up to `propose_timeout`. A proposal that timed out, or whose
//! forwarded call got no answer, is *unknown*, not lost: it may still commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{Fatal, InitializeError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use runnel_metadata::{MetadataImage, MetadataRecord};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::log_files::{LogError, SEGMENT_BYTES_DEFAULT};
use crate::log_store::LogStore;
use crate::membership::{self, VoterChanges};
use crate::network::{Connection, NetworkFactory};
use crate::rpc::{ForwardError, NodeStatus, Request, Response, TransportError, FRAME_BYTES_MAX_DEFAULT};
use crate::server::{self, ServerLimits};
use crate::snapshot::SnapshotError;
use crate::snapshot_buffer::SNAPSHOT_BYTES_MAX_DEFAULT;
use crate::state_machine::StateMachine;
use crate::types::{MetadataBatch, NodeId, QuorumNode, Raft};

/// What a node needs to join the quorum.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// Every connection between members names it; a node of another cluster is refused.
    pub cluster_id: String,
    pub node_id: NodeId,
    /// This node's addresses, roles and rack, as the other members will see them.
    pub node: QuorumNode,
    /// The voters (`--controller-quorum`): node id to controller address.
    pub voters: BTreeMap<NodeId, String>,
    /// Where the log, vote and snapshot live: the broker passes `<data_dir>/__cluster_metadata-0`.
    pub dir: PathBuf,
    /// The controller listener to bind (`--controller-listen`), unless a bound listener is
    /// passed to [`Quorum::start_with_listener`].
    pub listen: String,
    /// One of the initial voters (`voters`), which initialize the quorum once. Any other node
    /// joins as a learner (an observer) and may be made a voter later ([`Quorum::add_voter`]);
    /// the membership, kept in the log, then decides what it is on every later start.
    pub voter: bool,
    pub tuning: QuorumTuning,
}

/// Timings and bounds; the defaults suit a LAN.
#[derive(Clone, Debug)]
pub struct QuorumTuning {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind the newest snapshot, for followers slightly behind.
    pub logs_kept_after_snapshot: u64,
    pub segment_bytes_max: u64,
    pub frame_bytes_max: u32,
    /// A snapshot received from the leader may not grow past this (in memory, as JSON).
    pub snapshot_bytes_max: u64,
    pub connections_max: usize,
    /// How long a proposal (or learner addition) may take, forwarding included.
    pub propose_timeout: Duration,
    /// How long a peer may take to send one frame once it started.
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    /// Mutual TLS between members (`controller.listener.names` mapped to SSL); `None`: plain
    /// TCP, where the hello's cluster id is the only check.
    pub tls: Option<crate::rpc::QuorumTls>,
    /// Local address outgoing connections to peers are made from (`None`: the kernel
    /// chooses), for hosts with several interfaces.
    pub outbound_bind: Option<std::net::IpAddr>,
}

impl Default for QuorumTuning {
    fn default() -> QuorumTuning {
        QuorumTuning {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_logs_since_last: 5000,
            logs_kept_after_snapshot: 1000,
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            snapshot_bytes_max: SNAPSHOT_BYTES_MAX_DEFAULT,
            connections_max: 256,
            propose_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            tls: None,
            outbound_bind: None,
        }
    }
}

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("invalid raft configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    #[error("raft node stopped: {0}")]
    Fatal(Box<Fatal<NodeId>>),
    #[error("node {0} is configured as a voter but is not in the voter set")]
    NotInVoters(NodeId),
    #[error("this node is not a voter and cannot initialize the quorum")]
    NotAVoter,
    #[error("initialize refused: {0}")]
    Initialize(String),
    /// Not committed within the deadline (no leader, or no majority). The outcome is unknown.
    #[error("not committed within {timeout_ms} ms; the outcome is unknown")]
    Timeout { timeout_ms: u128 },
    /// Sent to the leader, but its answer was lost. The outcome is unknown.
    #[error("the leader's answer was lost ({0}); the outcome is unknown")]
    Unknown(TransportError),
    #[error("the leader refused: {message}")]
    Refused { message: String },
    #[error("node {node_id} did not answer: {source}")]
    Peer { node_id: NodeId, source: TransportError },
    #[error("a batch of {bytes} bytes exceeds the limit of {bytes_max}")]
    TooLarge { bytes: u64, bytes_max: u64 },
    #[error("node {0} is not a member")]
    UnknownNode(NodeId),
    /// A voter change refused by the leader, nothing changed: [`ForwardError::ChangeInProgress`],
    /// `DuplicateVoter`, `VoterNotFound`, `NotCaughtUp` or `Invalid`.
    #[error("{0}")]
    VoterChange(ForwardError),
}

impl From<Fatal<NodeId>> for QuorumError {
    fn from(fatal: Fatal<NodeId>) -> QuorumError {
        QuorumError::Fatal(Box::new(fatal))
    }
}

/// One node's view of the quorum, for `runnel cluster info`.
#[derive(Clone, Debug)]
pub struct QuorumMetrics {
    pub node_id: NodeId,
    pub state: ServerState,
    pub current_term: u64,
    pub current_leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    /// Every member with its info; `true` for voters.
    pub members: BTreeMap<NodeId, (QuorumNode, bool)>,
    /// On the leader: the highest index known replicated to each member. Empty elsewhere.
    pub replicated_index: BTreeMap<NodeId, Option<u64>>,
}

/// A running quorum member.
pub struct Quorum {
    cluster_id: String,
    node_id: NodeId,
    node: QuorumNode,
    voters: BTreeMap<NodeId, String>,
    voter: bool,
    tuning: QuorumTuning,
    raft: Raft,
    voter_changes: VoterChanges,
    images: watch::Receiver<Arc<MetadataImage>>,
    stop_server: watch::Sender<bool>,
    server: JoinHandle<()>,
}

/// A call that runs on the leader: here if this node leads, else forwarded.
enum LeaderCall {
    Propose(MetadataBatch),
    AddLearner(NodeId, QuorumNode),
    AddVoter(NodeId, Option<QuorumNode>),
    RemoveVoter(NodeId),
}

impl Quorum {
    /// Binds `config.listen` and starts the node.
    pub async fn start(config: QuorumConfig) -> Result<Quorum, QuorumError> {
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| QuorumError::Listen { addr: config.listen.clone(), source })?;
        Quorum::start_with_listener(config, listener).await
    }

    /// Starts the node serving peers on an already bound `listener`.
    pub async fn start_with_listener(config: QuorumConfig, listener: TcpListener) -> Result<Quorum, QuorumError> {
        let QuorumConfig { cluster_id, node_id, node, voters, dir, voter, tuning, .. } = config;
        if voter && !voters.contains_key(&node_id) {
            return Err(QuorumError::NotInVoters(node_id));
        }
        let log = LogStore::open(&dir, tuning.segment_bytes_max)?;
        let state_machine = StateMachine::open(&dir)?.with_snapshot_bytes_max(tuning.snapshot_bytes_max);
        let images = state_machine.subscribe();
        let raft_config = Config {
            cluster_name: "runnel".to_string(),
            heartbeat_interval: tuning.heartbeat_interval_ms,
            election_timeout_min: tuning.election_timeout_min_ms,
            election_timeout_max: tuning.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: tuning.logs_kept_after_snapshot,
            // JSON spells bytes as numbers (up to 4 characters each): keep chunks well under a frame.
            snapshot_max_chunk_size: (tuning.frame_bytes_max / 8) as u64,
            ..Config::default()
        }
        .validate()?;
        let client_tls = tuning.tls.as_ref().map(|tls| tls.client.clone());
        let network =
            NetworkFactory::new(tuning.frame_bytes_max, &cluster_id, tuning.outbound_bind, client_tls.clone());
        let raft = Raft::new(node_id, Arc::new(raft_config), network, log, state_machine).await?;
        let limits = ServerLimits {
            cluster_id: cluster_id.clone(),
            connections_max: tuning.connections_max,
            frame_bytes_max: tuning.frame_bytes_max,
            snapshot_bytes_max: tuning.snapshot_bytes_max,
            idle_timeout: tuning.idle_timeout,
            tls: tuning.tls.clone(),
            request_timeout: tuning.request_timeout,
            propose_timeout: tuning.propose_timeout,
            voter_changes: VoterChanges::new(&cluster_id, tuning.frame_bytes_max, client_tls, tuning.outbound_bind),
        };
        let voter_changes = limits.voter_changes.clone();
        let (stop_server, stopped) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, raft.clone(), limits, stopped));
        Ok(Quorum {
            cluster_id,
            node_id,
            node,
            voters,
            voter,
            tuning,
            raft,
            voter_changes,
            images,
            stop_server,
            server,
        })
    }

    /// Makes the configured voters the quorum, once: a no-op (`Ok(false)`) on a node that
    /// already has a log or a vote, i.e. on every start after the first. Every voter may
    /// call it; they propose the same membership.
    pub async fn initialize(&self) -> Result<bool, QuorumError> {
        if !self.voter {
            return Err(QuorumError::NotAVoter);
        }
        if self.raft.is_initialized().await? {
            return Ok(false);
        }
        let members: BTreeMap<NodeId, QuorumNode> = self
            .voters
            .iter()
            .map(|(id, addr)| {
                let node = if *id == self.node_id { self.node.clone() } else { QuorumNode::voter(addr.clone()) };
                (*id, node)
            })
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(RaftError::APIError(e)) => Err(QuorumError::Initialize(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(e.into()),
        }
    }

    /// Commits `records` as one entry and returns its log index once committed (applied on
    /// the leader). Forwards to the leader if this node is not it.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, QuorumError> {
        let batch = MetadataBatch { records };
        // The leader checks a forwarded batch the same way.
        server::check_batch(&batch, self.tuning.frame_bytes_max).map_err(refused)?;
        self.on_leader(LeaderCall::Propose(batch), self.tuning.propose_timeout).await
    }

    /// Adds `node_id` as a learner (it starts receiving the log; it does not vote). Returns
    /// the index of the membership entry. Forwards to the leader if needed.
    pub async fn add_learner(&self, node_id: NodeId, node: QuorumNode) -> Result<u64, QuorumError> {
        server::check_node(&node).map_err(refused)?;
        self.on_leader(LeaderCall::AddLearner(node_id, node), self.tuning.propose_timeout).await
    }

    /// Makes `node_id` a voter (AddRaftVoter): a learner already, or added as one at `node`'s
    /// address first; it must catch up with the leader within `timeout`. Returns the index of
    /// the membership entry. Forwards to the leader if needed. See [`crate::membership`].
    pub async fn add_voter(
        &self,
        node_id: NodeId,
        node: Option<QuorumNode>,
        timeout: Duration,
    ) -> Result<u64, QuorumError> {
        if let Some(node) = &node {
            server::check_node(node).map_err(refused)?;
        }
        let timeout = timeout.min(server::VOTER_CHANGE_TIMEOUT_MAX);
        self.on_leader(LeaderCall::AddVoter(node_id, node), timeout).await
    }

    /// Takes `node_id` out of the voters (RemoveRaftVoter); it may be the leader, which steps
    /// down once the change is committed. Forwards to the leader if needed.
    pub async fn remove_voter(&self, node_id: NodeId, timeout: Duration) -> Result<u64, QuorumError> {
        let timeout = timeout.min(server::VOTER_CHANGE_TIMEOUT_MAX);
        self.on_leader(LeaderCall::RemoveVoter(node_id), timeout).await
    }

    /// Whether this node's log names it a member (voter or learner): a node that joined once
    /// stays a member across restarts, without asking again.
    pub async fn is_member(&self) -> Result<bool, QuorumError> {
        let id = self.node_id;
        Ok(self
            .raft
            .with_raft_state(move |state| state.membership_state.effective().membership().get_node(&id).is_some())
            .await?)
    }

    /// The leader this node knows of, with its addresses.
    pub fn current_leader(&self) -> Option<(NodeId, QuorumNode)> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&leader).cloned().unwrap_or_default();
        Some((leader, node))
    }

    /// The newest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// Every new image as it is applied, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The openraft node, for its metrics and `wait()` helpers.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn metrics(&self) -> QuorumMetrics {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership.nodes().map(|(id, node)| (*id, (node.clone(), voters.contains(id)))).collect();
        let replicated_index = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, matched)| (*id, matched.map(|l| l.index))).collect())
            .unwrap_or_default();
        QuorumMetrics {
            node_id: m.id,
            state: m.state,
            current_term: m.current_term,
            current_leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            members,
            replicated_index,
        }
    }

    /// Asks member `node_id` for its own progress (its applied index) over the transport.
    pub async fn node_status(&self, node_id: NodeId) -> Result<NodeStatus, QuorumError> {
        if node_id == self.node_id {
            return Ok(server::status(&self.raft));
        }
        let addr = self.metrics().members.get(&node_id).map(|(node, _)| node.controller_addr.clone());
        let addr = addr.ok_or(QuorumError::UnknownNode(node_id))?;
        let mut connection = Connection::new(addr, self.tuning.frame_bytes_max, &self.cluster_id)
            .bound_to(self.tuning.outbound_bind)
            .with_tls(self.tuning.tls.as_ref().map(|tls| tls.client.clone()));
        match connection.call(&Request::Status, self.tuning.request_timeout).await {
            Ok(Response::Status(status)) => Ok(status),
            Ok(_) => Err(QuorumError::Peer { node_id, source: TransportError::Mismatch }),
            Err(source) => Err(QuorumError::Peer { node_id, source }),
        }
    }

    /// Stops serving peers and stops the Raft node. Everything acknowledged is on disk.
    pub async fn shutdown(self) -> Result<(), QuorumError> {
        self.stop_server.send_replace(true);
        if let Err(e) = self.server.await {
            tracing::warn!(error = %e, "quorum server task failed");
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft task failed");
        }
        Ok(())
    }

    async fn on_leader(&self, call: LeaderCall, timeout: Duration) -> Result<u64, QuorumError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || QuorumError::Timeout { timeout_ms: timeout.as_millis() };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timed_out());
            }
            let local = match &call {
                LeaderCall::Propose(batch) => server::propose_here(&self.raft, batch.clone(), remaining).await,
                LeaderCall::AddLearner(id, node) => {
                    server::add_learner_here(&self.raft, *id, node.clone(), remaining).await
                }
                LeaderCall::AddVoter(id, node) => {
                    membership::add_voter_here(&self.raft, &self.voter_changes, *id, node.clone(), remaining).await
                }
                LeaderCall::RemoveVoter(id) => {
                    membership::remove_voter_here(&self.raft, &self.voter_changes, *id, remaining).await
                }
            };
            let stale_leader = match local {
                Ok(index) => return Ok(index),
                Err(ForwardError::NotLeader { leader_id: Some(id), leader: Some(node) }) if id != self.node_id => {
                    match self.forward(&call, &node, deadline).await {
                        Ok(index) => return Ok(index),
                        // Wait for this node to learn of a leader other than the one that failed.
                        Err(Retry::Again) => Some(id),
                        Err(Retry::No(e)) => return Err(e),
                    }
                }
                Err(ForwardError::NotLeader { leader_id, .. }) => leader_id,
                Err(ForwardError::Timeout) => return Err(timed_out()),
                Err(e) => return Err(refused(e)),
            };
            self.wait_for_other_leader(stale_leader, deadline).await;
        }
    }

    /// Sends `call` to `leader`. Retryable failures are those where it surely did not run.
    async fn forward(&self, call: &LeaderCall, leader: &QuorumNode, deadline: Instant) -> Result<u64, Retry> {
        // A voter change runs on the leader for what is left of this call's time, less a tenth
        // for its answer to come back.
        let leader_time = millis(deadline.saturating_duration_since(Instant::now()) * 9 / 10);
        let request = match call {
            LeaderCall::Propose(batch) => Request::Propose(batch.clone()),
            LeaderCall::AddLearner(id, node) => Request::AddLearner { node_id: *id, node: node.clone() },
            LeaderCall::AddVoter(id, node) => {
                Request::AddVoter { node_id: *id, node: node.clone(), timeout_ms: leader_time }
            }
            LeaderCall::RemoveVoter(id) => Request::RemoveVoter { node_id: *id, timeout_ms: leader_time },
        };
        // A fresh connection per forwarded call: a reused one that broke would leave it unknown
        // whether the leader ran the call, and forwarded calls are rare.
        let mut connection =
            Connection::new(leader.controller_addr.clone(), self.tuning.frame_bytes_max, &self.cluster_id)
                .bound_to(self.tuning.outbound_bind)
                .with_tls(self.tuning.tls.as_ref().map(|tls| tls.client.clone()));
        let remaining = deadline.saturating_duration_since(Instant::now());
        match connection.call(&request, remaining).await {
            Ok(Response::Forwarded(Ok(index))) => Ok(index),
            Ok(Response::Forwarded(Err(ForwardError::NotLeader { .. }))) => Err(Retry::Again),
            Ok(Response::Forwarded(Err(ForwardError::Timeout))) | Err(TransportError::Timeout { .. }) => {
                Err(Retry::No(QuorumError::Timeout { timeout_ms: self.tuning.propose_timeout.as_millis() }))
            }
            Ok(Response::Forwarded(Err(e))) => Err(Retry::No(refused(e))),
            Err(TransportError::Connect { .. }) => Err(Retry::Again),
            Ok(_) => Err(Retry::No(QuorumError::Unknown(TransportError::Mismatch))),
            Err(e) => Err(Retry::No(QuorumError::Unknown(e))),
        }
    }

    /// Waits until this node knows of a leader other than `stale`, for at most one election
    /// timeout (the leader may be right and merely slow) and never past `deadline`.
    async fn wait_for_other_leader(&self, stale: Option<NodeId>, deadline: Instant) {
        let pause = Duration::from_millis(self.tuning.election_timeout_max_ms);
        let remaining = deadline.saturating_duration_since(Instant::now()).min(pause);
        let _ = self
            .raft
            .wait(Some(remaining))
            .metrics(|m| m.current_leader.is_some() && m.current_leader != stale, "a different leader")
            .await;
    }
}

/// A refusal by the leader (or by the same check here) as the caller sees it.
fn refused(error: ForwardError) -> QuorumError {
    match error {
        ForwardError::TooLarge { bytes, bytes_max } => QuorumError::TooLarge { bytes, bytes_max },
        ForwardError::Failed { message } => QuorumError::Refused { message },
        e @ (ForwardError::ChangeInProgress
        | ForwardError::DuplicateVoter { .. }
        | ForwardError::VoterNotFound { .. }
        | ForwardError::NotCaughtUp { .. }
        | ForwardError::Invalid { .. }) => QuorumError::VoterChange(e),
        other => QuorumError::Refused { message: other.to_string() },
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

enum Retry {
    /// Surely did not run: try again.
    Again,
    No(QuorumError),
}
