//! Broker settings changed at runtime (Kafka's dynamic broker configs): which settings may
//! change, how a topic setting maps to its broker-level synonyms, the effective settings
//! of a node, and where each value comes from.
//!
//! A value has one of Kafka's sources, in decreasing precedence: set on the topic
//! (DYNAMIC_TOPIC_CONFIG), on this broker at runtime (DYNAMIC_BROKER_CONFIG), on every
//! broker at runtime (DYNAMIC_DEFAULT_BROKER_CONFIG), in the node's configuration file or
//! command line (STATIC_BROKER_CONFIG), or Kafka's default (DEFAULT_CONFIG). Runtime values
//! live in the metadata log as `Config` records on `ConfigResource::Broker(id)` and
//! `ConfigResource::BrokerDefault`, so every node sees them and they survive restarts.
//!
//! Invariants: pure; only names in [`DYNAMIC`] are ever stored (anything else is refused
//! before a record is written); a stored set is applied to the static settings through
//! `BrokerConfig::set` and the result passes `BrokerConfig::validate`, so the effective
//! settings of a node are always ones it could have started with; passwords are never
//! returned as values.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;

/// Kafka's ConfigSource numbers.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
pub const SOURCE_STATIC: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// A topic setting and its broker-level synonyms, the first being the one a dynamic value
/// is stored under (Kafka's `ServerTopicConfigSynonyms`).
pub const TOPIC_SYNONYMS: &[(&str, &[&str])] = &[
    ("cleanup.policy", &["log.cleanup.policy"]),
    ("compression.type", &["compression.type"]),
    ("compression.gzip.level", &["compression.gzip.level"]),
    ("compression.lz4.level", &["compression.lz4.level"]),
    ("compression.zstd.level", &["compression.zstd.level"]),
    ("delete.retention.ms", &["log.cleaner.delete.retention.ms"]),
    ("file.delete.delay.ms", &["log.segment.delete.delay.ms"]),
    ("flush.messages", &["log.flush.interval.messages"]),
    ("flush.ms", &["log.flush.interval.ms"]),
    ("index.interval.bytes", &["log.index.interval.bytes"]),
    ("local.retention.bytes", &["log.local.retention.bytes"]),
    ("local.retention.ms", &["log.local.retention.ms"]),
    ("max.compaction.lag.ms", &["log.cleaner.max.compaction.lag.ms"]),
    ("max.message.bytes", &["message.max.bytes"]),
    ("message.timestamp.after.max.ms", &["log.message.timestamp.after.max.ms"]),
    ("message.timestamp.before.max.ms", &["log.message.timestamp.before.max.ms"]),
    ("message.timestamp.type", &["log.message.timestamp.type"]),
    ("min.cleanable.dirty.ratio", &["log.cleaner.min.cleanable.ratio"]),
    ("min.compaction.lag.ms", &["log.cleaner.min.compaction.lag.ms"]),
    ("min.insync.replicas", &["min.insync.replicas"]),
    ("preallocate", &["log.preallocate"]),
    ("retention.bytes", &["log.retention.bytes"]),
    ("retention.ms", &["log.retention.ms", "log.retention.minutes", "log.retention.hours"]),
    ("segment.bytes", &["log.segment.bytes"]),
    ("segment.index.bytes", &["log.index.size.max.bytes"]),
    ("segment.jitter.ms", &["log.roll.jitter.ms", "log.roll.jitter.hours"]),
    ("segment.ms", &["log.roll.ms", "log.roll.hours"]),
    ("unclean.leader.election.enable", &["unclean.leader.election.enable"]),
];

/// Broker-level topic defaults that `BrokerConfig` keeps only as text (no typed field):
/// the broker name and the topic setting it defaults.
pub fn untyped_topic_default(broker_name: &str) -> Option<&'static str> {
    const UNTYPED: &[&str] = &[
        "log.cleanup.policy",
        "compression.type",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
        "log.segment.delete.delay.ms",
        "log.local.retention.bytes",
        "log.local.retention.ms",
        "log.message.timestamp.after.max.ms",
        "log.message.timestamp.before.max.ms",
        "log.preallocate",
    ];
    if !UNTYPED.contains(&broker_name) {
        return None;
    }
    TOPIC_SYNONYMS.iter().find(|(_, brokers)| brokers[0] == broker_name).map(|(topic, _)| *topic)
}

/// Dynamic settings Runnel acts on besides the topic defaults: the cleaner's
/// (`log.cleaner.*`, resized and re-rated live), the connection bound (checked at each
/// accept) and producer expiry.
const DYNAMIC_ACTED_ON: &[&str] = &[
    "log.cleaner.threads",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.backoff.ms",
    "max.connections",
    "producer.id.expiration.ms",
];

/// Settings Kafka lets change at runtime that Runnel accepts, validates as numbers, stores
/// and reports, but does not act on yet (Runnel's threads are not pools of these sizes;
/// replication throttles and per-IP connection limits do not exist yet).
pub const DYNAMIC_NOT_ACTED_ON: &[&str] = &[
    "background.threads",
    "follower.replication.throttled.rate",
    "leader.replication.throttled.rate",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "max.connection.creation.rate",
    "max.connections.per.ip",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// Settings Kafka lets change at runtime whose values are text, which Runnel accepts,
/// stores and reports, but does not act on yet: listeners are bound at start (a node
/// serves the listeners it started with), PLAIN users and SASL mechanisms are read at start
/// (SCRAM users change at runtime through their own API), and the rest has no counterpart.
pub const DYNAMIC_NOT_ACTED_ON_TEXT: &[&str] = &[
    "advertised.listeners",
    "listener.security.protocol.map",
    "listeners",
    "max.connections.per.ip.overrides",
    "metric.reporters",
    "num.replica.alter.log.dirs.threads",
    "num.replica.fetchers",
    "sasl.enabled.mechanisms",
    "transaction.partition.verification.enable",
];

/// The part of a setting after `listener.name.<name>.`, or the whole name.
fn unprefixed(name: &str) -> &str {
    match name.strip_prefix("listener.name.") {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, setting)| setting),
        None => name,
    }
}

/// A listener's TLS setting (plain or `listener.name.<name>.`-prefixed): acted on at
/// runtime, the listener's material reloaded (`TlsContext::follow`).
pub fn is_tls_setting(name: &str) -> bool {
    const TLS: &[&str] = &[
        "ssl.keystore.location",
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        "ssl.keystore.type",
        "ssl.truststore.location",
        "ssl.truststore.certificates",
        "ssl.truststore.type",
        "ssl.client.auth",
        "ssl.principal.mapping.rules",
        "ssl.enabled.protocols",
        "ssl.endpoint.identification.algorithm",
    ];
    TLS.contains(&unprefixed(name))
}

/// A listener's SASL setting (`listener.name.<name>.sasl.enabled.mechanisms`,
/// `listener.name.<name>.<mechanism>.sasl.jaas.config`): accepted, not acted on yet.
fn is_sasl_listener_setting(name: &str) -> bool {
    name.starts_with("listener.name.") && {
        let rest = unprefixed(name);
        rest == "sasl.enabled.mechanisms" || rest.ends_with(".sasl.jaas.config")
    }
}

/// Whether broker setting `name` may be changed at runtime.
pub fn is_dynamic(name: &str) -> bool {
    TOPIC_SYNONYMS.iter().any(|(_, brokers)| brokers[0] == name)
        || DYNAMIC_ACTED_ON.contains(&name)
        || is_tls_setting(name)
        || is_not_acted_on(name)
}

/// Whether a dynamic broker setting is accepted and reported but not acted on yet.
pub fn is_not_acted_on(name: &str) -> bool {
    DYNAMIC_NOT_ACTED_ON.contains(&name) || DYNAMIC_NOT_ACTED_ON_TEXT.contains(&name) || is_sasl_listener_setting(name)
}

/// Every dynamic name, for DescribeConfigs.
pub fn dynamic_names() -> impl Iterator<Item = &'static str> {
    TOPIC_SYNONYMS
        .iter()
        .map(|(_, brokers)| brokers[0])
        .chain(DYNAMIC_ACTED_ON.iter().copied())
        .chain(DYNAMIC_NOT_ACTED_ON.iter().copied())
        .chain(DYNAMIC_NOT_ACTED_ON_TEXT.iter().copied())
}

/// Kafka's (or, where Runnel's differs, Runnel's) default of dynamic broker setting `name`,
/// as DescribeConfigs shows it with source DEFAULT_CONFIG.
pub fn default_value(name: &str) -> Option<String> {
    if let Some((topic, _)) = TOPIC_SYNONYMS.iter().find(|(_, brokers)| brokers[0] == name) {
        return crate::topic_config::effective_value(&BrokerConfig::default(), None, topic).map(|(v, _)| v);
    }
    let cleaner = crate::log_cleaner::CleanerConfig::default();
    let long_max = i64::MAX.to_string();
    let int_max = i32::MAX.to_string();
    Some(match name {
        "log.cleaner.threads" => cleaner.threads.to_string(),
        "log.cleaner.io.max.bytes.per.second" => f64::MAX.to_string(),
        "log.cleaner.dedupe.buffer.size" => cleaner.dedupe_buffer_size.to_string(),
        "log.cleaner.backoff.ms" => cleaner.backoff_ms.to_string(),
        "producer.id.expiration.ms" => BrokerConfig::default().producer_id_expiration_ms.to_string(),
        "background.threads" => "10".into(),
        "follower.replication.throttled.rate" | "leader.replication.throttled.rate" => long_max,
        "replica.alter.log.dirs.io.max.bytes.per.second" => long_max,
        "log.cleaner.io.buffer.load.factor" => "0.9".into(),
        "log.cleaner.io.buffer.size" => "524288".into(),
        "max.connection.creation.rate" | "max.connections.per.ip" => int_max,
        "max.connections" => BrokerConfig::default().max_connections.to_string(),
        "num.io.threads" => "8".into(),
        "num.network.threads" => "3".into(),
        "num.recovery.threads.per.data.dir" => "2".into(),
        _ => return None,
    })
}

/// Whether a setting's value must never be shown (Kafka's PASSWORD type).
pub fn is_sensitive(name: &str) -> bool {
    name.contains("password")
        || name.contains("secret")
        || name.ends_with("sasl.jaas.config")
        || name.ends_with("ssl.keystore.key")
}

/// Why a dynamic change is refused (INVALID_REQUEST, as Kafka answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamicConfigError {
    #[error("'{0}' cannot be changed at runtime: set it in the node's configuration and restart")]
    NotDynamic(String),
    #[error("{0}")]
    Invalid(String),
}

/// The settings a node runs with: `base` (its static settings) with the cluster-wide
/// dynamic values and then its own applied over it. A stored value that no longer applies
/// (written by a newer version) is skipped and named in the second result.
pub fn effective(
    base: &BrokerConfig,
    default: Option<&BTreeMap<String, String>>,
    node: Option<&BTreeMap<String, String>>,
) -> (BrokerConfig, Vec<String>) {
    let mut config = base.clone();
    let mut skipped = Vec::new();
    for (name, value) in default.into_iter().chain(node).flatten() {
        let mut next = config.clone();
        match next.set(name, value).and_then(|()| next.validate()) {
            Ok(()) => config = next,
            Err(e) => skipped.push(format!("{name}={value}: {e}")),
        }
    }
    (config, skipped)
}

/// Checks a new set of dynamic values for one resource: every name dynamic, and the
/// settings they make, over `base` and the other level's values, valid as a whole.
pub fn check(
    base: &BrokerConfig,
    default: Option<&BTreeMap<String, String>>,
    node: Option<&BTreeMap<String, String>>,
) -> Result<(), DynamicConfigError> {
    let mut config = base.clone();
    for (name, value) in default.into_iter().chain(node).flatten() {
        if !is_dynamic(name) {
            return Err(DynamicConfigError::NotDynamic(name.clone()));
        }
        config.set(name, value).map_err(|e| DynamicConfigError::Invalid(e.to_string()))?;
    }
    config.validate().map_err(|e| DynamicConfigError::Invalid(e.to_string()))
}

/// Where a broker setting's value comes from, most precedent first, with its value:
/// (source, name, value). Empty when none of the levels set it and it has no default.
pub fn broker_sources(
    name: &str,
    node: Option<&BTreeMap<String, String>>,
    default: Option<&BTreeMap<String, String>>,
    static_given: &BTreeMap<String, String>,
    default_value: Option<String>,
) -> Vec<(i8, String, String)> {
    let mut sources = Vec::new();
    if let Some(value) = node.and_then(|n| n.get(name)) {
        sources.push((SOURCE_DYNAMIC_BROKER, name.to_string(), value.clone()));
    }
    if let Some(value) = default.and_then(|d| d.get(name)) {
        sources.push((SOURCE_DYNAMIC_DEFAULT, name.to_string(), value.clone()));
    }
    if let Some(value) = static_given.get(name) {
        sources.push((SOURCE_STATIC, name.to_string(), value.clone()));
    }
    if let Some(value) = default_value {
        sources.push((SOURCE_DEFAULT, name.to_string(), value));
    }
    sources
}

/// The synonyms of topic setting `name` beyond the topic itself, most precedent first:
/// every broker-level synonym at every level that sets it, then the default.
pub fn topic_synonym_sources(
    name: &str,
    node: Option<&BTreeMap<String, String>>,
    default: Option<&BTreeMap<String, String>>,
    static_given: &BTreeMap<String, String>,
    default_value: Option<String>,
) -> Vec<(i8, String, String)> {
    let brokers = TOPIC_SYNONYMS.iter().find(|(topic, _)| *topic == name).map_or(&[][..], |(_, b)| *b);
    let mut sources = Vec::new();
    for level in [SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT, SOURCE_STATIC] {
        for broker_name in brokers {
            let map = match level {
                SOURCE_DYNAMIC_BROKER => node,
                SOURCE_DYNAMIC_DEFAULT => default,
                _ => Some(static_given),
            };
            if let Some(value) = map.and_then(|m| m.get(*broker_name)) {
                sources.push((level, broker_name.to_string(), value.clone()));
            }
        }
    }
    if let (Some(value), Some(first)) = (default_value, brokers.first()) {
        sources.push((SOURCE_DEFAULT, first.to_string(), value));
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_node_value_beats_the_cluster_default_which_beats_the_static_setting() {
        let mut base = BrokerConfig::default();
        base.set("log.retention.ms", "1000").unwrap();
        let default = map(&[("log.retention.ms", "2000"), ("message.max.bytes", "5000")]);
        let node = map(&[("log.retention.ms", "3000")]);
        let (config, skipped) = effective(&base, Some(&default), Some(&node));
        assert!(skipped.is_empty());
        assert_eq!((config.log.retention_ms, config.message_max_bytes), (3000, 5000));
        let (config, _) = effective(&base, Some(&default), None);
        assert_eq!(config.log.retention_ms, 2000);
        let (config, _) = effective(&base, None, None);
        assert_eq!(config.log.retention_ms, 1000);
        // A stored value that does not apply is skipped, the rest applies.
        let bad = map(&[("log.segment.bytes", "20"), ("log.retention.bytes", "77")]);
        let (config, skipped) = effective(&base, Some(&bad), None);
        assert_eq!((config.log.retention_bytes, skipped.len()), (77, 1));
        assert_eq!(config.log.segment_bytes, base.log.segment_bytes);
    }

    #[test]
    fn only_dynamic_names_with_valid_values_are_accepted() {
        let base = BrokerConfig::default();
        assert!(check(&base, Some(&map(&[("log.cleanup.policy", "compact")])), None).is_ok());
        assert!(check(&base, None, Some(&map(&[("num.io.threads", "16")]))).is_ok());
        assert_eq!(
            check(&base, None, Some(&map(&[("node.id", "9")]))),
            Err(DynamicConfigError::NotDynamic("node.id".into()))
        );
        assert!(matches!(
            check(&base, None, Some(&map(&[("log.segment.bytes", "20")]))),
            Err(DynamicConfigError::Invalid(_))
        ));
        assert!(check(&base, None, Some(&map(&[("log.cleanup.policy", "sideways")]))).is_err());
        assert!(check(&base, None, Some(&map(&[("leader.replication.throttled.rate", "-5")]))).is_err());
        for name in dynamic_names() {
            assert!(is_dynamic(name));
        }
        assert!(is_dynamic("listener.name.ssl.ssl.keystore.location") && is_tls_setting("ssl.truststore.location"));
        assert!(!is_not_acted_on("listener.name.ssl.ssl.keystore.location"), "TLS material follows at runtime");
        assert!(is_not_acted_on("listener.name.sasl_ssl.plain.sasl.jaas.config"));
        assert!(is_not_acted_on("listeners") && is_dynamic("metric.reporters"));
        assert!(!is_dynamic("listener.name.ssl.node.id"));
        assert!(check(&base, None, Some(&map(&[("listeners", "not a listener")]))).is_err());
        assert!(is_sensitive("listener.name.sasl_ssl.plain.sasl.jaas.config"));
        assert!(is_sensitive("ssl.key.password"));
        assert!(!is_sensitive("log.retention.ms"));
    }

    #[test]
    fn sources_list_every_level_in_precedence_order() {
        let node = map(&[("log.retention.ms", "3")]);
        let default = map(&[("log.retention.ms", "2")]);
        let given = map(&[("log.retention.hours", "1")]);
        let sources =
            topic_synonym_sources("retention.ms", Some(&node), Some(&default), &given, Some("604800000".into()));
        let levels: Vec<(i8, &str)> = sources.iter().map(|(s, n, _)| (*s, n.as_str())).collect();
        assert_eq!(
            levels,
            vec![
                (SOURCE_DYNAMIC_BROKER, "log.retention.ms"),
                (SOURCE_DYNAMIC_DEFAULT, "log.retention.ms"),
                (SOURCE_STATIC, "log.retention.hours"),
                (SOURCE_DEFAULT, "log.retention.ms"),
            ]
        );
        let sources = broker_sources("message.max.bytes", None, None, &given, Some("1048588".into()));
        assert_eq!(sources, vec![(SOURCE_DEFAULT, "message.max.bytes".to_string(), "1048588".to_string())]);
        assert_eq!(untyped_topic_default("log.cleanup.policy"), Some("cleanup.policy"));
        assert_eq!(untyped_topic_default("log.retention.ms"), None);
    }
}
