//! A cluster of real `runnel server` processes on loopback, for the cluster scenarios.
//!
//! Every node gets a Kafka port and a controller (quorum transport) port chosen once, up
//! front, and kept across restarts: the voter list names the controller ports, and clients
//! and other brokers know a broker by its Kafka address. Ports come from below the
//! kernel's ephemeral range, so a client socket or a port-0 node of another test cannot
//! take one between our probe and the node's bind; a probe bind still skips ports in use.
//!
//! Voters print their listening line only once the quorum has a leader, so every process
//! is launched before any is waited for. What a node believes (controller, brokers, racks,
//! topic ids, leaders, replicas) is read with raw Metadata v12 requests, since rdkafka does
//! not expose the controller id or topic ids. Those requests use the cluster's client
//! security ([`Cluster::client_security`]): plaintext unless a secured start set it.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreatePartitionsRequest, CreateTopicsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use runnel_client::security::ClientSecurity;
use runnel_client::Connection;
use tempfile::TempDir;

use super::proxy::{Proxy, ProxyStats};
use super::{assign_only_config, received, Node, Received, IO_TIMEOUT};

/// How long a cluster node may take to print its listening line: it waits for a quorum
/// leader (election timeouts 0.5–1 s) and its own registration first.
pub const CLUSTER_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long nodes may take to agree on metadata after a change.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two polls of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// One raw admin or metadata request; the broker's own proposal timeout is 10 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Ports are probed from here up, below the usual ephemeral range (32768–60999).
const PORT_BASE: u16 = 20_000;
/// Width of the probed range.
const PORT_SPAN: u16 = 12_000;

/// Process-wide cursor so that concurrent tests of one binary never probe the same port.
static PORT_CURSOR: AtomicU16 = AtomicU16::new(0);

/// Two distinct free loopback ports per node: `count` pairs of (kafka, controller).
pub fn free_ports(count: usize) -> Vec<u16> {
    if PORT_CURSOR.load(Ordering::Relaxed) == 0 {
        // A different start per process, so that test binaries run side by side (or by
        // another worktree on the same machine) rarely probe the same ports.
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let start = u16::try_from((pid.wrapping_mul(7919) ^ nanos) % u32::from(PORT_SPAN)).expect("below PORT_SPAN");
        let _ = PORT_CURSOR.compare_exchange(0, start.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut ports = Vec::with_capacity(count);
    let mut probed = 0;
    while ports.len() < count {
        probed += 1;
        assert!(probed <= PORT_SPAN, "no free loopback port found in {PORT_BASE}..{}", PORT_BASE + PORT_SPAN);
        let offset = PORT_CURSOR.fetch_add(1, Ordering::Relaxed) % PORT_SPAN;
        let port = PORT_BASE + offset;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

/// One node of a cluster to start: its id, roles and rack.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: i32,
    /// `--roles`: "broker,controller", "controller" or "broker".
    pub roles: &'static str,
    pub rack: Option<&'static str>,
    /// A quorum listener port chosen by the test, and the address other nodes are told
    /// (e.g. a fault-injecting proxy in front of it). For a controller, the voter list
    /// names that address too, so that the other voters reach it the same way.
    pub controller: Option<(u16, String)>,
    /// `--advertise`: the Kafka address clients and other brokers are told, when it is not
    /// the listener (e.g. a proxy in front of it).
    pub advertise: Option<String>,
    /// More `runnel server` arguments (e.g. `--set key=value`), after the cluster's own.
    pub extra_args: Vec<String>,
    /// Serve metrics on an ephemeral port (`Node::metrics_url`).
    pub metrics: bool,
    /// Listeners beside the PLAINTEXT one on the fixed Kafka port (`NAME://host:port`,
    /// comma-separated; port 0 for any free port).
    pub extra_listeners: Option<&'static str>,
}

impl Spec {
    fn new(id: i32, roles: &'static str) -> Spec {
        Spec {
            id,
            roles,
            rack: None,
            controller: None,
            advertise: None,
            extra_args: Vec::new(),
            metrics: false,
            extra_listeners: None,
        }
    }

    pub fn combined(id: i32) -> Spec {
        Spec::new(id, "broker,controller")
    }

    pub fn controller(id: i32) -> Spec {
        Spec::new(id, "controller")
    }

    pub fn broker(id: i32) -> Spec {
        Spec::new(id, "broker")
    }

    /// Listen for the quorum on `port` and advertise `advertise` to the other nodes.
    pub fn with_controller(self, port: u16, advertise: String) -> Spec {
        Spec { controller: Some((port, advertise)), ..self }
    }

    /// Tell clients and other brokers to reach this node's Kafka listener at `advertise`.
    pub fn with_advertise(self, advertise: String) -> Spec {
        Spec { advertise: Some(advertise), ..self }
    }

    /// Appends `args` to the node's `runnel server` arguments (kept across restarts).
    pub fn with_args(mut self, args: &[&str]) -> Spec {
        self.extra_args.extend(args.iter().map(|arg| arg.to_string()));
        self
    }

    pub fn with_metrics(self) -> Spec {
        Spec { metrics: true, ..self }
    }

    /// More listeners beside PLAINTEXT on the fixed Kafka port.
    pub fn with_listeners(self, listeners: &'static str) -> Spec {
        Spec { extra_listeners: Some(listeners), ..self }
    }

    pub fn with_rack(self, rack: &'static str) -> Spec {
        Spec { rack: Some(rack), ..self }
    }

    pub fn is_broker(&self) -> bool {
        self.roles.split(',').any(|role| role == "broker")
    }

    pub fn is_controller(&self) -> bool {
        self.roles.split(',').any(|role| role == "controller")
    }
}

/// One node: its process (fields drop in order, so the process dies before its directory
/// is removed), its data directory and its fixed addresses.
struct Member {
    node: Node,
    _dir: TempDir,
    spec: Spec,
    kafka_addr: String,
    controller_addr: String,
}

/// Launches node `spec` on the given ports (a spec's own controller port wins) with
/// `--controller-quorum voters`; does not wait for it.
fn launch(spec: &Spec, kafka_port: u16, controller_port: u16, voters: &str) -> Member {
    let dir = TempDir::new().expect("node data dir");
    let kafka_addr = format!("127.0.0.1:{kafka_port}");
    let controller_port = spec.controller.as_ref().map_or(controller_port, |(port, _)| *port);
    let controller_addr = format!("127.0.0.1:{controller_port}");
    let id = spec.id.to_string();
    let listeners = match spec.extra_listeners {
        Some(extra) => format!("listeners=PLAINTEXT://{kafka_addr},{extra}"),
        None => kafka_addr.clone(),
    };
    let listen_flag = if spec.extra_listeners.is_some() { "--set" } else { "--listen" };
    let mut args = vec![
        "--node-id",
        &id,
        listen_flag,
        &listeners,
        "--controller-listen",
        &controller_addr,
        "--controller-quorum",
        voters,
        "--roles",
        spec.roles,
    ];
    if let Some(rack) = spec.rack {
        args.extend(["--rack", rack]);
    }
    if let Some((_, advertise)) = &spec.controller {
        args.extend(["--controller-advertise", advertise.as_str()]);
    }
    if let Some(advertise) = &spec.advertise {
        args.extend(["--advertise", advertise.as_str()]);
    }
    args.extend(spec.extra_args.iter().map(String::as_str));
    let mut node = Node::launch_with(dir.path(), &args, spec.metrics);
    node.set_label(format!("node {} ({}, kafka {kafka_addr}, controller {controller_addr})", id, spec.roles));
    Member { node, _dir: dir, spec: spec.clone(), kafka_addr, controller_addr }
}

/// A running cluster; nodes are addressed by node id.
pub struct Cluster {
    members: Vec<Member>,
    /// How the test's own connections ([`Cluster::view`]) reach the nodes.
    client: ClientSecurity,
    /// The `--controller-quorum` every node is given (the initial voters).
    voters: String,
}

impl Cluster {
    /// Launches every node at once on fixed ports, then waits for each listening line.
    pub fn start(specs: &[Spec]) -> Cluster {
        let ports = free_ports(specs.len() * 2);
        let voters: Vec<String> = specs
            .iter()
            .enumerate()
            .filter(|(_, spec)| spec.is_controller())
            .map(|(i, spec)| match &spec.controller {
                Some((_, advertise)) => format!("{}@{advertise}", spec.id),
                None => format!("{}@127.0.0.1:{}", spec.id, ports[2 * i + 1]),
            })
            .collect();
        assert!(!voters.is_empty(), "a cluster needs at least one controller");
        let voters = voters.join(",");
        let mut members: Vec<Member> =
            specs.iter().enumerate().map(|(i, spec)| launch(spec, ports[2 * i], ports[2 * i + 1], &voters)).collect();
        for member in &mut members {
            member.node.wait_listening_within(CLUSTER_STARTUP_TIMEOUT);
            assert_eq!(member.node.bootstrap(), member.kafka_addr, "node {} listens where it was told", member.spec.id);
        }
        Cluster { members, client: ClientSecurity::plaintext(), voters }
    }

    /// Starts one more node, not among the initial voters, with the cluster's
    /// `--controller-quorum` (a controller joins as an observer), and waits until it listens.
    pub fn join(&mut self, spec: Spec) {
        let ports = free_ports(2);
        let mut member = launch(&spec, ports[0], ports[1], &self.voters);
        member.node.wait_listening_within(CLUSTER_STARTUP_TIMEOUT);
        self.members.push(member);
    }

    /// The quorum address node `id` was told to serve on (`--controller-listen`).
    pub fn controller_addr(&self, id: i32) -> &str {
        &self.member(id).controller_addr
    }

    fn member(&self, id: i32) -> &Member {
        self.members.iter().find(|m| m.spec.id == id).unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    fn member_mut(&mut self, id: i32) -> &mut Member {
        self.members.iter_mut().find(|m| m.spec.id == id).unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    /// Node ids in start order.
    pub fn ids(&self) -> Vec<i32> {
        self.members.iter().map(|m| m.spec.id).collect()
    }

    /// Ids of the nodes with the broker role.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.members.iter().filter(|m| m.spec.is_broker()).map(|m| m.spec.id).collect()
    }

    /// The node's fixed Kafka address, `host:port`.
    pub fn kafka_addr(&self, id: i32) -> &str {
        &self.member(id).kafka_addr
    }

    pub fn node(&self, id: i32) -> &Node {
        &self.member(id).node
    }

    /// SIGKILLs one node and reaps it.
    pub fn kill9(&mut self, id: i32) {
        self.member_mut(id).node.kill9();
    }

    /// SIGTERMs the given nodes all at once, then waits for each to exit cleanly.
    pub fn terminate(&mut self, ids: &[i32]) {
        for &id in ids {
            self.member(id).node.begin_terminate();
        }
        for &id in ids {
            self.member_mut(id).node.wait_terminated();
        }
    }

    /// Restarts the given stopped nodes at once on their ports and data directories.
    pub fn restart(&mut self, ids: &[i32]) {
        for &id in ids {
            self.member_mut(id).node.relaunch();
        }
        for &id in ids {
            let member = self.member_mut(id);
            member.node.wait_listening_within(CLUSTER_STARTUP_TIMEOUT);
            assert_eq!(member.node.bootstrap(), member.kafka_addr, "node {id} came back on its own port");
        }
    }

    /// Waits until every broker of the cluster lists every broker of the cluster, so that a
    /// topic created next can place a replica on each (a broker registers with the quorum a
    /// moment after it listens).
    pub async fn await_brokers_listed(&self, timeout: Duration) {
        let brokers = self.broker_ids();
        for id in &brokers {
            eventually(timeout, "every broker to list every broker", || async {
                let view = self.view(*id).await?;
                let listed = view.broker_ids();
                if brokers.iter().all(|b| listed.contains(b)) {
                    Ok(())
                } else {
                    Err(format!("node {id} lists {listed:?} of {brokers:?}"))
                }
            })
            .await;
        }
    }

    /// What node `id` says about the cluster, by Metadata v12 to its Kafka port (with the
    /// cluster's client security).
    pub async fn view(&self, id: i32) -> Result<ClusterView, String> {
        view_with(self.kafka_addr(id), &self.client).await
    }

    /// How the test's own connections to the nodes' Kafka listeners authenticate and
    /// encrypt: plaintext, unless [`Cluster::start_behind_proxies_with`] said otherwise.
    pub fn client_security(&self) -> &ClientSecurity {
        &self.client
    }

    /// Starts `specs` with every node's Kafka listener and quorum listener behind a
    /// [`Proxy`] of its own (without faults) that the node advertises, so that clients,
    /// other brokers and the other quorum members all reach it through the proxies.
    /// [`Cluster::kafka_addr`] and [`Cluster::view`] still reach the node directly.
    pub fn start_behind_proxies(specs: &[Spec], seed: u64) -> (Cluster, BTreeMap<i32, NodeProxies>) {
        Cluster::start_behind_proxies_with(specs, seed, ClientSecurity::plaintext())
    }

    /// Like [`Cluster::start_behind_proxies`], for nodes whose settings (in `specs`) secure
    /// their listeners, reached by the test's own connections with `client`. When `client`
    /// uses TLS, the nodes' listeners speak TLS, which is not Kafka frames on the wire: the
    /// proxies then forward bytes ([`Proxy::start_transparent`]), so outages and blocked
    /// sources apply and per-frame faults do not.
    pub fn start_behind_proxies_with(
        specs: &[Spec],
        seed: u64,
        client: ClientSecurity,
    ) -> (Cluster, BTreeMap<i32, NodeProxies>) {
        let controller_ports = free_ports(specs.len());
        let transparent = client.tls.is_some();
        let mut proxies = BTreeMap::new();
        let mut proxied = Vec::with_capacity(specs.len());
        for (spec, &port) in specs.iter().zip(&controller_ports) {
            assert!(spec.controller.is_none() && spec.advertise.is_none(), "node {} has its own addresses", spec.id);
            let node = NodeProxies::start(seed, outbound_source(spec.id), transparent);
            node.set_controller_target(([127, 0, 0, 1], port).into());
            let bind = format!("runnel.outbound.bind.address={}", node.source);
            proxied.push(
                spec.clone()
                    .with_controller(port, node.controller_addr().to_string())
                    .with_advertise(node.kafka_addr().to_string())
                    .with_args(&["--set", &bind]),
            );
            proxies.insert(spec.id, node);
        }
        let mut cluster = Cluster::start(&proxied);
        cluster.client = client;
        for (&id, node) in &proxies {
            node.set_kafka_target(cluster.kafka_addr(id).parse().expect("a node's Kafka address"));
        }
        (cluster, proxies)
    }
}

impl Cluster {
    /// Waits (up to 30 s) until nodes 1, 2 and 3 hold first segments of the same, non-zero
    /// sizes for every partition of `topic`: the followers have copied what the leader has.
    pub fn await_same_replica_sizes(&self, topic: &str, partitions: i32) {
        let sizes = |id: i32| -> Vec<u64> {
            (0..partitions)
                .map(|p| {
                    let file = self.node(id).data_dir().join(format!("{topic}-{p}")).join("00000000000000000000.log");
                    std::fs::metadata(file).map_or(0, |m| m.len())
                })
                .collect()
        };
        super::poll_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            "identical replicas on every node",
            || {
                let first = sizes(1);
                (first.iter().sum::<u64>() > 0 && (2..=3).all(|id| sizes(id) == first)).then_some(())
            },
        );
    }
}

/// The loopback address node `id` of [`Cluster::start_behind_proxies`] connects to other
/// nodes from (`runnel.outbound.bind.address`), so the proxies can tell its connections
/// apart: 127.0.0.(100 + id).
pub fn outbound_source(id: i32) -> std::net::IpAddr {
    let last = u8::try_from(100 + id).expect("node ids of proxied clusters are small");
    std::net::IpAddr::from([127, 0, 0, last])
}

/// The two proxies in front of one node of [`Cluster::start_behind_proxies`], and the
/// address its own connections to other nodes come from. Clients and other nodes reach the
/// node at [`NodeProxies::kafka_addr`] and [`NodeProxies::controller_addr`].
pub struct NodeProxies {
    pub kafka: Proxy,
    pub controller: Proxy,
    pub source: std::net::IpAddr,
}

impl NodeProxies {
    /// Two proxies without faults (they never draw from their seed then), forwarding bytes
    /// rather than frames when `transparent` (TLS).
    fn start(seed: u64, source: std::net::IpAddr, transparent: bool) -> NodeProxies {
        let start = if transparent { Proxy::start_transparent } else { Proxy::start };
        NodeProxies { kafka: start(seed), controller: start(seed), source }
    }

    /// The node's Kafka address for clients and other brokers (what it advertises).
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka.addr()
    }

    /// The node's quorum address for the other quorum members (what it advertises).
    pub fn controller_addr(&self) -> SocketAddr {
        self.controller.addr()
    }

    fn set_kafka_target(&self, node: SocketAddr) {
        self.kafka.set_target(node);
    }

    fn set_controller_target(&self, node: SocketAddr) {
        self.controller.set_target(node);
    }

    /// What the Kafka proxy did.
    pub fn kafka_stats(&self) -> ProxyStats {
        self.kafka.stats()
    }

    /// What the quorum proxy did.
    pub fn controller_stats(&self) -> ProxyStats {
        self.controller.stats()
    }

    /// Closes every connection into the node, Kafka and quorum, and refuses new ones for
    /// `outage` or until [`NodeProxies::heal`]. The node's own connections out to other
    /// nodes' proxies are not affected: see [`isolate`] for both directions.
    pub fn cut_for(&self, outage: Duration) {
        self.kafka.cut_for(outage);
        self.controller.cut_for(outage);
    }

    /// Ends an outage started by [`NodeProxies::cut_for`].
    pub fn heal(&self) {
        self.kafka.end_outage();
        self.controller.end_outage();
    }
}

/// Cuts node `id` off in both directions: nothing reaches it (its proxies are cut for
/// `outage`) and nothing it sends reaches another node (their proxies refuse its source
/// address). Clients on 127.0.0.1 still reach the other nodes. Undo with [`reconnect`].
pub fn isolate(proxies: &BTreeMap<i32, NodeProxies>, id: i32, outage: Duration) {
    let source = proxies[&id].source;
    proxies[&id].cut_for(outage);
    for (_, other) in proxies.iter().filter(|(other, _)| **other != id) {
        other.kafka.block_source(source);
        other.controller.block_source(source);
    }
}

/// Ends [`isolate`] of node `id`.
pub fn reconnect(proxies: &BTreeMap<i32, NodeProxies>, id: i32) {
    let source = proxies[&id].source;
    proxies[&id].heal();
    for other in proxies.values() {
        other.kafka.unblock_source(source);
        other.controller.unblock_source(source);
    }
}

/// One broker as a node lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub addr: String,
    pub rack: Option<String>,
}

/// One partition as a node lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub replicas: Vec<i32>,
    /// The in-sync replicas, as listed (Metadata `isr_nodes`).
    pub isr: Vec<i32>,
}

/// One topic as a node lists it: partitions by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub topic_id: String,
    pub partitions: Vec<PartitionView>,
}

/// What one node answers to Metadata for all topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerView>,
    pub topics: BTreeMap<String, TopicView>,
}

impl ClusterView {
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicView> {
        self.topics.get(name)
    }
}

fn error_name(code: i16) -> String {
    format!("{:?} ({code})", ResponseError::try_from_code(code))
}

async fn connect(addr: &str) -> Result<Connection, String> {
    connect_with(addr, &ClientSecurity::plaintext()).await
}

/// A connection to `addr` with `security` (TLS, then SASL, as configured), within the
/// request timeout.
pub async fn connect_with(addr: &str, security: &ClientSecurity) -> Result<Connection, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, Connection::connect_secure(addr, None, security)).await {
        Err(_) => Err(format!("connecting to {addr} timed out")),
        Ok(Err(e)) => Err(format!("connecting to {addr}: {e}")),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// Metadata v12 for all topics from the node at `addr`, without auto-creation.
pub async fn view(addr: &str) -> Result<ClusterView, String> {
    view_with(addr, &ClientSecurity::plaintext()).await
}

/// Like [`view`], connecting with `security`.
pub async fn view_with(addr: &str, security: &ClientSecurity) -> Result<ClusterView, String> {
    let mut conn = connect_with(addr, security).await?;
    let request = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
    let response = conn.send(&request, 12).await.map_err(|e| format!("Metadata to {addr}: {e}"))?;
    let brokers = response
        .brokers
        .iter()
        .map(|b| {
            let view = BrokerView {
                addr: format!("{}:{}", b.host.as_str(), b.port),
                rack: b.rack.as_ref().map(|r| r.to_string()),
            };
            (b.node_id.0, view)
        })
        .collect();
    let mut topics = BTreeMap::new();
    for topic in &response.topics {
        let name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if topic.error_code != 0 {
            return Err(format!("{addr} lists topic {name} with error {}", error_name(topic.error_code)));
        }
        let mut partitions: Vec<_> = topic.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition_index);
        let indexes: Vec<i32> = partitions.iter().map(|p| p.partition_index).collect();
        let expected: Vec<i32> = (0..i32::try_from(indexes.len()).expect("partition count fits i32")).collect();
        assert_eq!(indexes, expected, "{addr} lists topic {name} with partition indexes that are not 0..n");
        let partitions = partitions
            .iter()
            .map(|p| PartitionView {
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            })
            .collect();
        topics.insert(name, TopicView { topic_id: topic.topic_id.to_string(), partitions });
    }
    Ok(ClusterView {
        cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        controller_id: response.controller_id.0,
        brokers,
        topics,
    })
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A request the broker refused, with its Kafka error code, or one that failed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    Refused { code: i16, message: Option<String> },
    Transport(String),
}

impl AdminError {
    pub fn is(&self, error: ResponseError) -> bool {
        matches!(self, AdminError::Refused { code, .. } if *code == error.code())
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Refused { code, message } => {
                write!(f, "refused with {}: {}", error_name(*code), message.as_deref().unwrap_or(""))
            }
            AdminError::Transport(why) => write!(f, "{why}"),
        }
    }
}

/// CreateTopics v7 sent to exactly the node at `addr` (rdkafka would pick the controller
/// itself); returns the new topic's id.
pub async fn create_topic_via(addr: &str, name: &str, partitions: i32, replication: i16) -> Result<String, AdminError> {
    create_topic_with_configs_via(addr, name, partitions, replication, &[]).await
}

/// Like [`create_topic_via`], with topic configs (e.g. `min.insync.replicas`).
pub async fn create_topic_with_configs_via(
    addr: &str,
    name: &str,
    partitions: i32,
    replication: i16,
    configs: &[(&str, &str)],
) -> Result<String, AdminError> {
    create_topic_with_configs_via_secure(addr, &ClientSecurity::plaintext(), name, partitions, replication, configs)
        .await
}

/// Like [`create_topic_with_configs_via`], connecting with `security`.
pub async fn create_topic_with_configs_via_secure(
    addr: &str,
    security: &ClientSecurity,
    name: &str,
    partitions: i32,
    replication: i16,
    configs: &[(&str, &str)],
) -> Result<String, AdminError> {
    let mut conn = connect_with(addr, security).await.map_err(AdminError::Transport)?;
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication)
        .with_configs(configs);
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000);
    let response =
        conn.send(&request, 7).await.map_err(|e| AdminError::Transport(format!("CreateTopics to {addr}: {e}")))?;
    assert_eq!(response.topics.len(), 1, "one result for one topic from {addr}");
    let result = &response.topics[0];
    assert_eq!(result.name.0.as_str(), name, "the result names the topic asked for");
    if result.error_code != 0 {
        let message = result.error_message.as_ref().map(|m| m.to_string());
        return Err(AdminError::Refused { code: result.error_code, message });
    }
    assert_eq!(result.num_partitions, partitions, "{addr} reports the partition count asked for");
    Ok(result.topic_id.to_string())
}

/// CreatePartitions v3 sent to exactly the node at `addr`: grows `name` to `count`.
pub async fn create_partitions_via(addr: &str, name: &str, count: i32) -> Result<(), AdminError> {
    let mut conn = connect(addr).await.map_err(AdminError::Transport)?;
    let topic = CreatePartitionsTopic::default().with_name(topic_name(name)).with_count(count);
    let request = CreatePartitionsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000);
    let response =
        conn.send(&request, 3).await.map_err(|e| AdminError::Transport(format!("CreatePartitions to {addr}: {e}")))?;
    assert_eq!(response.results.len(), 1, "one result for one topic from {addr}");
    let result = &response.results[0];
    if result.error_code != 0 {
        let message = result.error_message.as_ref().map(|m| m.to_string());
        return Err(AdminError::Refused { code: result.error_code, message });
    }
    Ok(())
}

/// Polls `attempt` every [`POLL_INTERVAL`] until it returns `Ok` or `timeout` passes, then
/// fails with `what` and the last reason it gave. The async twin of `poll_until`, so that
/// waiting never blocks a runtime worker.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(why)) => why,
            Err(_) => "the last attempt was still running at the deadline".to_string(),
        };
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}; last: {last}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Lines of librdkafka's log a failure message shows.
const CLIENT_LOG_LINES_SHOWN: usize = 300;

/// A client context that keeps librdkafka's last log lines (bounded), each stamped with
/// the wall clock in milliseconds (to line up with the nodes' logs), so that a client
/// that stalls or fails can say why.
#[derive(Clone)]
pub struct CapturedLog {
    lines: Arc<Mutex<VecDeque<String>>>,
    capacity: usize,
    /// How many lines each facility (librdkafka's tag: DRAIN, NEWPID, ERRSEQ...) logged,
    /// kept lines or not.
    facilities: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Default for CapturedLog {
    fn default() -> Self {
        CapturedLog::keeping(CLIENT_LOG_LINES_SHOWN)
    }
}

impl CapturedLog {
    /// Keeps the last `capacity` lines.
    pub fn keeping(capacity: usize) -> Self {
        CapturedLog {
            lines: Arc::new(Mutex::new(VecDeque::new())),
            capacity: capacity.max(1),
            facilities: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    fn lines(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, line: String) {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut lines = self.lines();
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(format!("{}.{:03} {line}", stamp.as_secs(), stamp.subsec_millis()));
    }

    /// The last lines, as many as a failure message shows.
    pub fn tail(&self) -> String {
        let lines = self.lines();
        lines.iter().skip(lines.len().saturating_sub(CLIENT_LOG_LINES_SHOWN)).cloned().collect::<Vec<_>>().join("\n")
    }

    /// Lines logged per facility since the client started.
    pub fn facility_counts(&self) -> BTreeMap<String, usize> {
        self.facilities.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// How many kept lines contain `text`.
    pub fn lines_containing(&self, text: &str) -> usize {
        self.lines().iter().filter(|line| line.contains(text)).count()
    }

    /// Every line kept.
    pub fn all(&self) -> String {
        self.lines().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl ClientContext for CapturedLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        *self.facilities.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(fac.to_string()).or_default() +=
            1;
        self.push(format!("{level:?} {fac} {log_message}"));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.push(format!("ERROR {error}: {reason}"));
    }
}

impl ConsumerContext for CapturedLog {}

/// For a BaseProducer whose delivery reports nobody needs (a transactional producer's
/// commit says whether its messages were written).
impl rdkafka::producer::ProducerContext for CapturedLog {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// Reads partitions `0..partitions` of `topic` from the beginning through `bootstrap` until
/// `expected` messages arrived. On a stall it fails with what arrived per partition and
/// the consumer's own log (fetch, consumer and group debug contexts).
pub async fn read_back(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Received> {
    let log = CapturedLog::default();
    let mut config = assign_only_config(bootstrap);
    config
        .set("debug", "consumer,cgrp,fetch,topic,metadata")
        // Without a `log` logger installed rdkafka would filter the debug lines out.
        .set_log_level(RDKafkaLogLevel::Debug);
    let consumer: StreamConsumer<CapturedLog> = config.create_with_context(log.clone()).expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("add partition offset");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => out.push(received(&message)),
            Ok(Err(e)) => panic!("consumer error after {} messages from {topic}: {e}\n{}", out.len(), log.tail()),
            Err(_) => {
                let mut per_partition = BTreeMap::new();
                for r in &out {
                    *per_partition.entry(r.placed.partition).or_insert(0) += 1;
                }
                panic!(
                    "consumed only {} of {expected} messages from {topic} through {bootstrap} within {IO_TIMEOUT:?}; \
                     per partition {per_partition:?}\n--- consumer log (last {CLIENT_LOG_LINES_SHOWN} lines) ---\n{}",
                    out.len(),
                    log.tail()
                );
            }
        }
    }
    out
}

/// Settings for fault tests: failures noticed within seconds instead of Kafka's 30 s
/// defaults (ISR lag, broker session), and quick retries of a follower's failed fetch.
pub const FAST_FAILURE_DETECTION: &[&str] = &[
    "--set",
    "replica.lag.time.max.ms=3000",
    "--set",
    "broker.session.timeout.ms=3000",
    "--set",
    "broker.heartbeat.interval.ms=500",
    "--set",
    "replica.fetch.backoff.ms=200",
];

/// Three combined nodes started with `args` and serving metrics, once every node lists
/// all three brokers.
pub async fn three_agreed_nodes(args: &[&str], timeout: Duration) -> Cluster {
    let cluster = Cluster::start(&[1, 2, 3].map(|id| Spec::combined(id).with_args(args).with_metrics()));
    cluster.await_brokers_listed(timeout).await;
    cluster
}

/// Waits until every node in `ids` lists every partition of `topic` with a leader and an
/// ISR `isr_ok` accepts (given the replicas), the same on every node, and `check` accepts
/// the listing; returns it.
pub async fn topic_settled(
    cluster: &Cluster,
    ids: &[i32],
    topic: &str,
    timeout: Duration,
    isr_ok: impl Fn(&PartitionView) -> bool,
    check: impl Fn(&TopicView) -> Result<(), String>,
) -> TopicView {
    eventually(timeout, &format!("every partition of {topic} to settle on nodes {ids:?}"), || async {
        let mut seen: Option<TopicView> = None;
        for id in ids {
            let view = cluster.view(*id).await?;
            let t = view.topic(topic).ok_or(format!("topic missing on node {id}"))?.clone();
            if let Some(p) = t.partitions.iter().find(|p| p.leader < 0 || !isr_ok(p)) {
                return Err(format!("node {id}: {p:?}"));
            }
            if seen.as_ref().is_some_and(|s| s.partitions != t.partitions) {
                return Err(format!("nodes disagree: {seen:?} vs node {id}: {t:?}"));
            }
            check(&t).map_err(|why| format!("node {id}: {why}"))?;
            seen = Some(t);
        }
        Ok(seen.expect("at least one node"))
    })
    .await
}
