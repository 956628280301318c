//! Broker settings, by Kafka's names. Sources in increasing precedence: defaults, the TOML
//! file (`--config`), then `--set key=value` and the dedicated flags. Every bound the broker
//! enforces is a named setting here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use runnel_storage::LogConfig;

use crate::groups::GroupConfig;
use crate::listeners::{parse_endpoints, parse_protocol_map, Endpoint, ListenerName, ListenerSettings, Listeners};

/// The `ssl.*` settings Runnel reads, by Kafka's names.
const SSL_SETTINGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.principal.mapping.rules",
    "ssl.endpoint.identification.algorithm",
];

/// The OAUTHBEARER validation settings Runnel reads (KIP-768's names).
const OAUTH_SETTINGS: &[&str] = &[
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.clock.skew.seconds",
];

/// Whether `key` is an `ssl.*` or `sasl.*` listener setting, plain or for one listener
/// (`listener.name.<name>.` prefixed; JAAS configurations also name their mechanism:
/// `listener.name.<name>.plain.sasl.jaas.config`).
fn is_security_setting(key: &str) -> bool {
    let plain = match key.strip_prefix("listener.name.") {
        Some(rest) => rest.split_once('.').map_or("", |(_, setting)| setting),
        None => key,
    };
    SSL_SETTINGS.contains(&plain)
        || matches!(plain, "sasl.enabled.mechanisms" | "sasl.mechanism.inter.broker.protocol")
        || OAUTH_SETTINGS.contains(&plain)
        || plain == "oauthbearer.sasl.server.callback.handler.class"
        || plain
            .strip_suffix(".sasl.jaas.config")
            .is_some_and(|mechanism| matches!(mechanism, "plain" | "scram-sha-256" | "scram-sha-512" | "oauthbearer"))
}

/// `PLAINTEXT://127.0.0.1:9092`, the listener of a node given none.
fn default_listener() -> Vec<Endpoint> {
    vec![Endpoint { name: ListenerName::new("PLAINTEXT"), host: "127.0.0.1".into(), port: 9092 }]
}

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown broker setting '{0}'")]
    Unknown(String),
    #[error("invalid value '{value}' for '{key}': {why}")]
    Invalid { key: String, value: String, why: String },
    #[error("config file: {0}")]
    File(String),
}

/// The class name of Kafka's KRaft authorizer, which turns ACLs on.
pub const AUTHORIZER_CLASS: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// The ZooKeeper-era authorizer's name, accepted as the same.
pub const LEGACY_AUTHORIZER_CLASS: &str = "kafka.security.authorizer.AclAuthorizer";

/// Typed broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub data_dir: PathBuf,
    /// `listeners`, `advertised.listeners`, `listener.security.protocol.map` and
    /// `inter.broker.listener.name` as given (see `listeners.rs`).
    pub listener_settings: ListenerSettings,
    /// The `ssl.*` settings, plain and per listener (`listener.name.<name>.ssl.*`), as
    /// given; read by `tls.rs` for each TLS listener.
    pub security: BTreeMap<String, String>,
    /// `connections.max.reauth.ms`: how long a SASL session lives before the client must
    /// re-authenticate on its connection (KIP-368); 0: for ever.
    pub connections_max_reauth_ms: i64,
    /// `connection.failed.authentication.delay.ms`: how long a failed authentication waits
    /// before its answer (and the connection's close).
    pub connection_failed_authentication_delay_ms: u64,
    /// Runnel's bound on failed SASL authentications per client address and minute;
    /// further attempts fail at once.
    pub sasl_failed_authentications_per_minute: u32,
    /// `sasl.server.max.receive.size`: the largest frame a client on a SASL listener may
    /// send before it has authenticated (Kafka's default, 512 KiB).
    pub sasl_server_max_receive_size: usize,
    /// `authorizer.class.name` names Kafka's authorizer: requests are checked against the
    /// ACLs. Without it every request is allowed, as in Kafka.
    pub authorizer_enabled: bool,
    /// `super.users` and `allow.everyone.if.no.acl.found`.
    pub authorizer_settings: runnel_metadata::acl::AuthorizerConfig,
    /// SCRAM users created at start when missing (`runnel server --add-scram`).
    pub bootstrap_users: Vec<crate::sasl::scram::BootstrapUser>,
    /// The listeners resolved from `listener_settings` by [`BrokerConfig::resolve_listeners`]
    /// (and given their bound ports by the server).
    pub listeners: Listeners,
    pub cluster_id: Option<String>,
    /// `process.roles`: broker, controller, or both (the default).
    pub roles: Roles,
    /// `controller.quorum.voters` (`--controller-quorum 1@host:port,...`): the controller
    /// voters. Empty: a single node keeping its metadata in a local log.
    pub controller_quorum: BTreeMap<u64, String>,
    /// `controller.quorum.bootstrap.servers` (`--controller-bootstrap host:port,...`): quorum
    /// addresses a node that is not an initial voter asks to join through, instead of the
    /// voters'. Needs `cluster.id` when given without `controller.quorum.voters`.
    pub controller_quorum_bootstrap: Vec<String>,
    /// `controller.listen`: where this node serves the quorum's transport.
    pub controller_listen: Option<String>,
    /// `controller.listener.names` (the first): the name whose security protocol
    /// (`listener.security.protocol.map`) and `listener.name.<name>.ssl.*` settings secure
    /// the quorum transport; `CONTROLLER` by default, PLAINTEXT when unmapped.
    pub controller_listener_name: ListenerName,
    /// `controller.advertise`: the quorum address other nodes are told (defaults to
    /// `controller.listen`), e.g. behind a proxy or NAT.
    pub controller_advertise: Option<String>,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms`: how often the active controller checks brokers.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.rack`: replicas of a partition are spread over racks.
    pub rack: Option<String>,
    pub num_partitions: i32,
    pub default_replication_factor: i32,
    pub auto_create_topics_enable: bool,
    pub message_max_bytes: usize,
    pub log_message_timestamp_type_log_append: bool,
    pub socket_request_max_bytes: usize,
    /// `queued.max.request.bytes`: request bytes read and not yet answered, over every
    /// connection. Kafka's default is unbounded; Runnel bounds it (at least one request of
    /// `socket.request.max.bytes`).
    pub queued_max_request_bytes: usize,
    pub max_connections: usize,
    /// `request.log.slow.ms` (Runnel's): a request that takes at least this long is logged
    /// with a request id, its API, client and time; 0 (the default) logs none.
    pub request_log_slow_ms: u64,
    pub request_timeout_ms: u64,
    pub connections_max_idle_ms: u64,
    pub fetch_max_wait_ms_max: u64,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_scheduler_interval_ms: u64,
    pub log_flush_before_ack: bool,
    /// Idempotent producers idle this long are forgotten (`producer.id.expiration.ms`).
    pub producer_id_expiration_ms: i64,
    /// Benchmark sink: answer every produce as successful and store nothing. Only for
    /// measuring what the client and the network cost without the broker's work.
    pub discard_produce: bool,
    pub checkpoint_interval_ms: u64,
    pub log: LogConfig,
    /// The consumer group state machine's settings (`group.*`, `offsets.retention.minutes`).
    pub groups: GroupConfig,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are removed.
    pub offsets_retention_check_interval_ms: u64,
    /// `offsets.topic.replication.factor`, capped at the live brokers when the topic is made.
    pub offsets_topic_replication_factor: i32,
    /// The transaction coordinator's settings (`transaction.*`, `transactional.id.*`).
    pub transactions: crate::transactions::config::TxnConfig,
    /// Replication (see docs/architecture.md, "Replication").
    pub replication: ReplicationConfig,
    /// `log.cleaner.*`: log compaction.
    pub cleaner: crate::log_cleaner::CleanerConfig,
    /// `runnel.outbound.bind.address`: the local address this node's connections to other
    /// nodes (replica fetches, the quorum) come from; `None` lets the kernel choose. For
    /// hosts with several interfaces, and for tests that cut one node off by its address.
    pub outbound_bind: Option<std::net::IpAddr>,
    /// `quota.window.num` and `quota.window.size.seconds`: client quota rates are measured
    /// over this many windows of this many seconds.
    pub quota_window_num: usize,
    /// Tiered storage (`tiered_config.rs`).
    pub tiered: crate::tiered_config::TieredConfig,
    /// `replica.selector.class`: which replica a consumer reads from (KIP-392).
    pub replica_selector: crate::replica_selector::ReplicaSelector,
    pub quota_window_size_seconds: u64,
    /// Broker-level defaults of topic settings that have no typed field here
    /// (`log.cleanup.policy`, `compression.type`, ...), by the topic setting's name.
    pub topic_defaults: BTreeMap<String, String>,
    /// Every setting given (file, command line, or applied at runtime over a copy), as
    /// given: what DescribeConfigs reports as STATIC_BROKER_CONFIG.
    pub given: BTreeMap<String, String>,
}

/// Kafka's replication settings.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader.
    pub fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`: per partition and fetch (at least one batch comes).
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per fetch.
    pub fetch_response_max_bytes: i32,
    /// `num.replica.fetchers`: fetcher connections per source broker.
    pub num_fetchers: usize,
    /// `replica.fetch.backoff.ms`: pause after a failed fetch.
    pub fetch_backoff_ms: u64,
    /// `min.insync.replicas` broker default.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable` broker default.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable` and `leader.imbalance.check.interval.seconds`.
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_max_bytes: 1024 * 1024,
            fetch_response_max_bytes: 10 * 1024 * 1024,
            num_fetchers: 1,
            fetch_backoff_ms: 1_000,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            data_dir: PathBuf::from("./data"),
            listener_settings: ListenerSettings::default(),
            security: BTreeMap::new(),
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            sasl_failed_authentications_per_minute: 60,
            bootstrap_users: Vec::new(),
            sasl_server_max_receive_size: 524_288,
            authorizer_enabled: false,
            authorizer_settings: Default::default(),
            listeners: ListenerSettings::default().resolve(&default_listener()).expect("the default listener resolves"),
            cluster_id: None,
            rack: None,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 1_000,
            roles: Roles { broker: true, controller: true },
            controller_quorum: BTreeMap::new(),
            controller_quorum_bootstrap: Vec::new(),
            controller_listen: None,
            controller_listener_name: ListenerName::new("CONTROLLER"),
            controller_advertise: None,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            message_max_bytes: 1024 * 1024 + 12,
            log_message_timestamp_type_log_append: false,
            socket_request_max_bytes: 100 * 1024 * 1024,
            queued_max_request_bytes: 512 * 1024 * 1024,
            max_connections: 10_000,
            request_log_slow_ms: 0,
            request_timeout_ms: 30_000,
            connections_max_idle_ms: 600_000,
            fetch_max_wait_ms_max: 30_000,
            log_retention_check_interval_ms: 300_000,
            log_flush_scheduler_interval_ms: 1_000,
            log_flush_before_ack: false,
            producer_id_expiration_ms: 86_400_000,
            discard_produce: false,
            checkpoint_interval_ms: 60_000,
            log: LogConfig::default(),
            groups: GroupConfig::default(),
            cleaner: crate::log_cleaner::CleanerConfig::default(),
            offsets_topic_num_partitions: 50,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            offsets_retention_check_interval_ms: 600_000,
            offsets_topic_replication_factor: 3,
            transactions: Default::default(),
            replication: ReplicationConfig::default(),
            outbound_bind: None,
            quota_window_num: 11,
            replica_selector: Default::default(),
            tiered: Default::default(),
            quota_window_size_seconds: 1,
            topic_defaults: BTreeMap::new(),
            given: BTreeMap::new(),
        }
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse::<T>().map_err(|e| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        why: e.to_string(),
    })
}

/// Parses "host:port" into its parts.
pub fn parse_host_port(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid { key: key.into(), value: value.into(), why: why.into() };
    let (host, port) = value.rsplit_once(':').ok_or_else(|| invalid("expected HOST:PORT"))?;
    let port = port.parse::<u16>().map_err(|_| invalid("bad port"))?;
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

impl BrokerConfig {
    /// Sets one setting by its Kafka name (or Runnel's own, for Runnel-only settings).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set_typed(key, value)?;
        self.given.insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn set_typed(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        if let Some(topic_name) = crate::dynamic_config::untyped_topic_default(key) {
            crate::topic_config::validate(topic_name, value).map_err(|e| ConfigError::Invalid {
                key: key.into(),
                value: value.into(),
                why: e.to_string(),
            })?;
            self.topic_defaults.insert(topic_name.to_string(), value.trim().to_string());
            return Ok(());
        }
        if crate::dynamic_config::DYNAMIC_NOT_ACTED_ON.contains(&key) {
            // Accepted and reported, not acted on: a non-negative number.
            return match value.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => Ok(()),
                _ => {
                    Err(ConfigError::Invalid { key: key.into(), value: value.into(), why: "not a number >= 0".into() })
                }
            };
        }
        match key {
            "node.id" => self.node_id = parse(key, value)?,
            "log.dirs" | "log.dir" | "data.dir" => self.data_dir = PathBuf::from(value),
            "listeners" | "listen" => {
                self.listener_settings.listeners = parse_endpoints(key, value)?;
                self.try_resolve_listeners();
            }
            "advertised.listeners" | "advertise" => {
                self.listener_settings.advertised = parse_endpoints(key, value)?;
                self.try_resolve_listeners();
            }
            "listener.security.protocol.map" => {
                self.listener_settings.protocol_map = parse_protocol_map(key, value)?;
                self.try_resolve_listeners();
            }
            "connections.max.reauth.ms" => self.connections_max_reauth_ms = parse(key, value)?,
            "connection.failed.authentication.delay.ms" => {
                self.connection_failed_authentication_delay_ms = parse(key, value)?
            }
            "sasl.server.max.receive.size" => self.sasl_server_max_receive_size = parse(key, value)?,
            "authorizer.class.name" => self.set_authorizer(key, value)?,
            "super.users" => {
                self.authorizer_settings.super_users = runnel_metadata::acl::AuthorizerConfig::parse_super_users(value)
            }
            "allow.everyone.if.no.acl.found" => self.authorizer_settings.allow_if_no_acl = parse(key, value)?,
            "sasl.failed.authentications.per.minute" => {
                self.sasl_failed_authentications_per_minute = parse(key, value)?
            }
            _ if is_security_setting(key) => {
                self.security.insert(key.to_string(), value.to_string());
            }
            "inter.broker.listener.name" => {
                self.listener_settings.inter_broker = Some(ListenerName::new(value));
                self.try_resolve_listeners();
            }
            "cluster.id" => self.cluster_id = Some(value.to_string()),
            "process.roles" | "roles" => self.roles = parse_roles(key, value)?,
            "controller.quorum.voters" | "controller.quorum" => self.controller_quorum = parse_voters(key, value)?,
            "controller.listen" => self.controller_listen = Some(value.to_string()),
            "controller.listener.names" => {
                let first = value.split(',').map(str::trim).find(|n| !n.is_empty());
                let first = first.ok_or_else(|| ConfigError::Invalid {
                    key: key.into(),
                    value: value.into(),
                    why: "no listener name".into(),
                })?;
                self.controller_listener_name = ListenerName::new(first)
            }
            "controller.quorum.bootstrap.servers" => {
                let servers: Vec<String> =
                    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
                for server in &servers {
                    parse_host_port(key, server)?;
                }
                self.controller_quorum_bootstrap = servers;
            }
            "controller.advertise" => {
                parse_host_port(key, value)?;
                self.controller_advertise = Some(value.to_string())
            }
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = parse(key, value)?,
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = parse(key, value)?,
            "broker.rack" => self.rack = Some(value.to_string()).filter(|r| !r.is_empty()),
            "num.partitions" => self.num_partitions = positive(key, value)?,
            "default.replication.factor" => self.default_replication_factor = positive(key, value)?,
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse(key, value)?,
            "message.max.bytes" => self.message_max_bytes = parse(key, value)?,
            "log.message.timestamp.type" => self.log_message_timestamp_type_log_append = timestamp_type(key, value)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = parse(key, value)?,
            "queued.max.request.bytes" => self.queued_max_request_bytes = parse(key, value)?,
            "max.connections" => self.max_connections = parse(key, value)?,
            "request.log.slow.ms" => self.request_log_slow_ms = parse(key, value)?,
            "request.timeout.ms" => self.request_timeout_ms = parse(key, value)?,
            "connections.max.idle.ms" => self.connections_max_idle_ms = parse(key, value)?,
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms = parse(key, value)?,
            "log.flush.scheduler.interval.ms" => self.log_flush_scheduler_interval_ms = parse(key, value)?,
            "log.flush.before.ack" => self.log_flush_before_ack = parse(key, value)?,
            "producer.id.expiration.ms" => self.producer_id_expiration_ms = parse(key, value)?,
            "runnel.bench.discard.produce" => self.discard_produce = parse(key, value)?,
            "log.flush.offset.checkpoint.interval.ms" => self.checkpoint_interval_ms = parse(key, value)?,
            "log.segment.bytes" => {
                self.log.segment_bytes = in_range(key, value, crate::topic_config::SEGMENT_BYTES_MIN, i32::MAX.into())?
            }
            "log.internal.segment.bytes" => {
                let min = crate::topic_config::INTERNAL_SEGMENT_BYTES_MIN;
                self.log.segment_bytes = in_range(key, value, min, i32::MAX.into())?
            }
            "log.roll.ms" => self.log.segment_ms = parse(key, value)?,
            "log.roll.hours" => self.log.segment_ms = parse::<i64>(key, value)? * 3_600_000,
            "log.roll.jitter.ms" => self.log.segment_jitter_ms = non_negative(key, value)?,
            "log.roll.jitter.hours" => self.log.segment_jitter_ms = non_negative(key, value)?.saturating_mul(3_600_000),
            "log.index.size.max.bytes" => self.log.segment_index_bytes = parse(key, value)?,
            "log.index.interval.bytes" => self.log.index_interval_bytes = parse(key, value)?,
            "log.retention.ms" => self.log.retention_ms = parse(key, value)?,
            "log.retention.minutes" => self.log.retention_ms = parse::<i64>(key, value)? * 60_000,
            "log.retention.hours" => self.log.retention_ms = parse::<i64>(key, value)? * 3_600_000,
            "log.retention.bytes" => self.log.retention_bytes = parse(key, value)?,
            "log.flush.interval.messages" => self.log.flush_messages = parse(key, value)?,
            "log.flush.interval.ms" => self.log.flush_ms = parse(key, value)?,
            _ => return self.set_group(key, value),
        }
        Ok(())
    }

    /// `authorizer.class.name`: Kafka's KRaft authorizer (or its ZooKeeper-era name, which
    /// configuration files carried over from older clusters still name) turns ACLs on; empty
    /// turns them off.
    fn set_authorizer(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.authorizer_enabled = match value.trim() {
            "" => false,
            AUTHORIZER_CLASS | LEGACY_AUTHORIZER_CLASS => true,
            other => {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    value: other.into(),
                    why: format!("Runnel's authorizer is {AUTHORIZER_CLASS}"),
                })
            }
        };
        Ok(())
    }

    /// The authorizer's settings when one is configured.
    pub fn authorizer(&self) -> Option<runnel_metadata::acl::AuthorizerConfig> {
        self.authorizer_enabled.then(|| self.authorizer_settings.clone())
    }

    /// The consumer group settings, by Kafka's names.
    fn set_group(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let groups = &mut self.groups;
        match key {
            "group.initial.rebalance.delay.ms" => groups.initial_rebalance_delay_ms = non_negative(key, value)?,
            "group.min.session.timeout.ms" => groups.min_session_timeout_ms = positive(key, value)?,
            "group.max.session.timeout.ms" => groups.max_session_timeout_ms = positive(key, value)?,
            "group.max.size" => groups.max_size = positive(key, value)? as usize,
            "offsets.retention.minutes" => groups.offsets_retention_ms = non_negative(key, value)? * 60_000,
            "offset.metadata.max.bytes" => groups.offset_metadata_max_bytes = parse(key, value)?,
            "runnel.outbound.bind.address" => self.outbound_bind = Some(parse(key, value)?),
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor = positive(key, value)?,
            "replica.lag.time.max.ms" => self.replication.lag_time_max_ms = positive(key, value)?.into(),
            "replica.fetch.wait.max.ms" => self.replication.fetch_wait_max_ms = parse(key, value)?,
            "replica.fetch.max.bytes" => self.replication.fetch_max_bytes = positive(key, value)?,
            "replica.fetch.response.max.bytes" => self.replication.fetch_response_max_bytes = positive(key, value)?,
            "num.replica.fetchers" => self.replication.num_fetchers = positive(key, value)? as usize,
            "replica.fetch.backoff.ms" => self.replication.fetch_backoff_ms = parse(key, value)?,
            "min.insync.replicas" => self.replication.min_insync_replicas = positive(key, value)?,
            "unclean.leader.election.enable" => self.replication.unclean_leader_election = parse(key, value)?,
            "auto.leader.rebalance.enable" => self.replication.auto_leader_rebalance = parse(key, value)?,
            "leader.imbalance.check.interval.seconds" => {
                self.replication.leader_imbalance_check_interval_ms = parse::<u64>(key, value)? * 1_000
            }
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions = positive(key, value)?,
            "offsets.topic.segment.bytes" => {
                let min = crate::topic_config::SEGMENT_BYTES_MIN;
                self.offsets_topic_segment_bytes = in_range(key, value, min, i32::MAX.into())?
            }
            "offsets.retention.check.interval.ms" => self.offsets_retention_check_interval_ms = parse(key, value)?,
            "replica.selector.class" => {
                self.replica_selector =
                    crate::replica_selector::ReplicaSelector::from_class(value).ok_or_else(|| ConfigError::Invalid {
                        key: key.into(),
                        value: value.into(),
                        why: "Runnel's selectors are LeaderSelector and RackAwareReplicaSelector".into(),
                    })?
            }
            "quota.window.num" => self.quota_window_num = positive(key, value)? as usize,
            "quota.window.size.seconds" => self.quota_window_size_seconds = positive(key, value)? as u64,
            // Dynamic settings Runnel accepts and reports but does not act on, and that no
            // typed field above holds (see dynamic_config).
            _ if crate::dynamic_config::DYNAMIC_NOT_ACTED_ON_TEXT.contains(&key) => {}
            _ => {
                return self
                    .tiered
                    .set(key, value)
                    .or_else(|| self.cleaner.set(key, value))
                    .or_else(|| self.transactions.set(key, value))
                    .unwrap_or_else(|| Err(ConfigError::Unknown(key.to_string())))
            }
        }
        Ok(())
    }

    /// Applies a TOML document: top-level `key = value` pairs with Kafka's dotted names
    /// quoted, or nested tables (`[log] retention.ms = 1`) which flatten to dotted keys.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::File(e.to_string()))?;
        let mut flat = BTreeMap::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        for (key, value) in flat {
            self.set(&key, &value)?;
        }
        Ok(())
    }

    /// Checks the settings together, as the parts that use them will: a node refuses to
    /// start with settings its logs could not open with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, why: String| Err(ConfigError::Invalid { key: key.into(), value, why });
        self.listener_settings.resolve(&default_listener())?;
        if let Err(e) = self.log.validate() {
            return invalid("log.*", format!("{:?}", self.log), e.to_string());
        }
        if self.message_max_bytes > i32::MAX as usize {
            return invalid("message.max.bytes", self.message_max_bytes.to_string(), "above i32::MAX".into());
        }
        if self.socket_request_max_bytes > i32::MAX as usize {
            return invalid(
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
                "above i32::MAX".into(),
            );
        }
        if self.queued_max_request_bytes < self.socket_request_max_bytes
            || self.queued_max_request_bytes > (u32::MAX as usize)
        {
            let why = "must be at least socket.request.max.bytes and at most 4 GiB".into();
            return invalid("queued.max.request.bytes", self.queued_max_request_bytes.to_string(), why);
        }
        if self.max_connections == 0 {
            return invalid("max.connections", "0".into(), "must be at least 1".into());
        }
        // The reader keeps the chunks a read needs and those fetched ahead in its cache.
        let chunks = (runnel_tiered::reader::PREFETCHES_MAX as u64 + 2) * self.tiered.chunk_bytes;
        if self.tiered.enabled && self.tiered.cache_bytes < chunks {
            let why = format!("must hold at least {chunks} bytes: ten chunks of remote.log.reader.chunk.bytes");
            return invalid("remote.log.reader.cache.bytes", self.tiered.cache_bytes.to_string(), why);
        }
        // The default local directory is each node's own: a new leader could not read what
        // the old one uploaded.
        if self.is_cluster() && self.tiered.enabled && !self.tiered.s3 && self.tiered.local_dir.is_none() {
            let why = "in a cluster, remote storage must be one every node reaches: set \
                       remote.log.storage.local.dir to a directory all nodes share, or use \
                       remote.log.storage.backend=s3"
                .into();
            return invalid("remote.log.storage.system.enable", "true".into(), why);
        }
        Ok(())
    }

    /// Whether this node is part of a Raft metadata quorum.
    pub fn is_cluster(&self) -> bool {
        !self.controller_quorum.is_empty() || !self.controller_quorum_bootstrap.is_empty()
    }

    /// The host and port clients are told to connect to on the first listener (the one
    /// `--listen` sets).
    pub fn advertised(&self) -> (String, u16) {
        self.listeners.all[0].advertised.clone()
    }

    /// Resolves the listener settings into [`BrokerConfig::listeners`]; the settings are
    /// checked together here, once all are known.
    pub fn resolve_listeners(&mut self) -> Result<(), ConfigError> {
        self.listeners = self.listener_settings.resolve(&default_listener())?;
        Ok(())
    }

    /// Keeps `listeners` current while settings arrive one by one; a combination that does
    /// not resolve yet (a name mapped by a later setting) is reported by
    /// [`BrokerConfig::resolve_listeners`] at start.
    fn try_resolve_listeners(&mut self) {
        if let Ok(listeners) = self.listener_settings.resolve(&default_listener()) {
            self.listeners = listeners;
        }
    }
}

/// A number within `[min, max]`, as Kafka's `ConfigDef.Range`.
fn in_range(key: &str, value: &str, min: i64, max: i64) -> Result<u64, ConfigError> {
    let n: i64 = parse(key, value)?;
    if n < min || n > max {
        let why = format!("must be within [{min}, {max}]");
        return Err(ConfigError::Invalid { key: key.into(), value: value.into(), why });
    }
    Ok(n as u64)
}

fn non_negative(key: &str, value: &str) -> Result<i64, ConfigError> {
    let n: i64 = parse(key, value)?;
    if n < 0 {
        return Err(ConfigError::Invalid { key: key.into(), value: value.into(), why: "must not be negative".into() });
    }
    Ok(n)
}

/// Which roles this node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

fn parse_roles(key: &str, value: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles { broker: false, controller: false };
    for role in value.split(',').map(str::trim) {
        match role {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    value: value.into(),
                    why: format!("unknown role '{other}'"),
                })
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err(ConfigError::Invalid { key: key.into(), value: value.into(), why: "no role given".into() });
    }
    Ok(roles)
}

/// Parses `1@host:port,2@host:port`.
fn parse_voters(key: &str, value: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid { key: key.into(), value: value.into(), why };
    let mut voters = BTreeMap::new();
    for voter in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, address) = voter.split_once('@').ok_or_else(|| invalid(format!("'{voter}' is not ID@HOST:PORT")))?;
        let id: u64 = id.parse().map_err(|_| invalid(format!("'{id}' is not a node id")))?;
        parse_host_port(key, address)?;
        if voters.insert(id, address.to_string()).is_some() {
            return Err(invalid(format!("node {id} is listed twice")));
        }
    }
    Ok(voters)
}

fn positive(key: &str, value: &str) -> Result<i32, ConfigError> {
    let n: i32 = parse(key, value)?;
    if n < 1 {
        return Err(ConfigError::Invalid { key: key.into(), value: value.into(), why: "must be at least 1".into() });
    }
    Ok(n)
}

/// `message.timestamp.type`: true for LogAppendTime.
pub fn timestamp_type(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "CreateTime" => Ok(false),
        "LogAppendTime" => Ok(true),
        _ => Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            why: "CreateTime or LogAppendTime".into(),
        }),
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&key, value, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_set_overrides() {
        let mut config = BrokerConfig::default();
        config
            .apply_toml("\"num.partitions\" = 3\n[log]\n\"retention.ms\" = 1000\nlisten = \"127.0.0.1:1\"\n")
            .unwrap_err();
        let mut config2 = BrokerConfig::default();
        config2.apply_toml("\"num.partitions\" = 3\n[log.retention]\nms = 1000\n").unwrap();
        assert_eq!(config2.num_partitions, 3);
        assert_eq!(config2.log.retention_ms, 1000);
        config2.set("num.partitions", "5").unwrap();
        assert_eq!(config2.num_partitions, 5);
        assert!(matches!(config.set("nope", "1"), Err(ConfigError::Unknown(_))));
        assert!(config.set("num.partitions", "0").is_err());
        assert!(config.set("log.segment.bytes", "20").is_err(), "Kafka 4.0's minimum is 1 MiB");
        assert!(config.set("log.internal.segment.bytes", "20").is_err(), "below one batch header");
        config.set("log.internal.segment.bytes", "16384").unwrap();
        assert_eq!(config.log.segment_bytes, 16384);
        config.set("log.index.size.max.bytes", "1").unwrap();
        assert!(config.validate().is_err(), "an index too small for one entry");
    }
}
