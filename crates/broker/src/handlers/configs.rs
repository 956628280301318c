//! DescribeConfigs for topics (type 2) and brokers (type 4: this node, or the empty name
//! for the cluster-wide dynamic default): each value with its source, its synonyms when
//! asked (`include_synonyms`), whether it is read-only (static) and whether it is
//! sensitive (then never shown). See `dynamic_config.rs` for the sources.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::ResponseError;

use super::Context;
use crate::config::BrokerConfig;
use crate::dynamic_config;
use crate::topic_config::{effective_value, NOT_ACTED_ON, NOT_ACTED_ON_DOC, TOPIC_CONFIG_NAMES};

pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// One described setting: its source is the first of `sources` (most precedent first),
/// its value `effective` or else that source's (a synonym may count in other units:
/// `log.retention.hours`); the sources are its synonyms. A sensitive value is never shown.
fn entry(
    name: &str,
    sources: &[(i8, String, String)],
    effective: Option<&str>,
    read_only: bool,
    include_synonyms: bool,
) -> Option<DescribeConfigsResourceResult> {
    let (source, _, value) = sources.first()?;
    let value = effective.unwrap_or(value);
    let sensitive = dynamic_config::is_sensitive(name);
    let shown = |value: &str| (!sensitive).then(|| StrBytes::from_string(value.to_string()));
    let synonyms = if include_synonyms {
        sources
            .iter()
            .map(|(source, name, value)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_value(shown(value))
                    .with_source(*source)
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(
        DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_value(shown(value))
            .with_read_only(read_only)
            .with_config_source(*source)
            .with_is_sensitive(sensitive)
            .with_synonyms(synonyms),
    )
}

fn wanted(resource: &DescribeConfigsResource, name: &str) -> bool {
    resource.configuration_keys.as_ref().is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
}

/// The static settings a broker reports besides the dynamic ones, with their values.
fn static_entries(config: &BrokerConfig) -> Vec<(&'static str, String)> {
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
        ("socket.request.max.bytes", config.socket_request_max_bytes.to_string()),
        ("log.retention.check.interval.ms", config.log_retention_check_interval_ms.to_string()),
        ("log.flush.before.ack", config.log_flush_before_ack.to_string()),
    ]
}

fn describe_broker(
    ctx: &Context,
    resource: &DescribeConfigsResource,
    node: Option<i32>,
    synonyms: bool,
) -> Vec<Described> {
    let config = &ctx.broker.config;
    let image = ctx.broker.metadata.image();
    let (node_values, default_values) =
        (image.broker_configs(node.map(|_| config.node_id)), image.broker_configs(None));
    if node.is_none() {
        // The cluster-wide default resource shows what is set on it, and nothing else.
        return default_values
            .into_iter()
            .flatten()
            .filter(|(name, _)| wanted(resource, name))
            .filter_map(|(name, value)| {
                entry(
                    name,
                    &[(dynamic_config::SOURCE_DYNAMIC_DEFAULT, name.clone(), value.clone())],
                    None,
                    false,
                    synonyms,
                )
            })
            .map(not_acted_on_doc)
            .collect();
    }
    // Static settings first, with their values as the node runs them.
    let statics = static_entries(config);
    let mut names: std::collections::BTreeSet<String> = dynamic_config::dynamic_names().map(str::to_string).collect();
    names.extend(config.given.keys().cloned());
    names.extend(node_values.into_iter().chain(default_values).flat_map(|values| values.keys().cloned()));
    let mut described: Vec<Described> = statics
        .iter()
        .filter(|(name, _)| wanted(resource, name) && !dynamic_config::is_dynamic(name))
        .filter_map(|(name, value)| {
            names.remove(*name);
            let source = if config.given.contains_key(*name) {
                dynamic_config::SOURCE_STATIC
            } else {
                dynamic_config::SOURCE_DEFAULT
            };
            entry(name, &[(source, name.to_string(), value.clone())], None, true, synonyms)
        })
        .collect();
    // Then every dynamic setting, every other setting given at start (security settings
    // among them, never shown) and whatever is set at runtime, with its sources.
    described.extend(names.iter().filter(|name| wanted(resource, name)).filter_map(|name| {
        let default = dynamic_config::default_value(name)
            .or_else(|| statics.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()));
        let sources = dynamic_config::broker_sources(name, node_values, default_values, &config.given, default);
        entry(name, &sources, None, !dynamic_config::is_dynamic(name), synonyms).map(not_acted_on_doc)
    }));
    described
}

type Described = DescribeConfigsResourceResult;

/// Marks a setting Runnel accepts and stores but does not act on.
fn not_acted_on_doc(described: Described) -> Described {
    let name = described.name.as_str();
    let not_acted_on = NOT_ACTED_ON.contains(&name) || dynamic_config::is_not_acted_on(name);
    described.with_documentation(not_acted_on.then(|| StrBytes::from_static_str(NOT_ACTED_ON_DOC)))
}

fn describe_topic(ctx: &Context, resource: &DescribeConfigsResource, topic: &str, synonyms: bool) -> Vec<Described> {
    let config = &ctx.broker.config;
    let live = ctx.broker.live_config();
    let image = ctx.broker.metadata.image();
    let empty = BTreeMap::new();
    let overrides = image.topic_configs(topic).unwrap_or(&empty);
    let (node_values, default_values) = (image.broker_configs(Some(config.node_id)), image.broker_configs(None));
    TOPIC_CONFIG_NAMES
        .iter()
        .filter(|key| wanted(resource, key))
        .filter_map(|key| {
            let (value, _) = effective_value(&live, Some(overrides), key)?;
            let mut sources: Vec<(i8, String, String)> = overrides
                .get(*key)
                .map(|v| (dynamic_config::SOURCE_TOPIC, key.to_string(), v.clone()))
                .into_iter()
                .collect();
            let default = effective_value(&BrokerConfig::default(), None, key).map(|(v, _)| v);
            sources.extend(dynamic_config::topic_synonym_sources(
                key,
                node_values,
                default_values,
                &config.given,
                default,
            ));
            if sources.is_empty() {
                sources.push((dynamic_config::SOURCE_DEFAULT, key.to_string(), value.clone()));
            }
            entry(key, &sources, Some(&value), false, synonyms).map(not_acted_on_doc)
        })
        .collect()
}

fn describe_one(ctx: &Context, resource: &DescribeConfigsResource, synonyms: bool) -> DescribeConfigsResult {
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
            if ctx.broker.metadata.image().topic(&name).is_none() {
                return fail(ResponseError::UnknownTopicOrPartition, format!("topic '{name}' does not exist"));
            }
            result.with_configs(describe_topic(ctx, resource, &name, synonyms))
        }
        RESOURCE_BROKER if name.is_empty() => result.with_configs(describe_broker(ctx, resource, None, synonyms)),
        RESOURCE_BROKER => {
            if name.parse::<i32>().ok() != Some(config.node_id) {
                return fail(ResponseError::InvalidRequest, format!("broker '{name}' is not this broker"));
            }
            result.with_configs(describe_broker(ctx, resource, Some(config.node_id), synonyms))
        }
        other => fail(ResponseError::InvalidRequest, format!("resource type {other} is not supported")),
    }
}

pub fn describe(ctx: &Context, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let synonyms = request.include_synonyms;
    DescribeConfigsResponse::default()
        .with_results(request.resources.iter().map(|r| describe_one(ctx, r, synonyms)).collect())
}

/// DescribeConfigs v0, which `kafka-protocol` (like Kafka 4.0) no longer encodes. Its
/// request is v1 without the trailing `include_synonyms`; its response has `is_default`
/// where v1 has `config_source`, and no synonyms.
pub mod v0 {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::DescribeConfigsResponse;

    use super::Context;
    use crate::dynamic_config::SOURCE_DEFAULT;
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
