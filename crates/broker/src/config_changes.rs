//! Changing a topic's or a broker's settings at runtime (IncrementalAlterConfigs and
//! AlterConfigs), as a pure decision over the metadata image: the new set of values,
//! checked whole (a topic's as a topic creation would check it, a broker's as
//! `dynamic_config::check` does), and the `Config` records that take the image there.
//! The records go through the metadata log, so every node applies the change (the publisher
//! chain hands each hosted partition its new settings) and it survives restarts.
//!
//! Invariants: a change is all or nothing per resource (one bad entry refuses the
//! resource's whole change, as Kafka does); only list settings take APPEND and SUBTRACT;
//! the records only name keys whose value changes; a broker resource only ever stores
//! dynamic settings.

use std::collections::BTreeMap;

use runnel_metadata::{ConfigResource, MetadataRecord};

use crate::config::BrokerConfig;
use crate::dynamic_config::{self, DynamicConfigError};
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

/// The values after `ops` over `current`, unchecked. `existing` gives a setting's value
/// where `current` has none (for APPEND/SUBTRACT); `is_list` says which settings are lists.
fn next_values(
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
    is_list: impl Fn(&str) -> bool,
    existing: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut next = current.clone();
    for (name, op) in ops {
        let was = || next.get(name).cloned().or_else(|| existing(name)).unwrap_or_default();
        match op {
            ConfigOp::Set(value) => {
                next.insert(name.clone(), value.clone());
            }
            ConfigOp::Delete => {
                next.remove(name);
            }
            ConfigOp::Append(_) | ConfigOp::Subtract(_) if !is_list(name) => return Err(name.clone()),
            ConfigOp::Append(value) => {
                let mut items = list(&was());
                for item in list(value) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                next.insert(name.clone(), items.join(","));
            }
            ConfigOp::Subtract(value) => {
                let remove = list(value);
                let items: Vec<String> = list(&was()).into_iter().filter(|i| !remove.contains(i)).collect();
                next.insert(name.clone(), items.join(","));
            }
        }
    }
    Ok(next)
}

/// The overrides after `ops`, checked: each setting must exist and take its value, and the
/// whole set must make a log the storage accepts. `current` holds the topic's overrides;
/// `broker`'s defaults give a setting's value where the topic has none (for APPEND/SUBTRACT).
pub fn apply_ops(
    broker: &BrokerConfig,
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
) -> Result<BTreeMap<String, String>, TopicConfigError> {
    let next = next_values(
        current,
        ops,
        |name| LIST_SETTINGS.contains(&name),
        |name| topic_config::effective_value(broker, None, name).map(|(v, _)| v),
    )
    .map_err(TopicConfigError::NotAList)?;
    topic_config::validate_all(broker, &next)?;
    // Kafka's rule (before KIP-950's copy and delete settings, which Runnel does not act
    // on): a tiered topic stays tiered, or its remote data would be neither read nor
    // deleted.
    let tiered = |values: &BTreeMap<String, String>| {
        topic_config::effective_value(broker, Some(values), "remote.storage.enable")
            .is_some_and(|(v, _)| v.trim() == "true")
    };
    if tiered(current) && !tiered(&next) {
        return Err(TopicConfigError::Conflict(
            "Disabling remote storage feature on the topic level is not supported.".into(),
        ));
    }
    Ok(next)
}

/// The dynamic values of one broker resource after `ops`, checked (`dynamic_config::check`)
/// together with the other level's values over the node's static settings `base`.
/// `node`: the broker's own values are changed (`None`: the cluster-wide default).
pub fn apply_broker_ops(
    base: &BrokerConfig,
    image: &runnel_metadata::MetadataImage,
    node: Option<i32>,
    ops: &[(String, ConfigOp)],
) -> Result<BTreeMap<String, String>, DynamicConfigError> {
    let current = image.broker_configs(node).cloned().unwrap_or_default();
    let (live, _) =
        dynamic_config::effective(base, image.broker_configs(None), image.broker_configs(Some(base.node_id)));
    let next = next_values(
        &current,
        ops,
        |name| name == "log.cleanup.policy",
        |name| dynamic_config::untyped_topic_default(name).and_then(|t| live.topic_defaults.get(t).cloned()),
    )
    .map_err(|name| DynamicConfigError::Invalid(format!("'{name}' is not a list: APPEND and SUBTRACT do not apply")))?;
    match node {
        None => dynamic_config::check(base, Some(&next), image.broker_configs(Some(base.node_id)))?,
        Some(_) => dynamic_config::check(base, image.broker_configs(None), Some(&next))?,
    }
    Ok(next)
}

/// The records that take `resource`'s values from `current` to `next`.
pub fn records(
    resource: &ConfigResource,
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (name, value) in next {
        if current.get(name) != Some(value) {
            records.push(MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
    }
    for name in current.keys().filter(|name| !next.contains_key(*name)) {
        records.push(MetadataRecord::Config { resource: resource.clone(), name: name.clone(), value: None });
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
        let topic = ConfigResource::Topic("t".into());
        let recs = records(&topic, &current, &next);
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
        assert!(records(&topic, &current, &current).is_empty());
    }

    #[test]
    fn a_tiered_topic_stays_tiered() {
        let mut broker = BrokerConfig::default();
        broker.tiered.enabled = true;
        let current = map(&[("remote.storage.enable", "true")]);
        let off = [("remote.storage.enable".to_string(), ConfigOp::Set("false".into()))];
        assert!(matches!(apply_ops(&broker, &current, &off), Err(TopicConfigError::Conflict(_))));
        let removed = [("remote.storage.enable".to_string(), ConfigOp::Delete)];
        assert!(matches!(apply_ops(&broker, &current, &removed), Err(TopicConfigError::Conflict(_))));
        let on = [("remote.storage.enable".to_string(), ConfigOp::Set("true".into()))];
        assert!(apply_ops(&broker, &BTreeMap::new(), &on).is_ok(), "turning it on is fine");
    }

    #[test]
    fn broker_changes_store_only_dynamic_settings_and_are_checked_with_the_other_level() {
        let base = BrokerConfig::default();
        let image = runnel_metadata::MetadataImage::default().apply(&[MetadataRecord::Config {
            resource: ConfigResource::BrokerDefault,
            name: "log.cleanup.policy".into(),
            value: Some("delete".into()),
        }]);
        let set = |name: &str, value: &str| vec![(name.to_string(), ConfigOp::Set(value.into()))];
        let next = apply_broker_ops(&base, &image, Some(1), &set("log.retention.ms", "5000")).unwrap();
        assert_eq!(next, map(&[("log.retention.ms", "5000")]));
        let appended =
            apply_broker_ops(&base, &image, None, &[("log.cleanup.policy".into(), ConfigOp::Append("compact".into()))]);
        assert_eq!(appended.unwrap()["log.cleanup.policy"], "delete,compact");
        assert!(matches!(
            apply_broker_ops(&base, &image, None, &set("node.id", "7")),
            Err(DynamicConfigError::NotDynamic(_))
        ));
        assert!(apply_broker_ops(&base, &image, Some(1), &set("log.segment.bytes", "10")).is_err());
        assert!(apply_broker_ops(&base, &image, Some(1), &[("log.retention.ms".into(), ConfigOp::Append("1".into()))])
            .is_err());
    }
}
