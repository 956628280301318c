//! The runtime shell: listeners, the accept loop with its connection bound, background
//! tasks (retention, flush policy, checkpoints, group timers, offsets expiry), and the
//! orderly shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::listeners::{ListenerName, SecurityProtocol};
use crate::sasl::SaslSettings;
use crate::session::Session;
use crate::tls::{TlsContext, TlsSettings};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::broker::{Broker, BrokerError};
use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::connection;
use crate::locks::run_guarded;

/// How long shutdown waits for connections to finish their in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often consumer group timers (sessions, join and sync deadlines) are checked: their
/// resolution. Kafka's own timer wheel ticks every millisecond; a few tens are plenty here.
const GROUP_TIMER_TICK: Duration = Duration::from_millis(25);

/// A running server's addresses, reported once it listens.
#[derive(Clone)]
pub struct Bound {
    /// The first listener's address (the one `--listen` sets).
    pub kafka: SocketAddr,
    /// Every listener: name, security protocol, bound address.
    pub listeners: Vec<(ListenerName, SecurityProtocol, SocketAddr)>,
    pub metrics: Option<SocketAddr>,
    /// This node's traffic counters now (for the console's charts).
    pub throughput: Arc<dyn Fn() -> crate::request_metrics::Throughput + Send + Sync>,
}

/// One bound listener, ready to accept.
struct Accepting {
    name: ListenerName,
    protocol: SecurityProtocol,
    socket: TcpListener,
    tls: Option<Arc<TlsContext>>,
    sasl: Option<Arc<SaslSettings>>,
}

/// How often TLS files are checked for changes.
const TLS_RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Binds every listener and loads its TLS material; any failure stops the start.
async fn bind_listeners(config: &mut BrokerConfig) -> Result<Vec<Accepting>, BrokerError> {
    config.resolve_listeners()?;
    let mut accepting = Vec::with_capacity(config.listeners.all.len());
    for listener in config.listeners.all.clone() {
        let sasl = if listener.protocol.uses_sasl() {
            Some(Arc::new(SaslSettings::from_settings(&listener.name, &config.security)?))
        } else {
            None
        };
        let tls = if listener.protocol.uses_tls() {
            let context = TlsContext::new(TlsSettings::from_settings(&listener.name, &config.security)?)?;
            Some(Arc::new(context.built_from(&config.security)))
        } else {
            None
        };
        let socket = TcpListener::bind(listener.bind).await?;
        let addr = socket.local_addr()?;
        config.listeners.bound(&listener.name, addr);
        if listener.protocol == SecurityProtocol::Plaintext && !addr.ip().is_loopback() && !config.authorizer_enabled {
            tracing::warn!(
                listener = %listener.name,
                %addr,
                "PLAINTEXT listener on a non-loopback address without an authorizer: anyone who can reach it can read, write and delete everything"
            );
        }
        accepting.push(Accepting { name: listener.name, protocol: listener.protocol, socket, tls, sasl });
    }
    Ok(accepting)
}

/// Runs a node until `shutdown` resolves, then drains and shuts down cleanly.
pub async fn run(
    mut config: BrokerConfig,
    metrics_listen: Option<SocketAddr>,
    shutdown: impl Future<Output = ()>,
    on_bound: impl FnOnce(Bound),
) -> Result<(), BrokerError> {
    let accepting = bind_listeners(&mut config).await?;
    let cluster = if config.is_cluster() {
        if config.cluster_id.is_none() {
            if config.controller_quorum.is_empty() {
                return Err(BrokerError::Config(
                    "controller.quorum.bootstrap.servers without controller.quorum.voters needs cluster.id".into(),
                ));
            }
            config.cluster_id = Some(crate::cluster::derived_cluster_id(&config));
        }
        Some(crate::cluster::start(&config).await?)
    } else {
        None
    };
    let broker = tokio::task::block_in_place(|| Broker::open(config, cluster))?;
    let metrics = match metrics_listen {
        Some(addr) => Some(crate::metrics::serve(broker.clone(), addr).await?),
        None => None,
    };
    let listeners: Vec<(ListenerName, SecurityProtocol, SocketAddr)> = accepting
        .iter()
        .map(|a| (a.name.clone(), a.protocol, broker.config.listeners.get(&a.name).expect("bound").bind))
        .collect();
    for (name, protocol, addr) in &listeners {
        tracing::info!(listener = %name, %protocol, %addr, "kafka listener ready");
    }
    let counted = broker.clone();
    let throughput = Arc::new(move || counted.request_metrics.throughput());
    on_bound(Bound { kafka: listeners[0].2, listeners, metrics, throughput });

    let (stop_tx, stop_rx) = watch::channel(false);
    let background = spawn_background(broker.clone(), stop_rx.clone());
    crate::transactions::markers::spawn_timers(&broker, stop_rx.clone());
    broker.cleaner.start(&broker);
    let follower = crate::cluster::follow_image(broker.clone(), stop_rx.clone());
    let member = crate::cluster::stay_member(broker.clone(), stop_rx.clone());
    let liveness = crate::liveness::spawn(broker.clone(), stop_rx.clone());
    broker.publisher.start(&broker, stop_rx.clone());
    let shrinker = Some(crate::isr::spawn_shrinker(broker.clone(), stop_rx.clone()));
    let rebalancer = crate::liveness::spawn_leader_rebalance(broker.clone(), stop_rx.clone());
    let uploader = crate::tiering::spawn(broker.clone(), stop_rx.clone());
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    // One permit per open connection; the bound is `max.connections` as it is now (a
    // dynamic setting), checked at each accept.
    let slots = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    let mut loops = tokio::task::JoinSet::new();
    let mut tls_contexts = Vec::new();
    for listener in accepting {
        tls_contexts.extend(listener.tls.clone());
        loops.spawn(accept_loop(broker.clone(), listener, slots.clone(), stop_rx.clone(), alive_tx.clone()));
    }
    drop(alive_tx);
    let reload =
        (!tls_contexts.is_empty()).then(|| tokio::spawn(reload_tls(broker.clone(), tls_contexts, stop_rx.clone())));
    tokio::select! {
        _ = loops.join_next() => {}
        _ = shutdown => tracing::info!("shutdown requested"),
    }
    loops.abort_all();
    let _ = stop_tx.send(true);
    // Background commits (ISR changes, elections) stop waiting for a quorum that may be
    // leaving with the other nodes; controlled shutdown below has its own bound.
    broker.metadata.begin_close();
    // Every connection holds a sender; recv returns None once all have finished.
    if tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv()).await.is_err() {
        tracing::warn!("connections still busy after the drain timeout; shutting down anyway");
    }
    let _ = background.await;
    for task in [follower, member, liveness, shrinker, rebalancer, reload, uploader].into_iter().flatten() {
        let _ = task.await;
    }
    crate::cluster::controlled_shutdown(&broker);
    tokio::task::block_in_place(|| broker.shutdown())?;
    if let Some(quorum) = broker.metadata.quorum() {
        let _ = quorum.raft().shutdown().await;
    }
    Ok(())
}

/// Every [`TLS_RELOAD_CHECK`], until `stop`: takes TLS settings changed at runtime (the
/// live settings' `ssl.*`), and re-reads TLS files that changed.
async fn reload_tls(broker: Arc<Broker>, contexts: Vec<Arc<TlsContext>>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(TLS_RELOAD_CHECK);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let contexts = contexts.clone();
        let security = broker.live_config().security.clone();
        let _ = tokio::task::spawn_blocking(move || {
            contexts.iter().for_each(|c| {
                if let Err(error) = c.follow(&security) {
                    tracing::warn!(%error, "TLS settings changed at runtime do not load; keeping the previous");
                }
                c.reload_if_changed();
            })
        })
        .await;
    }
}

/// Accepts connections on one listener; every listener shares the node's `max.connections`
/// (listeners accepting at the same moment may each take the last slot: the bound can be
/// passed by one connection per listener).
async fn accept_loop(
    broker: Arc<Broker>,
    listener: Accepting,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let (stream, peer) = match listener.socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let limit = broker.live_config().max_connections;
        let open = Semaphore::MAX_PERMITS - slots.available_permits();
        let permit = if open < limit { slots.clone().try_acquire_owned().ok() } else { None };
        let Some(permit) = permit else {
            broker.stats.connections_rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, limit, "max.connections reached; closing new connection");
            drop(stream);
            continue;
        };
        broker.stats.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let stop = stop.clone();
        let alive = alive.clone();
        let session = Session::new(peer, listener.name.clone(), listener.protocol, listener.sasl.clone());
        let tls = listener.tls.clone();
        let open = broker.request_metrics.connection_opened(listener.name.as_str());
        tokio::spawn(async move {
            connection::serve(broker, stream, session, tls, stop).await;
            drop(open);
            drop(permit);
            drop(alive);
        });
    }
}

fn spawn_background(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = &broker.config;
        let mut retention = tokio::time::interval(Duration::from_millis(config.log_retention_check_interval_ms.max(1)));
        let mut flush = tokio::time::interval(Duration::from_millis(config.log_flush_scheduler_interval_ms.max(1)));
        let mut checkpoint = tokio::time::interval(Duration::from_millis(config.checkpoint_interval_ms.max(1)));
        let mut group_timers = tokio::time::interval(GROUP_TIMER_TICK);
        group_timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut offsets_expiry =
            tokio::time::interval(Duration::from_millis(config.offsets_retention_check_interval_ms.max(1)));
        // Each job runs guarded: a panic in one round is logged and the job runs again at
        // its next tick, so one bad partition or group cannot stop retention, flushing,
        // checkpoints or group timers for everyone.
        let guarded = |job: &str, f: &mut dyn FnMut()| tokio::task::block_in_place(|| run_guarded(job, f));
        loop {
            tokio::select! {
                _ = group_timers.tick() => guarded("group timers", &mut || broker.groups.tick(broker.as_ref(), now_ms())),
                _ = offsets_expiry.tick() => {
                    guarded("offsets expiry", &mut || broker.groups.expire_offsets(broker.as_ref(), now_ms()))
                }
                _ = retention.tick() => guarded("retention", &mut || {
                    let image = broker.metadata.image();
                    let uploaded_through =
                        |partition: &crate::partition::Partition| crate::tiering::uploaded_through(&broker, &image, partition);
                    let expiration = broker.live_config().producer_id_expiration_ms;
                    let deleted = broker.replicas.apply_retention(now_ms(), expiration, &uploaded_through);
                    if deleted > 0 {
                        tracing::info!(segments = deleted, "retention deleted segments");
                    }
                }),
                _ = flush.tick() => {
                    // fsyncs run on a blocking thread, never on an async worker.
                    let broker = broker.clone();
                    let _ = tokio::task::spawn_blocking(move || run_guarded("flush", || {
                        broker.replicas.flush_rolled();
                        broker.replicas.maybe_flush(now_ms());
                    }))
                    .await;
                }
                _ = checkpoint.tick() => guarded("checkpoints", &mut || {
                    if let Err(e) = broker.replicas.write_checkpoints() {
                        tracing::warn!(error = %e, "writing checkpoints failed");
                    }
                }),
                _ = stop.changed() => return,
            }
        }
    })
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Convenience for callers that build a config and run with the process signals.
pub async fn run_until_signal(
    config: BrokerConfig,
    metrics_listen: Option<SocketAddr>,
    then: impl FnOnce(Bound),
) -> Result<(), BrokerError> {
    run(config, metrics_listen, termination_signal(), |bound| {
        // Every listener first: whoever waits for the listening line has seen them all.
        for (name, protocol, addr) in &bound.listeners {
            println!("runnel listener {name} {protocol} on {addr}");
        }
        println!("runnel listening on {}", bound.kafka);
        if let Some(metrics) = bound.metrics {
            println!("runnel metrics on http://{metrics}/metrics");
        }
        then(bound);
    })
    .await
}
