//! The listener against peers that claim more than they may: an oversized hello, a forwarded
//! batch too large to replicate, snapshot chunks past the limit or leaving a hole.

use std::sync::Arc;

use openraft::{Config, SnapshotMeta, Vote};
use runnel_metadata::{ConfigResource, MetadataRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::log_store::LogStore;
use crate::network::{Connection, NetworkFactory};
use crate::rpc::HELLO_FRAME_BYTES_MAX;
use crate::state_machine::StateMachine;
use crate::types::TypeConfig;

const CLUSTER: &str = "server-tests";
/// Far longer than any test waits: a connection that closes sooner was refused, not timed out.
const SLOW: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

/// A node (never initialized: it leads nothing) serving on an ephemeral port.
struct Node {
    addr: String,
    raft: Raft,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn serving(frame_bytes_max: u32, snapshot_bytes_max: u64) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::open(dir.path(), 1024 * 1024).unwrap();
    let state_machine = StateMachine::open(dir.path()).unwrap().with_snapshot_bytes_max(snapshot_bytes_max);
    let config = Arc::new(Config { cluster_name: "t".into(), ..Config::default() }.validate().unwrap());
    let network = NetworkFactory::new(frame_bytes_max, CLUSTER, None, None);
    let raft = Raft::new(1, config, network, log, state_machine).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let limits = ServerLimits {
        cluster_id: CLUSTER.into(),
        connections_max: 8,
        frame_bytes_max,
        snapshot_bytes_max,
        idle_timeout: SLOW,
        request_timeout: SLOW,
        propose_timeout: WAIT,
        tls: None,
        voter_changes: VoterChanges::new(CLUSTER, frame_bytes_max, None, None),
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(serve(listener, raft.clone(), limits, stopped));
    Node { addr, raft, stop, _dir: dir }
}

impl Node {
    fn connect(&self) -> Connection {
        Connection::new(self.addr.clone(), 1024 * 1024, CLUSTER)
    }

    async fn still_serves(&self) {
        let status = self.connect().call(&Request::Status, WAIT).await.expect("the node still serves");
        assert!(matches!(status, Response::Status(s) if s.node_id == 1));
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        self.raft.shutdown().await.unwrap();
    }
}

/// Sends raw `bytes` on a fresh connection and returns how the peer reacted within `WAIT`:
/// `Some(n)` bytes read (0 is a close), `None` if it kept waiting for more.
async fn raw_reaction(addr: &str, bytes: &[u8]) -> Option<usize> {
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(bytes).await.unwrap();
    let mut answer = [0u8; 64];
    match tokio::time::timeout(WAIT, raw.read(&mut answer)).await {
        Ok(read) => Some(read.unwrap_or(0)),
        Err(_) => None,
    }
}

#[tokio::test]
async fn the_first_frame_may_not_claim_more_than_a_hello_needs() {
    let node = serving(64 * 1024 * 1024, 1024 * 1024).await;
    // One byte over the hello limit (far under the frame limit): closed on the header, without
    // waiting for (or reserving) the body.
    let header = (HELLO_FRAME_BYTES_MAX + 1).to_be_bytes();
    assert_eq!(raw_reaction(&node.addr, &header).await, Some(0), "closed at once");

    // After a valid hello, full-size frames are read: a Status padded past the hello limit.
    let hello = rpc::encode(&Request::Hello { cluster_id: CLUSTER.into() }, HELLO_FRAME_BYTES_MAX).unwrap();
    let mut padded = serde_json::to_vec(&Request::Status).unwrap();
    padded.resize(HELLO_FRAME_BYTES_MAX as usize * 2, b' ');
    let mut bytes = hello;
    bytes.extend_from_slice(&u32::try_from(padded.len()).unwrap().to_be_bytes());
    bytes.extend_from_slice(&padded);
    let mut raw = TcpStream::connect(&node.addr).await.unwrap();
    raw.write_all(&bytes).await.unwrap();
    let greeted: Response = rpc::read_message(&mut raw, 1024).await.unwrap().unwrap();
    assert!(matches!(greeted, Response::Hello(Ok(()))));
    let answered: Response = rpc::read_message(&mut raw, 1024 * 1024).await.unwrap().unwrap();
    assert!(matches!(answered, Response::Status(s) if s.node_id == 1));
    node.stop().await;
}

#[tokio::test]
async fn a_forwarded_batch_gets_the_size_check_of_a_local_one() {
    let frame_bytes_max = 64 * 1024;
    let node = serving(frame_bytes_max, 1024 * 1024).await;
    let record = |bytes: usize| MetadataRecord::Config {
        resource: ConfigResource::Broker(1),
        name: "big".into(),
        value: Some("x".repeat(bytes)),
    };
    // Fits a frame, but not the half of one an entry may take.
    let batch = MetadataBatch { records: vec![record(40 * 1024)] };
    let bytes_max = batch_bytes_max(frame_bytes_max);
    assert!(
        matches!(check_batch(&batch, frame_bytes_max), Err(ForwardError::TooLarge { bytes_max: b, .. }) if b == bytes_max)
    );
    let answer = node.connect().call(&Request::Propose(batch), WAIT).await.unwrap();
    assert!(
        matches!(answer, Response::Forwarded(Err(ForwardError::TooLarge { bytes_max: b, .. })) if b == bytes_max),
        "refused as too large, not handed to raft"
    );
    // A small one reaches raft (which, leading nothing, names no leader).
    let small = MetadataBatch { records: vec![record(10)] };
    let answer = node.connect().call(&Request::Propose(small), WAIT).await.unwrap();
    assert!(matches!(answer, Response::Forwarded(Err(ForwardError::NotLeader { .. }))));

    let node_info =
        QuorumNode { rack: Some("r".repeat(usize::try_from(NODE_BYTES_MAX).unwrap())), ..QuorumNode::default() };
    let answer = node.connect().call(&Request::AddLearner { node_id: 9, node: node_info }, WAIT).await.unwrap();
    assert!(matches!(answer, Response::Forwarded(Err(ForwardError::TooLarge { .. }))));
    node.still_serves().await;
    node.stop().await;
}

fn chunk(offset: u64, data: &[u8]) -> Request {
    let meta = SnapshotMeta { snapshot_id: "s-1".into(), ..SnapshotMeta::default() };
    let vote = Vote::new_committed(5, 2);
    let rpc = InstallSnapshotRequest::<TypeConfig> { vote, meta, offset, data: data.to_vec(), done: false };
    Request::InstallSnapshot(rpc)
}

async fn install(connection: &mut Connection, request: Request) -> Result<(), String> {
    match connection.call(&request, WAIT).await.unwrap() {
        Response::InstallSnapshot(Ok(_)) => Ok(()),
        Response::InstallSnapshot(Err(e)) => Err(e.to_string()),
        _ => panic!("not an install snapshot answer"),
    }
}

#[tokio::test]
async fn snapshot_chunks_may_neither_pass_the_limit_nor_leave_a_hole() {
    let node = serving(1024 * 1024, 64 * 1024).await;
    let mut leader = node.connect();
    install(&mut leader, chunk(0, b"0123456789")).await.expect("a first chunk");
    // A chunk sent again is fine; the next one follows the bytes received.
    install(&mut leader, chunk(0, b"0123456789")).await.expect("a chunk sent again");
    install(&mut leader, chunk(10, b"abc")).await.expect("the next chunk");

    // Far past the limit: refused before openraft sees it (a plain buffer would reserve 1 TiB).
    let refused = install(&mut leader, chunk(1 << 40, b"x")).await.expect_err("past the limit");
    assert!(refused.contains("exceeds the limit"), "{refused}");
    let refused = install(&mut leader, chunk(60 * 1024, &[7; 8 * 1024])).await.expect_err("ends past the limit");
    assert!(refused.contains("exceeds the limit"), "{refused}");
    // Within the limit but past the bytes received: the buffer refuses the hole.
    let refused = install(&mut leader, chunk(1000, b"x")).await.expect_err("a hole");
    assert!(refused.contains("hole"), "{refused}");
    install(&mut leader, chunk(13, b"def")).await.expect("the stream goes on where it was");
    node.still_serves().await;
    node.stop().await;
}
