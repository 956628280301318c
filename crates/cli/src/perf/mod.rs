//! `runnel perf`: load generators against a running broker, using librdkafka (the
//! reference client) so the figures are what real applications would see.
//!
//! Each command prints throughput (msgs/s, MB/s) and latency percentiles from an HDR
//! histogram, shows a progress bar on a terminal, and with `--json` prints one
//! machine-readable line instead. `--command-config FILE` secures every client it makes
//! (see [`Cluster`]).

mod consume;
mod e2e;
mod produce;
mod report;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use runnel_client::security::{jaas_options, parse_properties, ClientSecurity};

#[derive(Parser)]
pub struct PerfArgs {
    /// A broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    /// Client properties for a secured listener (security.protocol, sasl.*, ssl.*).
    #[arg(long, global = true, value_name = "FILE")]
    command_config: Option<PathBuf>,
    /// Print one JSON line instead of the human report.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Subcommand)]
enum PerfCommand {
    /// Produce as fast as possible (or at --rate) and report throughput and ack latency.
    Produce(produce::ProduceArgs),
    /// Consume a topic from the beginning and report throughput.
    Consume(consume::ConsumeArgs),
    /// Produce at a fixed rate while a consumer tails the topic; report send-to-receive latency.
    E2e(e2e::E2eArgs),
}

pub async fn run(args: PerfArgs) -> anyhow::Result<()> {
    let cluster = Cluster::new(&args.bootstrap, args.command_config.as_deref())?;
    let json = args.json;
    // librdkafka clients run on their own threads; keep them off the async runtime.
    tokio::task::spawn_blocking(move || match args.command {
        PerfCommand::Produce(a) => produce::run(&cluster, json, a),
        PerfCommand::Consume(a) => consume::run(&cluster, json, a),
        PerfCommand::E2e(a) => e2e::run(&cluster, json, a),
    })
    .await?
}

/// Where perf's clients connect and how: the bootstrap node and the client properties of
/// `--command-config`, which every librdkafka client (admin, producers, consumers) starts
/// from, so secured listeners are measured with the same code as plaintext ones.
#[derive(Clone)]
pub(crate) struct Cluster {
    bootstrap: String,
    command_config: Option<PathBuf>,
    /// The file's properties by librdkafka's names.
    properties: Vec<(String, String)>,
}

impl Cluster {
    pub(crate) fn new(bootstrap: &str, command_config: Option<&Path>) -> anyhow::Result<Self> {
        let properties = match command_config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                librdkafka_properties(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(Cluster {
            bootstrap: bootstrap.to_string(),
            command_config: command_config.map(Path::to_path_buf),
            properties,
        })
    }

    /// A librdkafka configuration with `bootstrap.servers` and the security properties; the
    /// caller adds its own settings.
    pub(crate) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    /// The same properties for Runnel's own client (`consume --client runnel`).
    pub(crate) fn security(&self) -> anyhow::Result<ClientSecurity> {
        crate::connect::security(self.command_config.as_deref())
    }

    pub(crate) fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

/// The client properties of a `--command-config` file for librdkafka, which takes Kafka's
/// names (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`, ...) as they are. Two
/// differences, as Runnel's own clients read the file: an empty value counts as unset, and
/// the Java client's `sasl.jaas.config` (which librdkafka does not know) gives
/// `sasl.username` and `sasl.password` unless they are set.
fn librdkafka_properties(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut properties = parse_properties(text);
    properties.retain(|_, v| !v.is_empty());
    if let Some(jaas) = properties.remove("sasl.jaas.config") {
        let (_, options) = jaas_options(&jaas).map_err(|why| anyhow::anyhow!("sasl.jaas.config: {why}"))?;
        for key in ["username", "password"] {
            if let Some(value) = options.get(key) {
                properties.entry(format!("sasl.{key}")).or_insert_with(|| value.clone());
            }
        }
    }
    Ok(properties.into_iter().collect())
}

/// Creates `topic` with `partitions` unless it exists.
pub(crate) fn ensure_topic(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = cluster.config().create()?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results = runtime.block_on(admin.create_topics(&[new], &AdminOptions::new()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Parses `KEY=VALUE` pairs.
pub(crate) fn pairs(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            let (k, v) = item.split_once('=').ok_or_else(|| anyhow::anyhow!("expected KEY=VALUE, got {item}"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> Vec<(String, String)> {
        librdkafka_properties(text).unwrap()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn kafka_names_pass_through() {
        let text = "# a comment\nsecurity.protocol=SASL_SSL\nsasl.mechanism = SCRAM-SHA-512\n\
                    sasl.username=bench\nsasl.password=s=cret\nssl.ca.location=/tmp/ca.pem\nssl.key.location=\n";
        assert_eq!(
            props(text),
            vec![
                pair("sasl.mechanism", "SCRAM-SHA-512"),
                pair("sasl.password", "s=cret"),
                pair("sasl.username", "bench"),
                pair("security.protocol", "SASL_SSL"),
                pair("ssl.ca.location", "/tmp/ca.pem"),
            ]
        );
        assert!(props("").is_empty());
    }

    #[test]
    fn jaas_line_becomes_username_and_password() {
        let jaas = "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
                    username=\"alice\" password=\"a b=c\";\n";
        assert_eq!(
            props(&format!("security.protocol=SASL_PLAINTEXT\n{jaas}")),
            vec![
                pair("sasl.password", "a b=c"),
                pair("sasl.username", "alice"),
                pair("security.protocol", "SASL_PLAINTEXT")
            ]
        );
        // librdkafka's own names win over the JAAS line.
        assert_eq!(
            props(&format!("sasl.username=bob\n{jaas}")),
            vec![pair("sasl.password", "a b=c"), pair("sasl.username", "bob")]
        );
        let error = librdkafka_properties("sasl.jaas.config=Module required username=alice;").unwrap_err();
        assert!(error.to_string().contains("sasl.jaas.config"), "{error}");
    }
}
