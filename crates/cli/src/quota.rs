//! `runnel quota describe|set|delete`: client quotas over DescribeClientQuotas and
//! AlterClientQuotas (Kafka's `kafka-configs.sh --entity-type users|clients`). An entity is
//! a user, a client id, or both; `--user-default` / `--client-id-default` name the default
//! entity of that type.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

#[derive(Parser)]
pub struct QuotaArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: QuotaCommand,
}

/// Which entity: a user and/or a client id, each named or the default.
#[derive(clap::Args, Clone, Default)]
struct Entity {
    /// A user (the principal's name, e.g. `alice`; `ANONYMOUS` on listeners without
    /// authentication).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user: every user without a quota of its own.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default client id: every client id without a quota of its own.
    #[arg(long)]
    client_id_default: bool,
}

impl Entity {
    /// (type, name) parts; a `None` name is the default.
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut parts = Vec::new();
        if self.user.is_some() || self.user_default {
            parts.push(("user", self.user.clone()));
        }
        if self.client_id.is_some() || self.client_id_default {
            parts.push(("client-id", self.client_id.clone()));
        }
        parts
    }
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// The quotas of the entities matching the flags (all of them without flags).
    Describe {
        #[command(flatten)]
        entity: Entity,
    },
    /// Set quotas of an entity: producer_byte_rate, consumer_byte_rate,
    /// request_percentage, controller_mutation_rate (KEY=VALUE ...).
    Set {
        #[command(flatten)]
        entity: Entity,
        #[arg(required = true, value_name = "KEY=VALUE")]
        quotas: Vec<String>,
    },
    /// Remove quotas of an entity.
    Delete {
        #[command(flatten)]
        entity: Entity,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// `user=alice, client-id=<default>`.
fn entity_label<'a>(parts: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    parts.map(|(kind, name)| format!("{kind}={}", name.unwrap_or("<default>"))).collect::<Vec<_>>().join(", ")
}

pub async fn run(args: QuotaArgs) -> anyhow::Result<()> {
    let json = args.connect.json();
    let (mut conn, _security) = args.connect.connect().await?;
    let (entity, ops) = match args.command {
        QuotaCommand::Describe { entity } => {
            // Exact names, defaults, or (no flag for a type) any entity.
            let components = entity
                .parts()
                .into_iter()
                .map(|(kind, name)| {
                    let match_type = if name.is_some() { 0 } else { 1 };
                    ComponentData::default()
                        .with_entity_type(text(kind))
                        .with_match_type(match_type)
                        .with_match(name.as_deref().map(text))
                })
                .collect();
            let request = DescribeClientQuotasRequest::default().with_components(components).with_strict(false);
            let response = conn.send(&request, 1).await?;
            crate::connect::check(response.error_code, response.error_message.as_ref(), "quotas")?;
            let entries = response.entries.unwrap_or_default();
            if json {
                let entries: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|e| {
                        let entity: serde_json::Map<String, serde_json::Value> = e
                            .entity
                            .iter()
                            .map(|p| (p.entity_type.to_string(), p.entity_name.as_ref().map(|n| n.to_string()).into()))
                            .collect();
                        let values: serde_json::Map<String, serde_json::Value> =
                            e.values.iter().map(|v| (v.key.to_string(), v.value.into())).collect();
                        serde_json::json!({ "entity": entity, "quotas": values })
                    })
                    .collect();
                crate::connect::print_json(&serde_json::json!({ "quotas": entries }));
                return Ok(());
            }
            for e in &entries {
                let label = entity_label(e.entity.iter().map(|p| (p.entity_type.as_str(), p.entity_name.as_deref())));
                let values: Vec<String> = e.values.iter().map(|v| format!("{}={}", v.key.as_str(), v.value)).collect();
                println!("{label}: {}", values.join(" "));
            }
            return Ok(());
        }
        QuotaCommand::Set { entity, quotas } => {
            let mut ops = Vec::new();
            for quota in quotas {
                let (key, value) = quota.split_once('=').with_context(|| format!("'{quota}': expected KEY=VALUE"))?;
                let value: f64 =
                    value.trim().parse().with_context(|| format!("'{quota}': the value is not a number"))?;
                ops.push(OpData::default().with_key(text(key.trim())).with_value(value).with_remove(false));
            }
            (entity, ops)
        }
        QuotaCommand::Delete { entity, keys } => {
            let ops = keys.iter().map(|k| OpData::default().with_key(text(k)).with_remove(true)).collect();
            (entity, ops)
        }
    };
    let parts = entity.parts();
    if parts.is_empty() {
        bail!("name an entity: --user NAME, --user-default, --client-id ID or --client-id-default");
    }
    let label = entity_label(parts.iter().map(|(kind, name)| (*kind, name.as_deref())));
    let entity_data = parts
        .iter()
        .map(|(kind, name)| {
            EntityData::default().with_entity_type(text(kind)).with_entity_name(name.as_deref().map(text))
        })
        .collect();
    let request = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(entity_data).with_ops(ops)])
        .with_validate_only(false);
    let response = conn.send(&request, 1).await?;
    for entry in &response.entries {
        crate::connect::check(entry.error_code, entry.error_message.as_ref(), &label)?;
    }
    println!("updated quotas of {label}");
    Ok(())
}
