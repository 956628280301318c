//! What the group coordinator needs from the rest of the broker, and nothing more: the
//! current metadata image, this node's replicas of `__consumer_offsets`, creating that
//! topic, and whether writes are fsynced before they are acknowledged. The coordinator
//! never sees the whole `Broker` and never calls into the request handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_metadata::MetadataImage;
use runnel_protocol::ResponseError;

use super::OFFSETS_TOPIC;
use crate::broker::Broker;
use crate::partition::Partition;

/// The coordinator's view of its node. `Sync` so that coordinator futures holding a
/// reference stay `Send`.
pub trait GroupHost: Sync {
    /// The current metadata image.
    fn image(&self) -> Arc<MetadataImage>;
    /// This node's replica of `__consumer_offsets` partition `index`, if it hosts one.
    fn offsets_partition(&self, index: i32) -> Option<Arc<Partition>>;
    /// Creates `__consumer_offsets` with `partitions` partitions and `configs`; a topic that
    /// already exists is success. The replication factor is the node's
    /// `offsets.topic.replication.factor`, capped at the live brokers.
    fn create_offsets_topic(&self, partitions: i32, configs: &BTreeMap<String, String>) -> Result<(), ResponseError>;
    /// `log.flush.before.ack`: group writes are fsynced before they are answered.
    fn flush_before_ack(&self) -> bool;
}

impl GroupHost for Broker {
    fn image(&self) -> Arc<MetadataImage> {
        self.metadata.image()
    }

    fn offsets_partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.replicas.partition(OFFSETS_TOPIC, index)
    }

    fn create_offsets_topic(&self, partitions: i32, configs: &BTreeMap<String, String>) -> Result<(), ResponseError> {
        // Kafka refuses to create it with fewer live brokers than the factor; capping it
        // lets a single node work without a setting.
        let live = self.metadata.image().brokers.values().filter(|b| !b.fenced).count().max(1);
        let replication = self.config.offsets_topic_replication_factor.min(live as i32);
        match crate::topic_admin::create_topic(self, OFFSETS_TOPIC, partitions, replication, configs, false) {
            Ok(_) => Ok(()),
            Err(refusal) if refusal.error == ResponseError::TopicAlreadyExists => Ok(()),
            Err(refusal) => {
                tracing::error!(error = ?refusal.error, message = %refusal.message, "creating the offsets topic failed");
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    fn flush_before_ack(&self) -> bool {
        self.config.log_flush_before_ack
    }
}
