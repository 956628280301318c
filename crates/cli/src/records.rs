//! `runnel produce` and `runnel consume`: a few records from the command line, with
//! librdkafka (as kcat and rpk do), so no other tool is needed to try a topic.
//!
//! Produce reads records from stdin, one per line (or per `--delimiter`), with an
//! optional key (`--key`, or `--key-separator` splitting each record) and headers; it
//! waits for every acknowledgement and fails if any record was refused. Consume prints
//! records from a start (`--offset beginning|end|N|@TIMESTAMP_MS`) with a kcat format
//! string or as JSON lines, and stops at the end of what was there when it started (or
//! after `--count`), unless `--follow`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::perf::Cluster;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    topic: String,
    /// The key of every record.
    #[arg(long, conflicts_with = "key_separator")]
    key: Option<String>,
    /// Split each record into key and value at the first SEP.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// What separates records on stdin (default: a newline).
    #[arg(long, default_value = "\n")]
    delimiter: String,
    /// A header of every record, KEY=VALUE (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Send to this partition (default: by key, as librdkafka partitions).
    #[arg(long)]
    partition: Option<i32>,
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// An idempotent producer (retries never duplicate a record).
    #[arg(long)]
    idempotence: bool,
}

#[derive(Parser)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: crate::connect::ConnectArgs,
    topic: String,
    /// beginning, end, an offset, or @TIMESTAMP_MS (the first record at or after it).
    #[arg(long, default_value = "beginning")]
    offset: String,
    /// Read these partitions only (repeatable; default: all).
    #[arg(long = "partition")]
    partitions: Vec<i32>,
    /// Read as a member of this consumer group, from its committed offsets (then
    /// `--offset`), committing what was printed.
    #[arg(long)]
    group: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    follow: bool,
    /// kcat's format: %t topic, %p partition, %o offset, %k key, %v value, %h headers,
    /// %T timestamp (ms), %K key length, %S value length; \n and \t.
    #[arg(long, default_value = "%v\\n")]
    format: String,
}

fn cluster(connect: &crate::connect::ConnectArgs) -> anyhow::Result<Cluster> {
    Cluster::new(&connect.bootstrap, connect.command_config.as_deref())
}

/// Splits `input` into records at `delimiter`; a trailing delimiter ends the last one.
fn records<'a>(input: &'a str, delimiter: &'a str) -> impl Iterator<Item = &'a str> {
    let trimmed = input.strip_suffix(delimiter).unwrap_or(input);
    trimmed.split(delimiter).filter(move |_| !input.is_empty())
}

pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin().lock().read_to_string_bounded(&mut input)?;
    let mut config = cluster(&args.connect)?.config();
    config.set("acks", &args.acks).set("compression.type", &args.compression).set("linger.ms", "5");
    config.set("enable.idempotence", if args.idempotence { "true" } else { "false" });
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().context("creating the producer")?;
    let mut headers = OwnedHeaders::new();
    for header in &args.headers {
        let (key, value) = header.split_once('=').with_context(|| format!("--header {header}: expected KEY=VALUE"))?;
        headers = headers.insert(Header { key, value: Some(value) });
    }
    let mut sent = 0u64;
    for record in records(&input, &args.delimiter) {
        let (key, value) = match (&args.key, &args.key_separator) {
            (Some(key), _) => (Some(key.as_str()), record),
            (None, Some(sep)) => match record.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k), v),
                None => bail!("record {}: no key separator '{sep}' in '{record}'", sent + 1),
            },
            (None, None) => (None, record),
        };
        let mut message = BaseRecord::<str, str>::to(&args.topic).payload(value).headers(headers.clone());
        if let Some(key) = key {
            message = message.key(key);
        }
        if let Some(partition) = args.partition {
            message = message.partition(partition);
        }
        producer.send(message).map_err(|(e, _)| e).with_context(|| format!("sending record {}", sent + 1))?;
        sent += 1;
    }
    producer.flush(Duration::from_secs(30)).context("waiting for acknowledgements")?;
    // A refused record is logged by librdkafka's delivery report; check none is left.
    if producer.in_flight_count() > 0 {
        bail!("{} records were not acknowledged", producer.in_flight_count());
    }
    eprintln!("produced {sent} records to {}", args.topic);
    Ok(())
}

/// Reading stdin whole, bounded (records on the command line are few).
trait ReadBounded {
    fn read_to_string_bounded(&mut self, out: &mut String) -> anyhow::Result<()>;
}

impl<R: BufRead> ReadBounded for R {
    fn read_to_string_bounded(&mut self, out: &mut String) -> anyhow::Result<()> {
        const MAX: u64 = 256 << 20;
        let read =
            std::io::Read::read_to_string(&mut std::io::Read::take(self, MAX + 1), out).context("reading stdin")?;
        if read as u64 > MAX {
            bail!("stdin holds more than 256 MiB: use runnel perf or a client library for bulk loads");
        }
        Ok(())
    }
}

/// A start offset as the user wrote it.
fn start(offset: &str) -> anyhow::Result<Offset> {
    Ok(match offset {
        "beginning" => Offset::Beginning,
        "end" => Offset::End,
        timestamp if timestamp.starts_with('@') => {
            Offset::Offset(timestamp[1..].parse().with_context(|| format!("--offset {offset}: a timestamp in ms"))?)
        }
        n => Offset::Offset(n.parse().with_context(|| format!("--offset {n}: beginning, end, N or @TIMESTAMP_MS"))?),
    })
}

/// One record in kcat's format.
pub fn formatted<M: Message>(format: &str, message: &M) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('%', Some(spec)) => {
                chars.next();
                match spec {
                    't' => out.extend_from_slice(message.topic().as_bytes()),
                    'p' => out.extend_from_slice(message.partition().to_string().as_bytes()),
                    'o' => out.extend_from_slice(message.offset().to_string().as_bytes()),
                    'k' => out.extend_from_slice(message.key().unwrap_or_default()),
                    'v' => out.extend_from_slice(message.payload().unwrap_or_default()),
                    'K' => out.extend_from_slice(message.key().map_or(-1, |k| k.len() as i64).to_string().as_bytes()),
                    'S' => {
                        out.extend_from_slice(message.payload().map_or(-1, |v| v.len() as i64).to_string().as_bytes())
                    }
                    'T' => out.extend_from_slice(message.timestamp().to_millis().unwrap_or(-1).to_string().as_bytes()),
                    'h' => {
                        let headers: Vec<String> = message
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| {
                                        format!("{}={}", h.key, String::from_utf8_lossy(h.value.unwrap_or_default()))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        out.extend_from_slice(headers.join(",").as_bytes());
                    }
                    '%' => out.push(b'%'),
                    other => out.extend_from_slice(format!("%{other}").as_bytes()),
                }
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push(b'\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                out.push(b'\t');
            }
            (c, _) => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    out
}

/// One record as a JSON object (a stable schema: topic, partition, offset, timestamp, key,
/// value, headers; key and value as UTF-8 text, lossily).
pub fn json<M: Message>(message: &M) -> String {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let headers: BTreeMap<String, Option<String>> =
        message.headers().map(|h| h.iter().map(|h| (h.key.to_string(), text(h.value))).collect()).unwrap_or_default();
    serde_json::json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": message.timestamp().to_millis(),
        "key": text(message.key()),
        "value": text(message.payload()),
        "headers": headers,
    })
    .to_string()
}

pub fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let from = start(&args.offset)?;
    let mut config = cluster(&args.connect)?.config();
    // A group commits exactly what was printed, once, at the end.
    config.set("enable.partition.eof", "false").set("enable.auto.commit", "false");
    config.set("group.id", args.group.as_deref().unwrap_or("runnel-consume"));
    config.set("auto.offset.reset", if matches!(from, Offset::End) { "latest" } else { "earliest" });
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    let metadata = consumer.fetch_metadata(Some(&args.topic), METADATA_TIMEOUT).context("reading metadata")?;
    let topic = metadata.topics().first().context("no such topic")?;
    if let Some(error) = topic.error() {
        let error = rdkafka::types::RDKafkaErrorCode::from(error);
        if error == rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition {
            bail!("topic {} does not exist (runnel topic list shows the topics)", args.topic);
        }
        bail!("topic {}: {error}", args.topic);
    }
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        topic.partitions().iter().map(|p| p.id()).collect()
    } else {
        args.partitions.clone()
    };
    // Where each partition ends now: without --follow, reading stops there.
    let mut ends = BTreeMap::new();
    for &p in &partitions {
        let (_, high) = consumer.fetch_watermarks(&args.topic, p, METADATA_TIMEOUT)?;
        ends.insert(p, high);
    }
    if args.group.is_some() {
        consumer.subscribe(&[&args.topic]).context("subscribing")?;
    } else {
        let mut assignment = TopicPartitionList::new();
        for &p in &partitions {
            let offset = match (&from, args.offset.starts_with('@')) {
                (Offset::Offset(ts), true) => {
                    let mut query = TopicPartitionList::new();
                    query.add_partition_offset(&args.topic, p, Offset::Offset(*ts))?;
                    let found = consumer.offsets_for_times(query, METADATA_TIMEOUT)?;
                    found.find_partition(&args.topic, p).map_or(Offset::End, |e| e.offset())
                }
                (other, _) => *other,
            };
            assignment.add_partition_offset(&args.topic, p, offset)?;
        }
        consumer.assign(&assignment).context("assigning partitions")?;
    }
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let done = |positions: &BTreeMap<i32, i64>, printed: u64| {
        args.count.is_some_and(|c| printed >= c)
            || (!args.follow && ends.iter().all(|(p, end)| positions.get(p).copied().unwrap_or(-1) + 1 >= *end))
    };
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    // Partitions with nothing to read are done from the start.
    let nothing_left = |consumer: &BaseConsumer, positions: &mut BTreeMap<i32, i64>| -> anyhow::Result<()> {
        for (&p, &end) in &ends {
            let (low, _) = consumer.fetch_watermarks(&args.topic, p, METADATA_TIMEOUT)?;
            if low >= end || matches!(from, Offset::End) {
                positions.entry(p).or_insert(end - 1);
            }
        }
        Ok(())
    };
    nothing_left(&consumer, &mut positions)?;
    while !done(&positions, printed) {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => bail!("consuming {}: {e}", args.topic),
            Some(Ok(message)) => {
                let line = if args.connect.json() {
                    let mut l = json(&message).into_bytes();
                    l.push(b'\n');
                    l
                } else {
                    formatted(&args.format, &message)
                };
                out.write_all(&line)?;
                positions.insert(message.partition(), message.offset());
                printed += 1;
            }
        }
    }
    out.flush()?;
    if args.group.is_some() && printed > 0 {
        let mut commit = TopicPartitionList::new();
        for (&p, &offset) in positions.iter().filter(|(_, o)| **o >= 0) {
            commit.add_partition_offset(&args.topic, p, Offset::Offset(offset + 1))?;
        }
        consumer.commit(&commit, rdkafka::consumer::CommitMode::Sync).context("committing the group's offsets")?;
    }
    Ok(())
}
