//! Metadata: brokers, topics and partition leaders, with auto-creation of topics when the
//! request allows it and `auto.create.topics.enable` is on.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_metadata::{MetadataImage, TopicImage};
use runnel_protocol::ResponseError;
use uuid::Uuid;

use super::Context;
use crate::groups::OFFSETS_TOPIC;
use crate::topic_admin::create_topic;

/// "Operations not requested" in Kafka's encoding.
pub(super) const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// `local_offline`: partitions of this topic whose replica on this node failed to open;
/// `listener`: the listener the request came on.
fn describe_topic(
    image: &MetadataImage,
    topic: &TopicImage,
    version: i16,
    node_id: i32,
    local_offline: &[i32],
    listener: &str,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let described = MetadataResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect());
            // A partition without a leader is reported as Kafka does, so clients retry.
            let described = if p.leader < 0 {
                described.with_error_code(ResponseError::LeaderNotAvailable.code())
            } else if image.brokers.get(&p.leader).is_some_and(|b| b.endpoint(listener).is_none()) {
                // The leader has no listener of this name: Kafka's LISTENER_NOT_FOUND.
                described.with_error_code(ResponseError::ListenerNotFound.code())
            } else {
                described
            };
            // Replicas on fenced or unknown brokers (v5+), replicas their broker reported
            // offline, and this node's own replica when it failed to open here before its
            // report is committed (Kafka reports replicas in offline log dirs).
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .copied()
                .filter(|id| {
                    !image.replica_eligible(*id, &topic.topic_id, p.partition)
                        || (*id == node_id && local_offline.contains(&p.partition))
                })
                .map(BrokerId)
                .collect();
            if version >= 5 {
                described.with_offline_replicas(offline)
            } else {
                described
            }
        })
        .collect();
    let described = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    // The flag exists from v1; setting it earlier is an encoding error.
    if version >= 1 {
        described.with_is_internal(topic.name == OFFSETS_TOPIC)
    } else {
        described
    }
}

fn missing_topic(name: Option<String>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn describe(ctx: &Context, image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    describe_for_listener(ctx, image, topic, ctx.version)
}

/// `topic` as Metadata `version` describes it to the request's listener (also used by
/// DescribeTopicPartitions).
pub(super) fn describe_for_listener(
    ctx: &Context,
    image: &MetadataImage,
    topic: &TopicImage,
    version: i16,
) -> MetadataResponseTopic {
    let local_offline = ctx.broker.replicas.offline_partitions(&topic.name);
    describe_topic(image, topic, version, ctx.broker.config.node_id, &local_offline, ctx.session.listener.as_str())
}

fn lookup_or_create(ctx: &Context, image: &MetadataImage, name: &str, auto_create: bool) -> MetadataResponseTopic {
    if let Some(topic) = image.topic(name) {
        return describe(ctx, image, topic);
    }
    if !auto_create {
        return missing_topic(Some(name.to_string()), Uuid::nil(), ResponseError::UnknownTopicOrPartition);
    }
    if name == OFFSETS_TOPIC {
        // Created by the group coordinator with its own settings, never with the defaults.
        return match ctx.broker.groups.ensure_ready(ctx.broker.as_ref()) {
            Ok(()) => lookup_or_create(ctx, &ctx.broker.metadata.image(), name, false),
            Err(error) => missing_topic(Some(name.to_string()), Uuid::nil(), error),
        };
    }
    match create_topic(ctx.broker, name, -1, -1, &BTreeMap::new(), false) {
        Ok(_) => match ctx.broker.metadata.image().topic(name) {
            Some(topic) => describe(ctx, image, topic),
            None => missing_topic(Some(name.to_string()), Uuid::nil(), ResponseError::UnknownTopicOrPartition),
        },
        // Lost a race with another creator: the topic exists now.
        Err(refusal) if refusal.error == ResponseError::TopicAlreadyExists => {
            lookup_or_create(ctx, &ctx.broker.metadata.image(), name, false)
        }
        Err(refusal) => missing_topic(Some(name.to_string()), Uuid::nil(), refusal.error),
    }
}

/// Whether the request asks for every topic (null; at v0 also an empty list).
pub fn asks_for_every_topic(request: &MetadataRequest, version: i16) -> bool {
    match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    }
}

/// Whether missing topics the request names would be created.
pub fn may_auto_create(ctx: &Context, request: &MetadataRequest) -> bool {
    // v0-3 always allowed auto-creation; the flag exists from v4.
    let allow = if ctx.version >= 4 { request.allow_auto_topic_creation } else { true };
    allow && ctx.broker.config.auto_create_topics_enable
}

pub fn handle(ctx: &Context, request: MetadataRequest) -> MetadataResponse {
    let image = ctx.broker.metadata.image();
    let auto_create = may_auto_create(ctx, &request);
    let all_topics = asks_for_every_topic(&request, ctx.version);
    let topics = if all_topics {
        image.topics.values().map(|t| describe(ctx, &image, t)).collect()
    } else {
        let requested = request.topics.unwrap_or_default();
        requested
            .iter()
            .map(|t| match &t.name {
                Some(name) => lookup_or_create(ctx, &image, name.0.as_str(), auto_create),
                None => match image.topic_by_id(&t.topic_id) {
                    Some(topic) => describe(ctx, &image, topic),
                    None => missing_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                },
            })
            .collect()
    };
    // Fenced brokers are left out, as Kafka does: clients should not connect to them.
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| Some((b, b.endpoint(ctx.session.listener.as_str())?)))
        .map(|(b, (host, port))| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(ctx.broker.cluster_id.clone())))
        .with_controller_id(BrokerId(ctx.broker.controller_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
