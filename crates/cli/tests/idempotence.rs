//! Idempotent producers, end to end: librdkafka with `enable.idempotence=true` writes through
//! the fault-injecting proxy (`support::proxy`), and every partition must then hold each
//! acknowledged message exactly once, in send order, at the offset its delivery report named.
//!
//! Each scenario is named and seeded: the seed drives the proxy's fault decisions, is printed
//! at the start (so a failure shows it) and can be overridden with `RUNNEL_TEST_SEED`
//! (decimal or 0x-hex). Each is bounded in time. The node advertises the proxy's address, so
//! every client connection (after bootstrap) goes through the proxy; reads after the chaos
//! phase go through it too, with the faults off.

mod support;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, Offset};
use support::proxy::{Faults, Proxy, ProxyStats, SplitMix64};
use support::*;
use tempfile::TempDir;

const SEED_ENV: &str = "RUNNEL_TEST_SEED";
const TOPIC: &str = "idempotent";
const PARTITIONS: i32 = 3;
/// Bound of one produce stream, faults and restarts included.
const STREAM_TIMEOUT: Duration = Duration::from_secs(45);
/// librdkafka fails a message it could not get acknowledged within this.
const MESSAGE_TIMEOUT_MS: &str = "40000";
/// Distinct client errors kept for the report (the rest are only counted).
const CLIENT_ERRORS_KEPT: usize = 20;

/// The scenario's seed: `RUNNEL_TEST_SEED` if set, else `default`; printed either way.
fn scenario_seed(name: &str, default: u64) -> u64 {
    let seed = match std::env::var(SEED_ENV) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse::<u64>(),
            };
            parsed.unwrap_or_else(|e| panic!("{SEED_ENV}={text}: not a u64 ({e})"))
        }
        Err(_) => default,
    };
    println!("scenario {name}: seed {seed:#x} (reproduce with {SEED_ENV}={seed:#x})");
    seed
}

// ----- what a producer was told -----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pending,
    Acked(Placed),
    /// The delivery failed definitively: the message may or may not have been written.
    Failed(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    acked: usize,
    failed: usize,
}

impl Counts {
    fn reported(&self) -> usize {
        self.acked + self.failed
    }
}

struct Book {
    outcomes: Vec<Outcome>,
    counts: Counts,
    /// Reports for a message that already had one: librdkafka promises exactly one.
    double_reports: Vec<String>,
    /// Distinct client error texts (at most [`CLIENT_ERRORS_KEPT`]) with how often each came.
    client_errors: Vec<(String, usize)>,
    client_errors_seen: usize,
}

/// Delivery reports by message index, filled by librdkafka's polling thread. Callbacks must
/// not panic (they run under C frames), so violations are recorded and asserted later.
struct Ledger {
    book: Mutex<Book>,
    progress: Condvar,
}

impl Ledger {
    fn new(messages: usize) -> Arc<Ledger> {
        Arc::new(Ledger {
            book: Mutex::new(Book {
                outcomes: vec![Outcome::Pending; messages],
                counts: Counts::default(),
                double_reports: Vec::new(),
                client_errors: Vec::new(),
                client_errors_seen: 0,
            }),
            progress: Condvar::new(),
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, index: usize, outcome: Outcome) {
        let mut book = self.book();
        let Some(slot) = book.outcomes.get_mut(index) else {
            book.double_reports.push(format!("report for unknown message {index}: {outcome:?}"));
            return;
        };
        if *slot != Outcome::Pending {
            let report = format!("message {index}: {slot:?} then {outcome:?}");
            book.double_reports.push(report);
            return;
        }
        *slot = outcome.clone();
        match outcome {
            Outcome::Acked(_) => book.counts.acked += 1,
            Outcome::Failed(_) => book.counts.failed += 1,
            Outcome::Pending => unreachable!("only reports are recorded"),
        }
        self.progress.notify_all();
    }

    fn client_error(&self, error: String) {
        let mut book = self.book();
        book.client_errors_seen += 1;
        if let Some((_, seen)) = book.client_errors.iter_mut().find(|(text, _)| *text == error) {
            *seen += 1;
        } else if book.client_errors.len() < CLIENT_ERRORS_KEPT {
            book.client_errors.push((error, 1));
        }
    }

    fn counts(&self) -> Counts {
        self.book().counts
    }

    /// Waits until the reported count exceeds `reported` or `timeout` passes.
    fn wait_beyond(&self, reported: usize, timeout: Duration) -> Counts {
        let book = self.book();
        let (book, _) = self
            .progress
            .wait_timeout_while(book, timeout, |book| book.counts.reported() <= reported)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        book.counts
    }
}

struct Reporting(Arc<Ledger>);

impl ClientContext for Reporting {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.client_error(format!("{error}: {reason}"));
    }
}

impl ProducerContext for Reporting {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(message) => Outcome::Acked(Placed { partition: message.partition(), offset: message.offset() }),
            Err((error, _)) => Outcome::Failed(error.to_string()),
        };
        self.0.record(index, outcome);
    }
}

/// Idempotent, acks=all, five requests in flight, small batches (so that many requests are
/// in flight to lose) and short backoffs (so that reconnects after each drop are quick).
fn idempotent_producer(bootstrap: &str, ledger: &Arc<Ledger>) -> ThreadedProducer<Reporting> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", "2")
        .set("batch.num.messages", "40")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .set("socket.timeout.ms", "20000")
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "200")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .create_with_context(Reporting(Arc::clone(ledger)))
        .expect("idempotent producer")
}

// ----- the workload -----

/// Message `i` has key `key-{i % keys}` and value `{i}:{key number}:{sequence within key}`.
struct Workload {
    messages: usize,
    keys: usize,
    /// Unreported messages at most: the stream stays spread over time, so that faults and
    /// a crash land in its middle.
    window: usize,
}

impl Workload {
    fn key(&self, index: usize) -> String {
        format!("key-{}", index % self.keys)
    }

    fn value(&self, index: usize) -> String {
        format!("{index}:{}:{}", index % self.keys, index / self.keys)
    }

    /// The index of a consumed message, after checking its key and value are exactly ours.
    fn index_of(&self, got: &Received) -> usize {
        let value = String::from_utf8_lossy(&got.msg.value);
        let index = value
            .split(':')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < self.messages)
            .unwrap_or_else(|| panic!("{:?}: value {value:?} is not one of ours", got.placed));
        assert_eq!(value, self.value(index), "{:?}: value of message {index}", got.placed);
        assert_eq!(
            got.msg.key.as_deref(),
            Some(self.key(index).as_bytes()),
            "{:?}: key of message {index}",
            got.placed
        );
        index
    }
}

/// Produces the workload, keeping at most `window` messages unreported, and calls
/// `mid_stream` with the counts after every wait, until every message has a report.
fn run_stream(
    producer: &ThreadedProducer<Reporting>,
    ledger: &Ledger,
    workload: &Workload,
    mut mid_stream: impl FnMut(Counts),
) -> Counts {
    let deadline = Instant::now() + STREAM_TIMEOUT;
    let mut next = 0;
    let mut counts = ledger.counts();
    while counts.reported() < workload.messages {
        assert!(
            Instant::now() < deadline,
            "stream unfinished after {STREAM_TIMEOUT:?}: {counts:?} of {} enqueued",
            next
        );
        while next < workload.messages && next - counts.reported() < workload.window {
            let (key, value) = (workload.key(next), workload.value(next));
            let record = BaseRecord::with_opaque_to(TOPIC, next).key(&key).payload(&value);
            if let Err((e, _)) = producer.send(record) {
                panic!("enqueueing message {next} failed: {e}");
            }
            next += 1;
        }
        mid_stream(counts);
        counts = ledger.wait_beyond(counts.reported(), Duration::from_millis(50));
    }
    counts
}

// ----- what the partitions hold -----

#[derive(Debug)]
struct Checked {
    /// Messages read back from all partitions.
    read: usize,
    acked: usize,
    failed: usize,
    /// Failed deliveries whose message is in the log anyway (allowed: their outcome was
    /// unknown to the client, not a loss).
    failed_but_written: usize,
}

/// Reads every partition through `bootstrap` and asserts exactly-once in send order: offsets
/// dense from 0, no message twice, per partition increasing send index, a key on one
/// partition, and every acknowledged message at the offset its delivery report named.
async fn verify_exactly_once(bootstrap: &str, workload: &Workload, outcomes: &[Outcome]) -> Checked {
    let highs: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            let (low, high) = watermarks(bootstrap, TOPIC, p);
            assert_eq!(low, 0, "partition {p}: log start moved");
            high
        })
        .collect();
    let total = usize::try_from(highs.iter().sum::<i64>()).expect("watermarks are non-negative");
    let starts: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    let received = consume(bootstrap, TOPIC, &starts, total).await;

    let mut position: Vec<Option<Placed>> = vec![None; workload.messages];
    let mut next_offset = vec![0i64; highs.len()];
    let mut last_index: Vec<Option<usize>> = vec![None; highs.len()];
    let mut partition_of_key: HashMap<usize, i32> = HashMap::new();
    for got in &received {
        let p = usize::try_from(got.placed.partition).expect("partition ids are small");
        assert_eq!(got.placed.offset, next_offset[p], "partition {p}: offsets must be dense from 0");
        next_offset[p] += 1;
        let index = workload.index_of(got);
        if let Some(first) = position[index] {
            panic!("DUPLICATE: message {index} written twice, at {first:?} and at {:?}", got.placed);
        }
        position[index] = Some(got.placed);
        if let Some(previous) = last_index[p] {
            assert!(index > previous, "partition {p}: message {index} at {:?} follows message {previous}", got.placed);
        }
        last_index[p] = Some(index);
        let partition = *partition_of_key.entry(index % workload.keys).or_insert(got.placed.partition);
        assert_eq!(partition, got.placed.partition, "message {index}: its key is also on partition {partition}");
    }
    assert_eq!(next_offset, highs, "read every partition up to its high watermark");

    let mut checked = Checked { read: received.len(), acked: 0, failed: 0, failed_but_written: 0 };
    for (index, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Acked(placed) => {
                checked.acked += 1;
                assert_eq!(position[index], Some(*placed), "acknowledged message {index}: where its report put it");
            }
            Outcome::Failed(_) => {
                checked.failed += 1;
                checked.failed_but_written += usize::from(position[index].is_some());
            }
            Outcome::Pending => panic!("message {index} never got a delivery report"),
        }
    }
    checked
}

/// With every message acknowledged, each key's sequence numbers read back 0, 1, 2, ...
async fn assert_every_key_gapless(bootstrap: &str, workload: &Workload) {
    let starts: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    let received = consume(bootstrap, TOPIC, &starts, workload.messages).await;
    let mut next_seq = vec![0usize; workload.keys];
    for got in &received {
        let index = workload.index_of(got);
        let (key, seq) = (index % workload.keys, index / workload.keys);
        assert_eq!(seq, next_seq[key], "key {key}: sequence {seq} at {:?}", got.placed);
        next_seq[key] += 1;
    }
    let expected: Vec<usize> = (0..workload.keys).map(|k| (workload.messages - k).div_ceil(workload.keys)).collect();
    assert_eq!(next_seq, expected, "every key's messages, no more");
}

/// Fails the test if librdkafka raised a fatal error (for an idempotent producer: the broker
/// answered in a way that breaks the idempotence guarantees, e.g. lost producer state).
fn assert_no_fatal_error(producer: &ThreadedProducer<Reporting>, ledger: &Ledger) {
    if let Some((code, reason)) = producer.client().fatal_error() {
        let book = ledger.book();
        panic!("librdkafka raised a fatal error: {code:?}: {reason}\nclient errors: {:#?}", book.client_errors);
    }
    let book = ledger.book();
    assert!(book.double_reports.is_empty(), "messages reported twice: {:#?}", book.double_reports);
}

fn report(name: &str, seed: u64, stats: &ProxyStats, counts: Counts, checked: &Checked, ledger: &Ledger) {
    let book = ledger.book();
    println!(
        "scenario {name} (seed {seed:#x}): {} messages read back, {} acknowledged, {} failed ({} of them written), \
         0 duplicates\n  proxy: {stats:?}\n  producer: {counts:?}, {} client errors: {:#?}",
        checked.read,
        checked.acked,
        checked.failed,
        checked.failed_but_written,
        book.client_errors_seen,
        book.client_errors
    );
}

/// A node (with `extra_args`) advertising the proxy's address, the proxy pointed at it, and
/// the topic.
async fn node_behind_proxy(dir: &TempDir, seed: u64, extra_args: &[&str]) -> (Node, Proxy) {
    let proxy = Proxy::start(seed);
    let advertise = proxy.addr().to_string();
    let args: Vec<&str> = ["--advertise", advertise.as_str()].into_iter().chain(extra_args.iter().copied()).collect();
    let node = Node::start(dir.path(), &args);
    proxy.set_target(socket_addr(node.bootstrap()));
    create_topic(&advertise, TOPIC, PARTITIONS, &[]).await;
    (node, proxy)
}

/// Producer state snapshot files (`<offset>.snapshot`) in the topic's partition directories.
fn producer_snapshots(data_dir: &std::path::Path) -> usize {
    (0..PARTITIONS)
        .map(|p| {
            let dir = data_dir.join(format!("{TOPIC}-{p}"));
            std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .filter(|entry| entry.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "snapshot")))
                .count()
        })
        .sum()
}

fn socket_addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text:?} is not an address: {e}"))
}

// ----- scenarios -----

/// 7% of responses dropped with their connection (each a request the node executed and the
/// client must resend), 5% of frames held 15 ms (so more requests are in flight to lose), and
/// one outage that closes every connection at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_through_dropped_connections_writes_each_message_once_in_order() {
    const NAME: &str = "idempotent_producer_through_dropped_connections_writes_each_message_once_in_order";
    let seed = scenario_seed(NAME, 0x1de4_907e_0001);
    let dir = TempDir::new().unwrap();
    let (_node, proxy) = node_behind_proxy(&dir, seed, &[]).await;
    let bootstrap = proxy.addr().to_string();
    let workload = Workload { messages: 20_000, keys: 60, window: 2_000 };
    proxy.set_faults(Faults { drop_response_probability: 0.07, delay_probability: 0.05, delay_ms: 15 });

    let ledger = Ledger::new(workload.messages);
    let producer = idempotent_producer(&bootstrap, &ledger);
    let mut outage_armed = false;
    let counts = tokio::task::block_in_place(|| {
        run_stream(&producer, &ledger, &workload, |counts| {
            // One outage after halfway: every live connection closes at once, with its in-flight
            // requests. Started by a drop, so that at least that connection is live.
            if !outage_armed && counts.reported() >= workload.messages / 2 {
                proxy.cut_at_next_dropped_produce_response(Duration::from_millis(300));
                outage_armed = true;
            }
        })
    });
    assert_no_fatal_error(&producer, &ledger);
    drop(producer);
    proxy.set_faults(Faults::NONE);
    let stats = proxy.stats();

    let outcomes = ledger.book().outcomes.clone();
    let checked = verify_exactly_once(&bootstrap, &workload, &outcomes).await;
    report(NAME, seed, &stats, counts, &checked, &ledger);
    assert_eq!(counts, Counts { acked: workload.messages, failed: 0 }, "without a crash every message is acknowledged");
    assert_eq!(checked.read, workload.messages, "each message exactly once");
    assert_every_key_gapless(&bootstrap, &workload).await;
    assert!(stats.responses_dropped >= 10, "the proxy dropped too few responses to prove anything: {stats:?}");
    assert!(stats.produce_responses_dropped >= 5, "too few Produce responses dropped: {stats:?}");
    assert_eq!(stats.outages, 1, "one outage: {stats:?}");
    assert!(stats.connections_cut >= 1, "the outage cut no live connection: {stats:?}");
}

/// The crash lands right after the node executed a Produce request whose response the proxy
/// dropped: the same drop starts an outage, so the producer can resend that request only to
/// the restarted node, which must recognise it from the producer state it recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_across_a_kill9_and_restart() {
    const NAME: &str = "idempotent_producer_across_a_kill9_and_restart";
    let seed = scenario_seed(NAME, 0x1de4_907e_0002);
    let dir = TempDir::new().unwrap();
    // Small segments: each partition rolls several times, so producer state snapshots exist
    // and recovery loads the latest one, then replays the batches after it.
    let (mut node, proxy) = node_behind_proxy(&dir, seed, &["--set", "log.internal.segment.bytes=16384"]).await;
    let bootstrap = proxy.addr().to_string();
    let workload = Workload { messages: 20_000, keys: 60, window: 2_000 };
    proxy.set_faults(Faults { drop_response_probability: 0.05, delay_probability: 0.05, delay_ms: 15 });

    let ledger = Ledger::new(workload.messages);
    let producer = idempotent_producer(&bootstrap, &ledger);
    let mut crash = Crash::Waiting;
    let counts = tokio::task::block_in_place(|| {
        run_stream(&producer, &ledger, &workload, |counts| {
            crash = crash.advance(counts, workload.messages / 3, &mut node, &proxy);
        })
    });
    let Crash::Done { at_kill, snapshots } = crash else { panic!("the stream ended before the crash: {crash:?}") };
    assert!(snapshots > 0, "segments rolled before the crash, so recovery starts from a snapshot");
    assert!(at_kill.reported() < workload.messages, "the crash must land mid-stream: {at_kill:?}");
    assert_no_fatal_error(&producer, &ledger);
    drop(producer);
    proxy.set_faults(Faults::NONE);
    let stats = proxy.stats();

    let outcomes = ledger.book().outcomes.clone();
    let checked = verify_exactly_once(&bootstrap, &workload, &outcomes).await;
    println!("  killed with {at_kill:?} reported, {snapshots} producer state snapshots on disk");
    report(NAME, seed, &stats, counts, &checked, &ledger);
    assert_eq!(stats.outages, 1, "the dropped Produce response started the crash's outage: {stats:?}");
    assert!(stats.produce_responses_dropped >= 1, "{stats:?}");
    assert!(checked.acked > at_kill.acked, "the producer acknowledged messages after the restart: {checked:?}");
}

/// The crash of the kill -9 scenario, advanced by the produce stream as it goes on.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// Until `reported_min` messages have a delivery report.
    Waiting,
    /// The proxy will start an outage at its next dropped Produce response.
    Armed { outages_before: u64 },
    /// Killed and restarted, with these delivery counts and producer state snapshot files
    /// at the kill.
    Done { at_kill: Counts, snapshots: usize },
}

impl Crash {
    /// Arms the proxy once `reported_min` messages are reported; once it dropped a Produce
    /// response (and so started an outage), kills the node with SIGKILL, restarts it over the
    /// same data directory, points the proxy at it and ends the outage.
    fn advance(self, counts: Counts, reported_min: usize, node: &mut Node, proxy: &Proxy) -> Crash {
        match self {
            Crash::Waiting if counts.reported() >= reported_min => {
                let outages_before = proxy.stats().outages;
                // Long enough to cover a restart; ended explicitly after it.
                proxy.cut_at_next_dropped_produce_response(Duration::from_secs(30));
                Crash::Armed { outages_before }
            }
            Crash::Armed { outages_before } if proxy.stats().outages > outages_before => {
                node.kill9();
                let snapshots = producer_snapshots(node.data_dir());
                node.restart();
                // The restarted node listens on a new port but advertises the same proxy address.
                proxy.set_target(socket_addr(node.bootstrap()));
                proxy.end_outage();
                Crash::Done { at_kill: counts, snapshots }
            }
            unchanged => unchanged,
        }
    }
}

// ----- the proxy itself, against a stand-in node -----

const API_KEY_PRODUCE: i16 = 0;
const API_KEY_METADATA: i16 = 3;
/// Bound on any single socket wait in the proxy checks.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames the stand-in node accepts at most.
const ECHO_FRAME_BYTES_MAX: usize = 1024 * 1024;

/// A stand-in node: answers every request frame with correlation id + the request's body
/// after its 8-byte header. Dropping it stops its acceptor; connection threads end when the
/// proxy closes their sockets.
struct EchoTarget {
    addr: SocketAddr,
    requests_received: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl EchoTarget {
    fn start() -> EchoTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo target");
        let addr = listener.local_addr().expect("echo target address");
        let requests_received = Arc::new(AtomicU64::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (received, stopping) = (Arc::clone(&requests_received), Arc::clone(&stopping));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let received = Arc::clone(&received);
                    std::thread::spawn(move || echo_frames(stream, &received));
                }
            })
        };
        EchoTarget { addr, requests_received, stopping, acceptor: Some(acceptor) }
    }

    fn received(&self) -> u64 {
        self.requests_received.load(Ordering::SeqCst)
    }
}

impl Drop for EchoTarget {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, SOCKET_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn echo_frames(mut stream: TcpStream, received: &AtomicU64) {
    loop {
        let mut size = [0u8; 4];
        if stream.read_exact(&mut size).is_err() {
            return;
        }
        let size = usize::try_from(i32::from_be_bytes(size)).unwrap_or(usize::MAX);
        if !(8..=ECHO_FRAME_BYTES_MAX).contains(&size) {
            return;
        }
        let mut body = vec![0u8; size];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        received.fetch_add(1, Ordering::SeqCst);
        let mut response = Vec::with_capacity(size);
        response.extend_from_slice(&i32::try_from(size - 4).expect("bounded frame").to_be_bytes());
        response.extend_from_slice(&body[4..8]);
        response.extend_from_slice(&body[8..]);
        if stream.write_all(&response).is_err() {
            return;
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT).expect("connect to the proxy");
    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).expect("read timeout");
    stream.set_write_timeout(Some(SOCKET_TIMEOUT)).expect("write timeout");
    stream
}

fn send_request(stream: &mut TcpStream, api_key: i16, correlation_id: i32, payload: &[u8]) {
    let mut frame = Vec::with_capacity(12 + payload.len());
    frame.extend_from_slice(&i32::try_from(8 + payload.len()).expect("small frame").to_be_bytes());
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame).expect("write a request through the proxy");
}

/// The response's (correlation id, payload), or `None` if the proxy closed the connection.
/// A read timeout fails the test: the proxy must either forward or close.
fn read_response(stream: &mut TcpStream) -> Option<(i32, Vec<u8>)> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return None,
        Err(e) => panic!("waiting for a response through the proxy: {e}"),
    }
    let size = usize::try_from(i32::from_be_bytes(size)).expect("non-negative response size");
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).expect("a forwarded response arrives whole");
    let correlation_id = i32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
    Some((correlation_id, body.split_off(4)))
}

/// Sends `requests` one at a time, reconnecting after each drop; true per dropped request.
fn drop_pattern(seed: u64, drop_response_probability: f64, requests: usize) -> Vec<bool> {
    let target = EchoTarget::start();
    let proxy = Proxy::start(seed);
    proxy.set_target(target.addr);
    proxy.set_faults(Faults { drop_response_probability, ..Faults::NONE });
    let mut stream = connect(proxy.addr());
    let mut dropped = Vec::with_capacity(requests);
    for i in 0..requests {
        let correlation_id = i32::try_from(i).expect("few requests");
        send_request(&mut stream, API_KEY_METADATA, correlation_id, b"ping");
        match read_response(&mut stream) {
            Some((id, payload)) => {
                assert_eq!((id, payload.as_slice()), (correlation_id, &b"ping"[..]), "request {i}");
                dropped.push(false);
            }
            None => {
                dropped.push(true);
                // Not after the last request: the proxy could count that connection after
                // the stats below are read (seeds that drop the last response failed so).
                if i + 1 < requests {
                    stream = connect(proxy.addr());
                }
            }
        }
    }
    let stats = proxy.stats();
    let drops = dropped.iter().filter(|&&d| d).count() as u64;
    assert_eq!(stats.responses_dropped, drops, "{stats:?}");
    let reconnects = drops - u64::from(dropped.last() == Some(&true));
    assert_eq!(stats.connections_accepted, reconnects + 1, "one connection plus one per drop: {stats:?}");
    dropped
}

#[test]
fn proxy_without_faults_forwards_every_frame_both_ways() {
    let seed = scenario_seed("proxy_without_faults_forwards_every_frame_both_ways", 0x9e0c_0001);
    let target = EchoTarget::start();
    let proxy = Proxy::start(seed);
    proxy.set_target(target.addr);
    let mut stream = connect(proxy.addr());
    const REQUESTS: i32 = 100;
    for correlation_id in 0..REQUESTS {
        // Sizes up to 200 KB cross the proxy's copy buffer several times.
        let len = usize::try_from(correlation_id).unwrap() * 2_003;
        let payload = support::pseudo_random_bytes(seed.wrapping_add(correlation_id as u64) | 1, len);
        send_request(&mut stream, API_KEY_PRODUCE, correlation_id, &payload);
        let (id, echoed) = read_response(&mut stream).expect("no faults: every response arrives");
        assert_eq!(id, correlation_id);
        assert!(echoed == payload, "request {correlation_id}: payload of {len} bytes changed in transit");
    }
    let expected = ProxyStats {
        connections_accepted: 1,
        requests_forwarded: REQUESTS as u64,
        responses_forwarded: REQUESTS as u64,
        ..ProxyStats::default()
    };
    // A request is counted once written whole, which may be after its response came back.
    let deadline = Instant::now() + Duration::from_secs(1);
    while proxy.stats() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(proxy.stats(), expected);
}

#[test]
fn proxy_dropping_every_response_closes_the_connection_after_the_request_reached_the_target() {
    let seed = scenario_seed("proxy_dropping_every_response_closes_the_connection", 0x9e0c_0002);
    let target = EchoTarget::start();
    let proxy = Proxy::start(seed);
    proxy.set_target(target.addr);
    proxy.set_faults(Faults { drop_response_probability: 1.0, ..Faults::NONE });
    let mut stream = connect(proxy.addr());
    send_request(&mut stream, API_KEY_PRODUCE, 7, b"batch");
    assert_eq!(read_response(&mut stream), None, "the response must be dropped with the connection");
    assert_eq!(target.received(), 1, "the request reached the target before its response was dropped");
    let stats = proxy.stats();
    assert_eq!(
        (stats.responses_dropped, stats.produce_responses_dropped, stats.requests_lost, stats.responses_forwarded),
        (1, 1, 1, 0),
        "{stats:?}"
    );
}

#[test]
fn proxy_fault_decisions_are_a_function_of_the_seed() {
    let seed = scenario_seed("proxy_fault_decisions_are_a_function_of_the_seed", 0x9e0c_0003);
    let first = drop_pattern(seed, 0.3, 200);
    let again = drop_pattern(seed, 0.3, 200);
    let other = drop_pattern(seed ^ 0x5555, 0.3, 200);
    assert_eq!(first, again, "the same seed must drop the same responses");
    assert_ne!(first, other, "another seed should drop other responses");
    let drops = first.iter().filter(|&&d| d).count();
    assert!((30..=90).contains(&drops), "{drops} of 200 dropped at p = 0.3");
    // The generator itself: the first outputs of splitmix64 from 0 (reference values).
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
}

#[test]
fn proxy_outage_cuts_live_connections_and_refuses_new_ones_until_it_ends() {
    let seed = scenario_seed("proxy_outage_cuts_live_connections_and_refuses_new_ones", 0x9e0c_0004);
    let target = EchoTarget::start();
    let proxy = Proxy::start(seed);
    proxy.set_target(target.addr);
    let mut live = connect(proxy.addr());
    send_request(&mut live, API_KEY_METADATA, 1, b"before");
    assert!(read_response(&mut live).is_some(), "no outage yet");

    let outage = Duration::from_millis(1_000);
    let cut_at = Instant::now();
    proxy.cut_for(outage);
    assert_eq!(read_response(&mut live), None, "the outage closes a live connection");
    let mut during = connect(proxy.addr());
    send_request(&mut during, API_KEY_METADATA, 2, b"during");
    assert_eq!(read_response(&mut during), None, "a connection opened during the outage is closed");
    assert!(cut_at.elapsed() < outage, "the checks above ran inside the outage");

    let healed = poll_until(SOCKET_TIMEOUT, Duration::from_millis(20), "the outage to end", || {
        let mut stream = connect(proxy.addr());
        send_request(&mut stream, API_KEY_METADATA, 3, b"after");
        read_response(&mut stream)
    });
    assert!(cut_at.elapsed() >= outage, "served again before the outage ended");
    assert_eq!(healed, (3, b"after".to_vec()));
    let stats = proxy.stats();
    assert_eq!(stats.connections_cut, 1, "{stats:?}");
    assert!(stats.connections_refused >= 1, "{stats:?}");
}

#[test]
fn proxy_delay_holds_frames_in_both_directions() {
    let seed = scenario_seed("proxy_delay_holds_frames_in_both_directions", 0x9e0c_0005);
    let target = EchoTarget::start();
    let proxy = Proxy::start(seed);
    proxy.set_target(target.addr);
    proxy.set_faults(Faults { delay_probability: 1.0, delay_ms: 100, ..Faults::NONE });
    let mut stream = connect(proxy.addr());
    let started = Instant::now();
    send_request(&mut stream, API_KEY_METADATA, 1, b"slow");
    assert_eq!(read_response(&mut stream), Some((1, b"slow".to_vec())));
    assert!(started.elapsed() >= Duration::from_millis(200), "request and response each held 100 ms");
    assert_eq!(proxy.stats().frames_delayed, 2);
}

/// Whether the freed port refuses connections is not asserted: tests run in parallel, and
/// another listener (or a client's self-connect) may take the port at once.
#[test]
fn dropping_the_proxy_closes_its_connections_promptly() {
    let seed = scenario_seed("dropping_the_proxy_closes_its_connections_promptly", 0x9e0c_0006);
    let target = EchoTarget::start();
    let proxy = Proxy::start(seed);
    proxy.set_target(target.addr);
    proxy.set_faults(Faults { delay_probability: 1.0, delay_ms: 100, ..Faults::NONE });
    let mut stream = connect(proxy.addr());
    send_request(&mut stream, API_KEY_METADATA, 1, b"hello");
    assert_eq!(read_response(&mut stream), Some((1, b"hello".to_vec())));
    let started = Instant::now();
    drop(proxy); // joins every proxy thread
    assert!(started.elapsed() < Duration::from_secs(3), "dropping took {:?}", started.elapsed());
    assert_eq!(read_response(&mut stream), None, "a live connection is closed");
}

#[test]
fn proxy_armed_outage_starts_at_the_next_dropped_produce_response_only() {
    let seed = scenario_seed("proxy_armed_outage_starts_at_the_next_dropped_produce_response_only", 0x9e0c_0007);
    let target = EchoTarget::start();
    let proxy = Proxy::start(seed);
    proxy.set_target(target.addr);
    proxy.set_faults(Faults { drop_response_probability: 1.0, ..Faults::NONE });
    proxy.cut_at_next_dropped_produce_response(Duration::from_secs(30));
    let mut stream = connect(proxy.addr());
    send_request(&mut stream, API_KEY_METADATA, 1, b"metadata");
    assert_eq!(read_response(&mut stream), None, "dropped");
    assert_eq!(proxy.stats().outages, 0, "a dropped Metadata response does not fire the trigger");
    let mut stream = connect(proxy.addr());
    send_request(&mut stream, API_KEY_PRODUCE, 2, b"batch");
    assert_eq!(read_response(&mut stream), None, "dropped");
    assert_eq!(proxy.stats().outages, 1, "the dropped Produce response fired it");
    proxy.set_faults(Faults::NONE);
    let mut during = connect(proxy.addr());
    send_request(&mut during, API_KEY_PRODUCE, 3, b"resend");
    assert_eq!(read_response(&mut during), None, "refused during the outage");
    proxy.end_outage();
    let mut after = connect(proxy.addr());
    send_request(&mut after, API_KEY_PRODUCE, 4, b"resend");
    assert_eq!(read_response(&mut after), Some((4, b"resend".to_vec())), "served once the outage ended");
    assert_eq!(target.received(), 3, "the resend during the outage never reached the target");
}

/// `runnel producers describe` (DescribeProducers): the leader lists the idempotent producer
/// librdkafka used, with its epoch and the last sequence it wrote, and no open transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_describe_lists_the_idempotent_producer_and_its_last_sequence() {
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "described", 2, &[]).await;
    let producer = support::producer(&bootstrap, &[("enable.idempotence", "true"), ("linger.ms", "0")]);
    let messages: Vec<Msg> = (0..10).map(|i| Msg::new(format!("k{i}"), format!("v{i}"))).collect();
    produce_all(&producer, "described", Some(1), &messages, None).await;
    let (ok, out) = runnel_cli(&bootstrap, &["producers", "describe", "described", "--output", "json"]);
    assert!(ok, "{out}");
    let described: serde_json::Value = serde_json::from_str(&out).unwrap();
    let producers = described["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1, "one producer, on partition 1 only: {out}");
    let p = &producers[0];
    assert_eq!(p["partition"], 1);
    assert!(p["producer_id"].as_i64().unwrap() >= 0);
    assert_eq!(p["producer_epoch"], 0);
    assert_eq!(p["last_sequence"], 9, "ten records, sequences 0-9");
    assert_eq!(p["current_transaction_start_offset"], -1);
    let (ok, text) = runnel_cli(&bootstrap, &["producers", "describe", "described", "--partition", "0"]);
    assert!(ok && text.lines().count() == 1, "partition 0 has no producer: {text}");
}
