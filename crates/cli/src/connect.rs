//! How the CLI's commands connect: `--bootstrap` and, for a secured listener,
//! `--command-config FILE` with client properties by Kafka's names (`security.protocol`,
//! `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location`, `ssl.endpoint.identification.algorithm`),
//! the file Kafka's own tools take with `--command-config`. Also [`check`], how a command
//! turns a response's error code into an error.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::{parse_properties, ClientSecurity};
use runnel_client::Connection;
use runnel_protocol::ResponseError;

/// The connection options every client command takes.
#[derive(Args, Clone, Debug)]
pub struct ConnectArgs {
    /// A node to talk to, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    pub bootstrap: String,
    /// Client properties for a secured listener (security.protocol, sasl.*, ssl.*).
    #[arg(long, global = true, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// How list and describe commands print: text, or json (one document, a stable schema).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

impl ConnectArgs {
    /// `--output json`.
    pub fn json(&self) -> bool {
        self.output == "json"
    }
}

/// Prints `value` as one JSON document.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// The security the properties file asks for (plaintext without one).
pub fn security(command_config: Option<&Path>) -> anyhow::Result<ClientSecurity> {
    let Some(path) = command_config else { return Ok(ClientSecurity::plaintext()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    ClientSecurity::from_properties(&parse_properties(&text)).with_context(|| format!("in {}", path.display()))
}

impl ConnectArgs {
    /// Connects to the bootstrap node.
    pub async fn connect(&self) -> anyhow::Result<(Connection, ClientSecurity)> {
        let security = security(self.command_config.as_deref())?;
        let conn = connect_to(&self.bootstrap, &security).await?;
        Ok((conn, security))
    }
}

/// Connects to `addr` with `security`.
pub async fn connect_to(addr: &str, security: &ClientSecurity) -> anyhow::Result<Connection> {
    Connection::connect_secure(addr, None, security)
        .await
        .with_context(|| format!("connecting to {addr} (is a node listening there? name one with --bootstrap)"))
}

/// Connects to node `id` at the address `metadata` lists for it (as the client's
/// listener advertises it).
pub async fn connect_to_node(
    metadata: &kafka_protocol::messages::MetadataResponse,
    id: i32,
    security: &ClientSecurity,
) -> anyhow::Result<Connection> {
    let broker = metadata
        .brokers
        .iter()
        .find(|b| b.node_id.0 == id)
        .with_context(|| format!("node {id} is not among the live brokers now; try again"))?;
    connect_to(&format!("{}:{}", broker.host, broker.port), security).await
}

/// The leader of partition `partition` of the (one) topic `metadata` describes.
pub fn partition_leader(metadata: &kafka_protocol::messages::MetadataResponse, partition: i32) -> Option<i32> {
    metadata
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.leader_id.0)
}

/// An error naming `what` failed, Kafka's error name and the response's message, unless
/// `code` is 0 (success).
pub fn check(code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    anyhow::bail!("{what}: {error}{}", message.map(|m| format!(": {m}")).unwrap_or_default())
}
