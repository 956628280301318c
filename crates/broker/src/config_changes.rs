//! Changing a topic's settings at runtime (IncrementalAlterConfigs and AlterConfigs), as a
//! pure decision over the metadata image: the new set of overrides, checked whole as a
//! topic creation would check it, and the `Config` records that take the image there.
//! The records go through the metadata log, so every node applies the change (the publisher
//! chain hands each hosted partition its new settings) and it survives restarts.
//!
//! Invariants: a change is all or nothing per resource (one bad entry refuses the
//! resource's whole change, as Kafka does); only list settings take APPEND and SUBTRACT;
//! the records only name keys whose value changes.

use std::collections::BTreeMap;

use runnel_metadata::{ConfigResource, MetadataRecord};

use crate::config::BrokerConfig;
use crate::topic_config::{self, TopicConfigError};

/// One IncrementalAlterConfigs operation, as Kafka numbers them (SET 0, DELETE 1,
/// APPEND 2, SUBTRACT 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

impl ConfigOp {
    /// The operation `code` with `value`; `None` for an unknown code or a missing value.
    pub fn from_code(code: i8, value: Option<&str>) -> Option<ConfigOp> {
        match (code, value) {
            (0, Some(v)) => Some(ConfigOp::Set(v.to_string())),
            (1, _) => Some(ConfigOp::Delete),
            (2, Some(v)) => Some(ConfigOp::Append(v.to_string())),
            (3, Some(v)) => Some(ConfigOp::Subtract(v.to_string())),
            _ => None,
        }
    }
}

/// Topic settings whose value is a comma-separated list (APPEND and SUBTRACT apply).
const LIST_SETTINGS: &[&str] =
    &["cleanup.policy", "leader.replication.throttled.replicas", "follower.replication.throttled.replicas"];

fn list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The overrides after `ops`, checked: each setting must exist and take its value, and the
/// whole set must make a log the storage accepts. `current` holds the topic's overrides;
/// `effective` gives a setting's value where the topic has none (for APPEND/SUBTRACT).
pub fn apply_ops(
    broker: &BrokerConfig,
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
) -> Result<BTreeMap<String, String>, TopicConfigError> {
    let mut next = current.clone();
    for (name, op) in ops {
        let is_list = LIST_SETTINGS.contains(&name.as_str());
        let existing = || {
            next.get(name)
                .cloned()
                .or_else(|| topic_config::effective_value(broker, None, name).map(|(v, _)| v))
                .unwrap_or_default()
        };
        match op {
            ConfigOp::Set(value) => {
                next.insert(name.clone(), value.clone());
            }
            ConfigOp::Delete => {
                next.remove(name);
            }
            ConfigOp::Append(_) | ConfigOp::Subtract(_) if !is_list => {
                return Err(TopicConfigError::NotAList(name.clone()));
            }
            ConfigOp::Append(value) => {
                let mut items = list(&existing());
                for item in list(value) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                next.insert(name.clone(), items.join(","));
            }
            ConfigOp::Subtract(value) => {
                let remove = list(value);
                let items: Vec<String> = list(&existing()).into_iter().filter(|i| !remove.contains(i)).collect();
                next.insert(name.clone(), items.join(","));
            }
        }
    }
    topic_config::validate_all(broker, &next)?;
    Ok(next)
}

/// The records that take `topic`'s overrides from `current` to `next`.
pub fn records(
    topic: &str,
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let resource = || ConfigResource::Topic(topic.to_string());
    let mut records = Vec::new();
    for (name, value) in next {
        if current.get(name) != Some(value) {
            records.push(MetadataRecord::Config {
                resource: resource(),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
    }
    for name in current.keys().filter(|name| !next.contains_key(*name)) {
        records.push(MetadataRecord::Config { resource: resource(), name: name.clone(), value: None });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn set_delete_append_and_subtract_with_kafkas_checks() {
        let broker = BrokerConfig::default();
        let current = map(&[("retention.ms", "1000"), ("segment.ms", "60000")]);
        let ops = vec![
            ("retention.ms".to_string(), ConfigOp::Set("5000".into())),
            ("segment.ms".to_string(), ConfigOp::Delete),
            ("cleanup.policy".to_string(), ConfigOp::Append("compact".into())),
        ];
        let next = apply_ops(&broker, &current, &ops).unwrap();
        assert_eq!(next, map(&[("retention.ms", "5000"), ("cleanup.policy", "delete,compact")]));
        let recs = records("t", &current, &next);
        assert_eq!(recs.len(), 3, "two set, one removed: {recs:?}");
        assert!(recs.contains(&MetadataRecord::Config {
            resource: ConfigResource::Topic("t".into()),
            name: "segment.ms".into(),
            value: None
        }));
        let back = apply_ops(&broker, &next, &[("cleanup.policy".to_string(), ConfigOp::Subtract("delete".into()))]);
        assert_eq!(back.unwrap()["cleanup.policy"], "compact");
        // One bad entry refuses the whole change.
        let bad = vec![
            ("retention.ms".to_string(), ConfigOp::Set("7".into())),
            ("segment.bytes".to_string(), ConfigOp::Set("20".into())),
        ];
        assert!(apply_ops(&broker, &current, &bad).is_err());
        assert!(apply_ops(&broker, &current, &[("retention.ms".to_string(), ConfigOp::Append("1".into()))]).is_err());
        assert!(apply_ops(&broker, &current, &[("no.such".to_string(), ConfigOp::Set("1".into()))]).is_err());
        assert_eq!(ConfigOp::from_code(9, Some("x")), None);
        assert!(records("t", &current, &current).is_empty());
    }
}
