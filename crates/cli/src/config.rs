//! `runnel config describe|set|delete`: a topic's settings over DescribeConfigs and
//! IncrementalAlterConfigs (Kafka's `kafka-configs.sh --entity-type topics`). Describe
//! shows every setting with where its value comes from, and marks the ones Runnel accepts
//! and stores but does not act on yet; set and delete change the topic on a running
//! cluster, and the change applies at once on every replica.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;

const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

#[derive(Parser)]
pub struct ConfigArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Every setting of a topic, its value and its source.
    Describe {
        #[arg(long)]
        topic: String,
    },
    /// Set settings of a topic (IncrementalAlterConfigs SET), KEY=VALUE ...
    Set {
        #[arg(long)]
        topic: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Remove a topic's own values, so that the broker's defaults apply again.
    Delete {
        #[arg(long)]
        topic: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Kafka's names of DescribeConfigs' config sources.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

/// One `describe` line: `name=value  SOURCE`, and why a setting does nothing yet.
pub fn line(entry: &DescribeConfigsResourceResult) -> String {
    let value =
        if entry.is_sensitive { "(sensitive)".to_string() } else { entry.value.as_deref().unwrap_or("").to_string() };
    let mut out = format!("{}={value}  {}", entry.name.as_str(), source_name(entry.config_source));
    if let Some(doc) = entry.documentation.as_deref().filter(|d| d.contains("does not act on it")) {
        out.push_str(&format!("  (not acted on: {doc})"));
    }
    out
}

/// One setting as JSON: name, value (null when sensitive), source, whether Runnel acts on it.
fn entry_json(entry: &DescribeConfigsResourceResult) -> serde_json::Value {
    let not_acted_on = entry.documentation.as_deref().is_some_and(|d| d.contains("does not act on it"));
    serde_json::json!({
        "name": entry.name.to_string(),
        "value": if entry.is_sensitive { None } else { entry.value.as_ref().map(|v| v.to_string()) },
        "source": source_name(entry.config_source),
        "sensitive": entry.is_sensitive,
        "acted_on": !not_acted_on,
    })
}

/// A topic's settings as DescribeConfigs v4 reports them.
pub async fn describe_topic(conn: &mut Connection, topic: &str) -> anyhow::Result<Vec<DescribeConfigsResourceResult>> {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(text(topic))
            .with_configuration_keys(None)])
        .with_include_documentation(true);
    let response = conn.send(&request, 4).await?;
    let result = response.results.into_iter().next().context("no result in the DescribeConfigs response")?;
    crate::connect::check(result.error_code, result.error_message.as_ref(), topic)?;
    Ok(result.configs)
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let json = args.connect.json();
    let (mut conn, _security) = args.connect.connect().await?;
    let (topic, configs) = match args.command {
        ConfigCommand::Describe { topic } => {
            let entries = describe_topic(&mut conn, &topic).await?;
            if json {
                let configs: Vec<serde_json::Value> = entries.iter().map(entry_json).collect();
                crate::connect::print_json(&serde_json::json!({ "topic": topic, "configs": configs }));
                return Ok(());
            }
            for entry in entries {
                println!("{}", line(&entry));
            }
            return Ok(());
        }
        ConfigCommand::Set { topic, settings } => {
            let mut configs = Vec::new();
            for setting in settings {
                let Some((key, value)) = setting.split_once('=') else {
                    bail!("'{setting}': expected KEY=VALUE");
                };
                configs.push(
                    AlterableConfig::default()
                        .with_name(text(key))
                        .with_config_operation(OP_SET)
                        .with_value(Some(text(value))),
                );
            }
            (topic, configs)
        }
        ConfigCommand::Delete { topic, keys } => {
            let configs = keys
                .iter()
                .map(|k| AlterableConfig::default().with_name(text(k)).with_config_operation(OP_DELETE))
                .collect();
            (topic, configs)
        }
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(text(&topic))
        .with_configs(configs)]);
    let response = conn.send(&request, 1).await?;
    for result in &response.responses {
        crate::connect::check(result.error_code, result.error_message.as_ref(), &topic)?;
    }
    println!("updated {topic}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_source_and_what_is_not_acted_on() {
        let entry = DescribeConfigsResourceResult::default()
            .with_name(text("retention.ms"))
            .with_value(Some(text("1000")))
            .with_config_source(1);
        assert_eq!(line(&entry), "retention.ms=1000  DYNAMIC_TOPIC_CONFIG");
        let idle = DescribeConfigsResourceResult::default()
            .with_name(text("preallocate"))
            .with_value(Some(text("false")))
            .with_config_source(5)
            .with_documentation(Some(text("Accepted, validated and stored; Runnel does not act on it yet.")));
        assert!(line(&idle).ends_with("(not acted on: Accepted, validated and stored; Runnel does not act on it yet.)"));
        let secret = DescribeConfigsResourceResult::default()
            .with_name(text("x"))
            .with_value(Some(text("pw")))
            .with_is_sensitive(true);
        assert!(!line(&secret).contains("pw"));
    }
}
