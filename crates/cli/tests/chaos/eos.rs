//! Exactly-once under the chaos: a consume-transform-produce service (librdkafka's
//! transactional producer and a `read_committed` consumer) copies every record of the
//! input topic to an output topic, `{partition}:{offset}:{value}`, committing its input
//! offsets in the same transaction (`send_offsets_to_transaction`). On any error it does
//! what such a service does: abort and rewind to its committed offsets, or start over
//! (a new producer with the same transactional id fences the old one and aborts its open
//! transaction). Meanwhile an idempotent feeder writes the input, and the faults kill
//! partition leaders, the transaction coordinator, the active controller, cut leaders off
//! and restart nodes.
//!
//! Every [`ABORT_EVERY`]th transaction is aborted on purpose and every [`CRASH_EVERY`]th
//! session crashes mid-transaction (its successor fences it), once their records are in
//! the log, so that aborted records are always there to be skipped.
//!
//! The checker (`eos_check.rs`, pure) then holds the service to Kafka's promise:
//! the committed output holds every input record below the committed input offsets exactly
//! once and nothing else (no aborted or uncommitted record is read by `read_committed`, no
//! input processed twice into committed output, input offsets and output committed
//! together); and the last stable offset of every output partition reaches its log end
//! once the faults heal (no hanging transaction).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::eos_check::check_exactly_once;
use crate::support::cluster::CapturedLog;
use crate::support::DetachedDrop;
use crate::{lock, Access, Errors, PARTITIONS, TOPIC};

pub(crate) const OUTPUT: &str = "chaos-eos-out";
pub(crate) const GROUP: &str = "chaos-eos";
pub(crate) const TRANSACTIONAL_ID: &str = "chaos-eos-service";
/// The feeder's values are `p9-{seq}`, the checker's `Value::Ours`.
const FEEDER_ID: u32 = 9;
/// Pace of the feeder: about 200 records a second.
const FEED_INTERVAL: Duration = Duration::from_millis(5);
/// Records per transaction at most, and how long the service gathers them. librdkafka
/// hands a consumer's records out partition by partition, and every rewind (an abort, a
/// crash) starts again from the committed offsets: small transactions would starve the
/// partitions it hands out last.
const BATCH: usize = 500;
const GATHER: Duration = Duration::from_millis(100);
/// Bound of one transactional call (init, send offsets, commit, abort).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before starting over after the service could not start.
const RESTART_PAUSE: Duration = Duration::from_millis(500);
/// Every so many transactions of a session is aborted on purpose, and a session crashes
/// mid-transaction after so many.
const ABORT_EVERY: usize = 7;
/// librdkafka debug lines kept from the service's producers.
const LOG_LINES: usize = 20_000;
/// A consumer that delivers nothing for this long is replaced by one positioned at the
/// committed offsets, as a service's watchdog would: librdkafka can deadlock inside a
/// consumer when a fenced broker leaves the metadata (confluentinc/librdkafka#5476; the
/// replicated chaos test replaces its consumers for the same reason).
const CONSUMER_STALL: Duration = Duration::from_secs(10);
/// A worker in one librdkafka call this long is abandoned (calls time out after
/// [`CALL_TIMEOUT`]).
const STUCK: Duration = Duration::from_secs(45);
const CRASH_EVERY: usize = 30;
/// How long reading the output back may take.
const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// The idempotent producer writing the input until stopped.
pub(crate) struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Feeder {
    pub(crate) fn start(access: &Access) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let producer: BaseProducer = access
            .config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("feeder");
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let producer = DetachedDrop::new(producer);
            let mut seq = 0u32;
            while !flag.load(Ordering::SeqCst) {
                let (key, value) = (format!("key-{}", seq % 60), format!("p{FEEDER_ID}-{seq}"));
                match producer.send(BaseRecord::to(TOPIC).key(&key).payload(&value)) {
                    Ok(()) => seq += 1,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
                    Err((error, _)) => eprintln!("feeder: {error}"),
                }
                producer.poll(FEED_INTERVAL);
            }
            let _ = producer.flush(Duration::from_secs(120));
            seq as usize
        });
        Feeder { stop, thread: Some(thread) }
    }

    /// Stops feeding once every record sent has been delivered or failed; how many were sent.
    pub(crate) fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().expect("stopped once").join().expect("feeder thread")
    }
}

/// What the service did.
#[derive(Debug, Default)]
pub(crate) struct ServiceLedger {
    pub(crate) committed: usize,
    pub(crate) records_committed: usize,
    pub(crate) aborted: usize,
    /// Sessions that crashed mid-transaction on purpose.
    pub(crate) crashes: usize,
    /// Consumers replaced after delivering nothing for [`CONSUMER_STALL`].
    pub(crate) consumers_replaced: usize,
    /// Workers abandoned, stuck in a librdkafka call (see [`supervise`]).
    pub(crate) abandoned: usize,
    /// The last input offset read from each partition.
    pub(crate) last_read: BTreeMap<i32, i64>,
    pub(crate) restarts: usize,
    pub(crate) errors: Errors,
    /// What the service is doing now and since when (for a failure's report).
    pub(crate) doing: (&'static str, Option<Instant>),
}

/// Notes what the service does next.
fn doing(ledger: &Mutex<ServiceLedger>, what: &'static str) {
    lock(ledger).doing = (what, Some(Instant::now()));
}

pub(crate) struct Service {
    stop: Arc<AtomicBool>,
    /// The producers' last debug lines.
    pub(crate) log: CapturedLog,
    pub(crate) ledger: Arc<Mutex<ServiceLedger>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why a step failed, and what the service does about it.
enum Failure {
    /// Abort the transaction and rewind the consumer to the committed offsets.
    Abort(String),
    /// Start over with a new producer (fencing the old) and consumer.
    Restart(String),
    /// Start over while the old producer's transaction is open (a service that crashed
    /// mid-transaction): the successor must fence it and abort the transaction.
    Crash,
}

struct Session {
    producer: DetachedDrop<BaseProducer<CapturedLog>>,
    consumer: DetachedDrop<BaseConsumer>,
    /// Transactions this session began.
    transactions: usize,
}

fn input_partitions() -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(TOPIC, partition);
    }
    list
}

/// A read_committed consumer of the service's group, positioned at its committed offsets
/// (asked with require_stable: librdkafka waits out a transaction still committing them).
fn positioned_consumer(access: &Access, ledger: &Mutex<ServiceLedger>) -> Result<DetachedDrop<BaseConsumer>, String> {
    let consumer: BaseConsumer = access
        .config()
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| e.to_string())?;
    let consumer = DetachedDrop::new(consumer);
    doing(ledger, "fetching committed offsets");
    let committed =
        consumer.committed_offsets(input_partitions(), CALL_TIMEOUT).map_err(|e| format!("committed: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    for element in committed.elements() {
        let start = match element.offset() {
            Offset::Offset(offset) => Offset::Offset(offset),
            _ => Offset::Beginning,
        };
        assignment.add_partition_offset(TOPIC, element.partition(), start).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| format!("assign: {e}"))?;
    Ok(consumer)
}

impl Session {
    fn start(access: &Access, ledger: &Mutex<ServiceLedger>, log: &CapturedLog) -> Result<Session, String> {
        // librdkafka's transaction debug lines are kept: a service that stops says why.
        let producer: BaseProducer<CapturedLog> = access
            .config()
            .set("transactional.id", TRANSACTIONAL_ID)
            .set("transaction.timeout.ms", "30000")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5")
            .set("debug", "eos,protocol")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug)
            .create_with_context(log.clone())
            .map_err(|e| e.to_string())?;
        let producer = DetachedDrop::new(producer);
        doing(ledger, "init_transactions");
        producer.init_transactions(CALL_TIMEOUT).map_err(|e| format!("init: {e}"))?;
        Ok(Session { producer, consumer: positioned_consumer(access, ledger)?, transactions: 0 })
    }

    /// One transaction: gathers up to [`BATCH`] records, writes their copies and the next
    /// input offsets, commits. The number of records committed.
    fn step(&mut self, ledger: &Mutex<ServiceLedger>) -> Result<usize, Failure> {
        doing(ledger, "consuming");
        let mut gathered = Vec::new();
        let deadline = Instant::now() + GATHER;
        while gathered.len() < BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.consumer.poll(left) {
                None => break,
                Some(Err(error)) => return Err(Failure::Restart(format!("consume: {error}"))),
                Some(Ok(message)) => {
                    let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
                    let key = message.key().map(|k| k.to_vec()).unwrap_or_default();
                    gathered.push((message.partition(), message.offset(), key, value));
                }
            }
        }
        if gathered.is_empty() {
            return Ok(0);
        }
        {
            let mut book = lock(ledger);
            for (partition, offset, _, _) in &gathered {
                book.last_read.insert(*partition, *offset);
            }
        }
        let requires_abort = |what: &str, error: KafkaError| match &error {
            KafkaError::Transaction(e) if e.txn_requires_abort() => Failure::Abort(format!("{what}: {error}")),
            _ => Failure::Restart(format!("{what}: {error}")),
        };
        doing(ledger, "producing");
        self.producer.begin_transaction().map_err(|e| Failure::Restart(format!("begin: {e}")))?;
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for (partition, offset, key, value) in &gathered {
            let copy = format!("{partition}:{offset}:{value}");
            loop {
                let record = BaseRecord::to(OUTPUT).partition(*partition).key(key.as_slice()).payload(copy.as_str());
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((error, _)) => return Err(requires_abort("send", error)),
                }
            }
            next.insert(*partition, offset + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in &next {
            offsets.add_partition_offset(TOPIC, *partition, Offset::Offset(*offset)).expect("offset");
        }
        let metadata = self.consumer.group_metadata().ok_or_else(|| Failure::Restart("no group metadata".into()))?;
        doing(ledger, "send_offsets_to_transaction");
        self.producer
            .send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT)
            .map_err(|e| requires_abort("send offsets", e))?;
        // Some transactions end badly on purpose, once their records are in the log: an
        // abort, or a crash whose successor fences this producer and aborts what it left.
        self.transactions += 1;
        if self.transactions.is_multiple_of(ABORT_EVERY) || self.transactions.is_multiple_of(CRASH_EVERY) {
            self.producer.flush(CALL_TIMEOUT).map_err(|e| requires_abort("flush", e))?;
            return Err(match self.transactions.is_multiple_of(CRASH_EVERY) {
                true => Failure::Crash,
                false => Failure::Abort("aborted on purpose".into()),
            });
        }
        // A retriable commit error leaves the outcome unknown: the commit is retried.
        let mut attempts = 0;
        doing(ledger, "commit_transaction");
        loop {
            match self.producer.commit_transaction(CALL_TIMEOUT) {
                Ok(()) => return Ok(gathered.len()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < 3 => attempts += 1,
                Err(error) => return Err(requires_abort("commit", error)),
            }
        }
    }
}

impl Service {
    pub(crate) fn start(access: &Access) -> Service {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(ServiceLedger::default()));
        let (flag, book, access) = (Arc::clone(&stop), Arc::clone(&ledger), access.clone());
        let log = CapturedLog::keeping(LOG_LINES);
        let lines = log.clone();
        let thread = std::thread::spawn(move || supervise(&access, &flag, &book, &lines));
        Service { stop, log, ledger, thread: Some(thread) }
    }

    pub(crate) fn stop(mut self) -> ServiceLedger {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().expect("stopped once").join().expect("service thread");
        std::mem::take(&mut *lock(&self.ledger))
    }
}

/// Runs the service on a worker thread, as a service's supervisor would: a worker stuck in
/// one librdkafka call for [`STUCK`] (well past the call's own timeout) is abandoned (it
/// exits if the call ever returns) and a new worker starts, whose producer fences the
/// stuck one. librdkafka's main thread has been seen to stop handling responses in these
/// runs, after a response was received (its debug log shows the receive and nothing
/// after), which leaves a transactional call waiting for ever.
fn supervise(access: &Access, stop: &Arc<AtomicBool>, ledger: &Arc<Mutex<ServiceLedger>>, log: &CapturedLog) {
    loop {
        let abandoned = Arc::new(AtomicBool::new(false));
        let worker = {
            let (access, stop, abandoned, ledger, log) =
                (access.clone(), Arc::clone(stop), Arc::clone(&abandoned), Arc::clone(ledger), log.clone());
            std::thread::spawn(move || {
                let halted = || stop.load(Ordering::SeqCst) || abandoned.load(Ordering::SeqCst);
                run(&access, &halted, &ledger, &log)
            })
        };
        loop {
            // The watchdog's pace, not a synchronisation: it looks at the ledger.
            std::thread::sleep(Duration::from_millis(200));
            if worker.is_finished() {
                let _ = worker.join();
                return;
            }
            let stuck = lock(ledger).doing.1.is_some_and(|since| since.elapsed() >= STUCK);
            if stop.load(Ordering::SeqCst) && stuck {
                // Stopping, with the worker stuck for good: leave it.
                return;
            }
            if stuck {
                abandoned.store(true, Ordering::SeqCst);
                let mut book = lock(ledger);
                book.abandoned += 1;
                let what = format!("abandoned a worker stuck in {} for {STUCK:?}", book.doing.0);
                book.errors.add(what);
                book.doing = ("starting over", Some(Instant::now()));
                break;
            }
        }
    }
}

fn run(access: &Access, halted: &dyn Fn() -> bool, ledger: &Mutex<ServiceLedger>, log: &CapturedLog) {
    let mut session: Option<Session> = None;
    let mut delivered = Instant::now();
    while !halted() {
        let Some(current) = session.as_mut() else {
            match Session::start(access, ledger, log) {
                Ok(started) => session = Some(started),
                Err(error) => {
                    lock(ledger).errors.add(error);
                    std::thread::sleep(RESTART_PAUSE);
                }
            }
            continue;
        };
        match current.step(ledger) {
            Ok(0) if delivered.elapsed() >= CONSUMER_STALL => {
                match positioned_consumer(access, ledger) {
                    Ok(consumer) => {
                        current.consumer = consumer;
                        lock(ledger).consumers_replaced += 1;
                    }
                    Err(error) => lock(ledger).errors.add(error),
                }
                delivered = Instant::now();
            }
            Ok(0) => {}
            Ok(records) => {
                delivered = Instant::now();
                let mut ledger = lock(ledger);
                ledger.committed += 1;
                ledger.records_committed += records;
            }
            Err(Failure::Abort(why)) => {
                let mut book = lock(ledger);
                if why != "aborted on purpose" {
                    book.errors.add(why);
                }
                book.aborted += 1;
                drop(book);
                doing(ledger, "abort_transaction");
                let rewound = current
                    .producer
                    .abort_transaction(CALL_TIMEOUT)
                    .map_err(|e| format!("abort: {e}"))
                    .and_then(|()| positioned_consumer(access, ledger));
                match rewound {
                    Ok(consumer) => current.consumer = consumer,
                    Err(error) => {
                        lock(ledger).errors.add(error);
                        lock(ledger).restarts += 1;
                        session = None;
                    }
                }
            }
            Err(Failure::Restart(why)) => {
                let mut book = lock(ledger);
                book.errors.add(why);
                book.restarts += 1;
                session = None;
            }
            Err(Failure::Crash) => {
                lock(ledger).crashes += 1;
                // The crashed producer lingers (as a zombie would) until its successor has
                // fenced it.
                let zombie = session.take();
                let successor = Session::start(access, ledger, log);
                drop(zombie);
                match successor {
                    Ok(started) => session = Some(started),
                    Err(error) => lock(ledger).errors.add(error),
                }
            }
        }
    }
}

/// The service's committed input offsets, asked with require_stable.
pub(crate) fn committed_offsets(access: &Access) -> Result<BTreeMap<i32, i64>, String> {
    let consumer: BaseConsumer = access
        .config()
        .set("group.id", GROUP)
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| e.to_string())?;
    let consumer = DetachedDrop::new(consumer);
    let committed = consumer.committed_offsets(input_partitions(), CALL_TIMEOUT).map_err(|e| e.to_string())?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { o } else { 0 }))
        .collect())
}

/// The end offset of every partition of `topic` for `isolation` (the last stable offset for
/// read_committed, the high watermark otherwise).
pub(crate) fn ends(access: &Access, topic: &str, isolation: &str) -> Result<BTreeMap<i32, i64>, String> {
    let consumer: BaseConsumer = access
        .config()
        .set("group.id", "chaos-eos-reader")
        .set("isolation.level", isolation)
        .create()
        .map_err(|e| e.to_string())?;
    let consumer = DetachedDrop::new(consumer);
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, high)| (p, high))
                .map_err(|e| format!("{topic}-{p}: {e}"))
        })
        .collect()
}

/// What a fresh consumer of `isolation` reads from `partition` of the input at `offset`
/// within 5 s: how many records, the first offset, the errors.
fn probe(access: &Access, isolation: &str, partition: i32, offset: i64) -> String {
    let consumer: BaseConsumer = access
        .config()
        .set("group.id", "chaos-eos-probe")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("probe");
    let consumer = DetachedDrop::new(consumer);
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(TOPIC, partition, Offset::Offset(offset)).expect("assign");
    consumer.assign(&assignment).expect("assign");
    let (mut count, mut first, mut errors) = (0, None, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                count += 1;
                first.get_or_insert(message.offset());
            }
            Some(Err(error)) => errors.push(error.to_string()),
            None => {}
        }
    }
    format!("{isolation} {TOPIC}-{partition} from {offset}: {count} records, first {first:?}, errors {errors:?}")
}

/// Every output record `isolation` reads, by partition, up to `ends`.
pub(crate) fn read_output(access: &Access, isolation: &str, ends: &BTreeMap<i32, i64>) -> BTreeMap<i32, Vec<String>> {
    let consumer: BaseConsumer = access
        .config()
        .set("group.id", "chaos-eos-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("output reader");
    let consumer = DetachedDrop::new(consumer);
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment.add_partition_offset(OUTPUT, *partition, Offset::Beginning).expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut read: BTreeMap<i32, Vec<String>> = ends.keys().map(|p| (*p, Vec::new())).collect();
    let deadline = Instant::now() + READ_TIMEOUT;
    let done = |consumer: &BaseConsumer| {
        let Ok(positions) = consumer.position() else { return false };
        ends.iter().all(|(p, end)| {
            *end == 0
                || positions
                    .find_partition(OUTPUT, *p)
                    .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end))
        })
    };
    while !done(&consumer) {
        assert!(Instant::now() < deadline, "{isolation} read of {OUTPUT} did not reach {ends:?}");
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            if message.offset() < ends[&message.partition()] {
                let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
                read.get_mut(&message.partition()).expect("assigned").push(value);
            }
        }
    }
    read
}

/// How long the service may take to copy the rest of the input once the faults healed.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// Transactions the service must commit after the last heal: it recovers.
const STEADY_TRANSACTIONS: usize = 5;

/// The scenario: the cluster, the output topic, the feeder and the service; faults for
/// `default_secs` (or `RUNNEL_CHAOS_SECS`); heal; the service catches up; check.
pub(crate) async fn scenario(default_secs: u64) {
    use crate::support::cluster::{create_topic_with_configs_via_secure, eventually};
    use crate::{high_watermarks, read_final_log, Chaos, Fault, Security, PROGRESS_TIMEOUT, SETTLE_TIMEOUT};

    let seed = crate::support::u64_from_env(crate::SEED_ENV).unwrap_or(crate::SEED_DEFAULT);
    let phase = Duration::from_secs(crate::support::u64_from_env(crate::SECS_ENV).unwrap_or(default_secs));
    let mut faults = Fault::chosen();
    faults.push(Fault::KillTransactionCoordinator);
    eprintln!(
        "chaos[{seed:#x}] exactly-once: seed {seed:#x}, fault phase {phase:?}, faults {:?} (reproduce with {}={seed:#x})",
        faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
        crate::SEED_ENV
    );
    let _failure_last = crate::support::FailureLast::install();
    let mut chaos = Chaos::start(seed, faults, Security::Plaintext).await;
    let addr = chaos.cluster.kafka_addr(crate::NODE_IDS[0]).to_string();
    let security = chaos.cluster.client_security().clone();
    eventually(crate::support::cluster::CONVERGE_TIMEOUT, &format!("chaos[{seed:#x}] creating {OUTPUT}"), || async {
        let configs = crate::TOPIC_CONFIGS;
        match create_topic_with_configs_via_secure(&addr, &security, OUTPUT, PARTITIONS, 3, configs).await {
            Ok(_) => Ok(()),
            Err(e) if e.is(kafka_protocol::error::ResponseError::TopicAlreadyExists) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let access = chaos.access.clone();
    let feeder = Feeder::start(&access);
    let service = Service::start(&access);
    let committed_so_far = |service: &Service| lock(&service.ledger).committed;
    let progress = |from: usize, what: &str, timeout: Duration| {
        let what = format!("chaos[{seed:#x}] the service to commit {STEADY_TRANSACTIONS} transactions {what}");
        let service = &service;
        async move {
            eventually(timeout, &what, || async {
                let ledger = lock(&service.ledger);
                match ledger.committed >= from + STEADY_TRANSACTIONS {
                    true => Ok(()),
                    false => Err(format!(
                        "committed {}, errors {:?}, {} for {:?}\n--- the producer's last lines ---\n{}",
                        ledger.committed,
                        ledger.errors.kinds,
                        ledger.doing.0,
                        ledger.doing.1.map(|since| since.elapsed()),
                        service.log.tail()
                    )),
                }
            })
            .await
        }
    };
    progress(0, "before the faults", PROGRESS_TIMEOUT).await;
    chaos.say(&format!("exactly-once service running: {} transactions committed", committed_so_far(&service)));

    chaos.run_faults(phase).await;
    chaos.settle("the last heal").await;
    progress(committed_so_far(&service), "after the last heal", CATCH_UP_TIMEOUT).await;
    let fed = tokio::task::block_in_place(|| feeder.stop());
    let highs = high_watermarks(seed, &access).await;
    chaos.say(&format!("feeder stopped after {fed} records; input ends at {highs:?}; the service catches up"));
    let what = format!("chaos[{seed:#x}] the service to commit its input offsets up to {highs:?}");
    let committed = eventually(CATCH_UP_TIMEOUT, &what, || async {
        let committed = tokio::task::block_in_place(|| committed_offsets(&access))?;
        match committed == highs {
            true => Ok(committed),
            false => {
                let stable = tokio::task::block_in_place(|| ends(&access, TOPIC, "read_committed"));
                let probes: Vec<String> = committed
                    .iter()
                    .filter(|(p, c)| highs.get(p).is_some_and(|h| h > *c))
                    .flat_map(|(p, c)| {
                        ["read_committed", "read_uncommitted"]
                            .map(|isolation| tokio::task::block_in_place(|| probe(&access, isolation, *p, *c)))
                    })
                    .collect();
                eprintln!("chaos[{seed:#x}] probes of the stuck partitions: {probes:?}");
                let ledger = lock(&service.ledger);
                Err(format!(
                    "committed {committed:?}; input stable offsets {stable:?}; service {ledger:?}; \
                     consumers replaced {}; {} for {:?}; errors {:?}\n--- the producer's last lines ---\n{}",
                    ledger.consumers_replaced,
                    ledger.doing.0,
                    ledger.doing.1.map(|since| since.elapsed()),
                    ledger.errors.kinds,
                    service.log.tail()
                ))
            }
        }
    })
    .await;
    let ledger = tokio::task::block_in_place(|| service.stop());

    let what = format!("chaos[{seed:#x}] every transaction on {OUTPUT} to end (last stable offset = high watermark)");
    let ends = eventually(SETTLE_TIMEOUT, &what, || async {
        let stable = tokio::task::block_in_place(|| ends(&access, OUTPUT, "read_committed"))?;
        let high = tokio::task::block_in_place(|| ends(&access, OUTPUT, "read_uncommitted"))?;
        match stable == high {
            true => Ok(high),
            false => Err(format!("stable {stable:?}, high {high:?}")),
        }
    })
    .await;
    let output = tokio::task::block_in_place(|| read_output(&access, "read_committed", &ends));
    let everything = tokio::task::block_in_place(|| read_output(&access, "read_uncommitted", &ends));
    let input = read_final_log(seed, &access, &highs).await;
    let (findings, violations) = check_exactly_once(&input, &committed, &output);
    let input_records: usize = input.values().map(Vec::len).sum();
    let output_records: usize = output.values().map(Vec::len).sum();
    let written: usize = everything.values().map(Vec::len).sum();
    chaos.say(&format!(
        "exactly-once summary: seed {seed:#x}; {} faults {:?} ({} hit the transaction coordinator); \
         transactions committed {}, aborted {}, crashed {}, service restarts {}, consumers replaced {}, \
         stuck workers abandoned {}; \
         input records {input_records}, \
         committed copies {output_records}, copies written {written} ({} in aborted transactions); errors {:?}",
        chaos.injected.values().sum::<usize>(),
        chaos.injected,
        chaos.transaction_coordinator_faults,
        ledger.committed,
        ledger.aborted,
        ledger.crashes,
        ledger.restarts,
        ledger.consumers_replaced,
        ledger.abandoned,
        written - output_records,
        ledger.errors.kinds
    ));
    assert!(
        violations.is_empty(),
        "chaos[{seed:#x}] the committed output against the input (exactly once): {} violations; the first:\n  {}",
        violations.len(),
        violations.iter().take(crate::VIOLATIONS_SHOWN).cloned().collect::<Vec<_>>().join("\n  ")
    );
    assert_eq!(findings.copied, input_records, "chaos[{seed:#x}] every input record was copied");
    assert!(written > output_records, "chaos[{seed:#x}] aborted transactions left records for read_committed to skip");
    let input_bytes = chaos.assert_replicas_identical().await;
    let output_bytes = chaos.assert_replicas_of_identical(OUTPUT).await;
    chaos.say(&format!(
        "PASSED seed {seed:#x}: {} transactions checked; {input_bytes} bytes of {TOPIC} and {output_bytes} of {OUTPUT} \
         identical on every replica",
        ledger.committed
    ));
}
