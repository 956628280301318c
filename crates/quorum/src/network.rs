//! The client side of the transport: openraft's [`RaftNetworkFactory`] and [`RaftNetwork`]
//! over [`Connection`]s.
//!
//! Each peer gets one connection, opened on first use and reused for every later call;
//! any failure (including a timeout, after which a late response could arrive) drops it, and
//! the next call reconnects. A peer that cannot be connected to, or whose connection closes
//! or breaks, is reported `Unreachable`, so openraft backs off before retrying it.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use std::net::{IpAddr, SocketAddr};
use tokio::io::BufReader;

use tokio::net::{TcpSocket, TcpStream};

use crate::rpc::{self, Request, Response, TransportError, HELLO_FRAME_BYTES_MAX};
use crate::types::{NodeId, QuorumNode, TypeConfig};

/// How long openraft waits before retrying an unreachable peer.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);

/// One reusable connection to a peer's controller listener.
pub struct Connection {
    addr: String,
    frame_bytes_max: u32,
    /// Sent in the [`Request::Hello`] that opens every connection.
    cluster_id: String,
    bind: Option<IpAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
    stream: Option<rpc::Stream>,
}

impl Connection {
    pub fn new(addr: String, frame_bytes_max: u32, cluster_id: &str) -> Connection {
        Connection { addr, frame_bytes_max, cluster_id: cluster_id.to_string(), bind: None, tls: None, stream: None }
    }

    /// Speaks TLS with `tls` (the quorum's mutual TLS) when given.
    pub fn with_tls(self, tls: Option<Arc<rustls::ClientConfig>>) -> Connection {
        Connection { tls, ..self }
    }

    /// Connects from `bind` (any port) rather than an address the kernel picks.
    pub fn bound_to(self, bind: Option<IpAddr>) -> Connection {
        Connection { bind, ..self }
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let Some(bind) = self.bind else { return TcpStream::connect(&self.addr).await };
        let target = tokio::net::lookup_host(&self.addr)
            .await?
            .find(|a| a.is_ipv4() == bind.is_ipv4())
            .ok_or_else(|| std::io::Error::other(format!("{} has no address of the family of {bind}", self.addr)))?;
        let socket = if bind.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(bind, 0))?;
        socket.connect(target).await
    }

    /// Sends `request` and waits for its response, connecting first if needed; the whole
    /// call, connecting included, is bounded by `timeout`.
    pub async fn call(&mut self, request: &Request, timeout: Duration) -> Result<Response, TransportError> {
        let frame = rpc::encode(request, self.frame_bytes_max)?;
        let outcome = match tokio::time::timeout(timeout, self.exchange(&frame)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(TransportError::Timeout { timeout_ms: timeout.as_millis() }),
        };
        if outcome.is_err() {
            // The stream's state is unknown (a response may still be on its way): start over.
            self.stream = None;
        }
        outcome
    }

    async fn exchange(&mut self, frame: &[u8]) -> Result<Response, TransportError> {
        if self.stream.is_none() {
            let stream =
                self.connect().await.map_err(|source| TransportError::Connect { addr: self.addr.clone(), source })?;
            stream.set_nodelay(true)?;
            let stream: Box<dyn rpc::Io> = match &self.tls {
                None => Box::new(stream),
                Some(tls) => {
                    let host =
                        self.addr.rsplit_once(':').map_or(self.addr.as_str(), |(h, _)| h).trim_matches(['[', ']']);
                    let name = rustls::pki_types::ServerName::try_from(host.to_string())
                        .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
                    Box::new(tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream).await?)
                }
            };
            let mut stream = BufReader::new(stream);
            // The hello and its answer are small both ways: the listener refuses a larger one.
            let hello = rpc::encode(&Request::Hello { cluster_id: self.cluster_id.clone() }, HELLO_FRAME_BYTES_MAX)?;
            match round_trip(&mut stream, &hello, HELLO_FRAME_BYTES_MAX).await? {
                Response::Hello(Ok(())) => {}
                Response::Hello(Err(theirs)) => {
                    let (addr, ours) = (self.addr.clone(), self.cluster_id.clone());
                    return Err(TransportError::OtherCluster { addr, ours, theirs });
                }
                _ => return Err(TransportError::Mismatch),
            }
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        round_trip(stream, frame, self.frame_bytes_max).await
    }
}

async fn round_trip(stream: &mut rpc::Stream, frame: &[u8], frame_bytes_max: u32) -> Result<Response, TransportError> {
    rpc::write_frame(stream.get_mut(), frame).await?;
    rpc::read_message(stream, frame_bytes_max).await?.ok_or(TransportError::Closed)
}

/// Creates a [`PeerNetwork`] per replication target.
pub struct NetworkFactory {
    frame_bytes_max: u32,
    cluster_id: String,
    bind: Option<IpAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl NetworkFactory {
    pub fn new(
        frame_bytes_max: u32,
        cluster_id: &str,
        bind: Option<IpAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> NetworkFactory {
        NetworkFactory { frame_bytes_max, cluster_id: cluster_id.to_string(), bind, tls }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &QuorumNode) -> PeerNetwork {
        let connection = Connection::new(node.controller_addr.clone(), self.frame_bytes_max, &self.cluster_id)
            .bound_to(self.bind)
            .with_tls(self.tls.clone());
        PeerNetwork { target, connection }
    }
}

/// The Raft RPCs to one peer.
pub struct PeerNetwork {
    target: NodeId,
    connection: Connection,
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, QuorumNode, RaftError<NodeId, E>>>;

fn transport_error<E: std::error::Error>(error: TransportError) -> RPCError<NodeId, QuorumNode, RaftError<NodeId, E>> {
    match error {
        // A refused connection, and one closed or broken at once (a peer restarting, or a
        // proxy that accepts and then drops): openraft backs off instead of retrying at
        // full speed (seen as tens of thousands of reconnects per outage in the chaos test).
        // A node of another cluster on the peer's address is as good as no peer there.
        TransportError::Connect { .. }
        | TransportError::Closed
        | TransportError::Io(_)
        | TransportError::OtherCluster { .. } => RPCError::Unreachable(Unreachable::new(&error)),
        _ => RPCError::Network(NetworkError::new(&error)),
    }
}

// The error type is openraft's, as the trait requires; its size is not ours to choose.
#[allow(clippy::result_large_err)]
fn remote<T, E: std::error::Error>(
    target: NodeId,
    result: Result<T, RaftError<NodeId, E>>,
) -> Result<T, RPCError<NodeId, QuorumNode, RaftError<NodeId, E>>> {
    result.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

fn mismatch<E: std::error::Error>() -> RPCError<NodeId, QuorumNode, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&TransportError::Mismatch))
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let entries = rpc.entries.len() as u64;
        match self.connection.call(&Request::AppendEntries(rpc), option.hard_ttl()).await {
            Ok(Response::AppendEntries(result)) => remote(self.target, result),
            Ok(_) => Err(mismatch()),
            // Too many entries for one frame: ask openraft to send fewer.
            Err(TransportError::FrameTooLarge { .. }) if entries > 1 => {
                Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)))
            }
            Err(e) => Err(transport_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.connection.call(&Request::InstallSnapshot(rpc), option.hard_ttl()).await {
            Ok(Response::InstallSnapshot(result)) => remote(self.target, result),
            Ok(_) => Err(mismatch()),
            Err(e) => Err(transport_error(e)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        match self.connection.call(&Request::Vote(rpc), option.hard_ttl()).await {
            Ok(Response::Vote(result)) => remote(self.target, result),
            Ok(_) => Err(mismatch()),
            Err(e) => Err(transport_error(e)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn the_answer_to_a_hello_may_not_claim_a_full_frame() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // A listener that answers the hello with a header claiming 512 KiB, and nothing more.
        let fake = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 64];
            let _ = stream.read(&mut hello).await.unwrap();
            stream.write_all(&(512u32 * 1024).to_be_bytes()).await.unwrap();
            let _ = stream.read(&mut hello).await;
        });
        let mut connection = Connection::new(addr, 1024 * 1024, "c");
        let outcome = connection.call(&Request::Status, Duration::from_secs(10)).await;
        assert!(
            matches!(outcome, Err(TransportError::FrameTooLarge { limit: HELLO_FRAME_BYTES_MAX, .. })),
            "refused on the header, not waited for: {:?}",
            outcome.map(|_| ()),
        );
        fake.abort();
    }
}
