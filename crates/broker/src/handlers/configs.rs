//! DescribeConfigs for topics (type 2) and the broker (type 4).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::Context;
use crate::config::BrokerConfig;
use crate::topic_config::{effective_value, NOT_ACTED_ON, NOT_ACTED_ON_DOC, TOPIC_CONFIG_NAMES};

pub(super) const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// ConfigSource values, as Kafka numbers them.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn entry(name: &str, value: String, source: i8, read_only: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(read_only)
        .with_config_source(source)
}

fn wanted(resource: &DescribeConfigsResource, name: &str) -> bool {
    resource.configuration_keys.as_ref().is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
}

fn broker_entries(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    let listeners = &config.listeners.all;
    let joined =
        |f: &dyn Fn(&crate::listeners::Listener) -> String| listeners.iter().map(f).collect::<Vec<_>>().join(",");
    vec![
        ("node.id", config.node_id.to_string()),
        ("log.dirs", config.data_dir.display().to_string()),
        ("listeners", joined(&|l| format!("{}://{}", l.name, l.bind))),
        ("advertised.listeners", joined(&|l| format!("{}://{}:{}", l.name, l.advertised.0, l.advertised.1))),
        ("listener.security.protocol.map", joined(&|l| format!("{}:{}", l.name, l.protocol))),
        ("inter.broker.listener.name", config.listeners.inter_broker.to_string()),
        ("num.partitions", config.num_partitions.to_string()),
        ("default.replication.factor", config.default_replication_factor.to_string()),
        ("auto.create.topics.enable", config.auto_create_topics_enable.to_string()),
        ("message.max.bytes", config.message_max_bytes.to_string()),
        ("socket.request.max.bytes", config.socket_request_max_bytes.to_string()),
        ("max.connections", config.max_connections.to_string()),
        ("log.segment.bytes", config.log.segment_bytes.to_string()),
        ("log.roll.ms", config.log.segment_ms.to_string()),
        ("log.retention.ms", config.log.retention_ms.to_string()),
        ("log.retention.bytes", config.log.retention_bytes.to_string()),
        ("log.retention.check.interval.ms", config.log_retention_check_interval_ms.to_string()),
        ("log.flush.before.ack", config.log_flush_before_ack.to_string()),
    ]
}

fn describe_one(ctx: &Context, resource: &DescribeConfigsResource) -> DescribeConfigsResult {
    let name = resource.resource_name.to_string();
    let result = DescribeConfigsResult::default()
        .with_error_message(None)
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let fail = |error: ResponseError, message: String| {
        result.clone().with_error_code(error.code()).with_error_message(Some(StrBytes::from_string(message)))
    };
    let config = &ctx.broker.config;
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let image = ctx.broker.metadata.image();
            if image.topic(&name).is_none() {
                return fail(ResponseError::UnknownTopicOrPartition, format!("topic '{name}' does not exist"));
            }
            let empty = BTreeMap::new();
            let overrides = image.topic_configs(&name).unwrap_or(&empty);
            let configs = TOPIC_CONFIG_NAMES
                .iter()
                .filter(|key| wanted(resource, key))
                .filter_map(|key| {
                    let (value, set) = effective_value(config, Some(overrides), key)?;
                    let described = entry(key, value, if set { SOURCE_TOPIC } else { SOURCE_DEFAULT }, false);
                    let not_acted_on = NOT_ACTED_ON.contains(key);
                    Some(
                        described.with_documentation(not_acted_on.then(|| StrBytes::from_static_str(NOT_ACTED_ON_DOC))),
                    )
                })
                .collect();
            result.with_configs(configs)
        }
        RESOURCE_BROKER => {
            if !name.is_empty() && name.parse::<i32>().ok() != Some(config.node_id) {
                return fail(ResponseError::InvalidRequest, format!("broker '{name}' is not this broker"));
            }
            let configs = broker_entries(config)
                .into_iter()
                .filter(|(key, _)| wanted(resource, key))
                .map(|(key, value)| entry(key, value, SOURCE_STATIC_BROKER, true))
                .collect();
            result.with_configs(configs)
        }
        other => fail(ResponseError::InvalidRequest, format!("resource type {other} is not supported")),
    }
}

pub fn describe(ctx: &Context, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    DescribeConfigsResponse::default().with_results(request.resources.iter().map(|r| describe_one(ctx, r)).collect())
}

/// DescribeConfigs v0, which `kafka-protocol` (like Kafka 4.0) no longer encodes. Its
/// request is v1 without the trailing `include_synonyms`; its response has `is_default`
/// where v1 has `config_source`, and no synonyms.
pub mod v0 {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::DescribeConfigsResponse;

    use super::{Context, SOURCE_DEFAULT};
    use crate::response::{Chunk, Frame};

    fn string(buf: &mut BytesMut, s: &str) {
        buf.put_i16(s.len() as i16);
        buf.put_slice(s.as_bytes());
    }

    fn nullable_string(buf: &mut BytesMut, s: Option<&str>) {
        match s {
            Some(s) => string(buf, s),
            None => buf.put_i16(-1),
        }
    }

    pub fn respond(ctx: &Context, response: DescribeConfigsResponse) -> Frame {
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_i32(0); // size, patched below
        buf.put_i32(ctx.header.correlation_id);
        buf.put_i32(response.throttle_time_ms);
        buf.put_i32(response.results.len() as i32);
        for result in &response.results {
            buf.put_i16(result.error_code);
            nullable_string(&mut buf, result.error_message.as_deref());
            buf.put_i8(result.resource_type);
            string(&mut buf, &result.resource_name);
            buf.put_i32(result.configs.len() as i32);
            for config in &result.configs {
                string(&mut buf, &config.name);
                nullable_string(&mut buf, config.value.as_deref());
                buf.put_u8(u8::from(config.read_only));
                buf.put_u8(u8::from(config.config_source == SOURCE_DEFAULT));
                buf.put_u8(u8::from(config.is_sensitive));
            }
        }
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        Frame { chunks: vec![Chunk::Bytes(buf.freeze())] }
    }
}
