//! Topic-level settings by Kafka's names: which exist, how each is validated, its default
//! (from the broker's `log.*` settings), and the [`TopicSettings`] a partition runs with.

use std::collections::BTreeMap;

use runnel_protocol::batch::Compression;

use runnel_storage::LogConfig;

use crate::config::BrokerConfig;

/// Every topic config of Kafka 4.x (and `internal.segment.bytes`, Kafka's own test-only
/// one). CreateTopics, the AlterConfigs APIs and DescribeConfigs use this list.
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "internal.segment.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Topic configs Runnel accepts, validates and stores, but does not act on yet: they are
/// reported so (DescribeConfigs' documentation, `runnel config describe`), never silently
/// ignored.
pub const NOT_ACTED_ON: &[&str] = &[
    "compression.lz4.level",
    "file.delete.delay.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
];

/// What DescribeConfigs says of a setting in [`NOT_ACTED_ON`].
pub const NOT_ACTED_ON_DOC: &str = "Accepted, validated and stored; Runnel does not act on it yet.";

/// What one partition runs with: broker defaults overlaid with the topic's own configs.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub log: LogConfig,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// acks=all needs at least this many in-sync replicas.
    pub min_insync_replicas: usize,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub compacted: bool,
    /// `cleanup.policy` includes `delete`: DeleteRecords and retention apply.
    pub deletes: bool,
    /// `compression.type` naming a codec (`uncompressed` is none): batches in another
    /// codec are recompressed to it, at its level (`compression.<codec>.level`). `None`
    /// for `producer`: batches are stored as they came.
    pub compression: Option<(Compression, Option<i32>)>,
    /// How the cleaner treats the topic when it is compacted.
    pub cleaning: TopicCleaning,
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` (KIP-937): how
    /// far a CreateTime timestamp may lie behind or ahead of the broker's clock.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `remote.storage.enable`: closed segments are copied to remote storage (when the
    /// node has `remote.log.storage.system.enable`).
    pub remote_storage: bool,
}

impl TopicSettings {
    /// Whether a batch's CreateTime timestamps, from `first` to `max`, lie within the
    /// topic's bounds around `now_ms` (-1: no timestamp, accepted as in Kafka).
    pub fn timestamps_allowed(&self, first: i64, max: i64, now_ms: i64) -> bool {
        if self.log_append_time {
            return true;
        }
        let earliest = now_ms.saturating_sub(self.timestamp_before_max_ms);
        let latest = now_ms.saturating_add(self.timestamp_after_max_ms);
        [first, max].iter().all(|t| *t == -1 || (earliest..=latest).contains(t))
    }
}

/// A compacted topic's cleaner settings (`min.cleanable.dirty.ratio`,
/// `min.compaction.lag.ms`, `max.compaction.lag.ms`, `delete.retention.ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicCleaning {
    pub min_cleanable_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
}

/// The codec and level a topic's `compression.type` asks for (see
/// [`TopicSettings::compression`]).
fn compression(codec: &str, level: impl Fn(&str) -> Option<i64>) -> Option<(Compression, Option<i32>)> {
    let level = |name: &str| level(name).and_then(|l| i32::try_from(l).ok());
    match codec.trim() {
        "uncompressed" => Some((Compression::None, None)),
        // -1: the codec's default.
        "gzip" => Some((Compression::Gzip, level("compression.gzip.level").filter(|l| *l > 0))),
        "snappy" => Some((Compression::Snappy, None)),
        "lz4" => Some((Compression::Lz4, level("compression.lz4.level"))),
        "zstd" => Some((Compression::Zstd, level("compression.zstd.level"))),
        _ => None,
    }
}

/// The effective value of `name` for a topic, as DescribeConfigs reports it, and whether it
/// was set on the topic (true) or is the broker default (false).
pub fn effective_value(
    broker: &BrokerConfig,
    overrides: Option<&BTreeMap<String, String>>,
    name: &str,
) -> Option<(String, bool)> {
    if let Some(value) = overrides.and_then(|o| o.get(name)) {
        return Some((value.clone(), true));
    }
    if let Some(value) = broker.topic_defaults.get(name) {
        return Some((value.clone(), false));
    }
    let log = &broker.log;
    let value = match name {
        "cleanup.policy" => "delete".to_string(),
        "compression.type" => "producer".to_string(),
        "compression.gzip.level" => "-1".to_string(),
        "compression.lz4.level" => "9".to_string(),
        "compression.zstd.level" => "3".to_string(),
        "delete.retention.ms" => broker.cleaner.delete_retention_ms.to_string(),
        "max.compaction.lag.ms" => broker.cleaner.max_compaction_lag_ms.to_string(),
        "min.cleanable.dirty.ratio" => broker.cleaner.min_cleanable_ratio.to_string(),
        "min.compaction.lag.ms" => broker.cleaner.min_compaction_lag_ms.to_string(),
        "file.delete.delay.ms" => "60000".to_string(),
        "follower.replication.throttled.replicas" | "leader.replication.throttled.replicas" => String::new(),
        "local.retention.bytes" | "local.retention.ms" => "-2".to_string(),
        "message.timestamp.after.max.ms" => "3600000".to_string(),
        "message.timestamp.before.max.ms" => i64::MAX.to_string(),
        "preallocate" | "remote.log.copy.disable" | "remote.log.delete.on.disable" | "remote.storage.enable" => {
            "false".to_string()
        }
        "segment.jitter.ms" => log.segment_jitter_ms.to_string(),
        "flush.messages" => clamp_i64(log.flush_messages).to_string(),
        "flush.ms" => log.flush_ms.to_string(),
        "index.interval.bytes" => log.index_interval_bytes.to_string(),
        "internal.segment.bytes" => return None,
        "max.message.bytes" => broker.message_max_bytes.to_string(),
        "message.timestamp.type" => {
            if broker.log_message_timestamp_type_log_append { "LogAppendTime" } else { "CreateTime" }.to_string()
        }
        "min.insync.replicas" => broker.replication.min_insync_replicas.to_string(),
        "unclean.leader.election.enable" => broker.replication.unclean_leader_election.to_string(),
        "retention.bytes" => log.retention_bytes.to_string(),
        "retention.ms" => log.retention_ms.to_string(),
        "segment.bytes" => log.segment_bytes.to_string(),
        "segment.index.bytes" => log.segment_index_bytes.to_string(),
        "segment.ms" => log.segment_ms.to_string(),
        _ => return None,
    };
    Some((value, false))
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The smallest `segment.bytes` (Kafka 4.0's minimum). Tests that need tiny segments set
/// `internal.segment.bytes` on the topic (as Kafka's own tests do) or
/// `log.internal.segment.bytes` on the broker.
pub const SEGMENT_BYTES_MIN: i64 = 1024 * 1024;
/// The smallest segment the storage can hold: one batch header.
pub const INTERNAL_SEGMENT_BYTES_MIN: i64 = runnel_protocol::batch::HEADER_BYTES as i64;
/// The smallest index file that lets a segment hold data (two time index entries).
pub const SEGMENT_INDEX_BYTES_MIN: i64 = 24;
const INT_MAX: i64 = i32::MAX as i64;

/// The range a numeric topic config takes: Kafka's, narrowed where the storage needs it
/// (sizes held in 32-bit file positions, an index that holds at least one entry).
fn numeric_range(name: &str) -> Option<(i64, i64)> {
    Some(match name {
        "retention.ms" | "retention.bytes" => (-1, i64::MAX),
        "segment.bytes" => (SEGMENT_BYTES_MIN, INT_MAX),
        "internal.segment.bytes" => (INTERNAL_SEGMENT_BYTES_MIN, INT_MAX),
        "segment.index.bytes" => (SEGMENT_INDEX_BYTES_MIN, INT_MAX),
        "segment.ms" | "flush.messages" => (1, i64::MAX),
        "flush.ms" => (0, i64::MAX),
        "min.insync.replicas" => (1, INT_MAX),
        "index.interval.bytes" | "max.message.bytes" => (0, INT_MAX),
        // KIP-390's ranges; -1 is gzip's default (6).
        "compression.gzip.level" => (-1, 9),
        "compression.lz4.level" => (1, 17),
        "compression.zstd.level" => (-131_072, 22),
        "delete.retention.ms" | "min.compaction.lag.ms" => (0, i64::MAX),
        "max.compaction.lag.ms" => (1, i64::MAX),
        "file.delete.delay.ms"
        | "message.timestamp.after.max.ms"
        | "message.timestamp.before.max.ms"
        | "segment.jitter.ms" => (0, i64::MAX),
        "local.retention.bytes" | "local.retention.ms" => (-2, i64::MAX),
        _ => return None,
    })
}

/// Why a topic config is refused; its text goes back to the client with INVALID_CONFIG.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicConfigError {
    #[error("unknown topic config '{0}'")]
    Unknown(String),
    #[error("{name}: '{value}' is not a number")]
    NotANumber { name: String, value: String },
    #[error("{name}: {value} is outside [{min}, {max}]")]
    OutOfRange { name: String, value: i64, min: i64, max: i64 },
    #[error("{name}: '{value}' is not one of {allowed}")]
    NotAllowed { name: String, value: String, allowed: &'static str },
    #[error("the topic's log could not run with these settings: {0}")]
    Log(String),
    #[error("{0} is not a list: APPEND and SUBTRACT apply only to list settings")]
    NotAList(String),
    /// Settings that are each valid but not together (Kafka's `LogConfig` checks).
    #[error("{0}")]
    Conflict(String),
}

/// Checks one topic config. Every value that passes is one the storage and broker accept,
/// so a committed topic always opens.
pub fn validate(name: &str, value: &str) -> Result<(), TopicConfigError> {
    if let Some((min, max)) = numeric_range(name) {
        let not_a_number = || TopicConfigError::NotANumber { name: name.to_string(), value: value.to_string() };
        let n: i64 = value.trim().parse().map_err(|_| not_a_number())?;
        if n < min || n > max {
            return Err(TopicConfigError::OutOfRange { name: name.to_string(), value: n, min, max });
        }
        return Ok(());
    }
    let one_of = |allowed: &'static [&str], shown: &'static str| {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(TopicConfigError::NotAllowed { name: name.to_string(), value: value.to_string(), allowed: shown })
        }
    };
    match name {
        "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(()),
            _ => Err(TopicConfigError::NotAllowed {
                name: name.to_string(),
                value: value.to_string(),
                allowed: "a number in [0, 1]",
            }),
        },
        "cleanup.policy" => {
            one_of(&["delete", "compact", "compact,delete", "delete,compact"], "delete, compact, compact,delete")
        }
        "compression.type" => one_of(
            &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
            "producer, uncompressed, gzip, snappy, lz4, zstd",
        ),
        "message.timestamp.type" => one_of(&["CreateTime", "LogAppendTime"], "CreateTime, LogAppendTime"),
        "unclean.leader.election.enable"
        | "preallocate"
        | "remote.storage.enable"
        | "remote.log.copy.disable"
        | "remote.log.delete.on.disable" => one_of(&["true", "false"], "true, false"),
        "follower.replication.throttled.replicas" | "leader.replication.throttled.replicas" => {
            if throttled_replicas(value) {
                Ok(())
            } else {
                Err(TopicConfigError::NotAllowed {
                    name: name.to_string(),
                    value: value.to_string(),
                    allowed: "empty, * or PARTITION:BROKER,...",
                })
            }
        }
        _ => Err(TopicConfigError::Unknown(name.to_string())),
    }
}

/// Kafka's throttled-replicas list: empty, `*`, or `partition:broker` pairs.
fn throttled_replicas(value: &str) -> bool {
    let value = value.trim();
    value.is_empty()
        || value == "*"
        || value.split(',').all(|pair| {
            pair.trim()
                .split_once(':')
                .is_some_and(|(p, b)| p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok())
        })
}

/// Checks a topic's configs together: each one, then the log they make as the storage
/// would check it (with the broker's defaults for the rest).
pub fn validate_all(broker: &BrokerConfig, configs: &BTreeMap<String, String>) -> Result<(), TopicConfigError> {
    for (key, value) in configs {
        validate(key, value)?;
    }
    let settings = settings(broker, Some(configs));
    settings.log.validate().map_err(|e| TopicConfigError::Log(e.to_string()))?;
    tiered_conflicts(broker, &settings).map_err(|why| TopicConfigError::Conflict(why.to_string()))
}

/// Kafka's checks of tiered storage settings against each other (`LogConfig`).
fn tiered_conflicts(broker: &BrokerConfig, settings: &TopicSettings) -> Result<(), &'static str> {
    if !settings.remote_storage {
        return Ok(());
    }
    if !broker.tiered.enabled {
        return Err("Tiered Storage functionality is disabled in the broker (remote.log.storage.system.enable)");
    }
    if settings.compacted {
        return Err("Remote log storage is not supported for compacted topics");
    }
    let log = &settings.log;
    let (local_ms, local_bytes) = log.local_retention();
    if log.retention_ms >= 0 && (local_ms == -1 || local_ms > log.retention_ms) {
        return Err("local.retention.ms must not be larger than retention.ms");
    }
    if log.retention_bytes >= 0 && (local_bytes == -1 || local_bytes > log.retention_bytes) {
        return Err("local.retention.bytes must not be larger than retention.bytes");
    }
    Ok(())
}

/// Effective settings for a topic.
pub fn settings(broker: &BrokerConfig, overrides: Option<&BTreeMap<String, String>>) -> TopicSettings {
    let get = |name: &str| effective_value(broker, overrides, name).map(|(v, _)| v).unwrap_or_default();
    let num = |name: &str, default: i64| get(name).trim().parse::<i64>().unwrap_or(default);
    let defaults = &broker.log;
    let log = LogConfig {
        segment_bytes: overrides
            .and_then(|o| o.get("internal.segment.bytes"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(num("segment.bytes", defaults.segment_bytes as i64) as u64),
        segment_ms: num("segment.ms", defaults.segment_ms),
        segment_jitter_ms: num("segment.jitter.ms", defaults.segment_jitter_ms),
        segment_index_bytes: num("segment.index.bytes", defaults.segment_index_bytes as i64) as u64,
        index_interval_bytes: num("index.interval.bytes", defaults.index_interval_bytes as i64) as u32,
        retention_ms: num("retention.ms", defaults.retention_ms),
        retention_bytes: num("retention.bytes", defaults.retention_bytes),
        local_retention_ms: num("local.retention.ms", -2),
        local_retention_bytes: num("local.retention.bytes", -2),
        tiered: get("remote.storage.enable").trim() == "true",
        flush_messages: num("flush.messages", clamp_i64(defaults.flush_messages)) as u64,
        flush_ms: num("flush.ms", defaults.flush_ms),
    };
    // Retention by time and size deletes segments; a compact-only topic keeps everything
    // (compaction itself is what bounds it, as in Kafka).
    let policy = get("cleanup.policy");
    let deletes = policy.split(',').any(|p| p.trim() == "delete");
    let compacted = policy.split(',').any(|p| p.trim() == "compact");
    let log = if deletes { log } else { LogConfig { retention_ms: -1, retention_bytes: -1, ..log } };
    TopicSettings {
        log,
        max_message_bytes: num("max.message.bytes", broker.message_max_bytes as i64) as usize,
        log_append_time: get("message.timestamp.type") == "LogAppendTime",
        min_insync_replicas: num("min.insync.replicas", 1).max(1) as usize,
        compacted,
        deletes,
        compression: compression(&get("compression.type"), |name| get(name).trim().parse().ok()),
        cleaning: TopicCleaning {
            min_cleanable_ratio: get("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(broker.cleaner.min_cleanable_ratio),
            min_compaction_lag_ms: num("min.compaction.lag.ms", broker.cleaner.min_compaction_lag_ms),
            max_compaction_lag_ms: num("max.compaction.lag.ms", broker.cleaner.max_compaction_lag_ms),
            delete_retention_ms: num("delete.retention.ms", broker.cleaner.delete_retention_ms),
        },
        timestamp_before_max_ms: num("message.timestamp.before.max.ms", i64::MAX),
        timestamp_after_max_ms: num("message.timestamp.after.max.ms", 3_600_000),
        remote_storage: get("remote.storage.enable").trim() == "true",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_defaults_come_from_the_broker() {
        let broker = BrokerConfig::default();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "5000".to_string());
        overrides.insert("message.timestamp.type".to_string(), "LogAppendTime".to_string());
        let settings = settings(&broker, Some(&overrides));
        assert_eq!(settings.log.retention_ms, 5000);
        assert!(settings.log_append_time);
        assert_eq!(settings.log.segment_bytes, broker.log.segment_bytes);
        assert_eq!(effective_value(&broker, Some(&overrides), "retention.ms"), Some(("5000".into(), true)));
        assert!(validate("segment.bytes", "x").is_err());
        assert!(validate("nope", "1").is_err());
        assert!(validate("cleanup.policy", "compact").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "0.01").is_ok());
        assert!(validate("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
        assert!(validate("leader.replication.throttled.replicas", "0-1").is_err());
        assert!(validate("local.retention.ms", "-3").is_err());
        assert!(validate("preallocate", "maybe").is_err());
        for name in TOPIC_CONFIG_NAMES {
            let default = effective_value(&broker, None, name).map(|(v, _)| v);
            if let Some(default) = default {
                assert!(validate(name, &default).is_ok(), "{name}'s default {default} must validate");
            }
        }
        for (name, bad) in [
            ("segment.bytes", "20"),
            ("segment.bytes", "2147483648"),
            ("segment.index.bytes", "8"),
            ("max.message.bytes", "-1"),
            ("retention.ms", "-2"),
            ("min.insync.replicas", "0"),
            ("segment.ms", "0"),
            ("flush.messages", "99999999999999999999"),
            ("min.cleanable.dirty.ratio", "1.01"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("max.compaction.lag.ms", "0"),
            ("delete.retention.ms", "-1"),
        ] {
            assert!(validate(name, bad).is_err(), "{name}={bad} must be refused");
        }
        assert!(validate("segment.bytes", "1048576").is_ok());
        assert!(validate("internal.segment.bytes", "20").is_err());
        let mut tiny = BTreeMap::new();
        tiny.insert("internal.segment.bytes".to_string(), "100".to_string());
        assert_eq!(super::settings(&broker, Some(&tiny)).log.segment_bytes, 100);
        assert!(validate_all(&broker, &tiny).is_ok());
        let mut compact = BTreeMap::new();
        compact.insert("cleanup.policy".to_string(), "compact".to_string());
        compact.insert("retention.ms".to_string(), "1000".to_string());
        assert_eq!(
            super::settings(&broker, Some(&compact)).log.retention_ms,
            -1,
            "compact-only topics are not deleted by age"
        );
        compact.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        assert_eq!(super::settings(&broker, Some(&compact)).log.retention_ms, 1000);
    }

    #[test]
    fn create_time_timestamps_are_bounded_around_the_clock() {
        let broker = BrokerConfig::default();
        let defaults = settings(&broker, None);
        let now = 1_000_000_000_000;
        assert!(defaults.timestamps_allowed(0, now, now), "no lower bound by default");
        assert!(defaults.timestamps_allowed(now, now + 3_600_000, now));
        assert!(!defaults.timestamps_allowed(now, now + 3_600_001, now), "an hour ahead at most by default");
        assert!(defaults.timestamps_allowed(-1, -1, now), "no timestamp");
        let mut bounded = BTreeMap::new();
        bounded.insert("message.timestamp.before.max.ms".to_string(), "1000".to_string());
        let strict = settings(&broker, Some(&bounded));
        assert!(!strict.timestamps_allowed(now - 1_001, now, now));
        bounded.insert("message.timestamp.type".to_string(), "LogAppendTime".to_string());
        assert!(settings(&broker, Some(&bounded)).timestamps_allowed(0, 0, now), "the broker stamps its own");
    }
}
