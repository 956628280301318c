//! Topic creation as the broker does it for every caller (CreateTopics, Metadata's
//! auto-creation, the group coordinator's `__consumer_offsets`): settings and names checked
//! where they enter, the controller's pure decision committed through the metadata log,
//! then the new replicas opened through the publisher chain.

use std::collections::BTreeMap;

use runnel_metadata::controller::{self, CreateTopicError, NewTopic};
use runnel_protocol::ResponseError;

use crate::broker::Broker;
use crate::topic_config;

/// A topic creation that failed, as the client will see it.
pub struct Refusal {
    pub error: ResponseError,
    pub message: String,
}

impl From<CreateTopicError> for Refusal {
    fn from(e: CreateTopicError) -> Self {
        let error = match &e {
            CreateTopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
            CreateTopicError::InvalidName(_) => ResponseError::InvalidTopicException,
            CreateTopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            CreateTopicError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
            _ => ResponseError::InvalidRequest,
        };
        Refusal { error, message: e.to_string() }
    }
}

/// Creates (or with `validate_only`, checks) a topic through the metadata log, then opens
/// its partitions. `partitions` / `replication_factor` of -1 mean the broker defaults.
pub fn create_topic(
    broker: &Broker,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(i32, i32), Refusal> {
    topic_config::validate_all(&broker.live_config(), configs)
        .map_err(|e| Refusal { error: ResponseError::InvalidConfig, message: e.to_string() })?;
    let partitions = if partitions == -1 { broker.config.num_partitions } else { partitions };
    controller::validate_topic_name(name)?;
    broker
        .replicas
        .check_folder_names(name, partitions)
        .map_err(|message| Refusal { error: ResponseError::InvalidTopicException, message })?;
    let replication_factor =
        if replication_factor == -1 { broker.config.default_replication_factor } else { replication_factor };
    let topic = NewTopic { name, partitions, replication_factor, configs };
    let topic_id = uuid::Uuid::new_v4();
    let committed = broker.metadata.commit(|image| {
        let records = controller::create_topic(image, &topic, topic_id)?;
        Ok::<_, CreateTopicError>(if validate_only { vec![] } else { records })
    });
    let image = match committed {
        Ok(Ok(image)) => image,
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => {
            return Err(Refusal { error: crate::metadata_store::metadata_error_code(&e), message: e.to_string() })
        }
    };
    if !validate_only {
        let opened = tokio::task::block_in_place(|| broker.publish(&image));
        opened.map_err(|e| Refusal { error: ResponseError::KafkaStorageError, message: e.to_string() })?;
        tracing::info!(topic = name, partitions, replication_factor, "created topic");
    }
    Ok((partitions, replication_factor))
}
