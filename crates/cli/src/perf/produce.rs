//! `runnel perf produce`: one or more librdkafka producers, each on its own thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::report::{histogram, progress, Report};
use super::Cluster;

#[derive(Parser, Clone)]
pub struct ProduceArgs {
    #[arg(long, default_value = "perf")]
    pub topic: String,
    /// Messages to send in all (split across producers). Default 1,000,000 unless --duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Seconds to run instead of a count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Partitions of the topic, when it is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// librdkafka batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u32,
    /// Producer clients, each with its own connection and thread.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Total messages per second across producers (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Give the messages keys, `key-0` to `key-{N-1}` in turn (updates for a compacted topic).
    #[arg(long)]
    pub keys: Option<u64>,
    /// Extra librdkafka producer settings, KEY=VALUE.
    #[arg(long = "producer-config", value_name = "KEY=VALUE")]
    pub producer_config: Vec<String>,
    /// Topic configs when the topic is created, KEY=VALUE.
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    pub topic_config: Vec<String>,
    /// Send in transactions of this many messages (a transactional producer per producer
    /// client, acks=all), committing each.
    #[arg(long = "transaction-size", value_name = "MESSAGES")]
    pub transaction_size: Option<u64>,
}

/// Shared by the producers' delivery callbacks.
pub struct Stats {
    start: Instant,
    pub latency_us: Mutex<Histogram<u64>>,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
}

impl Stats {
    pub fn new(start: Instant) -> Self {
        Stats { start, latency_us: Mutex::new(histogram()), acked: AtomicU64::new(0), errors: AtomicU64::new(0) }
    }
}

/// Delivery callback: the opaque is the send time in µs since the run started. `reported`
/// counts this producer's reports and wakes a transaction waiting for them.
pub struct Delivery(pub Arc<Stats>, pub Arc<Reported>);

impl Delivery {
    pub fn new(stats: Arc<Stats>) -> Self {
        Delivery(stats, Arc::default())
    }
}

/// One producer's delivery reports so far.
#[derive(Default)]
pub struct Reported {
    count: Mutex<u64>,
    changed: std::sync::Condvar,
}

impl Reported {
    fn add(&self) {
        *self.count.lock().expect("report count") += 1;
        self.changed.notify_all();
    }

    /// Waits until `count` reports have come, or `timeout` passed.
    fn wait_for(&self, count: u64, timeout: Duration) {
        let guard = self.count.lock().expect("report count");
        let _ = self.changed.wait_timeout_while(guard, timeout, |reported| *reported < count);
    }
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        self.1.add();
        match result {
            Ok(_) => {
                let now_us = self.0.start.elapsed().as_micros() as u64;
                let latency = now_us.saturating_sub(sent_us as u64).max(1);
                self.0.latency_us.lock().expect("histogram lock").saturating_record(latency);
                self.0.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.0.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

pub fn producer_config(cluster: &Cluster, args: &ProduceArgs) -> anyhow::Result<ClientConfig> {
    let mut config = cluster.config();
    config
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000");
    for (k, v) in super::pairs(&args.producer_config)? {
        config.set(k, v);
    }
    if args.transaction_size.is_some() {
        config.set("acks", "all").set("enable.idempotence", "true");
    }
    Ok(config)
}

/// Sends `pace.count` messages in transactions of `size`, committing each; returns how many
/// were handed to librdkafka and how many transactions committed.
fn send_transactions(
    producer: &ThreadedProducer<Delivery>,
    stats: &Stats,
    topic: &str,
    size: u64,
    pace: Pace,
    buf: &mut [u8],
) -> anyhow::Result<(u64, u64)> {
    let timeout = Duration::from_secs(60);
    producer.init_transactions(timeout)?;
    let (mut sent, mut committed) = (0, 0);
    while sent < pace.count && pace.deadline.is_none_or(|d| Instant::now() < d) {
        producer.begin_transaction()?;
        let batch = Pace { count: size.min(pace.count - sent), deadline: None, rate: None, keys: pace.keys };
        sent += send_loop(producer, stats, topic, batch, buf, |_, _| {});
        // The rdkafka crate's commit flushes by polling in steps of 100 ms whenever a message
        // is still in flight, which would cap a producer at 10 transactions a second; wait
        // for the delivery reports here instead (the polling thread serves them), so the
        // commit's own flush finds nothing left.
        producer.context().1.wait_for(sent, timeout);
        // A report is counted before librdkafka releases its message: let that finish.
        let released_by = Instant::now() + timeout;
        while producer.in_flight_count() > 0 && Instant::now() < released_by {
            std::thread::yield_now();
        }
        producer.commit_transaction(timeout)?;
        committed += 1;
    }
    Ok((sent, committed))
}

/// How much to send and how fast: `count` messages or until `deadline`, at `rate` msgs/s.
pub struct Pace {
    pub count: u64,
    pub deadline: Option<Instant>,
    pub rate: Option<f64>,
    /// Keys `key-0` .. `key-{n-1}` in turn (a compacted topic's updates); none when `None`.
    pub keys: Option<u64>,
}

/// Sends messages as `pace` says; `fill` is called per message to fill the buffer (the
/// first bytes may carry a timestamp). Returns how many were handed to librdkafka.
pub fn send_loop(
    producer: &ThreadedProducer<Delivery>,
    stats: &Stats,
    topic: &str,
    pace: Pace,
    buf: &mut [u8],
    mut fill: impl FnMut(&mut [u8], u64),
) -> u64 {
    let Pace { count, deadline, rate, keys } = pace;
    let mut sent = 0;
    let mut key = String::new();
    while sent < count && deadline.is_none_or(|d| Instant::now() < d) {
        if let Some(rate) = rate {
            let due = stats.start + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        fill(buf, sent);
        let mut record =
            BaseRecord::<str, [u8], usize>::with_opaque_to(topic, stats.start.elapsed().as_micros() as usize)
                .payload(&*buf);
        if let Some(keys) = keys {
            key.clear();
            std::fmt::Write::write_fmt(&mut key, format_args!("key-{}", sent % keys.max(1)))
                .expect("a String takes it");
            record = record.key(key.as_str());
        }
        loop {
            match producer.send::<str, [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, "send failed");
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        sent += 1;
    }
    sent
}

pub fn run(cluster: &Cluster, json: bool, args: ProduceArgs) -> anyhow::Result<()> {
    super::ensure_topic(cluster, &args.topic, args.partitions, &super::pairs(&args.topic_config)?)?;
    let total = args.count.unwrap_or(if args.duration.is_some() { u64::MAX } else { 1_000_000 });
    let per_producer = total.div_ceil(args.producers as u64);
    let start = Instant::now();
    let deadline = args.duration.map(|s| start + Duration::from_secs_f64(s));
    let stats = Arc::new(Stats::new(start));
    let bar = progress(if total == u64::MAX { 0 } else { total }, json);
    let rate = args.rate.map(|r| r as f64 / args.producers as f64);
    let transactions = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..args.producers)
        .map(|index| {
            let (stats, args, cluster) = (stats.clone(), args.clone(), cluster.clone());
            let transactions = transactions.clone();
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut config = producer_config(&cluster, &args)?;
                if args.transaction_size.is_some() {
                    config.set("transactional.id", format!("runnel-perf-{}-{index}", std::process::id()));
                }
                let producer: ThreadedProducer<Delivery> = config.create_with_context(Delivery::new(stats.clone()))?;
                let mut buf = vec![b'x'; args.size];
                let pace = Pace { count: per_producer, deadline, rate, keys: args.keys };
                let sent = match args.transaction_size {
                    Some(size) => {
                        let (sent, committed) =
                            send_transactions(&producer, &stats, &args.topic, size.max(1), pace, &mut buf)?;
                        transactions.fetch_add(committed, Ordering::Relaxed);
                        sent
                    }
                    None => send_loop(&producer, &stats, &args.topic, pace, &mut buf, |_, _| {}),
                };
                producer.flush(Duration::from_secs(60))?;
                Ok(sent)
            })
        })
        .collect();
    while threads.iter().any(|t| !t.is_finished()) {
        bar.set_position(stats.acked.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut sent = 0;
    for thread in threads {
        sent += thread.join().map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let acked = stats.acked.load(Ordering::Relaxed);
    let histogram = stats.latency_us.lock().expect("histogram lock");
    if args.transaction_size.is_some() {
        let committed = transactions.load(Ordering::Relaxed);
        let per_s = committed as f64 / elapsed.as_secs_f64().max(1e-9);
        if json {
            println!("{}", serde_json::json!({ "test": "transactions", "committed": committed, "per_s": per_s }));
        } else {
            println!("transactions: {committed} committed, {per_s:.0} per second");
        }
    }
    Report {
        name: "produce",
        messages: acked,
        bytes: acked * args.size as u64,
        elapsed,
        latency_us: &histogram,
        latency_label: "send-to-ack",
        // Whatever was handed to librdkafka and not acknowledged counts as an error.
        errors: sent.saturating_sub(acked),
    }
    .print(json);
    Ok(())
}
