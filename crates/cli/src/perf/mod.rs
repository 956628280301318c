//! `runnel perf`: load generators against a running broker, using librdkafka (the
//! reference client) so the figures are what real applications would see.
//!
//! Each command prints throughput (msgs/s, MB/s) and latency percentiles from an HDR
//! histogram, shows a progress bar on a terminal, and with `--json` prints one
//! machine-readable line instead.

mod consume;
mod e2e;
mod produce;
mod report;

use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Parser)]
pub struct PerfArgs {
    /// A broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
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
    let bootstrap = args.bootstrap.clone();
    let json = args.json;
    // librdkafka clients run on their own threads; keep them off the async runtime.
    tokio::task::spawn_blocking(move || match args.command {
        PerfCommand::Produce(a) => produce::run(&bootstrap, json, a),
        PerfCommand::Consume(a) => consume::run(&bootstrap, json, a),
        PerfCommand::E2e(a) => e2e::run(&bootstrap, json, a),
    })
    .await?
}

/// Creates `topic` with `partitions` unless it exists.
pub(crate) fn ensure_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
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
