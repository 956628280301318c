//! CreateTopics, and the topic creation that Metadata's auto-create shares.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::Context;
use crate::groups::OFFSETS_TOPIC;
use crate::topic_admin::create_topic;
use crate::topic_config;

fn create_one(ctx: &Context, topic: &CreatableTopic, validate_only: bool) -> CreatableTopicResult {
    let name = topic.name.0.to_string();
    let result = CreatableTopicResult::default().with_name(topic.name.clone()).with_error_message(None);
    let fail = |error: ResponseError, message: String| {
        result.clone().with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message)))
    };
    if name == OFFSETS_TOPIC {
        // The group coordinator creates it, with the settings it needs.
        return fail(ResponseError::InvalidRequest, format!("creation of internal topic {name} is prohibited"));
    }
    if !topic.assignments.is_empty() {
        // Manual assignment: on one node every replica is this node.
        let node = ctx.broker.config.node_id;
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return fail(
                ResponseError::InvalidRequest,
                "assignments given together with partitions or replication factor".into(),
            );
        }
        if topic.assignments.iter().flat_map(|a| a.broker_ids.iter()).any(|b| b.0 != node) {
            return fail(ResponseError::InvalidReplicaAssignment, "assignment names an unknown broker".into());
        }
    }
    let partitions = if topic.assignments.is_empty() { topic.num_partitions } else { topic.assignments.len() as i32 };
    let replication = if topic.assignments.is_empty() { i32::from(topic.replication_factor) } else { 1 };
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        if let Some(value) = &config.value {
            configs.insert(config.name.to_string(), value.to_string());
        }
    }
    match create_topic(ctx.broker, &name, partitions, replication, &configs, validate_only) {
        Ok((partitions, replication)) => {
            let image = ctx.broker.metadata.image();
            let topic_id = image.topic(&name).map(|t| t.topic_id).unwrap_or_default();
            let live = ctx.broker.live_config();
            let described = topic_config::TOPIC_CONFIG_NAMES
                .iter()
                .filter_map(|key| {
                    let (value, set) = topic_config::effective_value(&live, Some(&configs), key)?;
                    Some(
                        CreatableTopicConfigs::default()
                            .with_name(StrBytes::from_static_str(key))
                            .with_value(Some(StrBytes::from_string(value)))
                            .with_config_source(if set { 1 } else { 5 }),
                    )
                })
                .collect();
            let result = result
                .with_topic_id(topic_id)
                .with_num_partitions(partitions)
                .with_replication_factor(replication as i16);
            // Configs are part of the response from v5; earlier versions cannot carry them.
            if ctx.version >= 5 {
                result.with_configs(Some(described))
            } else {
                result
            }
        }
        Err(refusal) => fail(refusal.error, refusal.message),
    }
}

pub fn handle(ctx: &Context, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = std::collections::HashSet::new();
    let duplicated: std::collections::HashSet<_> =
        request.topics.iter().filter(|t| !seen.insert(t.name.0.clone())).map(|t| t.name.0.clone()).collect();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            if duplicated.contains(&topic.name.0) {
                return CreatableTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str("topic named more than once in the request")));
            }
            create_one(ctx, topic, request.validate_only)
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
