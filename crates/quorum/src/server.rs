//! The server side of the transport: accepts peers on the controller listener and hands
//! their RPCs to the local Raft node.
//!
//! Bounded: at most `connections_max` connections (more are closed at once), frames up to
//! `frame_bytes_max`, a frame body must arrive within `request_timeout`, an idle connection
//! closes after `idle_timeout`, and a forwarded proposal waits at most `propose_timeout`.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::rpc::{self, ForwardError, NodeStatus, Request, Response, TransportError};
use crate::types::{MetadataBatch, NodeId, QuorumNode, Raft};

#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Peers must name this cluster id in their opening [`Request::Hello`].
    pub cluster_id: String,
    pub connections_max: usize,
    pub frame_bytes_max: u32,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub propose_timeout: Duration,
}

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
    let mut stream = BufReader::new(stream);
    // The first request must name this cluster; anything else closes the connection.
    let hello = match tokio::time::timeout(limits.request_timeout, read_request(&mut stream, limits)).await {
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
        let request = match tokio::time::timeout(limits.idle_timeout, read_request(&mut stream, limits)).await {
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
    stream: &mut BufReader<TcpStream>,
    limits: &ServerLimits,
) -> Result<Option<Request>, TransportError> {
    // Wait for the next request's first byte without a deadline (the idle timeout bounds it),
    // then give its whole frame `request_timeout` to arrive.
    use tokio::io::AsyncBufReadExt;
    if stream.fill_buf().await?.is_empty() {
        return Ok(None);
    }
    match tokio::time::timeout(limits.request_timeout, rpc::read_message(stream, limits.frame_bytes_max)).await {
        Ok(read) => read,
        Err(_) => Err(TransportError::Timeout { timeout_ms: limits.request_timeout.as_millis() }),
    }
}

async fn handle(raft: &Raft, request: Request, limits: &ServerLimits) -> Response {
    match request {
        // Already greeted: a repeated hello changes nothing.
        Request::Hello { cluster_id } => {
            Response::Hello(if cluster_id == limits.cluster_id { Ok(()) } else { Err(limits.cluster_id.clone()) })
        }
        Request::AppendEntries(rpc) => Response::AppendEntries(raft.append_entries(rpc).await),
        Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
        Request::InstallSnapshot(rpc) => Response::InstallSnapshot(raft.install_snapshot(rpc).await),
        Request::Propose(batch) => Response::Forwarded(propose_here(raft, batch, limits.propose_timeout).await),
        Request::AddLearner { node_id, node } => {
            Response::Forwarded(add_learner_here(raft, node_id, node, limits.propose_timeout).await)
        }
        Request::Status => Response::Status(status(raft)),
    }
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

fn write_error(error: RaftError<NodeId, ClientWriteError<NodeId, QuorumNode>>) -> ForwardError {
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
