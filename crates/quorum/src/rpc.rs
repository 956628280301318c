//! The quorum's wire protocol between nodes, on the `--controller-listen` address.
//!
//! One request, then one response, per frame pair on a TCP connection; a connection carries
//! one call at a time and is reused for the next. A frame is `u32 payload_bytes
//! (big-endian) | payload`, the payload JSON. A reader checks the length against its limit
//! before allocating anything, and a frame's body must arrive within the call's timeout.
//! JSON keeps the messages readable and needs no new dependency; the traffic is metadata,
//! small and infrequent next to partition data.
//!
//! Every connection opens with [`Request::Hello`] naming the caller's cluster id; a node of
//! another cluster refuses it and closes (Kafka's INCONSISTENT_CLUSTER_ID). Without it a
//! node restarted on an address another cluster's node used before would take that
//! cluster's votes and log entries. The hello and its answer may take at most
//! [`HELLO_FRAME_BYTES_MAX`]; only later frames may be full-size.

use std::io;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::types::{MetadataBatch, NodeId, QuorumNode, TypeConfig};

/// Frames above this are refused unless configured otherwise: a full append batch or one
/// snapshot chunk (JSON-encoded) fits well within it.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 64 * 1024 * 1024;

/// The limit on the first frame each way of a connection, the [`Request::Hello`] and its
/// answer: a caller that has not named this cluster yet cannot make a node reserve a full
/// frame. A hello carries one cluster id.
pub const HELLO_FRAME_BYTES_MAX: u32 = 4 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Request {
    /// The first request on every connection: the caller's cluster id.
    Hello {
        cluster_id: String,
    },
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A proposal forwarded by a node that is not the leader.
    Propose(MetadataBatch),
    /// A learner addition forwarded by a node that is not the leader.
    AddLearner {
        node_id: NodeId,
        node: QuorumNode,
    },
    /// A voter addition forwarded to the leader (AddRaftVoter): `node` is the address given
    /// with the request, used when the node is not a learner yet.
    AddVoter {
        node_id: NodeId,
        node: Option<QuorumNode>,
        timeout_ms: u64,
    },
    /// A voter removal forwarded to the leader (RemoveRaftVoter).
    RemoveVoter {
        node_id: NodeId,
        timeout_ms: u64,
    },
    /// This node's own view: its applied index, for `runnel cluster info`.
    Status,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Response {
    /// `Err` names the cluster the called node belongs to; it closes the connection.
    Hello(Result<(), String>),
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The log index the proposal (or learner change) was committed at.
    Forwarded(Result<u64, ForwardError>),
    Status(NodeStatus),
}

/// Why a forwarded call failed on the node it was forwarded to.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    /// That node is not (or no longer) the leader either; it names the leader it knows of.
    #[error("node is not the leader; leader is {leader_id:?}")]
    NotLeader { leader_id: Option<NodeId>, leader: Option<QuorumNode> },
    /// The leader did not commit the entry in time. Whether it will be committed is unknown.
    #[error("the leader did not commit in time; the outcome is unknown")]
    Timeout,
    /// The leader refused or failed (shutting down, a membership change in progress, ...).
    #[error("the leader failed: {message}")]
    Failed { message: String },
    /// The batch (or learner) is too large to ever be replicated, as JSON; nothing was written.
    #[error("{bytes} bytes exceed the limit of {bytes_max}")]
    TooLarge { bytes: u64, bytes_max: u64 },
    /// Another voter change is running or not yet committed; nothing was changed.
    #[error("another voter change is in progress")]
    ChangeInProgress,
    #[error("node {node_id} is already a voter")]
    DuplicateVoter { node_id: NodeId },
    #[error("node {node_id} is not a voter")]
    VoterNotFound { node_id: NodeId },
    /// The new voter did not catch up with the leader in time; it stays a learner.
    #[error("node {node_id} did not catch up with the leader in time")]
    NotCaughtUp { node_id: NodeId },
    /// A voter change that cannot be made as asked; nothing was changed.
    #[error("{message}")]
    Invalid { message: String },
}

/// One node's view of its own progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub current_leader: Option<NodeId>,
}

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("no response within {timeout_ms} ms")]
    Timeout { timeout_ms: u128 },
    #[error("frame of {bytes} bytes exceeds the limit of {limit}")]
    FrameTooLarge { bytes: u64, limit: u32 },
    #[error("undecodable message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("connection closed by the peer")]
    Closed,
    #[error("response does not match the request")]
    Mismatch,
    #[error("{addr} belongs to cluster {theirs}, not {ours}")]
    OtherCluster { addr: String, ours: String, theirs: String },
}

/// Bytes of `value` as JSON, counted without building it.
pub fn json_bytes<T: Serialize>(value: &T) -> Result<u64, serde_json::Error> {
    struct Counter(u64);
    impl io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value)?;
    Ok(counter.0)
}

/// Encodes `message` as one frame, refusing it if it exceeds `frame_bytes_max`.
pub fn encode<T: Serialize>(message: &T, frame_bytes_max: u32) -> Result<Vec<u8>, TransportError> {
    let mut frame = vec![0u8; 4];
    serde_json::to_writer(&mut frame, message)?;
    let bytes = frame.len() - 4;
    let length = u32::try_from(bytes)
        .ok()
        .filter(|length| *length <= frame_bytes_max)
        .ok_or(TransportError::FrameTooLarge { bytes: bytes as u64, limit: frame_bytes_max })?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Ok(frame)
}

/// A byte stream the transport runs over: TCP, or TLS over TCP.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync> Io for T {}

/// A buffered connection stream.
pub type Stream = tokio::io::BufReader<Box<dyn Io>>;

/// TLS for the quorum transport: every member presents a certificate the others' trust
/// store accepts (mutual TLS), so only holders of the cluster's certificates can vote,
/// propose, replicate or install snapshots.
#[derive(Clone)]
pub struct QuorumTls {
    pub server: std::sync::Arc<rustls::ServerConfig>,
    pub client: std::sync::Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls { .. }")
    }
}

pub async fn write_frame(output: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> Result<(), TransportError> {
    output.write_all(frame).await?;
    output.flush().await?;
    Ok(())
}

/// Reads one message. `Ok(None)` is the peer closing the connection between messages.
pub async fn read_message<T: DeserializeOwned>(
    input: &mut (impl AsyncRead + Unpin),
    frame_bytes_max: u32,
) -> Result<Option<T>, TransportError> {
    let mut header = [0u8; 4];
    match input.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let bytes = u32::from_be_bytes(header);
    if bytes > frame_bytes_max {
        return Err(TransportError::FrameTooLarge { bytes: bytes.into(), limit: frame_bytes_max });
    }
    let mut payload = vec![0u8; bytes as usize];
    input.read_exact(&mut payload).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => TransportError::Closed,
        _ => TransportError::Io(e),
    })?;
    Ok(Some(serde_json::from_slice(&payload)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_before_reading_the_body() {
        let frame = encode(&Request::Status, 1024).unwrap();
        let decoded: Option<Request> = read_message(&mut &frame[..], 1024).await.unwrap();
        assert!(matches!(decoded, Some(Request::Status)));
        assert!(read_message::<Request>(&mut &[][..], 1024).await.unwrap().is_none());

        // A header claiming 4 GiB with no body: refused on the header alone.
        let huge = [0xffu8, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_message::<Request>(&mut &huge[..], 1024).await,
            Err(TransportError::FrameTooLarge { limit: 1024, .. })
        ));
        assert!(matches!(encode(&Request::Status, 2), Err(TransportError::FrameTooLarge { .. })));
        assert!(matches!(read_message::<Request>(&mut &frame[..6], 1024).await, Err(TransportError::Closed)));
    }
}
