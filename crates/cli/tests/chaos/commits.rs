//! A consumer group committing offsets throughout the chaos: the group coordinator lives on
//! the leader of one `__consumer_offsets` partition (replicated like any partition) and must
//! move with it, so an acknowledged commit must survive every kill and cut. The committer
//! commits an increasing offset for every partition of the topic (Kafka accepts any offset
//! from a group without members), so the check needs no consumption.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use crate::support::cluster::{eventually, ClusterView};
use crate::{Access, PARTITIONS, TOPIC};

pub(crate) const GROUP: &str = "chaos-committer";
/// Pause between two commits: the schedule of the committer, not a synchronisation.
const COMMIT_PACE: Duration = Duration::from_millis(200);
/// How long the final lookup of the committed offsets may take (the coordinator may just
/// have moved).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The node coordinating [`GROUP`] in `view`: the leader of its `__consumer_offsets`
/// partition, Kafka's `abs(hashCode) % partitions` of the group id.
pub(crate) fn coordinator(view: &ClusterView) -> Option<i32> {
    let offsets = view.topic("__consumer_offsets")?;
    let hash = GROUP.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    let partitions = i32::try_from(offsets.partitions.len()).ok().filter(|n| *n > 0)?;
    Some(offsets.partitions[usize::try_from(abs % partitions).ok()?].leader)
}

/// What the committer tried and was told.
#[derive(Debug, Default, Clone)]
pub(crate) struct CommitLedger {
    /// The last offset whose commit was acknowledged (0: none).
    pub(crate) acknowledged: i64,
    /// The last offset a commit was attempted with.
    pub(crate) attempted: i64,
    pub(crate) failed: usize,
}

pub(crate) struct Committer {
    ledger: Arc<Mutex<CommitLedger>>,
    stop: StopOnDrop,
    task: JoinHandle<()>,
}

/// Raises the committer's stop flag when dropped, so a test that fails before stopping it
/// does not leave its blocking loop running, which would hold the runtime's shutdown.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn group_consumer(access: &Access) -> BaseConsumer {
    access
        .config()
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("socket.timeout.ms", "10000")
        .create()
        .expect("committer consumer")
}

fn all_partitions_at(offset: i64) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition_offset(TOPIC, partition, Offset::Offset(offset)).expect("offset");
    }
    list
}

impl Committer {
    pub(crate) fn start(access: &Access) -> Committer {
        let ledger = Arc::new(Mutex::new(CommitLedger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = group_consumer(access);
        let task = {
            let (ledger, stop) = (Arc::clone(&ledger), Arc::clone(&stop));
            tokio::task::spawn_blocking(move || {
                let mut offset = 0;
                while !stop.load(Ordering::SeqCst) {
                    offset += 1;
                    ledger.lock().expect("commit ledger").attempted = offset;
                    let done = consumer.commit(&all_partitions_at(offset), CommitMode::Sync);
                    let mut ledger = ledger.lock().expect("commit ledger");
                    match done {
                        Ok(()) => ledger.acknowledged = offset,
                        Err(_) => ledger.failed += 1,
                    }
                    drop(ledger);
                    std::thread::sleep(COMMIT_PACE);
                }
            })
        };
        Committer { ledger, stop: StopOnDrop(stop), task }
    }

    /// Stops committing and returns what was tried and acknowledged.
    pub(crate) async fn stop(self) -> CommitLedger {
        self.stop.0.store(true, Ordering::SeqCst);
        let ledger = Arc::clone(&self.ledger);
        self.task.await.expect("committer task");
        let ledger = ledger.lock().expect("commit ledger").clone();
        ledger
    }
}

/// The group's committed offset per partition (`None`: none), once the coordinator answers.
pub(crate) async fn committed_offsets(access: &Access) -> BTreeMap<i32, Option<i64>> {
    eventually(LOOKUP_TIMEOUT, "the committed offsets of the chaos group", || {
        let access = access.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let consumer = group_consumer(&access);
                let mut list = TopicPartitionList::new();
                for partition in 0..PARTITIONS {
                    list.add_partition(TOPIC, partition);
                }
                let found = consumer.committed_offsets(list, Duration::from_secs(10)).map_err(|e| e.to_string())?;
                Ok((0..PARTITIONS)
                    .map(|p| {
                        let offset = found.find_partition(TOPIC, p).map(|e| e.offset());
                        (p, if let Some(Offset::Offset(o)) = offset { Some(o) } else { None })
                    })
                    .collect())
            })
            .await
            .map_err(|e| e.to_string())?
        }
    })
    .await
}
