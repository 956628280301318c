//! Cluster mode: joining the Raft metadata quorum at start-up, and keeping the node's
//! hosted partitions in step with the replicated image afterwards.
//!
//! Every node (voter or not) serves the quorum's transport on `controller.listen`:
//! voters vote, learners (Kafka's observers) receive the committed log. An initial voter
//! (a controller listed in `controller.quorum.voters`) with no Raft state initializes the
//! voter set (openraft accepts the same initialization from every voter); any other node
//! that is not yet a member asks the leader to add it as a learner, through the
//! `controller.quorum.bootstrap.servers` or else the initial voters. A controller joins so
//! too, and becomes a voter only through AddRaftVoter. Membership is kept in the Raft log,
//! so a node that is a member (voter or learner) starts as one without asking again. The
//! cluster id, unless configured, is derived from the initial voter list, so every node of
//! one cluster agrees on it without talking first.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use runnel_metadata::election::reconcile;
use runnel_metadata::MetadataRecord;
use runnel_quorum::network::Connection;
use runnel_quorum::rpc::{Request, Response, FRAME_BYTES_MAX_DEFAULT};
use runnel_quorum::{ForwardError, Quorum, QuorumConfig, QuorumNode, QuorumTuning, Roles};
use tokio::sync::watch;

use crate::broker::{Broker, BrokerError};
use crate::config::BrokerConfig;
use crate::metadata_store::{MetadataStore, METADATA_DIR};

/// How long start-up waits for the quorum to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(60);
/// One join call to one voter.
const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Between join attempts while no voter can add us (no leader yet): a retry pace, not a
/// synchronisation.
const JOIN_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The cluster id every node derives from the same voter list (FNV-1a, 128 bits as hex).
pub fn derived_cluster_id(config: &BrokerConfig) -> String {
    let text: String = config.controller_quorum.iter().map(|(id, addr)| format!("{id}@{addr},")).collect();
    let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
    for byte in text.bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000000001000000000000000000013B);
    }
    format!("{hash:032x}")
}

fn config_error(why: impl Into<String>) -> BrokerError {
    BrokerError::Config(why.into())
}

/// The quorum transport's security: the protocol `listener.security.protocol.map` gives
/// `controller.listener.names`. PLAINTEXT (also when unmapped) keeps plain TCP; SSL needs
/// `ssl.client.auth=required` (mutual TLS: without an authorizer, a client certificate from
/// the cluster's CA is what admits a peer); SASL is refused (the quorum does not speak it).
fn quorum_tls(config: &BrokerConfig) -> Result<Option<runnel_quorum::QuorumTls>, BrokerError> {
    use crate::listeners::SecurityProtocol;
    let name = &config.controller_listener_name;
    // As for client listeners: the map, else a name that is itself a protocol (`SSL`), else
    // PLAINTEXT (the default `CONTROLLER`, unmapped).
    let protocol = config.listener_settings.protocol_of(name).unwrap_or(SecurityProtocol::Plaintext);
    match protocol {
        SecurityProtocol::Plaintext => Ok(None),
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => Err(config_error(format!(
            "controller listener {name} is {protocol}: the quorum transport speaks PLAINTEXT or SSL with client certificates"
        ))),
        SecurityProtocol::Ssl => {
            let settings = crate::tls::TlsSettings::from_settings(name, &config.security)?;
            if settings.client_auth() != crate::tls::ClientAuth::Required {
                return Err(config_error(format!(
                    "controller listener {name} is SSL: set listener.name.{}.ssl.client.auth=required, so that only holders of the cluster's certificates join the quorum",
                    name.as_str().to_ascii_lowercase()
                )));
            }
            let server = settings.build()?;
            let client = crate::inter_broker::client_tls(name, &config.security)?;
            Ok(Some(runnel_quorum::QuorumTls { server, client }))
        }
    }
}

/// Starts this node's quorum member and returns the metadata store on it.
pub async fn start(config: &BrokerConfig) -> Result<MetadataStore, BrokerError> {
    let listen =
        config.controller_listen.clone().ok_or_else(|| config_error("cluster mode needs --controller-listen"))?;
    let node_id = u64::try_from(config.node_id).map_err(|_| config_error("node ids are non-negative"))?;
    // An initial voter; any other controller starts as an observer until AddRaftVoter.
    let voter = config.roles.controller && config.controller_quorum.contains_key(&node_id);
    if !config.roles.controller && config.controller_quorum.contains_key(&node_id) {
        return Err(config_error(format!("node {node_id} is in --controller-quorum but not a controller")));
    }
    let dir = config.data_dir.join(METADATA_DIR);
    refuse_local_log(&dir)?;
    std::fs::create_dir_all(&dir)?;
    let (host, port) = config.advertised();
    let node = QuorumNode {
        kafka_addr: format!("{host}:{port}"),
        controller_addr: config.controller_advertise.clone().unwrap_or_else(|| listen.clone()),
        roles: Roles { broker: config.roles.broker, controller: config.roles.controller },
        rack: config.rack.clone(),
    };
    let cluster_id = config.cluster_id.clone().ok_or_else(|| config_error("cluster mode needs a cluster id"))?;
    let tls = quorum_tls(config)?;
    let quorum_config = QuorumConfig {
        cluster_id: cluster_id.clone(),
        node_id,
        node: node.clone(),
        voters: config.controller_quorum.clone(),
        dir,
        listen,
        voter,
        tuning: QuorumTuning { outbound_bind: config.outbound_bind, tls: tls.clone(), ..QuorumTuning::default() },
    };
    let quorum = Quorum::start(quorum_config).await.map_err(|e| config_error(format!("starting the quorum: {e}")))?;
    if voter {
        let initialized =
            quorum.initialize().await.map_err(|e| config_error(format!("initializing the quorum: {e}")))?;
        tracing::info!(node_id, initialized, "metadata quorum member started");
    }
    // An initial voter is a member once initialized (or learns the membership from the leader).
    let member =
        voter || quorum.is_member().await.map_err(|e| config_error(format!("reading the quorum state: {e}")))?;
    if !member {
        // A learner hears of the leader only once it is a member: ask the voters to add it.
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let via = Dialer { cluster_id: cluster_id.clone(), bind: config.outbound_bind, tls };
        if !join_as_learner(&join_addresses(config, &[]), &via, node_id, node, deadline).await {
            return Err(config_error(
                "no controller added this node as a learner in time; are a majority of controllers up?",
            ));
        }
        tracing::info!(node_id, "joined the metadata quorum as a learner (observer)");
    }
    wait_for_leader(&quorum).await?;
    catch_up(&quorum).await;
    Ok(MetadataStore::raft(quorum))
}

/// Where a node that is not a member asks to join: `known` (voters it knew of), then the
/// bootstrap servers, else the initial voters; each address once, never its own.
fn join_addresses(config: &BrokerConfig, known: &[String]) -> Vec<String> {
    let configured: Vec<String> = if config.controller_quorum_bootstrap.is_empty() {
        config.controller_quorum.values().cloned().collect()
    } else {
        config.controller_quorum_bootstrap.clone()
    };
    let own = [config.controller_listen.as_ref(), config.controller_advertise.as_ref()];
    let mut addresses: Vec<String> = Vec::new();
    for address in known.iter().chain(&configured) {
        if !addresses.contains(address) && !own.contains(&Some(address)) {
            addresses.push(address.clone());
        }
    }
    addresses
}

/// How this node reaches other quorum members: the cluster it names, the local address it
/// connects from, and the quorum's mutual TLS if configured.
struct Dialer {
    cluster_id: String,
    bind: Option<std::net::IpAddr>,
    tls: Option<runnel_quorum::QuorumTls>,
}

/// Asks the quorum members at `addresses`, in turn, to add this node as a learner; a voter
/// that is not the leader names the leader, which is asked next. Gives up at `deadline`
/// (`false`).
async fn join_as_learner(
    addresses: &[String],
    via: &Dialer,
    node_id: u64,
    node: QuorumNode,
    deadline: tokio::time::Instant,
) -> bool {
    if addresses.is_empty() {
        return false;
    }
    let request = Request::AddLearner { node_id, node };
    let mut next: Option<String> = None;
    let mut round = addresses.iter().cycle();
    while tokio::time::Instant::now() < deadline {
        let address = match next.take() {
            Some(leader) => leader,
            None => round.next().expect("the address list is not empty").clone(),
        };
        let mut connection = Connection::new(address.clone(), FRAME_BYTES_MAX_DEFAULT, &via.cluster_id)
            .bound_to(via.bind)
            .with_tls(via.tls.as_ref().map(|tls| tls.client.clone()));
        match connection.call(&request, JOIN_CALL_TIMEOUT).await {
            Ok(Response::Forwarded(Ok(_))) => return true,
            Ok(Response::Forwarded(Err(ForwardError::NotLeader { leader: Some(leader), .. }))) => {
                next = Some(leader.controller_addr);
            }
            other => {
                tracing::debug!(%address, outcome = ?other.map(|_| ()), "voter did not add this learner yet");
                tokio::time::sleep(JOIN_RETRY_PAUSE).await;
            }
        }
    }
    false
}

/// Keeps this node a member: a node taken out of the membership while it runs (a leader
/// that removed itself as a voter leaves it altogether; see `runnel_quorum::membership`)
/// asks to be added back as a learner, so it goes on following the metadata log as an
/// observer, as a removed Kafka controller does. Until `stop`.
pub fn stay_member(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let quorum = broker.metadata.quorum()?;
    let via = match quorum_tls(&broker.config) {
        Ok(tls) => Dialer { cluster_id: broker.cluster_id.clone(), bind: broker.config.outbound_bind, tls },
        Err(e) => {
            tracing::warn!(error = %e, "the quorum's TLS settings are unusable; a removed node will not rejoin");
            return None;
        }
    };
    let quorum_raft = quorum.raft().clone();
    let mut metrics = quorum_raft.metrics();
    let node_id = quorum.node_id();
    Some(tokio::spawn(async move {
        // This node as the membership last listed it, and the other voters then.
        let mut last: Option<(QuorumNode, Vec<String>)> = None;
        loop {
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
            let membership = metrics.borrow_and_update().membership_config.clone();
            let membership = membership.membership();
            if let Some(node) = membership.get_node(&node_id) {
                let voters = membership
                    .voter_ids()
                    .filter(|id| *id != node_id)
                    .filter_map(|id| membership.get_node(&id).map(|n| n.controller_addr.clone()))
                    .collect();
                last = Some((node.clone(), voters));
                continue;
            }
            let Some((node, voters)) = last.take() else { continue };
            // A leader that removed itself leads until the change is committed and applied;
            // added back before it steps down, it would go on leading as a learner.
            let wait = quorum_raft.wait(Some(LEADER_WAIT));
            let stepped_down = tokio::select! {
                waited = wait.metrics(|m| !m.state.is_leader(), "step down") => waited.is_ok(),
                _ = stop.changed() => return,
            };
            if !stepped_down {
                tracing::warn!(node_id, "still leading after leaving the quorum's membership");
                continue;
            }
            tracing::info!(node_id, "no longer a quorum member; asking to follow the log as an observer");
            let addresses = join_addresses(&broker.config, &voters);
            let deadline = tokio::time::Instant::now() + LEADER_WAIT;
            let joined = tokio::select! {
                joined = join_as_learner(&addresses, &via, node_id, node, deadline) => joined,
                _ = stop.changed() => return,
            };
            if !joined {
                tracing::warn!(
                    node_id,
                    "no controller added this node back as a learner; it no longer follows the metadata log"
                );
            }
        }
    }))
}

/// Waits (bounded) until this node has applied what the leader had applied when asked, so
/// a restarted node does not serve a stale topic list. Best effort: on timeout the node
/// serves anyway and catches up as the log arrives.
async fn catch_up(quorum: &Quorum) {
    let Some((leader, _)) = quorum.current_leader() else { return };
    let Ok(Ok(status)) = tokio::time::timeout(JOIN_CALL_TIMEOUT, quorum.node_status(leader)).await else { return };
    let Some(target) = status.last_applied_index else { return };
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let mut images = quorum.subscribe();
    while quorum.metrics().last_applied_index.is_none_or(|applied| applied < target) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(target, "metadata not caught up at start-up; serving anyway");
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), images.changed()).await;
    }
}

async fn wait_for_leader(quorum: &Quorum) -> Result<(), BrokerError> {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let mut images = quorum.subscribe();
    while quorum.current_leader().is_none() {
        if tokio::time::Instant::now() >= deadline {
            return Err(config_error("no metadata quorum leader elected in time; are a majority of controllers up?"));
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), images.changed()).await;
    }
    Ok(())
}

/// A data directory that ran as a single node keeps its metadata in a partition log; the
/// quorum's log format is different, and mixing them would lose the node's topics.
fn refuse_local_log(dir: &Path) -> Result<(), BrokerError> {
    // The local log keeps offset indexes beside its segments; the quorum's log does not.
    if dir.join("00000000000000000000.timeindex").exists() {
        return Err(config_error(format!(
            "{} holds a single-node metadata log; a cluster node needs a fresh data directory",
            dir.display()
        )));
    }
    Ok(())
}

/// Publishes every image the quorum replicates (see `publisher.rs`), until `stop`.
pub fn follow_image(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let mut images = broker.metadata.quorum()?.subscribe();
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = images.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
            let image = images.borrow_and_update().clone();
            let synced = tokio::task::block_in_place(|| broker.publish(&image));
            if let Err(e) = synced {
                tracing::error!(error = %e, "opening partitions from the replicated metadata failed");
            }
        }
    }))
}

/// How long a stopping broker waits for the quorum to commit its controlled shutdown. A
/// node whose quorum has gone with the other nodes stops anyway once it passes.
const CONTROLLED_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Before a broker leaves a cluster it fences itself, so its leaderships move to live ISR
/// members before clients notice it is gone (Kafka's controlled shutdown).
pub fn controlled_shutdown(broker: &Broker) {
    if broker.metadata.quorum().is_none() || !broker.config.roles.broker {
        return;
    }
    let node = broker.config.node_id;
    let moved = tokio::task::block_in_place(|| {
        broker.metadata.commit_final(CONTROLLED_SHUTDOWN_TIMEOUT, |image| {
            if image.brokers.get(&node).is_none_or(|b| b.fenced) {
                return Ok::<_, ()>(vec![]);
            }
            let fence = MetadataRecord::FenceBroker { node_id: node, shutting_down: true };
            let fenced = image.apply(std::slice::from_ref(&fence));
            let mut records = vec![fence];
            records.extend(reconcile(&fenced, broker.live_config().replication.unclean_leader_election));
            Ok(records)
        })
    });
    match moved {
        Ok(_) => tracing::info!(node, "controlled shutdown: leaderships moved away"),
        Err(e) => tracing::warn!(node, error = %e, "controlled shutdown could not move leaderships"),
    }
}
