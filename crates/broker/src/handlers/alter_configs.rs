//! IncrementalAlterConfigs v0-1 and AlterConfigs v0-2 for topics (resource type 2) and
//! brokers (type 4: a node id, or the empty name for the cluster-wide default): the change
//! is decided against the current image (`config_changes`), committed as `Config` records
//! through the metadata log, and published at once, so this node runs with the new
//! settings before the response leaves (other nodes follow their image). AlterConfigs
//! replaces the resource's whole set of values, as Kafka's does. A broker setting that
//! cannot change at runtime, or a bad value, is INVALID_REQUEST (Kafka's answer).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use runnel_metadata::ConfigResource;

use super::configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
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

/// The operations that turn `current` into what `change` asks for.
fn ops_for(change: &Change, current: &BTreeMap<String, String>) -> Vec<(String, ConfigOp)> {
    match change {
        Change::Ops(ops) => ops.clone(),
        Change::Replace(wanted) => current
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .map(|k| (k.clone(), ConfigOp::Delete))
            .chain(wanted.iter().map(|(k, v)| (k.clone(), ConfigOp::Set(v.clone()))))
            .collect(),
    }
}

fn change_topic(broker: &Broker, topic: &str, change: Change, validate_only: bool) -> Result<(), Refusal> {
    let live = broker.live_config();
    commit_and_publish(broker, validate_only, |image| {
        if image.topic(topic).is_none() {
            return Err((ResponseError::UnknownTopicOrPartition, format!("topic '{topic}' does not exist")));
        }
        let current = image.topic_configs(topic).cloned().unwrap_or_default();
        let next = config_changes::apply_ops(&live, &current, &ops_for(&change, &current))
            .map_err(|e: TopicConfigError| (ResponseError::InvalidConfig, e.to_string()))?;
        Ok(config_changes::records(&ConfigResource::Topic(topic.to_string()), &current, &next))
    })?;
    if !validate_only {
        tracing::info!(topic, "topic settings changed");
    }
    Ok(())
}

/// A broker resource's name: a node id, or empty for the cluster-wide default.
fn broker_resource(name: &str) -> Result<Option<i32>, Refusal> {
    if name.is_empty() {
        return Ok(None);
    }
    name.parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .map(Some)
        .ok_or_else(|| (ResponseError::InvalidRequest, format!("'{name}' is not a broker id")))
}

/// When a change touches this node's TLS settings: every TLS listener's material must load
/// with the settings the node would run with (Kafka checks a new key store the same way
/// before it takes it).
fn check_tls(broker: &Broker, node: Option<i32>, change: &Change) -> Result<(), Refusal> {
    let touches_tls = match change {
        Change::Ops(ops) => ops.iter().any(|(name, _)| crate::dynamic_config::is_tls_setting(name)),
        Change::Replace(wanted) => wanted.keys().any(|name| crate::dynamic_config::is_tls_setting(name)),
    };
    if !touches_tls || node.is_some_and(|id| id != broker.config.node_id) {
        return Ok(());
    }
    let image = broker.metadata.image();
    let current = image.broker_configs(node).cloned().unwrap_or_default();
    let next = config_changes::apply_broker_ops(&broker.config, &image, node, &ops_for(change, &current))
        .map_err(|e| (ResponseError::InvalidRequest, e.to_string()))?;
    let (default, own) = match node {
        None => (Some(&next), image.broker_configs(Some(broker.config.node_id))),
        Some(_) => (image.broker_configs(None), Some(&next)),
    };
    let (live, _) = crate::dynamic_config::effective(&broker.config, default, own);
    for listener in broker.config.listeners.all.iter().filter(|l| l.protocol.uses_tls()) {
        crate::tls::TlsSettings::from_settings(&listener.name, &live.security)
            .map_err(|e| e.to_string())
            .and_then(|settings| settings.build().map(|_| ()).map_err(|e| e.to_string()))
            .map_err(|why| (ResponseError::InvalidRequest, format!("the new TLS settings do not load: {why}")))?;
    }
    Ok(())
}

fn change_broker(broker: &Broker, name: &str, change: Change, validate_only: bool) -> Result<(), Refusal> {
    let node = broker_resource(name)?;
    check_tls(broker, node, &change)?;
    commit_and_publish(broker, validate_only, |image| {
        let current = image.broker_configs(node).cloned().unwrap_or_default();
        let next = config_changes::apply_broker_ops(&broker.config, image, node, &ops_for(&change, &current))
            .map_err(|e| (ResponseError::InvalidRequest, e.to_string()))?;
        let resource = node.map_or(ConfigResource::BrokerDefault, ConfigResource::Broker);
        Ok(config_changes::records(&resource, &current, &next))
    })?;
    if !validate_only {
        tracing::info!(broker = name, "dynamic broker settings changed");
    }
    Ok(())
}

/// Decides the records under the metadata commit, commits them (none when
/// `validate_only`), and publishes the new image before returning.
fn commit_and_publish(
    broker: &Broker,
    validate_only: bool,
    decide: impl Fn(&runnel_metadata::MetadataImage) -> Result<Vec<runnel_metadata::MetadataRecord>, Refusal>,
) -> Result<(), Refusal> {
    let committed = broker.metadata.commit(|image| {
        let records = decide(image)?;
        Ok(if validate_only { Vec::new() } else { records })
    });
    let image = match committed {
        Ok(Ok(image)) => image,
        Ok(Err(refusal)) => return Err(refusal),
        Err(e) => return Err((crate::metadata_store::metadata_error_code(&e), e.to_string())),
    };
    if !validate_only {
        tokio::task::block_in_place(|| broker.publish(&image))
            .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
    }
    Ok(())
}

/// Runs the change of one resource by its type.
fn change(broker: &Broker, resource_type: i8, name: &str, change: Change, validate_only: bool) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => change_topic(broker, name, change, validate_only),
        RESOURCE_BROKER => change_broker(broker, name, change, validate_only),
        other => Err((ResponseError::InvalidRequest, format!("resource type {other} ('{name}') has no settings"))),
    }
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
fn outcome(result: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
    }
}

pub fn incremental(ctx: &Context, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let name = resource.resource_name.to_string();
        let (error_code, error_message) = outcome((|| {
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
            change(ctx.broker, resource.resource_type, &name, Change::Ops(ops), request.validate_only)
        })());
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
        let (error_code, error_message) = outcome((|| {
            no_duplicates(resource.configs.iter().map(|c| c.name.as_str()))?;
            let wanted: BTreeMap<String, String> = resource
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            change(ctx.broker, resource.resource_type, &name, Change::Replace(wanted), request.validate_only)
        })());
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
