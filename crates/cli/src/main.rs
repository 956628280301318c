//! The `runnel` binary: `runnel server` runs a node; `runnel topic` administers topics.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runnel_broker::BrokerConfig;

mod acl;
mod cluster;
mod config;
mod connect;
mod console;
mod delete_records;
mod group;
mod offsets;
mod perf;
mod producers;
mod quota;
mod reassign_wait;
mod records;
mod topic;
mod topic_cleaner;
mod transactions;
mod user;

#[derive(Parser)]
#[command(name = "runnel", version, about = "A Kafka-wire-compatible streaming platform in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (single-node broker and controller by default).
    Server(ServerArgs),
    /// Create, list, describe and delete topics.
    Topic(topic::TopicArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    Group(group::GroupArgs),
    /// Show the cluster: nodes, roles, racks, the active controller, metadata offsets.
    Cluster(cluster::ClusterArgs),
    /// SCRAM users: set, list, delete.
    User(user::UserArgs),
    /// Access control lists: add, list, remove (the options of Kafka's kafka-acls.sh).
    Acl(acl::AclArgs),
    /// Settings of a topic, a broker or every broker: describe, set and delete them live.
    Config(config::ConfigArgs),
    /// Client quotas by user and client id: describe, set, delete.
    Quota(quota::QuotaArgs),
    /// Active producers of a topic's partitions (DescribeProducers).
    Producers(producers::ProducersArgs),
    /// Transactions: list and describe transactional ids, abort a hanging transaction.
    Transactions(transactions::TransactionsArgs),
    /// Produce records from stdin, one per line.
    Produce(records::ProduceArgs),
    /// Print a topic's records (kcat's format strings, or JSON lines).
    Consume(records::ConsumeArgs),
    /// Print a shell completion script: `source <(runnel completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Benchmarks: produce, consume and end-to-end latency against a running broker.
    Perf(perf::PerfArgs),
}

#[derive(Parser)]
struct ServerArgs {
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kafka listener, HOST:PORT (port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    /// Address given to clients, HOST:PORT (defaults to the listener).
    #[arg(long)]
    advertise: Option<String>,
    /// This node's id.
    #[arg(long)]
    node_id: Option<i32>,
    /// A SCRAM user to create if missing, as Kafka's `kafka-storage format --add-scram`:
    /// 'SCRAM-SHA-256=[name=admin,password=admin-secret]' (repeatable).
    #[arg(long = "add-scram", value_name = "MECHANISM=[name=..,password=..]")]
    add_scram: Vec<String>,
    /// TOML file with broker settings by Kafka's names.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Any broker setting, KEY=VALUE (repeatable); overrides the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Roles of this node in a cluster: broker, controller or broker,controller.
    #[arg(long)]
    roles: Option<String>,
    /// The controller voters, ID@HOST:PORT,... (a cluster; without it, a single node).
    #[arg(long)]
    controller_quorum: Option<String>,
    /// Quorum addresses to join through, HOST:PORT,... (controller.quorum.bootstrap.servers),
    /// for a node that is not one of the initial voters.
    #[arg(long)]
    controller_bootstrap: Option<String>,
    /// Where this node serves the metadata quorum (needed in a cluster), HOST:PORT.
    #[arg(long)]
    controller_listen: Option<String>,
    /// The quorum address other nodes are told (defaults to --controller-listen).
    #[arg(long)]
    controller_advertise: Option<String>,
    /// This broker's rack: replicas of a partition are spread over racks.
    #[arg(long)]
    rack: Option<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (and /health).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Serve the web console at http://HOST:PORT/ (`off` for none). Default: 127.0.0.1:9644
    /// for a single node (a warning if that address is taken), none in a cluster.
    #[arg(long, value_name = "HOST:PORT|off")]
    http_listen: Option<String>,
    /// A host name the console answers to (repeatable); IP addresses and `localhost` always
    /// work. Requests naming any other host are refused (DNS rebinding).
    #[arg(long = "http-host", value_name = "NAME")]
    http_hosts: Vec<String>,
    /// Client properties (as `--command-config`) the console's chart sampler uses when the
    /// console's listener needs SASL; without them only this node's own traffic is charted.
    #[arg(long, value_name = "FILE")]
    http_sampler_config: Option<PathBuf>,
    /// How often the console samples its charts, in milliseconds (an hour of samples is kept
    /// at the default).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    http_sample_interval_ms: u64,
    /// How the node logs to stderr: `text` for people, `json` (one object a line) for log
    /// shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn broker_config(args: &ServerArgs) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        config.apply_toml(&text).with_context(|| format!("in {}", path.display()))?;
    }
    for setting in &args.settings {
        let (key, value) = setting.split_once('=').with_context(|| format!("--set {setting}: expected KEY=VALUE"))?;
        config.set(key.trim(), value.trim())?;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        if args.settings.iter().any(|s| s.trim_start().starts_with("listeners=")) {
            anyhow::bail!("--listen is the shorthand for one PLAINTEXT listener; give it or `listeners`, not both");
        }
        config.set("listen", listen)?;
    }
    if let Some(advertise) = &args.advertise {
        config.set("advertise", advertise)?;
    }
    if let Some(node_id) = args.node_id {
        config.node_id = node_id;
    }
    if let Some(roles) = &args.roles {
        config.set("process.roles", roles)?;
    }
    if let Some(voters) = &args.controller_quorum {
        config.set("controller.quorum.voters", voters)?;
    }
    if let Some(servers) = &args.controller_bootstrap {
        config.set("controller.quorum.bootstrap.servers", servers)?;
    }
    if let Some(listen) = &args.controller_listen {
        config.set("controller.listen", listen)?;
    }
    if let Some(advertise) = &args.controller_advertise {
        config.set("controller.advertise", advertise)?;
    }
    if let Some(rack) = &args.rack {
        config.set("broker.rack", rack)?;
    }
    for user in &args.add_scram {
        let parsed = runnel_broker::sasl::scram::parse_bootstrap_user(user)
            .map_err(|why| anyhow::anyhow!("--add-scram: {why}"))?;
        config.bootstrap_users.push(parsed);
    }
    Ok(config)
}

/// The console's socket, bound before the node starts: an address given with
/// `--http-listen` must be had; the single-node default is skipped with a warning when taken.
async fn console_listener(args: &ServerArgs, cluster: bool) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let (addr, explicit) = match args.http_listen.as_deref() {
        Some("off") => return Ok(None),
        Some(addr) => (addr, true),
        None if cluster => return Ok(None),
        None => (console::DEFAULT_LISTEN, false),
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if explicit => Err(anyhow::Error::new(e).context(format!("--http-listen {addr}"))),
        Err(e) => {
            tracing::warn!(error = %e, %addr, "the web console is not served (give --http-listen HOST:PORT or off)");
            Ok(None)
        }
    }
}

/// Starts the console against this node's first SASL_PLAINTEXT listener (so console users
/// sign in as Kafka users), else its first PLAINTEXT one.
fn start_console(
    listener: tokio::net::TcpListener,
    bound: &runnel_broker::Bound,
    sampler_security: Option<runnel_client::security::ClientSecurity>,
    sample_interval: std::time::Duration,
    hosts: Vec<String>,
) {
    use runnel_broker::listeners::SecurityProtocol;
    let of = |wanted: SecurityProtocol| bound.listeners.iter().find(|(_, protocol, _)| *protocol == wanted);
    let usable = of(SecurityProtocol::SaslPlaintext).or_else(|| of(SecurityProtocol::Plaintext));
    let Some((_, protocol, addr)) = usable else {
        tracing::warn!("the web console needs a PLAINTEXT or SASL_PLAINTEXT listener; it is not served");
        return;
    };
    // Anonymous access through a PLAINTEXT listener where clients must authenticate
    // elsewhere would let console users skip that: not served.
    if *protocol == SecurityProtocol::Plaintext
        && bound.listeners.iter().any(|(_, p, _)| *p != SecurityProtocol::Plaintext)
    {
        tracing::warn!(
            "the web console is not served: it would act anonymously on the PLAINTEXT listener while clients \
             authenticate on the others (add a SASL_PLAINTEXT listener for it)"
        );
        return;
    }
    let options = console::Options {
        kafka: console::reachable(*addr),
        sasl: *protocol == SecurityProtocol::SaslPlaintext,
        sampler_security,
        sample_interval,
        hosts,
    };
    if let Ok(local) = listener.local_addr() {
        println!("runnel console on http://{local}/");
    }
    console::start(listener, options, bound.throughput.clone());
}

/// Errors end the process with one line (the error and its causes) and status 1, never a
/// backtrace, whatever `RUST_BACKTRACE` says.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already
/// holds (an I/O error is often both a message's text and its source).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    match &cli.command {
        Command::Server(args) if args.log_format == LogFormat::Json => logs.json().with_current_span(false).init(),
        _ => logs.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => {
            let config = broker_config(&args)?;
            let console = runtime.block_on(console_listener(&args, config.is_cluster()))?;
            let sampler = match &args.http_sampler_config {
                Some(path) => Some(connect::security(Some(path))?),
                None => None,
            };
            let interval = std::time::Duration::from_millis(args.http_sample_interval_ms);
            let hosts = args.http_hosts.clone();
            runtime.block_on(runnel_broker::run_until_signal(config, args.metrics_listen, move |bound| {
                if let Some(listener) = console {
                    start_console(listener, &bound, sampler, interval, hosts);
                }
            }))?;
        }
        Command::Topic(args) => runtime.block_on(topic::run(args))?,
        Command::Group(args) => runtime.block_on(group::run(args))?,
        Command::User(args) => runtime.block_on(user::run(args))?,
        Command::Acl(args) => runtime.block_on(acl::run(args))?,
        Command::Config(args) => runtime.block_on(config::run(args))?,
        Command::Quota(args) => runtime.block_on(quota::run(args))?,
        Command::Producers(args) => runtime.block_on(producers::run(args))?,
        Command::Transactions(args) => runtime.block_on(transactions::run(args))?,
        // librdkafka clients run on their own threads: no async runtime needed.
        Command::Produce(args) => records::produce(args)?,
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "runnel", &mut script);
            // A reader that stops early (`| head`) is not an error.
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
        Command::Consume(args) => records::consume(args)?,
        Command::Perf(args) => runtime.block_on(perf::run(args))?,
        Command::Cluster(args) => runtime.block_on(cluster::run(args))?,
    }
    Ok(())
}
