//! `runnel user scram set|list|delete`: SCRAM users in the metadata log, through
//! AlterUserScramCredentials and DescribeUserScramCredentials (what Kafka's
//! `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-256=[...]'` does). The
//! password is salted and hashed here; only the salted password travels, as in Kafka.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};
use kafka_protocol::protocol::StrBytes;
use runnel_broker::sasl::scram::{random_bytes, salted_password};
use runnel_metadata::scram::ScramMechanism;

use crate::connect::check;

#[derive(Parser)]
pub struct UserArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// SCRAM credentials.
    #[command(subcommand)]
    Scram(ScramCommand),
}

#[derive(Subcommand)]
enum ScramCommand {
    /// Create or replace a user's credential for one mechanism.
    Set {
        name: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// Users and their mechanisms (all users without names).
    List { names: Vec<String> },
    /// Remove a user's credential for one mechanism.
    Delete {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
    },
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(name)
        .with_context(|| format!("unknown mechanism {name}; use SCRAM-SHA-256 or SCRAM-SHA-512"))
}

pub async fn run(args: UserArgs) -> anyhow::Result<()> {
    let UserCommand::Scram(command) = args.command;
    let json = args.connect.json();
    let (mut conn, _security) = args.connect.connect().await?;
    match command {
        ScramCommand::Set { name, password, mechanism: m, iterations } => {
            let mechanism = mechanism(&m)?;
            let salt = random_bytes(32);
            let rounds = u32::try_from(iterations).context("iterations must be positive")?;
            let salted = salted_password(mechanism, &password, &salt, rounds);
            let request =
                AlterUserScramCredentialsRequest::default().with_upsertions(vec![ScramCredentialUpsertion::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_mechanism(mechanism.code())
                    .with_iterations(iterations)
                    .with_salt(salt.into())
                    .with_salted_password(salted.into())]);
            let response = conn.send(&request, 0).await?;
            for result in &response.results {
                check(result.error_code, result.error_message.as_ref(), &format!("setting {}", result.user))?;
            }
            println!("set {} credential of {name}", mechanism.name());
        }
        ScramCommand::Delete { name, mechanism: m } => {
            let mechanism = mechanism(&m)?;
            let request =
                AlterUserScramCredentialsRequest::default().with_deletions(vec![ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_mechanism(mechanism.code())]);
            let response = conn.send(&request, 0).await?;
            for result in &response.results {
                check(result.error_code, result.error_message.as_ref(), &format!("deleting {}", result.user))?;
            }
            println!("deleted {} credential of {name}", mechanism.name());
        }
        ScramCommand::List { names } => {
            let users = (!names.is_empty()).then(|| {
                names.iter().map(|n| UserName::default().with_name(StrBytes::from_string(n.clone()))).collect()
            });
            let response = conn.send(&DescribeUserScramCredentialsRequest::default().with_users(users), 0).await?;
            check(response.error_code, response.error_message.as_ref(), "listing users")?;
            if json {
                let mut users = Vec::new();
                for result in &response.results {
                    check(result.error_code, result.error_message.as_ref(), &format!("describing {}", result.user))?;
                    let credentials: Vec<serde_json::Value> = result
                        .credential_infos
                        .iter()
                        .map(|c| {
                            let name = ScramMechanism::from_code(c.mechanism).map_or("unknown", ScramMechanism::name);
                            serde_json::json!({ "mechanism": name, "iterations": c.iterations })
                        })
                        .collect();
                    users.push(serde_json::json!({ "user": result.user.to_string(), "credentials": credentials }));
                }
                crate::connect::print_json(&serde_json::json!({ "users": users }));
                return Ok(());
            }
            println!("{:<24} mechanisms", "user");
            for result in &response.results {
                check(result.error_code, result.error_message.as_ref(), &format!("describing {}", result.user))?;
                let mechanisms: Vec<String> = result
                    .credential_infos
                    .iter()
                    .map(|c| {
                        let name = ScramMechanism::from_code(c.mechanism).map_or("unknown", ScramMechanism::name);
                        format!("{name} (iterations {})", c.iterations)
                    })
                    .collect();
                println!("{:<24} {}", result.user, mechanisms.join(", "));
            }
        }
    }
    Ok(())
}
