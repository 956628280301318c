//! `runnel perf consume`: librdkafka consumers reading a topic from the beginning.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::report::{histogram, progress, Report};
use super::Cluster;

#[derive(Parser, Clone)]
pub struct ConsumeArgs {
    #[arg(long, default_value = "perf")]
    pub topic: String,
    /// Messages to read in all (default: everything in the topic when the run starts).
    #[arg(long)]
    pub count: Option<u64>,
    /// Consumer clients; partitions are split between them.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Join this consumer group (subscribe) instead of assigning partitions.
    #[arg(long)]
    pub group: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Extra librdkafka consumer settings, KEY=VALUE.
    #[arg(long = "consumer-config", value_name = "KEY=VALUE")]
    pub consumer_config: Vec<String>,
    /// `rdkafka` (librdkafka, decodes every record) or `runnel` (raw fetches that only walk
    /// batch headers: what the broker can serve when the client keeps up).
    #[arg(long, default_value = "rdkafka")]
    pub client: String,
}

pub fn consumer_config(cluster: &Cluster, group: &str, extra: &[String]) -> anyhow::Result<ClientConfig> {
    let mut config = cluster.config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576");
    for (k, v) in super::pairs(extra)? {
        config.set(k, v);
    }
    Ok(config)
}

/// Partitions of `topic` and the total of their high watermarks minus low watermarks.
fn topic_extent(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<(Vec<i32>, u64)> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut total = 0;
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?;
        total += (high - low).max(0) as u64;
    }
    Ok((partitions, total))
}

pub fn run(cluster: &Cluster, json: bool, args: ConsumeArgs) -> anyhow::Result<()> {
    let probe: BaseConsumer = consumer_config(cluster, "runnel-perf-probe", &[])?.create()?;
    let (partitions, available) = topic_extent(&probe, &args.topic)?;
    anyhow::ensure!(!partitions.is_empty(), "topic {} has no partitions", args.topic);
    match args.client.as_str() {
        "rdkafka" => {}
        "runnel" => return run_raw(cluster, json, &args, &probe, &partitions),
        other => anyhow::bail!("--client must be rdkafka or runnel, not {other}"),
    }
    let total = args.count.unwrap_or(available);
    let received = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let ages = Arc::new(Mutex::new(histogram()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.timeout);
    let bar = progress(total, json);
    let group = args.group.clone().unwrap_or_else(|| "runnel-perf".to_string());
    let threads: Vec<_> = (0..args.consumers)
        .map(|k| {
            let mine: Vec<i32> = partitions.iter().copied().filter(|p| *p as usize % args.consumers == k).collect();
            let (received, bytes, ages, args, cluster, group) =
                (received.clone(), bytes.clone(), ages.clone(), args.clone(), cluster.clone(), group.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let consumer: BaseConsumer = consumer_config(&cluster, &group, &args.consumer_config)?.create()?;
                if args.group.is_some() {
                    consumer.subscribe(&[&args.topic])?;
                } else {
                    let mut list = TopicPartitionList::new();
                    for p in mine {
                        list.add_partition_offset(&args.topic, p, Offset::Beginning)?;
                    }
                    consumer.assign(&list)?;
                }
                let mut local = histogram();
                while received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
                    let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
                    let message = message?;
                    let size = message.payload_len() + message.key().map_or(0, |k| k.len());
                    bytes.fetch_add(size as u64, Ordering::Relaxed);
                    received.fetch_add(1, Ordering::Relaxed);
                    if let Some(ts) = message.timestamp().to_millis() {
                        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                        local.saturating_record(((now_ms - ts).max(0) as u64 * 1000).max(1));
                    }
                }
                ages.lock().expect("histogram lock").add(&local)?;
                Ok(())
            })
        })
        .collect();
    while threads.iter().any(|t| !t.is_finished()) {
        bar.set_position(received.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(10));
    }
    for thread in threads {
        thread.join().map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let got = received.load(Ordering::Relaxed);
    let ages = ages.lock().expect("histogram lock");
    Report {
        name: "consume",
        messages: got,
        bytes: bytes.load(Ordering::Relaxed),
        elapsed,
        latency_us: &ages,
        latency_label: "record age at receipt",
        errors: total.saturating_sub(got),
    }
    .print(json);
    Ok(())
}

/// `--client runnel`: one raw fetcher per consumer, each over its share of the partitions.
fn run_raw(
    cluster: &Cluster,
    json: bool,
    args: &ConsumeArgs,
    probe: &BaseConsumer,
    partitions: &[i32],
) -> anyhow::Result<()> {
    use runnel_client::fetcher::{fetch_to_end, Cursor, Moved};
    let mut cursors = Vec::new();
    for p in partitions {
        let (low, high) = probe.fetch_watermarks(&args.topic, *p, Duration::from_secs(10))?;
        cursors.push(Cursor { topic: args.topic.clone(), partition: *p, offset: low, end: high });
    }
    let total: u64 = cursors.iter().map(|c| (c.end - c.offset) as u64).sum();
    let security = cluster.security()?;
    let bar = progress(total, json);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.consumers.clamp(1, 4)).enable_all().build()?;
    let start = Instant::now();
    let moved: Vec<Moved> = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.consumers)
            .map(|k| {
                let mut mine: Vec<Cursor> =
                    cursors.iter().filter(|c| c.partition as usize % args.consumers == k).cloned().collect();
                let (bootstrap, security, bar) = (cluster.bootstrap().to_string(), security.clone(), bar.clone());
                tokio::spawn(async move {
                    let mut conn = crate::connect::connect_to(&bootstrap, &security).await?;
                    let mut last = 0;
                    let moved = fetch_to_end(&mut conn, &mut mine, 64 << 20, 16 << 20, |m| {
                        bar.inc(m.records - last);
                        last = m.records;
                    })
                    .await?;
                    Ok::<_, anyhow::Error>(moved)
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.push(task.await??);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let records: u64 = moved.iter().map(|m| m.records).sum();
    let bytes: u64 = moved.iter().map(|m| m.bytes).sum();
    Report {
        name: "consume",
        messages: records,
        bytes,
        elapsed,
        latency_us: &histogram(),
        latency_label: "(raw client: no per-record latency)",
        errors: total.saturating_sub(records),
    }
    .print(json);
    Ok(())
}
