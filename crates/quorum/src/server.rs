//! The server side of the transport: accepts peers on the controller listener and hands
//! their RPCs to the local Raft node.
//!
//! Bounded: at most `connections_max` connections (more are closed at once), the opening hello
//! up to [`HELLO_FRAME_BYTES_MAX`] and later frames up to `frame_bytes_max` (both checked before
//! allocating), a frame body must arrive within `request_timeout`, an idle connection closes
//! after `idle_timeout`, and a forwarded proposal waits at most `propose_timeout`.
//!
//! What a peer sends is checked before it reaches openraft: a forwarded proposal or learner
//! as a local one is ([`check_batch`], [`check_node`]), appended entries against the log's
//! entry limit, and a snapshot chunk against `snapshot_bytes_max`; a refusal is an error
//! answer, never a panic nor unbounded memory.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest};
use openraft::{AnyError, StorageIOError};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::log_files::ENTRY_BYTES_MAX;
use crate::membership::{self, VoterChanges};
use crate::rpc::{self, ForwardError, NodeStatus, Request, Response, TransportError, HELLO_FRAME_BYTES_MAX};
use crate::types::{MetadataBatch, NodeId, QuorumNode, Raft, StorageError, TypeConfig};

/// Bytes of JSON a member's [`QuorumNode`] may take: two addresses and a rack name. Every
/// membership entry carries every member, so one oversized member would bloat them all.
pub const NODE_BYTES_MAX: u64 = 4 * 1024;

#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Peers must name this cluster id in their opening [`Request::Hello`].
    pub cluster_id: String,
    pub connections_max: usize,
    pub frame_bytes_max: u32,
    /// A snapshot received from the leader may not grow past this.
    pub snapshot_bytes_max: u64,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub propose_timeout: Duration,
    /// Mutual TLS: the handshake (bounded by `request_timeout`) comes before the hello.
    pub tls: Option<rpc::QuorumTls>,
    /// Voter changes running on this node (see [`crate::membership`]).
    pub voter_changes: VoterChanges,
}

/// The longest a forwarded voter addition may wait for the new voter to catch up.
pub const VOTER_CHANGE_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// Accepts connections until `shutdown` turns true; then drops every connection task.
pub async fn serve(listener: TcpListener, raft: Raft, limits: ServerLimits, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(limits.connections_max));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        // Reap finished connection tasks so the set stays bounded by the live connections.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "quorum listener accept failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.connections_max, "too many quorum connections; closing");
            continue;
        };
        let (raft, limits) = (raft.clone(), limits.clone());
        connections.spawn(async move {
            if let Err(e) = serve_connection(stream, &raft, &limits).await {
                tracing::debug!(%peer, error = %e, "quorum connection closed");
            }
            drop(permit);
        });
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, raft: &Raft, limits: &ServerLimits) -> Result<(), TransportError> {
    stream.set_nodelay(true)?;
    let stream: Box<dyn rpc::Io> = match &limits.tls {
        None => Box::new(stream),
        Some(tls) => match tokio::time::timeout(
            limits.request_timeout,
            tokio_rustls::TlsAcceptor::from(tls.server.clone()).accept(stream),
        )
        .await
        {
            Ok(Ok(stream)) => Box::new(stream),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "refused a quorum peer: TLS handshake failed");
                return Ok(());
            }
            Err(_) => return Ok(()),
        },
    };
    let mut stream = BufReader::new(stream);
    // The first request must name this cluster; anything else closes the connection. Until it
    // has, a frame may not claim more than a hello needs.
    let first = read_request(&mut stream, HELLO_FRAME_BYTES_MAX, limits.request_timeout);
    let hello = match tokio::time::timeout(limits.request_timeout, first).await {
        Ok(Ok(Some(hello))) => hello,
        Ok(Ok(None)) | Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
    };
    let Request::Hello { cluster_id } = hello else { return Err(TransportError::Mismatch) };
    if cluster_id != limits.cluster_id {
        tracing::warn!(theirs = %cluster_id, ours = %limits.cluster_id, "refused a quorum peer of another cluster");
        let refusal = rpc::encode(&Response::Hello(Err(limits.cluster_id.clone())), limits.frame_bytes_max)?;
        rpc::write_frame(stream.get_mut(), &refusal).await?;
        return Ok(());
    }
    rpc::write_frame(stream.get_mut(), &rpc::encode(&Response::Hello(Ok(())), limits.frame_bytes_max)?).await?;
    loop {
        let next = read_request(&mut stream, limits.frame_bytes_max, limits.request_timeout);
        let request = match tokio::time::timeout(limits.idle_timeout, next).await {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        let response = handle(raft, request, limits).await;
        let frame = rpc::encode(&response, limits.frame_bytes_max)?;
        rpc::write_frame(stream.get_mut(), &frame).await?;
    }
}

async fn read_request(
    stream: &mut rpc::Stream,
    frame_bytes_max: u32,
    request_timeout: Duration,
) -> Result<Option<Request>, TransportError> {
    // Wait for the next request's first byte without a deadline (the idle timeout bounds it),
    // then give its whole frame `request_timeout` to arrive.
    use tokio::io::AsyncBufReadExt;
    if stream.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    match tokio::time::timeout(request_timeout, rpc::read_message(stream, frame_bytes_max)).await {
        Ok(read) => read,
        Err(_) => Err(TransportError::Timeout { timeout_ms: request_timeout.as_millis() }),
    }
}

async fn handle(raft: &Raft, request: Request, limits: &ServerLimits) -> Response {
    match request {
        // Already greeted: a repeated hello changes nothing.
        Request::Hello { cluster_id } => {
            Response::Hello(if cluster_id == limits.cluster_id { Ok(()) } else { Err(limits.cluster_id.clone()) })
        }
        Request::AppendEntries(rpc) => Response::AppendEntries(match refuse_entries(&rpc) {
            None => raft.append_entries(rpc).await,
            Some(refused) => Err(refused.into()),
        }),
        Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
        Request::InstallSnapshot(rpc) => {
            Response::InstallSnapshot(match refuse_snapshot_chunk(&rpc, limits.snapshot_bytes_max) {
                None => raft.install_snapshot(rpc).await,
                Some(refused) => Err(refused.into()),
            })
        }
        Request::Propose(batch) => Response::Forwarded(match check_batch(&batch, limits.frame_bytes_max) {
            Ok(()) => propose_here(raft, batch, limits.propose_timeout).await,
            Err(refused) => Err(refused),
        }),
        Request::AddLearner { node_id, node } => Response::Forwarded(match check_node(&node) {
            Ok(()) => add_learner_here(raft, node_id, node, limits.propose_timeout).await,
            Err(refused) => Err(refused),
        }),
        Request::AddVoter { node_id, node, timeout_ms } => {
            let timeout = Duration::from_millis(timeout_ms).min(VOTER_CHANGE_TIMEOUT_MAX);
            Response::Forwarded(membership::add_voter_here(raft, &limits.voter_changes, node_id, node, timeout).await)
        }
        Request::RemoveVoter { node_id, timeout_ms } => {
            let timeout = Duration::from_millis(timeout_ms).min(VOTER_CHANGE_TIMEOUT_MAX);
            Response::Forwarded(membership::remove_voter_here(raft, &limits.voter_changes, node_id, timeout).await)
        }
        Request::Status => Response::Status(status(raft)),
    }
}

/// The largest batch a proposal may carry, as JSON: its entry must fit one log frame and one
/// append frame with room for its envelope, or it could never be replicated.
pub fn batch_bytes_max(frame_bytes_max: u32) -> u64 {
    ENTRY_BYTES_MAX.min(u64::from(frame_bytes_max)) / 2
}

/// Refuses a batch above [`batch_bytes_max`], as every proposal is, local or forwarded.
pub fn check_batch(batch: &MetadataBatch, frame_bytes_max: u32) -> Result<(), ForwardError> {
    check_json_bytes(batch, batch_bytes_max(frame_bytes_max))
}

/// Refuses a member above [`NODE_BYTES_MAX`], as every learner addition is, local or forwarded.
pub fn check_node(node: &QuorumNode) -> Result<(), ForwardError> {
    check_json_bytes(node, NODE_BYTES_MAX)
}

fn check_json_bytes<T: serde::Serialize>(value: &T, bytes_max: u64) -> Result<(), ForwardError> {
    match rpc::json_bytes(value) {
        Ok(bytes) if bytes <= bytes_max => Ok(()),
        Ok(bytes) => Err(ForwardError::TooLarge { bytes, bytes_max }),
        Err(e) => Err(ForwardError::Failed { message: format!("unencodable: {e}") }),
    }
}

/// Why appended entries are refused, if the log would refuse them: a leader's oversized entry
/// is answered with an error instead of failing this node's log store (which stops its Raft node).
fn refuse_entries(rpc: &AppendEntriesRequest<TypeConfig>) -> Option<StorageError> {
    for entry in &rpc.entries {
        match rpc::json_bytes(entry) {
            Ok(bytes) if bytes <= ENTRY_BYTES_MAX => {}
            outcome => {
                let why = match outcome {
                    Ok(bytes) => {
                        format!("entry {} is {bytes} bytes, above the limit of {ENTRY_BYTES_MAX}", entry.log_id)
                    }
                    Err(e) => format!("entry {} is unencodable: {e}", entry.log_id),
                };
                tracing::warn!(%why, "refused appended entries");
                return Some(StorageIOError::write_log_entry(entry.log_id, AnyError::error(why)).into());
            }
        }
    }
    None
}

/// Why a snapshot chunk is refused, if it would take the snapshot being received past
/// `bytes_max`: checked before openraft writes it into memory. (The buffer itself refuses a
/// chunk that would leave a hole: see [`crate::snapshot_buffer`].)
fn refuse_snapshot_chunk(rpc: &InstallSnapshotRequest<TypeConfig>, bytes_max: u64) -> Option<StorageError> {
    let end = rpc.offset.checked_add(rpc.data.len() as u64);
    if end.is_some_and(|end| end <= bytes_max) {
        return None;
    }
    let why = format!(
        "snapshot chunk of {} bytes at offset {} exceeds the limit of {bytes_max} bytes",
        rpc.data.len(),
        rpc.offset
    );
    tracing::warn!(%why, snapshot = %rpc.meta.snapshot_id, "refused a snapshot chunk");
    Some(StorageIOError::write_snapshot(Some(rpc.meta.signature()), AnyError::error(why)).into())
}

/// Writes `batch` through this node if it is the leader; never forwards further.
pub async fn propose_here(raft: &Raft, batch: MetadataBatch, timeout: Duration) -> Result<u64, ForwardError> {
    match tokio::time::timeout(timeout, raft.client_write(batch)).await {
        Ok(Ok(response)) => Ok(response.log_id.index),
        Ok(Err(e)) => Err(write_error(e)),
        Err(_) => Err(ForwardError::Timeout),
    }
}

/// Adds a learner through this node if it is the leader, without waiting for it to catch up.
pub async fn add_learner_here(
    raft: &Raft,
    node_id: NodeId,
    node: QuorumNode,
    timeout: Duration,
) -> Result<u64, ForwardError> {
    match tokio::time::timeout(timeout, raft.add_learner(node_id, node, false)).await {
        Ok(Ok(response)) => Ok(response.log_id.index),
        Ok(Err(e)) => Err(write_error(e)),
        Err(_) => Err(ForwardError::Timeout),
    }
}

pub(crate) fn write_error(error: RaftError<NodeId, ClientWriteError<NodeId, QuorumNode>>) -> ForwardError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => {
            ForwardError::NotLeader { leader_id: to.leader_id, leader: to.leader_node }
        }
        other => ForwardError::Failed { message: other.to_string() },
    }
}

pub fn status(raft: &Raft) -> NodeStatus {
    let metrics = raft.metrics().borrow().clone();
    NodeStatus {
        node_id: metrics.id,
        last_log_index: metrics.last_log_index,
        last_applied_index: metrics.last_applied.map(|id| id.index),
        current_leader: metrics.current_leader,
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
