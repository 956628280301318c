//! The one way a new metadata image reaches the parts of the broker that act on it (Kafka's
//! metadata loader and its publishers).
//!
//! Every caller that has a newer image (the image follower in a cluster, a handler that just
//! committed, the ISR proposer) hands it to [`Publisher::publish`]. The publisher computes
//! the [`MetadataDelta`] from the image it published last and runs the publishers in order:
//! the replica manager (opens, deletes and re-roles only the partitions of changed topics),
//! then the replica fetchers (once the server has started them: every partition this node
//! follows gets a fetcher of its leader), then the group coordinator when the offsets topic
//! changed (it moves with the leadership of the offsets partitions), then the offline
//! replica report (cluster mode: replicas that failed to open are reported to the
//! controller, see `offline_replicas.rs`). No other code hands images to these parts.
//!
//! Invariants: images are published in `records_applied` order; an image older than (or as
//! old as) the last one published changes nothing, so racing callers cannot undo a newer
//! change; publishing is serialised, and no publisher sees an image twice.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::watch;

use runnel_metadata::{ConfigResource, MetadataImage};
use runnel_storage::StorageError;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::locks::MutexExt;

/// What changed between two images: the names of topics added, removed or changed in any
/// way (partitions, leaders, ISRs, epochs, configs, topic id), and whether brokers changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    pub topics: BTreeSet<String>,
    pub brokers_changed: bool,
    pub acls_changed: bool,
    /// The dynamic broker settings (this node's or the cluster-wide default) changed.
    pub broker_configs_changed: bool,
    pub quotas_changed: bool,
}

impl MetadataDelta {
    /// The delta from `old` (none: everything is new) to `new`. Pure.
    pub fn between(old: Option<&MetadataImage>, new: &MetadataImage) -> Self {
        let Some(old) = old else {
            return MetadataDelta {
                topics: new.topics.keys().cloned().collect(),
                brokers_changed: true,
                acls_changed: true,
                broker_configs_changed: true,
                quotas_changed: true,
            };
        };
        let mut topics: BTreeSet<String> = BTreeSet::new();
        for (name, topic) in &new.topics {
            let same = old.topic(name).is_some_and(|before| before == topic)
                && old.topic_configs(name) == new.topic_configs(name);
            if !same {
                topics.insert(name.clone());
            }
        }
        topics.extend(old.topics.keys().filter(|name| !new.topics.contains_key(*name)).cloned());
        MetadataDelta {
            topics,
            brokers_changed: old.brokers != new.brokers,
            acls_changed: old.acls != new.acls,
            broker_configs_changed: Self::broker_configs(old) != Self::broker_configs(new),
            quotas_changed: old.quotas != new.quotas,
        }
    }

    fn broker_configs(image: &MetadataImage) -> Vec<(&ConfigResource, &std::collections::BTreeMap<String, String>)> {
        let mut configs: Vec<_> =
            image.configs.iter().filter(|(resource, _)| !matches!(resource, ConfigResource::Topic(_))).collect();
        configs.sort_by(|a, b| a.0.cmp(b.0));
        configs
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
            && !self.brokers_changed
            && !self.acls_changed
            && !self.broker_configs_changed
            && !self.quotas_changed
    }
}

/// The publisher chain's state: the image published last, and the fetchers' context once
/// the server has started them.
#[derive(Default)]
pub struct Publisher {
    published: Mutex<Option<Arc<MetadataImage>>>,
    /// The broker (weak: the publisher lives inside it) and the server's stop signal, which
    /// the replica fetchers and the offline report need to be spawned.
    running: OnceLock<(Weak<Broker>, watch::Receiver<bool>)>,
    pub(crate) offline: crate::offline_replicas::OfflineReporter,
}

impl Publisher {
    /// Publishes `image` to the replica manager if it is newer than the last one published;
    /// returns the delta it published (`None` when it was not newer). Blocking (opening a
    /// partition reads its files): call from a blocking context. Everything that can be
    /// done is done; the first storage failure is returned.
    pub fn publish(&self, broker: &Broker, image: &Arc<MetadataImage>) -> Result<Option<MetadataDelta>, StorageError> {
        let mut published = self.published.locked();
        if published.as_ref().is_some_and(|last| last.records_applied >= image.records_applied) {
            return Ok(None);
        }
        let delta = MetadataDelta::between(published.as_deref(), image);
        if delta.acls_changed {
            broker.authorizer.publish(&image.acls);
        }
        if delta.quotas_changed {
            broker.quotas.publish(&image.quotas);
        }
        if delta.broker_configs_changed {
            let live = crate::broker::live_settings(&broker.config, image);
            broker.cleaner.reconfigure(&live.cleaner);
            broker.set_live_config(live);
        }
        // New broker defaults reach every topic's settings.
        let topics = if delta.broker_configs_changed { None } else { Some(&delta.topics) };
        let result = broker.replicas.publish(image, topics, &broker.live_config(), now_ms());
        *published = Some(image.clone());
        if !delta.is_empty() {
            self.update_fetchers();
        }
        if let Some(broker) = self.running.get().and_then(|(broker, _)| broker.upgrade()) {
            self.offline.check(&broker, image);
        }
        if delta.topics.contains(crate::groups::OFFSETS_TOPIC) {
            let loaded = broker.groups.load(
                &|index| broker.replicas.partition(crate::groups::OFFSETS_TOPIC, index),
                image,
                now_ms(),
            );
            if let Err(e) = loaded {
                tracing::error!(error = %e, "loading consumer groups after a leadership change failed");
            }
        }
        if delta.topics.contains(crate::transactions::TRANSACTION_STATE_TOPIC) {
            let state_topic = crate::transactions::TRANSACTION_STATE_TOPIC;
            let loaded = broker.transactions.load(&|index| broker.replicas.partition(state_topic, index), image);
            if let Err(e) = loaded {
                tracing::error!(error = %e, "loading transactions after a leadership change failed");
            }
        }
        result.map(|()| Some(delta))
    }

    /// Starts the replica fetchers and the offline report for what is published now, and
    /// keeps them following every later image. Called once by the server; later calls
    /// change nothing.
    pub fn start(&self, broker: &Arc<Broker>, stop: watch::Receiver<bool>) {
        let published = self.published.locked();
        if self.running.set((Arc::downgrade(broker), stop)).is_ok() {
            self.update_fetchers();
            if let Some(image) = published.as_ref() {
                self.offline.check(broker, image);
            }
        }
    }

    fn update_fetchers(&self) {
        let Some((broker, stop)) = self.running.get() else { return };
        if let Some(broker) = broker.upgrade() {
            broker.fetchers.update(&broker, stop);
        }
    }

    /// Marks `image` as published without running the chain: what start-up opened itself.
    pub fn published_at_start(&self, image: Arc<MetadataImage>) {
        *self.published.locked() = Some(image);
    }
}

#[cfg(test)]
mod tests {
    use runnel_metadata::MetadataRecord;
    use uuid::Uuid;

    use super::*;

    fn broker(node_id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            node_id,
            host: "h".into(),
            port: 1,
            rack: None,
            incarnation_id: Uuid::from_u128(node_id as u128),
            endpoints: Vec::new(),
        }
    }

    fn topic(name: &str, id: u128) -> Vec<MetadataRecord> {
        vec![
            MetadataRecord::Topic { name: name.into(), topic_id: Uuid::from_u128(id) },
            MetadataRecord::Partition {
                topic_id: Uuid::from_u128(id),
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        ]
    }

    #[test]
    fn the_delta_names_exactly_the_topics_that_changed() {
        let start = MetadataImage::default().apply(&[broker(1)]);
        let first = MetadataDelta::between(None, &start);
        assert!(first.brokers_changed && first.topics.is_empty());
        let a = start.apply(&topic("a", 1));
        let b = a.apply(&topic("b", 2));
        assert_eq!(MetadataDelta::between(Some(&a), &b).topics, BTreeSet::from(["b".to_string()]));
        assert!(!MetadataDelta::between(Some(&a), &b).brokers_changed);
        // A leader change in "a" names only "a".
        let p = &b.topic("a").unwrap().partitions[0];
        let changed = b.apply(&[p.change(Uuid::from_u128(1), -1, vec![1])]);
        assert_eq!(MetadataDelta::between(Some(&b), &changed).topics, BTreeSet::from(["a".to_string()]));
        // A config of "b" names "b"; removing "a" names "a".
        let configured = changed.apply(&[MetadataRecord::Config {
            resource: runnel_metadata::ConfigResource::Topic("b".into()),
            name: "retention.ms".into(),
            value: Some("1".into()),
        }]);
        assert_eq!(MetadataDelta::between(Some(&changed), &configured).topics, BTreeSet::from(["b".to_string()]));
        let removed = configured.apply(&[MetadataRecord::RemoveTopic { topic_id: Uuid::from_u128(1) }]);
        assert_eq!(MetadataDelta::between(Some(&configured), &removed).topics, BTreeSet::from(["a".to_string()]));
        assert!(MetadataDelta::between(Some(&removed), &removed).is_empty());
        // A broker fenced is a broker change.
        let fenced = removed.apply(&[MetadataRecord::FenceBroker { node_id: 1, shutting_down: false }]);
        assert!(MetadataDelta::between(Some(&removed), &fenced).brokers_changed);
        assert!(!MetadataDelta::between(Some(&removed), &fenced).acls_changed);
        // An ACL added is an ACL change, and nothing else.
        let binding = runnel_metadata::acl::binding_from_codes(2, "t", 3, "User:a", "*", 3, 3).unwrap();
        let guarded = fenced.apply(&[MetadataRecord::Acl { id: Uuid::from_u128(9), binding }]);
        let delta = MetadataDelta::between(Some(&fenced), &guarded);
        assert!(delta.acls_changed && delta.topics.is_empty() && !delta.brokers_changed);
    }
}
