//! The node's shared state and its life cycle: start-up (meta.properties, metadata replay,
//! log recovery), background tasks, and the clean shutdown that lets the next start skip
//! recovery.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use runnel_metadata::{MetadataError, MetadataRecord};
use runnel_storage::StorageError;

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::groups::coordinator::OffsetsTopicSettings;
use crate::groups::loader::GroupLoadError;
use crate::groups::GroupCoordinator;
use crate::metadata_store::{LocalMetadataLog, MetadataStore};
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;

pub const CLEAN_SHUTDOWN_MARKER: &str = ".runnel_clean_shutdown";
pub const META_PROPERTIES: &str = "meta.properties";

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    #[error("{0}")]
    Config(String),
    #[error("configuration: {0}")]
    Settings(#[from] crate::config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("consumer groups: {0}")]
    Groups(#[from] GroupLoadError),
}

/// Counters exposed on the metrics endpoint.
#[derive(Default)]
pub struct Stats {
    pub sendfile_bytes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub requests: AtomicU64,
    pub bad_frames: AtomicU64,
    pub produce_bytes: AtomicU64,
    /// ISR changes this node committed as a leader.
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// Record bytes appended as a follower.
    pub replicated_bytes: AtomicU64,
    /// Follower truncations before fetching from a new leader that removed records.
    pub truncations: AtomicU64,
    /// Tiered storage's uploader (`tiering.rs`): segments and bytes copied, abandoned
    /// copies removed, and rounds that failed.
    pub remote_copied_segments: AtomicU64,
    pub remote_copied_bytes: AtomicU64,
    pub remote_abandoned_removed: AtomicU64,
    /// Remote segments deleted by total retention.
    pub remote_expired_segments: AtomicU64,
    pub remote_copy_failures: AtomicU64,
}

pub struct Broker {
    /// The settings this node started with (file and command line).
    pub config: BrokerConfig,
    /// The settings it runs with now: `config` with the dynamic broker settings of the
    /// metadata image over it (`dynamic_config.rs`), replaced by the publisher chain when
    /// they change. Read it through [`Broker::live_config`].
    live: std::sync::RwLock<Arc<BrokerConfig>>,
    /// This process's registration: new on every start (Kafka's incarnation id).
    pub incarnation_id: uuid::Uuid,
    pub cluster_id: String,
    pub metadata: MetadataStore,
    pub replicas: ReplicaManager,
    /// Consumer groups, rebuilt from `__consumer_offsets` at start-up.
    pub groups: GroupCoordinator,
    /// Transactions, rebuilt from `__transaction_state` (`transactions/`).
    pub transactions: crate::transactions::TransactionCoordinator,
    /// Producer ids for InitProducerId, in blocks from the metadata log.
    pub producer_ids: ProducerIdManager,
    /// Followers' fetchers, copying from partition leaders (cluster mode).
    pub fetchers: crate::replica_fetcher::ReplicaFetchers,
    pub stats: Stats,
    /// The one chain that carries new metadata images to the replica manager.
    pub publisher: crate::publisher::Publisher,
    /// `queued.max.request.bytes` as permits: a connection takes a frame's size before
    /// reading its body and gives it back once the request is answered.
    pub request_budget: Arc<tokio::sync::Semaphore>,
    /// How this node connects to other brokers (`inter_broker.rs`).
    pub inter_broker_security: runnel_client::security::ClientSecurity,
    /// Kept connections to other brokers for the coordinators' requests.
    pub broker_connections: crate::inter_broker::BrokerConnections,
    /// Failed SASL authentications per client address (`sasl.failed.authentications.per.minute`).
    pub auth_failures: crate::sasl::FailureLimiter,
    /// The ACLs and `super.users` every request is checked against (`authorizer.rs`).
    pub authorizer: crate::authorizer::Authorizer,
    /// Log compaction's threads and checkpoint (`log_cleaner`).
    pub cleaner: Arc<crate::log_cleaner::LogCleaner>,
    /// Client quotas and the clients' rates (`quotas/`).
    pub quotas: Arc<crate::quotas::QuotaManager>,
    /// Tiered storage's store and reader, when `remote.log.storage.system.enable`.
    pub remote: Option<Arc<runnel_tiered::RemoteReader>>,
    /// Per-API request latencies and per-topic traffic (`request_metrics.rs`).
    pub request_metrics: crate::request_metrics::RequestMetrics,
}

impl Broker {
    /// Opens the data directory and brings every log to a consistent state.
    /// `cluster`: the metadata store on the Raft quorum in cluster mode (started by the
    /// caller, which is async); `None` keeps metadata in the node's local log.
    pub fn open(config: BrokerConfig, cluster: Option<MetadataStore>) -> Result<Arc<Broker>, BrokerError> {
        config.validate().map_err(|e| BrokerError::Config(e.to_string()))?;
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)?;
        let cluster_id = load_or_create_meta(&data_dir, &config)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        if clean {
            // From here until the next clean shutdown, a crash means recovery.
            std::fs::remove_file(&marker)?;
            sync_dir(&data_dir)?;
        }
        tracing::info!(clean_shutdown = clean, dir = %data_dir.display(), "opening data directory");
        let now = now_ms();
        let metadata = match cluster {
            Some(store) => store,
            None => MetadataStore::load(Box::new(LocalMetadataLog::open(&data_dir, clean, now)?))?,
        };
        let incarnation_id = uuid::Uuid::new_v4();
        if config.roles.broker {
            register_self(&metadata, &config, incarnation_id)?;
        }
        add_bootstrap_users(&metadata, &config.bootstrap_users)?;
        let replicas = ReplicaManager::new(&data_dir, config.node_id);
        let publisher = crate::publisher::Publisher::default();
        let image = metadata.image();
        let live = live_settings(&config, &image);
        replicas.open_all(&image, &live, clean, now);
        let authorizer = crate::authorizer::Authorizer::new(config.authorizer());
        authorizer.publish(&image.acls);
        let quotas =
            Arc::new(crate::quotas::QuotaManager::new(config.quota_window_num, config.quota_window_size_seconds));
        quotas.publish(&image.quotas);
        publisher.published_at_start(image);
        let groups = group_coordinator(&config);
        groups.load(&|index| replicas.partition(crate::groups::OFFSETS_TOPIC, index), &metadata.image(), now)?;
        let transactions = crate::transactions::TransactionCoordinator::new(config.transactions.clone());
        let state_topic = crate::transactions::TRANSACTION_STATE_TOPIC;
        transactions.load(&|index| replicas.partition(state_topic, index), &metadata.image())?;
        let producer_ids = ProducerIdManager::new(config.node_id);
        let request_budget = Arc::new(tokio::sync::Semaphore::new(config.queued_max_request_bytes));
        let config_failures_per_minute = config.sasl_failed_authentications_per_minute;
        let config_cleaner = live.cleaner.clone();
        let inter_broker_security = if config.is_cluster() {
            crate::inter_broker::client_security(&config)?
        } else {
            runnel_client::security::ClientSecurity::plaintext()
        };
        let remote = if config.tiered.enabled {
            let settings = config.tiered.backend(&config.data_dir)?;
            let store = runnel_tiered::RemoteStore::open(&settings)
                .map_err(|e| BrokerError::Config(format!("remote storage: {e}")))?;
            let backend = match &settings {
                runnel_tiered::BackendSettings::S3(s3) => format!("s3 bucket {} at {:?}", s3.bucket, s3.endpoint),
                runnel_tiered::BackendSettings::Local { dir } => format!("local directory {}", dir.display()),
                runnel_tiered::BackendSettings::Memory => "memory".to_string(),
            };
            tracing::info!(%backend, "tiered storage enabled");
            Some(Arc::new(runnel_tiered::RemoteReader::new(
                store,
                config.tiered.chunk_bytes,
                config.tiered.cache_bytes,
            )))
        } else {
            None
        };
        Ok(Arc::new(Broker {
            remote,
            request_metrics: Default::default(),
            config,
            live: std::sync::RwLock::new(Arc::new(live)),
            incarnation_id,
            cluster_id,
            metadata,
            replicas,
            groups,
            transactions,
            producer_ids,
            fetchers: Default::default(),
            stats: Stats::default(),
            publisher,
            request_budget,
            auth_failures: crate::sasl::FailureLimiter::new(config_failures_per_minute),
            inter_broker_security,
            broker_connections: Default::default(),
            authorizer,
            cleaner: Arc::new(crate::log_cleaner::LogCleaner::new(&config_cleaner, &data_dir)),
            quotas,
        }))
    }

    /// The settings this node runs with now (static settings with the dynamic ones over
    /// them).
    pub fn live_config(&self) -> Arc<BrokerConfig> {
        self.live.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Replaces the live settings (the publisher chain, when the image's dynamic broker
    /// settings changed).
    pub(crate) fn set_live_config(&self, config: BrokerConfig) {
        *self.live.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
    }

    /// Hands a newer metadata image to the publisher chain (see `publisher.rs`); an image
    /// no newer than the last published changes nothing. Blocking.
    pub fn publish(
        &self,
        image: &Arc<runnel_metadata::MetadataImage>,
    ) -> Result<Option<crate::publisher::MetadataDelta>, StorageError> {
        self.publisher.publish(self, image)
    }

    /// The active controller: the Raft leader in a cluster, this node when alone; -1 when
    /// no leader is known.
    pub fn controller_id(&self) -> i32 {
        match self.metadata.quorum() {
            Some(quorum) => quorum.current_leader().map_or(-1, |(id, _)| id as i32),
            None => self.config.node_id,
        }
    }

    /// Flushes and closes every log, writes checkpoints, and leaves the clean-shutdown
    /// marker. Call after the listeners have drained.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        self.cleaner.shutdown();
        self.replicas.close_all()?;
        let marker = self.config.data_dir.join(CLEAN_SHUTDOWN_MARKER);
        std::fs::write(&marker, b"")?;
        std::fs::File::open(&marker)?.sync_all()?;
        sync_dir(&self.config.data_dir)?;
        tracing::info!("clean shutdown complete");
        Ok(())
    }
}

/// The settings a node runs with under `image`: `config` with the cluster-wide and then
/// the node's own dynamic settings over it. A stored value that does not apply is logged
/// and skipped.
pub(crate) fn live_settings(config: &BrokerConfig, image: &runnel_metadata::MetadataImage) -> BrokerConfig {
    let (live, skipped) = crate::dynamic_config::effective(
        config,
        image.broker_configs(None),
        image.broker_configs(Some(config.node_id)),
    );
    for setting in skipped {
        tracing::warn!(%setting, "a dynamic broker setting does not apply; it is skipped");
    }
    live
}

fn group_coordinator(config: &BrokerConfig) -> GroupCoordinator {
    let topic = OffsetsTopicSettings {
        partitions: config.offsets_topic_num_partitions,
        segment_bytes: config.offsets_topic_segment_bytes,
    };
    // Each connection parks at most one request, so this bound is never the binding one
    // unless connections leak parked requests.
    GroupCoordinator::new(config.groups.clone(), topic, config.max_connections)
}

/// Records this incarnation of the node (and its advertised address) in the metadata log,
/// on every start, as Kafka's brokers register with a new incarnation id.
///
/// Registering even when the image already lists the node unfenced matters: that image
/// may lag the quorum, and the previous incarnation's controlled shutdown (a fence marked
/// `shutting_down`, which liveness keeps in place while the node answers) may still be in
/// the leader's log, uncommitted. This registration is proposed after the restart, so it
/// follows that fence in the log (or the fence is discarded) and lifts it. The quorum has
/// a leader by now: cluster start-up waits for one.
fn register_self(
    metadata: &MetadataStore,
    config: &BrokerConfig,
    incarnation_id: uuid::Uuid,
) -> Result<(), BrokerError> {
    let (host, port) = config.advertised();
    let port = i32::from(port);
    let rack = config.rack.clone();
    let endpoints: Vec<runnel_metadata::BrokerEndpoint> = config
        .listeners
        .all
        .iter()
        .map(|l| runnel_metadata::BrokerEndpoint {
            listener: l.name.to_string(),
            host: l.advertised.0.clone(),
            port: i32::from(l.advertised.1),
            security_protocol: l.protocol.to_string(),
        })
        .collect();
    metadata
        .commit(|image| {
            let record = MetadataRecord::RegisterBroker {
                node_id: config.node_id,
                host: host.clone(),
                port,
                rack: rack.clone(),
                incarnation_id,
                endpoints: endpoints.clone(),
            };
            // Registering unfences: partitions that went offline with this broker come back.
            let registered = image.apply(std::slice::from_ref(&record));
            let mut records = vec![record];
            records
                .extend(runnel_metadata::election::reconcile(&registered, config.replication.unclean_leader_election));
            Ok::<_, ()>(records)
        })?
        .expect("registration never fails to decide");
    Ok(())
}

/// Creates each `--add-scram` user that has no credential for its mechanism yet; a user
/// whose password was changed since is left alone.
fn add_bootstrap_users(
    metadata: &MetadataStore,
    users: &[crate::sasl::scram::BootstrapUser],
) -> Result<(), BrokerError> {
    use crate::sasl::scram::{credential, random_bytes, salted_password};
    for user in users {
        let committed = metadata.commit(|image| {
            if image.scram.get(&user.name).is_some_and(|m| m.contains_key(&user.mechanism)) {
                return Ok::<_, std::convert::Infallible>(Vec::new());
            }
            let salt = random_bytes(32);
            let salted = salted_password(user.mechanism, &user.password, &salt, user.iterations);
            let credential = credential(user.mechanism, &salt, &salted, user.iterations);
            tracing::info!(user = user.name, mechanism = user.mechanism.name(), "adding the SCRAM user given at start");
            Ok(vec![MetadataRecord::UserScramCredential {
                name: user.name.clone(),
                mechanism: user.mechanism,
                credential,
            }])
        })?;
        let Ok(_) = committed;
    }
    Ok(())
}

/// `meta.properties` holds the node id and the cluster id, made once and checked on start.
fn load_or_create_meta(data_dir: &Path, config: &BrokerConfig) -> Result<String, BrokerError> {
    let path = data_dir.join(META_PROPERTIES);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let get =
            |key: &str| text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')).map(str::trim));
        let node_id = get("node.id").and_then(|v| v.parse::<i32>().ok());
        if node_id != Some(config.node_id) {
            return Err(BrokerError::Config(format!(
                "{} belongs to node {:?}, but this node is {}",
                path.display(),
                node_id,
                config.node_id
            )));
        }
        let cluster_id =
            get("cluster.id").ok_or_else(|| BrokerError::Config(format!("{} has no cluster.id", path.display())))?;
        if let Some(expected) = &config.cluster_id {
            if expected != cluster_id {
                return Err(BrokerError::Config(format!("cluster id {cluster_id} on disk, {expected} configured")));
            }
        }
        return Ok(cluster_id.to_string());
    }
    let cluster_id = config.cluster_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let text = format!("version=1\nnode.id={}\ncluster.id={}\n", config.node_id, cluster_id);
    runnel_storage::write_atomically(&path, text.as_bytes())?;
    Ok(cluster_id)
}

use runnel_storage::sync_dir;
