//! `runnel config describe|set|delete`: a topic's or a broker's settings over
//! DescribeConfigs and IncrementalAlterConfigs (Kafka's `kafka-configs.sh --entity-type
//! topics|brokers`, `--entity-default` being `--broker-default`). Describe shows every
//! setting with where its value comes from, and marks the ones Runnel accepts and stores
//! but does not act on yet; set and delete change a running cluster, and the change
//! applies at once on every node concerned.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_client::Connection;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

#[derive(Parser)]
pub struct ConfigArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: ConfigCommand,
}

/// What a config command is about: one topic, one broker, or every broker's default.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// A topic.
    #[arg(long)]
    topic: Option<String>,
    /// One broker, by node id (its dynamic settings).
    #[arg(long)]
    broker: Option<i32>,
    /// The cluster-wide default of every broker's dynamic settings.
    #[arg(long)]
    broker_default: bool,
}

impl Target {
    /// The resource type and name on the wire, and how to name it to the user.
    fn resource(&self) -> (i8, String, String) {
        match (&self.topic, self.broker) {
            (Some(topic), _) => (RESOURCE_TOPIC, topic.clone(), topic.clone()),
            (None, Some(id)) => (RESOURCE_BROKER, id.to_string(), format!("broker {id}")),
            (None, None) => (RESOURCE_BROKER, String::new(), "the broker default".to_string()),
        }
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Every setting of a topic or a broker, its value and its source.
    Describe {
        #[command(flatten)]
        target: Target,
    },
    /// Set settings (IncrementalAlterConfigs SET), KEY=VALUE ...
    Set {
        #[command(flatten)]
        target: Target,
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// Remove values set at runtime, so that the next level's values apply again.
    Delete {
        #[command(flatten)]
        target: Target,
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
pub fn entry_json(entry: &DescribeConfigsResourceResult) -> serde_json::Value {
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
    describe(conn, RESOURCE_TOPIC, topic, topic).await
}

async fn describe(
    conn: &mut Connection,
    resource_type: i8,
    name: &str,
    what: &str,
) -> anyhow::Result<Vec<DescribeConfigsResourceResult>> {
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configuration_keys(None)])
        .with_include_documentation(true);
    let response = conn.send(&request, 4).await?;
    let result = response.results.into_iter().next().context("no result in the DescribeConfigs response")?;
    crate::connect::check(result.error_code, result.error_message.as_ref(), what)?;
    Ok(result.configs)
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let json = args.connect.json();
    let (mut conn, security) = args.connect.connect().await?;
    let (target, configs) = match args.command {
        ConfigCommand::Describe { target } => {
            let (resource_type, name, what) = target.resource();
            if let Some(id) = target.broker {
                // A broker describes its own settings: ask that node.
                let metadata = conn.send(&kafka_protocol::messages::MetadataRequest::default(), 12).await?;
                conn = crate::connect::connect_to_node(&metadata, id, &security).await?;
            }
            let entries = describe(&mut conn, resource_type, &name, &what).await?;
            if json {
                let configs: Vec<serde_json::Value> = entries.iter().map(entry_json).collect();
                let key = if resource_type == RESOURCE_TOPIC { "topic" } else { "broker" };
                crate::connect::print_json(&serde_json::json!({ key: name, "configs": configs }));
                return Ok(());
            }
            for entry in entries {
                println!("{}", line(&entry));
            }
            return Ok(());
        }
        ConfigCommand::Set { target, settings } => {
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
            (target, configs)
        }
        ConfigCommand::Delete { target, keys } => {
            let configs = keys
                .iter()
                .map(|k| AlterableConfig::default().with_name(text(k)).with_config_operation(OP_DELETE))
                .collect();
            (target, configs)
        }
    };
    let (resource_type, name, what) = target.resource();
    alter(&mut conn, resource_type, &name, &what, configs).await?;
    println!("updated {what}");
    Ok(())
}

async fn alter(
    conn: &mut Connection,
    resource_type: i8,
    name: &str,
    what: &str,
    configs: Vec<AlterableConfig>,
) -> anyhow::Result<()> {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_configs(configs)]);
    let response = conn.send(&request, 1).await?;
    for result in &response.responses {
        crate::connect::check(result.error_code, result.error_message.as_ref(), what)?;
    }
    Ok(())
}

/// Sets (`Some`) and deletes (`None`) settings of `topic` (IncrementalAlterConfigs), as
/// `runnel config set|delete --topic` does.
pub async fn alter_topic(
    conn: &mut Connection,
    topic: &str,
    changes: &[(String, Option<String>)],
) -> anyhow::Result<()> {
    let configs = changes
        .iter()
        .map(|(key, value)| match value {
            Some(value) => AlterableConfig::default()
                .with_name(text(key))
                .with_config_operation(OP_SET)
                .with_value(Some(text(value))),
            None => AlterableConfig::default().with_name(text(key)).with_config_operation(OP_DELETE),
        })
        .collect();
    alter(conn, RESOURCE_TOPIC, topic, &format!("topic {topic}"), configs).await
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
