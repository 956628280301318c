//! IncrementalAlterConfigs v0-1 and AlterConfigs v0-2 for topics (resource type 2): the
//! change is decided against the current image (`config_changes`), committed as `Config`
//! records through the metadata log, and published at once, so the partitions this node
//! hosts run with the new settings before the response leaves (other nodes follow their
//! image). AlterConfigs replaces the topic's whole set of overrides, as Kafka's does.
//! Broker resources get INVALID_REQUEST until dynamic broker settings exist.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::configs::RESOURCE_TOPIC;
use super::Context;
use crate::broker::Broker;
use crate::config_changes::{self, ConfigOp};
use crate::topic_config::TopicConfigError;

/// Why a resource's change was refused: Kafka's error and a message for the client.
type Refusal = (ResponseError, String);

enum Change {
    Ops(Vec<(String, ConfigOp)>),
    /// AlterConfigs: exactly these overrides.
    Replace(BTreeMap<String, String>),
}

fn change_topic(broker: &Broker, topic: &str, change: Change, validate_only: bool) -> Result<(), Refusal> {
    let committed = broker.metadata.commit(|image| {
        if image.topic(topic).is_none() {
            return Err((ResponseError::UnknownTopicOrPartition, format!("topic '{topic}' does not exist")));
        }
        let current = image.topic_configs(topic).cloned().unwrap_or_default();
        let ops = match &change {
            Change::Ops(ops) => ops.clone(),
            Change::Replace(wanted) => current
                .keys()
                .filter(|k| !wanted.contains_key(*k))
                .map(|k| (k.clone(), ConfigOp::Delete))
                .chain(wanted.iter().map(|(k, v)| (k.clone(), ConfigOp::Set(v.clone()))))
                .collect(),
        };
        let next = config_changes::apply_ops(&broker.config, &current, &ops)
            .map_err(|e: TopicConfigError| (ResponseError::InvalidConfig, e.to_string()))?;
        Ok(if validate_only { Vec::new() } else { config_changes::records(topic, &current, &next) })
    });
    let image = match committed {
        Ok(Ok(image)) => image,
        Ok(Err(refusal)) => return Err(refusal),
        Err(e) => return Err((crate::metadata_store::metadata_error_code(&e), e.to_string())),
    };
    if !validate_only {
        tokio::task::block_in_place(|| broker.publish(&image))
            .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
        tracing::info!(topic, "topic settings changed");
    }
    Ok(())
}

/// Kafka refuses a resource that names a setting twice.
fn no_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), Refusal> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err((ResponseError::InvalidRequest, format!("duplicate config key '{name}'")));
        }
    }
    Ok(())
}

/// The outcome of one resource: (error code, message).
fn outcome(resource_type: i8, name: &str, run: impl FnOnce() -> Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    let result = if resource_type == RESOURCE_TOPIC {
        run()
    } else {
        Err((
            ResponseError::InvalidRequest,
            format!("resource type {resource_type} ('{name}'): only topic settings can be changed at runtime yet"),
        ))
    };
    match result {
        Ok(()) => (0, None),
        Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
    }
}

pub fn incremental(ctx: &Context, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let name = resource.resource_name.to_string();
        let (error_code, error_message) = outcome(resource.resource_type, &name, || {
            no_duplicates(resource.configs.iter().map(|c| c.name.as_str()))?;
            let mut ops = Vec::with_capacity(resource.configs.len());
            for config in &resource.configs {
                let op = ConfigOp::from_code(config.config_operation, config.value.as_deref()).ok_or_else(|| {
                    (
                        ResponseError::InvalidRequest,
                        format!("{}: operation {} without a value or unknown", config.name, config.config_operation),
                    )
                })?;
                ops.push((config.name.to_string(), op));
            }
            change_topic(ctx.broker, &name, Change::Ops(ops), request.validate_only)
        });
        responses.push(
            IncrementalResult::default()
                .with_error_code(error_code)
                .with_error_message(error_message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub fn alter(ctx: &Context, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let name = resource.resource_name.to_string();
        let (error_code, error_message) = outcome(resource.resource_type, &name, || {
            no_duplicates(resource.configs.iter().map(|c| c.name.as_str()))?;
            let wanted: BTreeMap<String, String> = resource
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            change_topic(ctx.broker, &name, Change::Replace(wanted), request.validate_only)
        });
        responses.push(
            AlterResult::default()
                .with_error_code(error_code)
                .with_error_message(error_message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_named_twice_is_an_invalid_request() {
        assert!(no_duplicates(["a", "b"].into_iter()).is_ok());
        let (error, message) = no_duplicates(["a", "b", "a"].into_iter()).unwrap_err();
        assert_eq!((error, message.as_str()), (ResponseError::InvalidRequest, "duplicate config key 'a'"));
    }
}
