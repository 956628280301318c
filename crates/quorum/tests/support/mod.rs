//! In-process quorum nodes on 127.0.0.1 ephemeral ports with temp dirs, for the cluster tests.
//! Waiting is done on openraft's metrics (`wait()`), never by sleeping.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use runnel_metadata::{ConfigResource, MetadataImage, MetadataRecord};
use runnel_quorum::{NodeId, Quorum, QuorumConfig, QuorumNode, QuorumTuning, Roles};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// Every test body runs under this bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a single wait for the cluster may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// The cluster id every test node shares.
pub const CLUSTER_ID: &str = "quorum-tests";

pub async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("scenario '{name}' did not finish within {TEST_TIMEOUT:?}");
    }
}

pub fn tuning() -> QuorumTuning {
    QuorumTuning {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        propose_timeout: Duration::from_secs(10),
        ..QuorumTuning::default()
    }
}

/// A record that is easy to tell apart: broker config `key-<n>` = `<n>`.
pub fn record(n: u64) -> MetadataRecord {
    MetadataRecord::Config { resource: ConfigResource::Broker(1), name: format!("key-{n}"), value: Some(n.to_string()) }
}

pub struct Cluster {
    pub voters: BTreeMap<NodeId, String>,
    pub addrs: BTreeMap<NodeId, String>,
    dirs: BTreeMap<NodeId, TempDir>,
    pub nodes: BTreeMap<NodeId, Quorum>,
    pub tuning: QuorumTuning,
}

impl Cluster {
    /// Starts `voters` voter nodes (ids 1..=n) and initializes them all.
    pub async fn start(voters: u64, tuning: QuorumTuning) -> Cluster {
        let mut listeners = BTreeMap::new();
        for id in 1..=voters {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.insert(id, listener);
        }
        let addrs: BTreeMap<_, _> =
            listeners.iter().map(|(id, l)| (*id, l.local_addr().unwrap().to_string())).collect();
        let mut cluster =
            Cluster { voters: addrs.clone(), addrs, dirs: BTreeMap::new(), nodes: BTreeMap::new(), tuning };
        for (id, listener) in listeners {
            cluster.dirs.insert(id, TempDir::new().unwrap());
            cluster.start_node(id, true, Some(listener)).await;
        }
        for node in cluster.nodes.values() {
            node.initialize().await.expect("initialize");
        }
        cluster
    }

    /// Starts (or restarts, from its dir and on its address) node `id`.
    pub async fn start_node(&mut self, id: NodeId, voter: bool, listener: Option<TcpListener>) {
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(self.addrs.get(&id).map(String::as_str).unwrap_or("127.0.0.1:0")).await.unwrap(),
        };
        let addr = listener.local_addr().unwrap().to_string();
        self.addrs.insert(id, addr.clone());
        let dir = self.dirs.entry(id).or_insert_with(|| TempDir::new().unwrap()).path().join("__cluster_metadata-0");
        let roles = if voter { Roles::COMBINED } else { Roles::BROKER };
        let node =
            QuorumNode { kafka_addr: format!("127.0.0.1:{}", 9000 + id), controller_addr: addr, roles, rack: None };
        let config = QuorumConfig {
            cluster_id: CLUSTER_ID.to_string(),
            node_id: id,
            node,
            voters: self.voters.clone(),
            dir,
            listen: String::new(),
            voter,
            tuning: self.tuning.clone(),
        };
        let quorum = Quorum::start_with_listener(config, listener).await.expect("start");
        self.nodes.insert(id, quorum);
    }

    pub async fn stop(&mut self, id: NodeId) {
        self.nodes.remove(&id).expect("running").shutdown().await.unwrap();
    }

    pub async fn stop_all(&mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    pub fn node(&self, id: NodeId) -> &Quorum {
        &self.nodes[&id]
    }

    /// Waits until every running node agrees on one leader among them, and returns it.
    pub async fn leader(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut seen = self.nodes.values().map(|n| n.metrics().current_leader);
            let first = seen.next().flatten();
            if let Some(leader) = first {
                let voting = self.nodes.get(&leader).is_some_and(|n| n.metrics().state.is_leader());
                if voting && seen.all(|l| l == Some(leader)) {
                    return leader;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no agreed leader within {WAIT:?}");
            // Wake on the next metrics change of any node (or after a heartbeat at most).
            let any = self.nodes.values().next().unwrap();
            let _ = any.raft().wait(Some(Duration::from_millis(100))).metrics(|_| false, "change").await;
        }
    }

    /// Waits until node `id` has applied index `index`.
    pub async fn applied(&self, id: NodeId, index: u64) {
        self.node(id)
            .raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), format!("node {id} applies {index}"))
            .await
            .unwrap_or_else(|e| panic!("node {id} did not apply {index}: {e}"));
    }

    pub async fn all_applied(&self, index: u64) {
        for id in self.nodes.keys() {
            self.applied(*id, index).await;
        }
    }

    /// Every running node's image, which must be identical.
    pub fn agreed_image(&self) -> Arc<MetadataImage> {
        let images: Vec<_> = self.nodes.iter().map(|(id, n)| (*id, n.image())).collect();
        let (first_id, first) = images[0].clone();
        for (id, image) in &images {
            assert_eq!(**image, *first, "node {id}'s image differs from node {first_id}'s");
        }
        first
    }

    /// Proposes records `from..to`, one entry each, through node `via`; returns the last index.
    pub async fn propose_range(&self, via: NodeId, from: u64, to: u64) -> u64 {
        let mut last = 0;
        for n in from..to {
            last = self.node(via).propose(vec![record(n)]).await.unwrap_or_else(|e| panic!("propose {n}: {e}"));
        }
        last
    }
}

pub fn config_value(image: &MetadataImage, n: u64) -> Option<&String> {
    image.configs.get(&ConfigResource::Broker(1)).and_then(|c| c.get(&format!("key-{n}")))
}
