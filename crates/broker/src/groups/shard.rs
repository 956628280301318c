//! The groups one `__consumer_offsets` partition coordinates, and how an [`Outcome`] lands on
//! them: persistent records appended to the partition first, then every record applied, then
//! parked requests answered.

use std::collections::{BTreeSet, HashMap};

use runnel_protocol::ResponseError;
use runnel_storage::StorageError;
use tokio::sync::oneshot;

use super::codec;
use super::group::Group;
use super::outcome::{Outcome, Parked, Reply, WaitKind};
use super::record::Record;
use crate::partition::{Partition, PartitionError};

struct Waiter {
    kind: WaitKind,
    answer: oneshot::Sender<Parked>,
}

/// The requester's answer once an outcome has landed.
pub enum Landed<R> {
    Now(R),
    Parked(oneshot::Receiver<Parked>),
}

#[derive(Default)]
pub struct ShardState {
    pub groups: HashMap<String, Group>,
    /// Parked JoinGroup / SyncGroup requests by (group id, member id). At most one per
    /// member: a newer request replaces (and so releases) an older one.
    waiters: HashMap<(String, String), Waiter>,
    /// (next deadline, group id) for every group with a timer, and the reverse map.
    deadlines: BTreeSet<(i64, String)>,
    deadline_of: HashMap<String, i64>,
    /// TxnOffsetCommit offsets by producer id, in the log but not visible until the
    /// producer's commit marker (an abort marker drops them).
    pending_txn: HashMap<i64, Vec<(String, Record)>>,
}

/// What landing an outcome appended.
pub struct Appended {
    /// The last offset written to the partition, if anything was.
    pub last_offset: Option<i64>,
}

/// Kafka's mapping of append failures onto what group clients understand.
fn append_error(error: &PartitionError) -> ResponseError {
    match error {
        PartitionError::Deleted => ResponseError::NotCoordinator,
        PartitionError::Storage(StorageError::RecordSetTooLarge { .. }) => ResponseError::UnknownServerError,
        _ => ResponseError::NotCoordinator,
    }
}

/// Appends the persistent records of one outcome as one uncompressed batch.
fn append(
    partition: &Partition,
    leader_epoch: i32,
    group_id: &str,
    records: &[Record],
    now_ms: i64,
) -> Result<Option<i64>, ResponseError> {
    let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = records.iter().filter_map(|r| codec::encode(group_id, r)).collect();
    crate::coordinator_runtime::append_records(partition, leader_epoch, &encoded, now_ms).map_err(|error| {
        tracing::error!(topic = %partition.topic, partition = partition.index, %error, "group records append failed");
        append_error(&error)
    })
}

impl ShardState {
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    /// Applies a record read back from the log at start-up.
    pub fn replay(&mut self, group_id: &str, record: &Record) {
        self.apply(group_id, record);
    }

    fn apply(&mut self, group_id: &str, record: &Record) {
        if matches!(record, Record::GroupMetadata(None)) {
            self.groups.remove(group_id);
            return;
        }
        self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id)).apply(record);
    }

    /// Holds a transactional offset commit until its producer's marker.
    pub fn pend(&mut self, producer_id: i64, group_id: String, record: Record) {
        self.pending_txn.entry(producer_id).or_default().push((group_id, record));
    }

    /// A marker of `producer_id` was written to (or replayed from) this partition: its
    /// pending offsets are applied on commit, dropped on abort.
    pub fn transaction_ended(&mut self, producer_id: i64, commit: bool) {
        let Some(pending) = self.pending_txn.remove(&producer_id) else { return };
        tracing::debug!(producer_id, commit, records = pending.len(), "transactional offsets resolved");
        if commit {
            for (group_id, record) in pending {
                self.apply(&group_id, &record);
            }
        }
    }

    /// Whether a transaction holds an offset of `group_id` for `topic`-`partition` that is
    /// not committed yet (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn.values().flatten().any(|(g, record)| {
            g == group_id && matches!(record, Record::OffsetCommit { topic: t, partition: p, .. } if t == topic && *p == partition)
        })
    }

    /// Appends, applies and delivers one outcome. Nothing is applied if the append fails.
    pub fn land<R>(
        &mut self,
        partition: &Partition,
        leader_epoch: i32,
        group_id: &str,
        outcome: Outcome<R>,
        now_ms: i64,
    ) -> Result<(Landed<R>, Appended), ResponseError> {
        let last_offset = append(partition, leader_epoch, group_id, &outcome.records, now_ms)?;
        for record in &outcome.records {
            self.apply(group_id, record);
        }
        if cfg!(debug_assertions) {
            let replayed = self.groups.get(group_id).cloned().unwrap_or_else(|| Group::new(group_id));
            assert_eq!(replayed, outcome.expected, "replaying the records must give what the handler saw");
        }
        let landed = match outcome.reply {
            Reply::Now(response) => Landed::Now(response),
            Reply::Park { member_id, kind } => {
                let (answer, receiver) = oneshot::channel();
                self.waiters.insert((group_id.to_string(), member_id), Waiter { kind, answer });
                Landed::Parked(receiver)
            }
        };
        for (member_id, parked) in outcome.wakeups {
            self.deliver(group_id, member_id, parked);
        }
        self.reindex(group_id);
        Ok((landed, Appended { last_offset }))
    }

    fn deliver(&mut self, group_id: &str, member_id: String, parked: Parked) {
        let key = (group_id.to_string(), member_id);
        let Some(waiter) = self.waiters.remove(&key) else { return };
        let kind = match parked {
            Parked::Join(_) => WaitKind::Join,
            Parked::Sync(_) => WaitKind::Sync,
        };
        if kind != waiter.kind {
            // A request of the other kind is parked; this answer was for an earlier one.
            self.waiters.insert(key, waiter);
            return;
        }
        // The requester may have gone (connection closed, server stopping): nothing to do.
        let _ = waiter.answer.send(parked);
    }

    fn reindex(&mut self, group_id: &str) {
        if let Some(old) = self.deadline_of.remove(group_id) {
            self.deadlines.remove(&(old, group_id.to_string()));
        }
        if let Some(next) = self.groups.get(group_id).and_then(Group::next_deadline_ms) {
            self.deadline_of.insert(group_id.to_string(), next);
            self.deadlines.insert((next, group_id.to_string()));
        }
    }

    /// Rebuilds the timer index (after start-up replay).
    pub fn reindex_all(&mut self) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            self.reindex(&id);
        }
    }

    /// Groups with a timer due at `now_ms`.
    pub fn due(&self, now_ms: i64) -> Vec<String> {
        self.deadlines.iter().take_while(|(deadline, _)| *deadline <= now_ms).map(|(_, id)| id.clone()).collect()
    }

    pub fn is_due(&self, group_id: &str, now_ms: i64) -> bool {
        self.deadline_of.get(group_id).is_some_and(|d| *d <= now_ms)
    }

    /// Drops parked requests whose requester has gone (their receivers were dropped).
    pub fn forget_abandoned(&mut self) {
        self.waiters.retain(|_, waiter| !waiter.answer.is_closed());
    }
}
