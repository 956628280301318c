//! Chaos test for partition replication: a named, seeded, time-bounded scenario that keeps
//! idempotent acks=all producers and consumers running against a three-node cluster while it
//! kills leaders, followers and the active controller, cuts a leader off the network and
//! restarts nodes, then heals everything and checks what the partitions hold.
//!
//! The seed (`RUNNEL_TEST_SEED`, decimal or 0x-hex) drives the fault schedule: which fault,
//! which partition or node, and how long each lasts. It is printed at the start and in every
//! failure. What the clients do in between is timing-dependent, so a seed reproduces the
//! schedule, not the exact interleaving. `RUNNEL_CHAOS_SECS` sets the length of the fault
//! phase (default [`CHAOS_SECS_DEFAULT`], about three minutes for the whole test).
//!
//! Every node's Kafka listener and quorum listener sit behind a proxy (`support::proxy`) that
//! it advertises, so clients, other brokers' follower fetches and the other quorum members
//! all reach it through them, and every node makes its own connections to other nodes from
//! a loopback address of its own (`runnel.outbound.bind.address`, 127.0.0.(100 + id)).
//! "Cutting a node off the network" (`support::cluster::isolate`) closes and refuses every
//! connection into it (its proxies) and every connection out of it (the other nodes'
//! proxies refuse its source address), while the test's clients on 127.0.0.1 still reach the
//! other nodes: a clean partition of one node from the rest. The cut node keeps running,
//! believes it still leads until it hears otherwise, and comes back as a follower that
//! must truncate whatever only it wrote.
//!
//! A consumer group commits offsets throughout (`chaos/commits.rs`): its coordinator must
//! move with the leadership of its `__consumer_offsets` partition without losing an
//! acknowledged commit.
//!
//! The checker is a set of pure functions over plain data (what producers were told, what
//! consumers read, what the log holds at the end), so `chaos_checker_*` shows it can fail.
//!
//! The same scenario runs a second time secured (`chaos_replicated_topic_secured_*`, with a
//! shorter fault phase by default, [`SECURED_CHAOS_SECS_DEFAULT`]; `RUNNEL_CHAOS_SECS` sets
//! both): every node's advertised Kafka listener speaks SASL_SSL with SCRAM-SHA-512, so the
//! test's clients and the brokers' follower fetches are encrypted and authenticated, the
//! quorum listener speaks mutual TLS, and the authorizer is on (`chaos/security.rs`). TLS
//! records are not Kafka frames, so the proxies' traffic is then carried in frames
//! (`support::cluster`'s carriage); their faults act the same. Every client the test makes
//! carries the run's security ([`Access`], [`Cluster::client_security`]), a value rather
//! than a process-wide setting, since both variants may run in one process. At the end the
//! secured run also shows that the nodes refuse plaintext, unauthenticated and
//! unauthorised clients, and quorum peers without a certificate, so it cannot pass against
//! an open cluster.

#[path = "chaos/check.rs"]
mod check;
#[path = "chaos/commits.rs"]
mod commits;
#[path = "chaos/eos.rs"]
mod eos;
#[path = "chaos/eos_check.rs"]
mod eos_check;
#[path = "chaos/security.rs"]
mod security;
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use check::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset};
use security::Security;
use support::cluster::*;
use support::proxy::{ProxyStats, SplitMix64};
use support::{assign, base_consumer_with, consumer, partition_log_bytes, u64_from_env, DetachedDrop, Placed};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

const SEED_ENV: &str = "RUNNEL_TEST_SEED";
const SECS_ENV: &str = "RUNNEL_CHAOS_SECS";
/// A comma-separated subset of [`Fault::name`]s to inject (default: all of them).
const FAULTS_ENV: &str = "RUNNEL_CHAOS_FAULTS";
const SEED_DEFAULT: u64 = 0xc4a0_5000_0001;
/// Length of the fault phase unless `RUNNEL_CHAOS_SECS` says otherwise: with start-up,
/// settling and checking, the test takes about three minutes.
const CHAOS_SECS_DEFAULT: u64 = 150;
/// The same for the secured variant, kept short for CI: it adds security to the same
/// scenario, which the plaintext run already exercises at length.
const SECURED_CHAOS_SECS_DEFAULT: u64 = 40;
/// The same for the exactly-once scenario (`RUNNEL_CHAOS_SECS` sets it too).
const EOS_CHAOS_SECS_DEFAULT: u64 = 45;

const NODE_IDS: [i32; 3] = [1, 2, 3];
const TOPIC: &str = "chaos";
const PARTITIONS: i32 = 6;
const REPLICATION: usize = 3;
const TOPIC_CONFIGS: &[(&str, &str)] = &[("min.insync.replicas", "2")];
/// Short lag and session timeouts, so that the ISR and fencing react within one fault. Few
/// `__consumer_offsets` partitions (the consumers only need a coordinator to exist) keep
/// restarts and settling quick.
const NODE_SETTINGS: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "3000"),
    ("broker.session.timeout.ms", "3000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("default.replication.factor", "3"),
    ("min.insync.replicas", "2"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.num.partitions", "3"),
    ("transaction.state.log.num.partitions", "3"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.state.log.min.isr", "2"),
];

const PRODUCERS: u32 = 2;
const CONSUMERS: usize = 2;
/// Keys `key-0..KEYS` spread each producer's messages over every partition.
const KEYS: u32 = 60;
/// librdkafka idempotence log lines a producer keeps; all are left beside the nodes' data
/// (`RUNNEL_TEST_KEEP`) when it fails, the last few shown in the failure.
const PRODUCER_LOG_LINES: usize = 50_000;
/// Deliveries a producer may have outstanding at once.
const DELIVERY_WINDOW: usize = 200;
/// Pace of each producer: at most 500 messages a second (fewer while the window is full).
const SEND_INTERVAL: Duration = Duration::from_millis(2);
/// librdkafka fails a message it could not get acknowledged within this.
const MESSAGE_TIMEOUT_MS: u64 = 60_000;
/// A delivery report later than this is counted as a failure (librdkafka promises one
/// within `message.timeout.ms`).
const DELIVERY_REPORT_TIMEOUT: Duration = Duration::from_millis(MESSAGE_TIMEOUT_MS + 30_000);
/// How long a stopping producer waits for a free slot before it looks at the stop flag again.
const WINDOW_WAIT: Duration = Duration::from_millis(100);
/// How long a consumer waits for a message before it looks at the stop flag again.
const CONSUMER_POLL: Duration = Duration::from_millis(200);

/// Pause between injecting a fault and healing it: drawn from this range by the seed.
const FAULT_MS_MIN: u64 = 2_000;
const FAULT_MS_MAX: u64 = 6_000;
/// A cut heals itself after this even if the test never ends it (it always does, sooner).
const OUTAGE_MAX: Duration = Duration::from_secs(120);
/// How long the cluster may take after a heal to list all brokers and full ISRs again.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the producers may take to get their first acknowledgements, and after the
/// faults, [`STEADY_ACKS`] more each.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Acknowledgements each producer must get after the last heal: the cluster takes writes.
const STEADY_ACKS: usize = 200;
/// How long stopped producers may take to get a report for every outstanding message.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(MESSAGE_TIMEOUT_MS + 40_000);
/// How long consumers may take to reach the end of every partition once writes stopped
/// (counted again from a consumer's replacement).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// A consumer behind the end that delivers nothing for this long is replaced.
const CONSUMER_STALL: Duration = Duration::from_secs(15);
/// Replacements per consumer: a broker that cannot serve a partition is not hidden by them.
const CONSUMER_RESTARTS_MAX: usize = 2;
/// How often the catch-up wait looks at the consumers' ledgers.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);
/// How long the final read of every partition may take.
const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the replicas may take to become byte-identical once writes stopped.
const REPLICAS_CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// One watermark request.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads a consumer keeps for checking (32 bytes each; over an hour at full pace); beyond
/// this they are counted, not checked.
const READS_KEPT_MAX: usize = 4_000_000;
/// Distinct client error texts kept per client for the report.
const ERROR_KINDS_KEPT: usize = 20;
/// Violations printed when the checker fails.
const VIOLATIONS_SHOWN: usize = 30;

// ----- the cluster behind proxies, and the faults -----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillLeader,
    KillController,
    KillFollower,
    CutLeader,
    RestartNode,
    /// Kills the node coordinating the exactly-once scenario's transactional id (drawn only
    /// there, so the other scenarios' schedules stay as they were).
    KillTransactionCoordinator,
}

const FAULTS: [Fault; 5] =
    [Fault::KillLeader, Fault::KillController, Fault::KillFollower, Fault::CutLeader, Fault::RestartNode];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillController => "kill-controller",
            Fault::KillFollower => "kill-follower",
            Fault::CutLeader => "cut-leader",
            Fault::RestartNode => "restart",
            Fault::KillTransactionCoordinator => "kill-transaction-coordinator",
        }
    }

    /// The faults [`FAULTS_ENV`] names, or every fault. With all of them a seed draws the
    /// same schedule as it always did.
    fn chosen() -> Vec<Fault> {
        let Ok(names) = std::env::var(FAULTS_ENV) else { return FAULTS.to_vec() };
        let known = FAULTS.map(Fault::name).join(", ");
        let chosen: Vec<Fault> = names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                FAULTS
                    .into_iter()
                    .find(|f| f.name() == name)
                    .unwrap_or_else(|| panic!("{FAULTS_ENV}: unknown fault {name:?}; known: {known}"))
            })
            .collect();
        assert!(!chosen.is_empty(), "{FAULTS_ENV} names no fault");
        chosen
    }
}

/// What one round of the schedule drew from the seed: always the same number of draws, so
/// round `n` makes the same choices for a seed whatever happened before.
struct Draws {
    fault: Fault,
    partition: usize,
    follower: usize,
    node: usize,
    fault_ms: u64,
}

impl Draws {
    fn next(rng: &mut SplitMix64, faults: &[Fault]) -> Draws {
        let mut draw = |n: u64| usize::try_from(rng.next_u64() % n).expect("small");
        Draws {
            fault: faults[draw(faults.len() as u64)],
            partition: draw(PARTITIONS as u64),
            follower: draw(REPLICATION as u64 - 1),
            node: draw(NODE_IDS.len() as u64),
            fault_ms: FAULT_MS_MIN + draw(FAULT_MS_MAX - FAULT_MS_MIN + 1) as u64,
        }
    }
}

/// How to undo a fault, and to whom.
enum Heal {
    Restart(i32),
    Reconnect(i32),
}

impl Heal {
    fn victim(&self) -> i32 {
        match *self {
            Heal::Restart(id) | Heal::Reconnect(id) => id,
        }
    }
}

/// Where and how the test's Kafka clients reach the cluster: every node's advertised
/// (proxied) Kafka address, and the client properties of the run's [`Security`]. Passed to
/// every client the test makes.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) bootstrap: String,
    /// By librdkafka's names (`security.protocol`, `sasl.*`, `ssl.ca.location`).
    pub(crate) properties: Vec<(String, String)>,
}

impl Access {
    /// An rdkafka configuration for the cluster: bootstrap servers, IPv4, the security.
    pub(crate) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap).set("broker.address.family", "v4");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The security properties, as `support`'s client helpers take extra settings.
    pub(crate) fn extra(&self) -> Vec<(&str, &str)> {
        self.properties.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect()
    }
}

struct Chaos {
    seed: u64,
    rng: SplitMix64,
    /// The faults the schedule draws from.
    faults: Vec<Fault>,
    cluster: Cluster,
    proxies: BTreeMap<i32, NodeProxies>,
    /// After the cluster, so that its certificates outlive the nodes.
    security: Security,
    access: Access,
    started: Instant,
    injected: BTreeMap<Fault, usize>,
    /// Faults whose victim was the node coordinating the committing group.
    coordinator_faults: usize,
    /// Faults whose victim was the node coordinating the exactly-once service's transactions.
    transaction_coordinator_faults: usize,
}

impl Chaos {
    /// Starts three combined nodes behind their proxies, secured by `security`, and
    /// creates the topic.
    async fn start(seed: u64, faults: Vec<Fault>, security: Security) -> Chaos {
        let (cluster, proxies) = start_cluster(seed, &security);
        let bootstrap = proxies.values().map(|p| p.kafka_addr().to_string()).collect::<Vec<_>>().join(",");
        let access = Access { bootstrap, properties: security.client_properties() };
        let mut chaos = Chaos {
            seed,
            rng: SplitMix64::stream(seed, 0xfa17),
            faults,
            cluster,
            proxies,
            security,
            access,
            started: Instant::now(),
            injected: BTreeMap::new(),
            coordinator_faults: 0,
            transaction_coordinator_faults: 0,
        };
        chaos.create_topics().await;
        let view = chaos.settle("start-up").await;
        for (id, proxies) in &chaos.proxies {
            let listed = view.brokers.get(id).map(|b| b.addr.clone());
            assert_eq!(
                listed,
                Some(proxies.kafka_addr().to_string()),
                "chaos[{seed:#x}] node {id} advertises its proxy"
            );
        }
        chaos.started = Instant::now();
        chaos
    }

    fn say(&self, what: &str) {
        eprintln!("chaos[{:#x}] t={:.1}s {what}", self.seed, self.started.elapsed().as_secs_f64());
    }

    async fn create_topics(&self) {
        let seed = self.seed;
        let addr = self.cluster.kafka_addr(NODE_IDS[0]).to_string();
        let security = self.cluster.client_security();
        eventually(CONVERGE_TIMEOUT, &format!("chaos[{seed:#x}] creating {TOPIC}"), || async {
            let created = create_topic_with_configs_via_secure(
                &addr,
                security,
                TOPIC,
                PARTITIONS,
                REPLICATION as i16,
                TOPIC_CONFIGS,
            )
            .await;
            match created {
                Ok(_) => Ok(()),
                Err(e) if e.is(ResponseError::TopicAlreadyExists) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        // librdkafka's consumer needs a group id even to assign(), so it looks up a
        // coordinator: have `__consumer_offsets` exist before the consumers start.
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("runnel-tests-unused"));
        eventually(CONVERGE_TIMEOUT, &format!("chaos[{seed:#x}] __consumer_offsets to exist"), || async {
            let mut conn = connect_with(&addr, security).await?;
            conn.send(&request, 3).await.map_err(|e| e.to_string())?;
            for id in NODE_IDS {
                let view = self.cluster.view(id).await?;
                view.topic("__consumer_offsets").ok_or_else(|| format!("node {id} does not list it yet"))?;
            }
            Ok(())
        })
        .await;
    }

    /// Waits until the cluster has settled (see [`settled`]); returns node 1's view.
    async fn settle(&self, after: &str) -> ClusterView {
        let what = format!("chaos[{:#x}] the cluster to settle after {after}", self.seed);
        let view = eventually(SETTLE_TIMEOUT, &what, || settled(&self.cluster)).await;
        self.say(&format!("settled after {after}: controller {}, {}", view.controller_id, partitions(&view)));
        view
    }

    /// Injects faults, one at a time, until `phase` has passed: settle, inject, wait the
    /// drawn time, heal.
    async fn run_faults(&mut self, phase: Duration) {
        let mut round = 0;
        while self.started.elapsed() < phase {
            round += 1;
            let view = self.settle(&format!("healing, before fault {round}")).await;
            let draws = Draws::next(&mut self.rng, &self.faults);
            let heal = self.inject(round, &draws, &view);
            *self.injected.entry(draws.fault).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(draws.fault_ms)).await;
            self.heal(heal).await;
        }
        self.say(&format!("fault phase over after {round} rounds: {:?}", self.injected));
    }

    fn inject(&mut self, round: usize, draws: &Draws, view: &ClusterView) -> Heal {
        let partition = &view.topic(TOPIC).expect("a settled view lists the topic").partitions[draws.partition];
        let followers: Vec<i32> = partition.replicas.iter().copied().filter(|&r| r != partition.leader).collect();
        let (victim, what) = match draws.fault {
            Fault::KillLeader => {
                (partition.leader, format!("kill -9 node {}, leader of {TOPIC}-{}", partition.leader, draws.partition))
            }
            Fault::KillController => {
                (view.controller_id, format!("kill -9 node {}, the active controller", view.controller_id))
            }
            Fault::KillFollower => {
                let follower = followers[draws.follower % followers.len()];
                (follower, format!("kill -9 node {follower}, follower of {TOPIC}-{}", draws.partition))
            }
            Fault::CutLeader => (
                partition.leader,
                format!("cut node {}, leader of {TOPIC}-{}, off the network", partition.leader, draws.partition),
            ),
            Fault::RestartNode => (NODE_IDS[draws.node], format!("SIGTERM node {}", NODE_IDS[draws.node])),
            Fault::KillTransactionCoordinator => match transaction_coordinator(view) {
                Some(node) => (node, format!("kill -9 node {node}, coordinator of {}", eos::TRANSACTIONAL_ID)),
                None => (
                    view.controller_id,
                    format!("kill -9 node {} (no transaction coordinator yet)", view.controller_id),
                ),
            },
        };
        if transaction_coordinator(view) == Some(victim) {
            self.transaction_coordinator_faults += 1;
        }
        let coordinator = commits::coordinator(view);
        let what = match coordinator == Some(victim) {
            true => {
                self.coordinator_faults += 1;
                format!("{what} (coordinator of group {})", commits::GROUP)
            }
            false => what,
        };
        self.say(&format!("fault {round}: {what} for {} ms", draws.fault_ms));
        match draws.fault {
            Fault::CutLeader => {
                isolate(&self.proxies, victim, OUTAGE_MAX);
                Heal::Reconnect(victim)
            }
            Fault::RestartNode => {
                tokio::task::block_in_place(|| self.cluster.terminate(&[victim]));
                Heal::Restart(victim)
            }
            _ => {
                tokio::task::block_in_place(|| self.cluster.kill9(victim));
                Heal::Restart(victim)
            }
        }
    }

    /// Undoes the fault, first showing what a survivor made of it (so that the output
    /// shows fencing, elections and ISR changes).
    async fn heal(&mut self, heal: Heal) {
        let survivor = NODE_IDS.into_iter().find(|&id| id != heal.victim()).expect("three nodes");
        let seen = match self.cluster.view(survivor).await {
            Ok(view) => {
                format!("brokers {:?}, controller {}, {}", view.broker_ids(), view.controller_id, partitions(&view))
            }
            Err(e) => e,
        };
        self.say(&format!("node {survivor} sees {seen}"));
        match heal {
            Heal::Restart(id) => {
                self.say(&format!("heal: restart node {id}"));
                tokio::task::block_in_place(|| self.cluster.restart(&[id]));
            }
            Heal::Reconnect(id) => {
                self.say(&format!("heal: reconnect node {id}"));
                reconnect(&self.proxies, id);
            }
        }
    }

    /// Polls until every partition's segment bytes are the same on every node.
    async fn assert_replicas_identical(&self) -> u64 {
        self.assert_replicas_of_identical(TOPIC).await
    }

    /// [`Chaos::assert_replicas_identical`] for `topic` (of [`PARTITIONS`] partitions).
    async fn assert_replicas_of_identical(&self, topic: &str) -> u64 {
        let what = format!("chaos[{:#x}] every replica of {topic} to be byte-identical", self.seed);
        eventually(REPLICAS_CONVERGE_TIMEOUT, &what, || async {
            let mut bytes = 0;
            for partition in 0..PARTITIONS {
                let copies: BTreeMap<i32, Vec<u8>> = NODE_IDS
                    .iter()
                    .map(|&id| (id, partition_log_bytes(self.cluster.node(id).data_dir(), topic, partition)))
                    .collect();
                if let Some(difference) = replica_difference(&copies) {
                    return Err(format!("{topic}-{partition}: {difference}"));
                }
                bytes += copies[&NODE_IDS[0]].len() as u64;
            }
            Ok(bytes)
        })
        .await
    }
}

/// The node coordinating [`eos::TRANSACTIONAL_ID`] in `view`: the leader of its
/// `__transaction_state` partition (Kafka's hash of the id, as for groups).
fn transaction_coordinator(view: &ClusterView) -> Option<i32> {
    let state = view.topic("__transaction_state")?;
    let id = eos::TRANSACTIONAL_ID;
    let hash = id.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    let partitions = i32::try_from(state.partitions.len()).ok().filter(|n| *n > 0)?;
    Some(state.partitions[usize::try_from(abs % partitions).ok()?].leader)
}

/// Three combined nodes with [`NODE_SETTINGS`] and `security`, each behind proxies that it
/// advertises.
fn start_cluster(seed: u64, security: &Security) -> (Cluster, BTreeMap<i32, NodeProxies>) {
    let mut settings: Vec<String> =
        NODE_SETTINGS.iter().flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]).collect();
    settings.extend(security.node_args());
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let specs: Vec<Spec> = NODE_IDS.iter().map(|&id| Spec::combined(id).with_args(&settings)).collect();
    let client = security.client_security();
    tokio::task::block_in_place(|| Cluster::start_behind_proxies_with(&specs, seed, client))
}

/// Ok with node 1's view when every node answers Metadata, lists all three brokers (so none
/// is fenced) and the same controller, and lists every partition of the topic the same way,
/// with a leader and all three replicas in sync.
async fn settled(cluster: &Cluster) -> Result<ClusterView, String> {
    let mut views = Vec::with_capacity(NODE_IDS.len());
    for id in NODE_IDS {
        let view = cluster.view(id).await.map_err(|e| format!("node {id}: {e}"))?;
        if view.broker_ids() != NODE_IDS {
            return Err(format!("node {id} lists brokers {:?}", view.broker_ids()));
        }
        if view.controller_id < 0 {
            return Err(format!("node {id} knows no controller"));
        }
        let topic = view.topic(TOPIC).ok_or_else(|| format!("node {id} does not list {TOPIC}"))?;
        fully_in_sync(topic).map_err(|why| format!("node {id}: {why}"))?;
        views.push(view);
    }
    let first = &views[0];
    for (view, id) in views.iter().zip(NODE_IDS).skip(1) {
        if view.controller_id != first.controller_id {
            return Err(format!("node 1 names controller {}, node {id} {}", first.controller_id, view.controller_id));
        }
        if view.topic(TOPIC) != first.topic(TOPIC) {
            return Err(format!(
                "nodes 1 and {id} list {TOPIC} as {:?} and {:?}",
                first.topic(TOPIC),
                view.topic(TOPIC)
            ));
        }
    }
    Ok(views.swap_remove(0))
}

fn fully_in_sync(topic: &TopicView) -> Result<(), String> {
    if topic.partitions.len() != PARTITIONS as usize {
        return Err(format!("{TOPIC} has {} partitions", topic.partitions.len()));
    }
    for (index, partition) in topic.partitions.iter().enumerate() {
        let (mut replicas, mut isr) = (partition.replicas.clone(), partition.isr.clone());
        replicas.sort_unstable();
        isr.sort_unstable();
        if partition.leader < 0 || !replicas.contains(&partition.leader) {
            return Err(format!("{TOPIC}-{index} has leader {} of replicas {replicas:?}", partition.leader));
        }
        if replicas.len() != REPLICATION || isr != replicas {
            return Err(format!("{TOPIC}-{index}: in sync {isr:?} of replicas {replicas:?}"));
        }
    }
    Ok(())
}

/// Each partition's leader and in-sync replicas, e.g. `0:1[1,2,3] 1:2[2,3]`.
fn partitions(view: &ClusterView) -> String {
    let Some(topic) = view.topic(TOPIC) else { return format!("no {TOPIC}") };
    let each = topic.partitions.iter().enumerate().map(|(index, p)| {
        let isr: Vec<String> = p.isr.iter().map(i32::to_string).collect();
        format!("{index}:{}[{}]", p.leader, isr.join(","))
    });
    format!("{TOPIC} leader[isr] {}", each.collect::<Vec<_>>().join(" "))
}

// ----- the workload: producers and consumers running throughout -----

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking task must not hide the test's own failure behind a poison error.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Distinct error texts with how often each came, at most [`ERROR_KINDS_KEPT`] kinds.
#[derive(Debug, Default)]
struct Errors {
    kinds: BTreeMap<String, usize>,
    seen: usize,
}

impl Errors {
    fn add(&mut self, error: String) {
        self.seen += 1;
        if let Some(count) = self.kinds.get_mut(&error) {
            *count += 1;
        } else if self.kinds.len() < ERROR_KINDS_KEPT {
            self.kinds.insert(error, 1);
        }
    }
}

/// What one producer sent, by sequence number, and what it was told.
#[derive(Default)]
struct ProducerLedger {
    outcomes: Vec<Outcome>,
    acked: usize,
    failed: usize,
    errors: Errors,
}

impl ProducerLedger {
    fn record(&mut self, seq: usize, outcome: Outcome) {
        assert_eq!(self.outcomes[seq], Outcome::Pending, "one report per message");
        self.outcomes[seq] = outcome;
        match outcome {
            Outcome::Acked(_) => self.acked += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Pending => unreachable!("only reports are recorded"),
        }
    }
}

/// What one consumer read, and where it would read next in each partition.
#[derive(Default)]
struct ConsumerLedger {
    reads: Vec<Read>,
    reads_unchecked: usize,
    /// Times this consumer was replaced because it stopped delivering while behind (see
    /// [`Workload::stop_consuming_after_catch_up`]).
    replacements: usize,
    next_offset: BTreeMap<i32, i64>,
    errors: Errors,
}

/// A chaos producer: librdkafka's idempotence debug lines (`debug=eos`: state changes,
/// drains, epoch bumps, sequence errors) are kept, so a producer that fails says how.
type ChaosProducer = FutureProducer<CapturedLog>;

struct ProducerRun {
    producer: ChaosProducer,
    log: CapturedLog,
    ledger: Arc<Mutex<ProducerLedger>>,
    window: Arc<Semaphore>,
    task: JoinHandle<()>,
}

struct ConsumerRun {
    ledger: Arc<Mutex<ConsumerLedger>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

struct Workload {
    seed: u64,
    access: Access,
    producers: Vec<ProducerRun>,
    consumers: Vec<ConsumerRun>,
    stop_producing: Arc<AtomicBool>,
}

fn idempotent_producer(access: &Access, log: &CapturedLog) -> ChaosProducer {
    access
        .config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", "5")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string())
        .set("socket.timeout.ms", "20000")
        .set("retry.backoff.ms", "100")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("debug", "eos")
        // Without a `log` logger installed rdkafka would filter the debug lines out.
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug)
        .create_with_context(log.clone())
        .expect("idempotent producer")
}

/// A failing test (any assertion after the workload started) leaves every producer's
/// idempotence log beside the nodes' data when `RUNNEL_TEST_KEEP` is set.
impl Drop for Workload {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, p) in self.producers.iter().enumerate() {
                support::keep_text(&format!("producer-{i}-eos"), &p.log.all());
            }
        }
    }
}

impl Workload {
    fn start(seed: u64, access: &Access) -> Workload {
        let stop_producing = Arc::new(AtomicBool::new(false));
        let producers = (0..PRODUCERS).map(|id| start_producer(id, access, &stop_producing)).collect();
        let consumers =
            (0..CONSUMERS).map(|_| start_consumer(access, Arc::new(Mutex::new(ConsumerLedger::default())))).collect();
        Workload { seed, access: access.clone(), producers, consumers, stop_producing }
    }

    fn acked(&self) -> Vec<usize> {
        self.producers.iter().map(|p| lock(&p.ledger).acked).collect()
    }

    /// Waits until each producer has `more` acknowledgements beyond what it has now.
    async fn wait_for_acks(&self, more: usize, when: &str) {
        let from = self.acked();
        let what = format!("chaos[{:#x}] each producer to get {more} more acknowledgements {when}", self.seed);
        eventually(PROGRESS_TIMEOUT, &what, || async {
            let now = self.acked();
            match from.iter().zip(&now).all(|(from, now)| now - from >= more) {
                true => Ok(()),
                false => {
                    let failed: Vec<usize> = self.producers.iter().map(|p| lock(&p.ledger).failed).collect();
                    let fatal: Vec<_> = self.producers.iter().map(|p| p.producer.client().fatal_error()).collect();
                    let logs: String = self
                        .producers
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.producer.client().fatal_error().is_some())
                        .map(|(i, p)| format!("\n--- producer {i} idempotence log (last lines) ---\n{}", p.log.tail()))
                        .collect();
                    Err(format!(
                        "acknowledged {now:?} from {from:?}, failed {failed:?}; fatal errors {fatal:?}; {:?}{logs}",
                        self.producer_errors()
                    ))
                }
            }
        })
        .await;
    }

    fn producer_errors(&self) -> Vec<BTreeMap<String, usize>> {
        self.producers.iter().map(|p| lock(&p.ledger).errors.kinds.clone()).collect()
    }

    /// Stops sending, waits for every outstanding report, and returns the outcomes by
    /// producer and sequence number. A producer that raised a fatal error fails the test.
    async fn stop_producing(&mut self) -> Vec<Vec<Outcome>> {
        let seed = self.seed;
        self.stop_producing.store(true, Ordering::SeqCst);
        for run in &mut self.producers {
            tokio::time::timeout(PROGRESS_TIMEOUT, &mut run.task)
                .await
                .unwrap_or_else(|_| panic!("chaos[{seed:#x}] a producer did not stop"))
                .expect("producer task");
            let window = u32::try_from(DELIVERY_WINDOW).expect("small window");
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, run.window.acquire_many(window)).await;
            assert!(drained.is_ok(), "chaos[{seed:#x}] delivery reports still outstanding after {DRAIN_TIMEOUT:?}");
            if let Some((code, reason)) = run.producer.client().fatal_error() {
                panic!("chaos[{seed:#x}] an idempotent producer raised a fatal error: {code:?}: {reason}");
            }
            let unreported = lock(&run.ledger).outcomes.iter().filter(|o| **o == Outcome::Pending).count();
            assert_eq!(unreported, 0, "chaos[{seed:#x}] every message sent has a report once the window drained");
        }
        self.producers.iter().map(|run| lock(&run.ledger).outcomes.clone()).collect()
    }

    /// Waits until every consumer has read up to `highs` in every partition, stops them,
    /// and returns everything they read.
    ///
    /// A consumer that is behind and delivers nothing for [`CONSUMER_STALL`] is replaced by a
    /// fresh one that goes on from where it stopped, at most [`CONSUMER_RESTARTS_MAX`] times
    /// each (what the stuck one read stays in its ledger and is checked). librdkafka can
    /// deadlock inside a consumer when a fenced broker leaves the metadata
    /// ([`support::DetachedDrop`]); an application would restart it. A broker that cannot
    /// serve a partition stalls the fresh consumer too, and the deadline reports it.
    async fn stop_consuming_after_catch_up(&mut self, highs: &BTreeMap<i32, i64>) -> Vec<Read> {
        let seed = self.seed;
        let mut deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let mut progress: Vec<(BTreeMap<i32, i64>, Instant)> =
            self.consumers.iter().map(|run| (lock(&run.ledger).next_offset.clone(), Instant::now())).collect();
        loop {
            let behind = self.behind(highs);
            if behind.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chaos[{seed:#x}] the consumers did not reach the end of every partition {highs:?} within \
                 {CATCH_UP_TIMEOUT:?}: {}",
                behind.iter().map(|(index, why)| format!("consumer {index} {why}")).collect::<Vec<_>>().join("; ")
            );
            for (index, _) in behind {
                let next = lock(&self.consumers[index].ledger).next_offset.clone();
                if next != progress[index].0 {
                    progress[index] = (next, Instant::now());
                } else if progress[index].1.elapsed() >= CONSUMER_STALL
                    && lock(&self.consumers[index].ledger).replacements < CONSUMER_RESTARTS_MAX
                {
                    eprintln!(
                        "chaos[{seed:#x}] consumer {index} delivered nothing for {CONSUMER_STALL:?} at {next:?}; \
                         replacing it"
                    );
                    self.restart_consumer(index).await;
                    progress[index].1 = Instant::now();
                    deadline = Instant::now() + CATCH_UP_TIMEOUT;
                }
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
        let mut reads = Vec::new();
        for index in 0..self.consumers.len() {
            self.stop_consumer(index).await;
            reads.extend(std::mem::take(&mut lock(&self.consumers[index].ledger).reads));
        }
        reads
    }

    /// The consumers behind `highs`, with where they are and the errors they met.
    fn behind(&self, highs: &BTreeMap<i32, i64>) -> Vec<(usize, String)> {
        self.consumers
            .iter()
            .enumerate()
            .filter_map(|(index, run)| {
                let ledger = lock(&run.ledger);
                let behind: BTreeMap<i32, i64> = highs
                    .iter()
                    .map(|(p, high)| (*p, ledger.next_offset.get(p).copied().unwrap_or(0), *high))
                    .filter(|(_, next, high)| next < high)
                    .map(|(p, next, _)| (p, next))
                    .collect();
                (!behind.is_empty()).then(|| (index, format!("is at {behind:?}; errors {:?}", ledger.errors)))
            })
            .collect()
    }

    /// Stops consumer `index` and waits for its task (its client is destroyed off the runtime).
    async fn stop_consumer(&mut self, index: usize) {
        let run = &mut self.consumers[index];
        run.stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(PROGRESS_TIMEOUT, &mut run.task)
            .await
            .unwrap_or_else(|_| panic!("chaos[{:#x}] consumer {index} did not stop", self.seed))
            .expect("consumer task");
    }

    /// Replaces consumer `index` with a fresh client that goes on from where it stopped,
    /// keeping its ledger.
    async fn restart_consumer(&mut self, index: usize) {
        self.stop_consumer(index).await;
        let ledger = Arc::clone(&self.consumers[index].ledger);
        lock(&ledger).replacements += 1;
        self.consumers[index] = start_consumer(&self.access, ledger);
    }
}

fn start_producer(id: u32, access: &Access, stop: &Arc<AtomicBool>) -> ProducerRun {
    let log = CapturedLog::keeping(PRODUCER_LOG_LINES);
    let producer = idempotent_producer(access, &log);
    let ledger = Arc::new(Mutex::new(ProducerLedger::default()));
    let window = Arc::new(Semaphore::new(DELIVERY_WINDOW));
    let task = tokio::spawn(produce(id, producer.clone(), Arc::clone(&ledger), Arc::clone(&window), Arc::clone(stop)));
    ProducerRun { producer, log, ledger, window, task }
}

/// Sends `p{id}-{seq}` with key `key-{seq % KEYS}` at [`SEND_INTERVAL`] while the window
/// has room, until stopped; a task per message waits for its delivery report.
async fn produce(
    id: u32,
    producer: ChaosProducer,
    ledger: Arc<Mutex<ProducerLedger>>,
    window: Arc<Semaphore>,
    stop: Arc<AtomicBool>,
) {
    let mut pace = tokio::time::interval(SEND_INTERVAL);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        pace.tick().await;
        let Ok(permit) = tokio::time::timeout(WINDOW_WAIT, Arc::clone(&window).acquire_owned()).await else {
            continue;
        };
        let permit = permit.expect("the window is never closed");
        let seq = {
            let mut ledger = lock(&ledger);
            ledger.outcomes.push(Outcome::Pending);
            ledger.outcomes.len() - 1
        };
        let id = MessageId { producer: id, seq: u32::try_from(seq).expect("sequence fits u32") };
        let (key, value) = (format!("key-{}", id.seq % KEYS), id.to_string());
        let record = FutureRecord::<str, str>::to(TOPIC).key(key.as_str()).payload(value.as_str());
        let delivery = match producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((error, _)) => {
                let mut ledger = lock(&ledger);
                ledger.errors.add(format!("enqueue: {error}"));
                ledger.record(seq, Outcome::Failed);
                continue;
            }
        };
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move {
            let (outcome, error) = match tokio::time::timeout(DELIVERY_REPORT_TIMEOUT, delivery).await {
                Ok(Ok(Ok(delivery))) => {
                    (Outcome::Acked(Placed { partition: delivery.partition, offset: delivery.offset }), None)
                }
                Ok(Ok(Err((error, _)))) => (Outcome::Failed, Some(error.to_string())),
                Ok(Err(_)) => (Outcome::Failed, Some("delivery report cancelled".to_string())),
                Err(_) => (Outcome::Failed, Some(format!("no delivery report within {DELIVERY_REPORT_TIMEOUT:?}"))),
            };
            let mut ledger = lock(&ledger);
            if let Some(error) = error {
                ledger.errors.add(error);
            }
            ledger.record(seq, outcome);
            drop(permit);
        });
    }
}

/// A consumer of every partition, from the offset after the last one its ledger recorded
/// (the beginning for a partition it has not read).
fn start_consumer(access: &Access, ledger: Arc<Mutex<ConsumerLedger>>) -> ConsumerRun {
    let reader = DetachedDrop::new(consumer(&access.bootstrap, &access.extra()));
    let starts: Vec<(i32, Offset)> = {
        let ledger = lock(&ledger);
        (0..PARTITIONS)
            .map(|p| (p, ledger.next_offset.get(&p).map_or(Offset::Beginning, |&n| Offset::Offset(n))))
            .collect()
    };
    assign(&reader, TOPIC, &starts);
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(consume(reader, Arc::clone(&ledger), Arc::clone(&stop)));
    ConsumerRun { ledger, stop, task }
}

/// Reads and records every message until stopped; errors are counted, not fatal (an
/// out-of-range position stalls the partition, which the catch-up wait then reports).
async fn consume(reader: DetachedDrop<StreamConsumer>, ledger: Arc<Mutex<ConsumerLedger>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match tokio::time::timeout(CONSUMER_POLL, reader.recv()).await {
            Err(_) => {}
            Ok(Err(error)) => lock(&ledger).errors.add(error.to_string()),
            Ok(Ok(message)) => {
                let read = Read {
                    placed: Placed { partition: message.partition(), offset: message.offset() },
                    value: Value::of(message.payload().unwrap_or_default()),
                };
                let mut ledger = lock(&ledger);
                ledger.next_offset.insert(read.placed.partition, read.placed.offset + 1);
                if ledger.reads.len() < READS_KEPT_MAX {
                    ledger.reads.push(read);
                } else {
                    ledger.reads_unchecked += 1;
                }
            }
        }
    }
}

// ----- reading the end state -----

/// Each partition's high watermark, through the proxies. A lookup that fails (a client
/// error, not a finding) is retried until [`PROGRESS_TIMEOUT`], as a Kafka client would.
async fn high_watermarks(seed: u64, access: &Access) -> BTreeMap<i32, i64> {
    let client = DetachedDrop::new(base_consumer_with(&access.bootstrap, &access.extra()));
    let what = format!("chaos[{seed:#x}] the high watermarks of {TOPIC}");
    eventually(PROGRESS_TIMEOUT, &what, || async {
        (0..PARTITIONS)
            .map(|p| {
                tokio::task::block_in_place(|| client.fetch_watermarks(TOPIC, p, WATERMARK_TIMEOUT))
                    .map(|(_, high)| (p, high))
                    .map_err(|e| format!("{TOPIC}-{p}: {e}"))
            })
            .collect()
    })
    .await
}

/// Reads every partition from the beginning up to its high watermark with a fresh consumer.
/// Client errors are kept for the report, not fatal: what was read is what the checks judge,
/// and a read that cannot finish fails at the deadline naming them.
async fn read_final_log(seed: u64, access: &Access, highs: &BTreeMap<i32, i64>) -> FinalLog {
    let reader = DetachedDrop::new(consumer(&access.bootstrap, &access.extra()));
    let starts: Vec<(i32, Offset)> = highs.keys().map(|&p| (p, Offset::Beginning)).collect();
    assign(&reader, TOPIC, &starts);
    let mut log: FinalLog = highs.keys().map(|&p| (p, Vec::new())).collect();
    let mut next: BTreeMap<i32, i64> = highs.keys().map(|&p| (p, 0)).collect();
    let deadline = tokio::time::Instant::now() + FINAL_READ_TIMEOUT;
    let mut errors = Errors::default();
    while next.iter().any(|(p, n)| n < &highs[p]) {
        let message = match tokio::time::timeout_at(deadline, reader.recv()).await {
            Err(_) => panic!(
                "chaos[{seed:#x}] read back only up to {next:?} of {highs:?} within {FINAL_READ_TIMEOUT:?}; \
                 client errors {:?}",
                errors.kinds
            ),
            Ok(Err(e)) => {
                errors.add(e.to_string());
                continue;
            }
            Ok(Ok(message)) => message,
        };
        let (partition, offset) = (message.partition(), message.offset());
        if offset < highs[&partition] {
            let value = Value::of(message.payload().unwrap_or_default());
            log.get_mut(&partition).expect("an assigned partition").push(Stored { offset, value });
            next.insert(partition, offset + 1);
        }
    }
    if errors.seen > 0 {
        eprintln!("chaos[{seed:#x}] the final read met {} client errors: {:?}", errors.seen, errors.kinds);
    }
    log
}

// ----- the scenario -----

/// A three-node cluster, a topic with three replicas and `min.insync.replicas=2`, idempotent
/// acks=all producers and consumers throughout, faults in a loop, then heal, settle, check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_replicated_topic_survives_kills_and_partitions_without_losing_acknowledged_writes() {
    run_scenario(
        "chaos_replicated_topic_survives_kills_and_partitions_without_losing_acknowledged_writes",
        CHAOS_SECS_DEFAULT,
        Security::Plaintext,
    )
    .await;
}

/// The same scenario with every connection secured: SASL_SSL with SCRAM-SHA-512 for clients
/// and follower fetches, mutual TLS in the quorum, the authorizer on; a shorter fault phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_replicated_topic_secured_with_sasl_ssl_and_mutual_tls_survives_kills_and_partitions() {
    run_scenario(
        "chaos_replicated_topic_secured_with_sasl_ssl_and_mutual_tls_survives_kills_and_partitions",
        SECURED_CHAOS_SECS_DEFAULT,
        Security::secured(),
    )
    .await;
}

/// The exactly-once scenario (`chaos/eos.rs`): a consume-transform-produce service with
/// librdkafka's transactions copies the input through the faults, the transaction
/// coordinator's node among the victims; the checker finds every input record below the
/// committed offsets copied exactly once, and no transaction left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_transactions_copy_every_record_exactly_once_through_kills_and_partitions() {
    eos::scenario(EOS_CHAOS_SECS_DEFAULT).await;
}

/// The scenario: start, run the workload through `default_secs` (or `RUNNEL_CHAOS_SECS`) of
/// faults, heal, settle, check; then that `security` was enforced.
async fn run_scenario(name: &str, default_secs: u64, security: Security) {
    let seed = u64_from_env(SEED_ENV).unwrap_or(SEED_DEFAULT);
    let phase = Duration::from_secs(u64_from_env(SECS_ENV).unwrap_or(default_secs));
    let faults = Fault::chosen();
    let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
    eprintln!(
        "chaos[{seed:#x}] {name}: seed {seed:#x}, fault phase {phase:?}, faults {names:?}, {} \
         (reproduce with {SEED_ENV}={seed:#x}; run longer with {SECS_ENV}=<seconds>; \
         choose faults with {FAULTS_ENV}=<names>)",
        security.describe()
    );
    let _failure_last = support::FailureLast::install();
    let mut chaos = Chaos::start(seed, faults, security).await;
    let access = chaos.access.clone();
    let mut workload = Workload::start(seed, &access);
    let committer = commits::Committer::start(&access);
    workload.wait_for_acks(1, "before the faults").await;
    chaos.say(&format!("workload running: acknowledged {:?}", workload.acked()));

    chaos.run_faults(phase).await;
    chaos.settle("the last heal").await;
    workload.wait_for_acks(STEADY_ACKS, "after the last heal").await;
    let sent = workload.stop_producing().await;
    chaos.settle("the producers stopped").await;
    let highs = high_watermarks(seed, &access).await;
    let reads = workload.stop_consuming_after_catch_up(&highs).await;
    chaos.say(&format!("writes stopped at high watermarks {highs:?}; reading back"));

    let commits = committer.stop().await;
    let committed = commits::committed_offsets(&access).await;
    chaos.say(&format!(
        "group {} ({} faults hit its coordinator): commits acknowledged up to {}, attempted up to {}, {} failed; \
         committed now {committed:?}",
        commits::GROUP,
        chaos.coordinator_faults,
        commits.acknowledged,
        commits.attempted,
        commits.failed
    ));

    let log = read_final_log(seed, &access, &highs).await;
    report(&chaos, &workload, &sent, &log, reads.len());
    assert!(commits.acknowledged > 0, "chaos[{seed:#x}] no offset commit was ever acknowledged");
    assert_no_violations(
        seed,
        "the group's committed offsets against its acknowledged commits",
        &check_commits(&committed, commits.acknowledged, commits.attempted),
    );
    assert_no_violations(seed, "the final log against the acknowledgements", &check_log(&log, &sent));
    assert_no_violations(seed, "the consumers' reads against the final log", &check_reads(&log, &reads));
    let replicated_bytes = chaos.assert_replicas_identical().await;
    let enforced = chaos.security.assert_enforced(seed, &chaos.proxies).await;
    chaos.say(&format!(
        "PASSED seed {seed:#x}: {replicated_bytes} bytes of {TOPIC} identical on every replica; {enforced}"
    ));
}

/// The summary, printed before the checks so that a failure shows it too.
fn report(chaos: &Chaos, workload: &Workload, sent: &[Vec<Outcome>], log: &FinalLog, reads: usize) {
    let all: Vec<Outcome> = sent.iter().flatten().copied().collect();
    let acked = all.iter().filter(|o| matches!(o, Outcome::Acked(_))).count();
    let unplaced = all.iter().filter(|o| matches!(o, Outcome::Acked(placed) if placed.offset < 0)).count();
    let unchecked: usize = workload.consumers.iter().map(|c| lock(&c.ledger).reads_unchecked).sum();
    let replaced: usize = workload.consumers.iter().map(|c| lock(&c.ledger).replacements).sum();
    chaos.say(&format!(
        "summary: seed {:#x}; {} faults {:?}; messages sent {}, acknowledged {acked} ({unplaced} without an offset), \
         failed {}; \
         messages checked {}; consumer reads checked {reads} ({unchecked} over the bound, unchecked); \
         consumers replaced {replaced}",
        chaos.seed,
        chaos.injected.values().sum::<usize>(),
        chaos.injected,
        all.len(),
        all.len() - acked,
        log.values().map(Vec::len).sum::<usize>(),
    ));
    let consumer_errors: Vec<_> = workload.consumers.iter().map(|c| lock(&c.ledger).errors.kinds.clone()).collect();
    chaos.say(&format!("producer errors {:?}; consumer errors {consumer_errors:?}", workload.producer_errors()));
    let events: Vec<_> = workload.producers.iter().map(|p| p.log.facility_counts()).collect();
    let bumps: Vec<_> = workload.producers.iter().map(|p| p.log.lines_containing("bumped epoch")).collect();
    chaos.say(&format!(
        "producers' idempotence log lines by librdkafka facility: {events:?}; producer epoch bumps {bumps:?}"
    ));
    for (id, proxies) in &chaos.proxies {
        chaos.say(&format!(
            "node {id} proxies: kafka {}; quorum {}",
            connections(&proxies.kafka_stats()),
            connections(&proxies.controller_stats())
        ));
    }
}

fn connections(stats: &ProxyStats) -> String {
    format!(
        "{} connections ({} while the node was down, {} cut, {} refused during a cut)",
        stats.connections_accepted, stats.target_connect_failures, stats.connections_cut, stats.connections_refused
    )
}
