//! `runnel perf e2e`: a producer at a fixed rate and a consumer tailing the topic in the
//! same process; latency is from the send call to the consumer's receipt, measured with
//! one monotonic clock (the send time travels in the first 8 bytes of each payload).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::consume::consumer_config;
use super::produce::{producer_config, send_loop, Delivery, Pace, ProduceArgs, Stats};
use super::report::{histogram, progress, Report};
use super::Cluster;

#[derive(Parser, Clone)]
pub struct E2eArgs {
    #[arg(long, default_value = "perf-e2e")]
    pub topic: String,
    /// Messages per second.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds to produce.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    #[arg(long, default_value = "all")]
    pub acks: String,
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u32,
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Extra librdkafka producer settings, KEY=VALUE.
    #[arg(long = "producer-config", value_name = "KEY=VALUE")]
    pub producer_config: Vec<String>,
    /// Extra librdkafka consumer settings, KEY=VALUE.
    #[arg(long = "consumer-config", value_name = "KEY=VALUE")]
    pub consumer_config: Vec<String>,
}

/// Assigns every partition at its current end, so nothing produced later is missed.
fn tail(consumer: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        list.add_partition_offset(topic, p, Offset::Offset(high))?;
    }
    consumer.assign(&list)?;
    Ok(())
}

pub fn run(cluster: &Cluster, json: bool, args: E2eArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.size >= 8, "--size must be at least 8 bytes (the send time travels in the payload)");
    super::ensure_topic(cluster, &args.topic, args.partitions, &[])?;
    let consumer: BaseConsumer = consumer_config(cluster, "runnel-perf-e2e", &args.consumer_config)?
        .set("fetch.wait.max.ms", "100")
        .set("fetch.error.backoff.ms", "10")
        .create()?;
    tail(&consumer, &args.topic, args.partitions)?;
    let produce_args = ProduceArgs {
        topic: args.topic.clone(),
        count: None,
        duration: Some(args.duration),
        size: args.size,
        partitions: args.partitions,
        acks: args.acks.clone(),
        compression: args.compression.clone(),
        linger_ms: args.linger_ms,
        batch_size: 1_000_000,
        producers: 1,
        rate: Some(args.rate),
        keys: None,
        producer_config: args.producer_config.clone(),
        topic_config: vec![],
        transaction_size: None,
    };
    let start = Instant::now();
    let stats = Arc::new(Stats::new(start));
    let producer: ThreadedProducer<Delivery> =
        producer_config(cluster, &produce_args)?.create_with_context(Delivery::new(stats.clone()))?;
    let expected = (args.rate as f64 * args.duration) as u64;
    let received = Arc::new(AtomicU64::new(0));
    let done_sending = Arc::new(AtomicBool::new(false));
    let latency = Arc::new(Mutex::new(histogram()));
    let reader = {
        let (received, done_sending, latency) = (received.clone(), done_sending.clone(), latency.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut local = histogram();
            let mut idle_since = None;
            loop {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(message) => {
                        let now_us = start.elapsed().as_micros() as u64;
                        let payload = message?.payload().map(<[u8]>::to_vec).unwrap_or_default();
                        let sent_us = u64::from_be_bytes(payload[..8].try_into()?);
                        local.saturating_record(now_us.saturating_sub(sent_us).max(1));
                        received.fetch_add(1, Ordering::Relaxed);
                        idle_since = None;
                    }
                    None if done_sending.load(Ordering::Relaxed) => {
                        // Stop once everything arrived, or after 5 s of silence.
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(5) {
                            break;
                        }
                    }
                    None => {}
                }
                if done_sending.load(Ordering::Relaxed) && received.load(Ordering::Relaxed) >= expected {
                    break;
                }
            }
            latency.lock().expect("histogram lock").add(&local)?;
            Ok(())
        })
    };
    let bar = progress(expected, json);
    let deadline = Some(start + Duration::from_secs_f64(args.duration));
    let mut buf = vec![b'x'; args.size];
    let sender = {
        let bar = bar.clone();
        let received = received.clone();
        move |buf: &mut [u8], i: u64| {
            buf[..8].copy_from_slice(&(start.elapsed().as_micros() as u64).to_be_bytes());
            if i.is_multiple_of(1000) {
                bar.set_position(received.load(Ordering::Relaxed));
            }
        }
    };
    let pace = Pace { count: u64::MAX, deadline, rate: Some(args.rate as f64), keys: None };
    let sent = send_loop(&producer, &stats, &args.topic, pace, &mut buf, sender);
    producer.flush(Duration::from_secs(30))?;
    done_sending.store(true, Ordering::Relaxed);
    reader.join().map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let got = received.load(Ordering::Relaxed);
    let latency = latency.lock().expect("histogram lock");
    Report {
        name: "e2e",
        messages: got,
        bytes: got * args.size as u64,
        elapsed,
        latency_us: &latency,
        latency_label: "send-to-receive",
        errors: sent.saturating_sub(got),
    }
    .print(json);
    Ok(())
}
