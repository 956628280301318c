//! The chaos test's checker: pure functions over what was sent, read and stored, so that
//! the test below can show it fails on every kind of violation.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use support::Placed;

use crate::support;
use crate::{SEED_ENV, TOPIC, VIOLATIONS_SHOWN};

/// A message's identity: value `p{producer}-{seq}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MessageId {
    pub(crate) producer: u32,
    pub(crate) seq: u32,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}-{}", self.producer, self.seq)
    }
}

/// A record value: one of ours (kept compact, long runs read millions), or anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Ours(MessageId),
    Foreign(Box<str>),
}

impl Value {
    pub(crate) fn of(bytes: &[u8]) -> Value {
        let text = String::from_utf8_lossy(bytes);
        let parsed = text
            .strip_prefix('p')
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(producer, seq)| Some(MessageId { producer: producer.parse().ok()?, seq: seq.parse().ok()? }));
        match parsed {
            Some(id) if id.to_string() == text => Value::Ours(id),
            _ => Value::Foreign(text.into()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Ours(id) => write!(f, "{id}"),
            Value::Foreign(text) => write!(f, "{text:?}"),
        }
    }
}

/// What a producer's delivery report said about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    /// Acknowledged in this partition, at this offset when it is not negative. librdkafka
    /// acknowledges without an offset (-1001, `RD_KAFKA_OFFSET_INVALID`) a message whose own
    /// answer was lost but which a later acknowledged batch of the idempotent producer
    /// proves written ("implicitly acked", `rd_kafka_msgq_move_acked`).
    Acked(Placed),
    /// Not acknowledged (timed out or refused): it may or may not have been written.
    Failed,
}

/// One record of the final log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) offset: i64,
    pub(crate) value: Value,
}

/// One record a live consumer read during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Read {
    pub(crate) placed: Placed,
    pub(crate) value: Value,
}

/// Every partition's records in offset order, as read back at the end.
pub(crate) type FinalLog = BTreeMap<i32, Vec<Stored>>;

/// Something the final log, the acknowledgements and the reads disagree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// An acknowledged message is not where its delivery report put it.
    Lost {
        id: MessageId,
        acked: Placed,
        found: Option<Placed>,
    },
    Duplicate {
        id: MessageId,
        first: Placed,
        again: Placed,
    },
    /// A producer's message follows one it sent later, in the same partition.
    OutOfOrder {
        id: MessageId,
        at: Placed,
        after: MessageId,
    },
    /// A value no producer sent.
    Foreign {
        at: Placed,
        value: Value,
    },
    /// Offsets must be dense from 0.
    Gap {
        partition: i32,
        expected: i64,
        found: i64,
    },
    /// A consumer read a record that is not in the final log at that offset: it was shown
    /// data above the high watermark that a leader change later truncated.
    ReadVanished {
        read: Read,
        now: Option<Value>,
    },
    /// The group's committed offset is older than a commit that was acknowledged (lost in a
    /// coordinator failover), or newer than any commit attempted.
    Commit {
        partition: i32,
        committed: Option<i64>,
        acknowledged: i64,
        attempted: i64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost { id, acked, found } => {
                write!(f, "LOST: {id} was acknowledged at {acked:?} but is at {found:?}")
            }
            Violation::Duplicate { id, first, again } => {
                write!(f, "DUPLICATE: {id} at {first:?} and again at {again:?}")
            }
            Violation::OutOfOrder { id, at, after } => write!(f, "REORDERED: {id} at {at:?} follows {after}"),
            Violation::Foreign { at, value } => write!(f, "FOREIGN: {value} at {at:?} was never sent"),
            Violation::Gap { partition, expected, found } => {
                write!(f, "GAP: {TOPIC}-{partition} has offset {found} where {expected} should be")
            }
            Violation::Commit { partition, committed, acknowledged, attempted } => write!(
                f,
                "COMMIT: {TOPIC}-{partition} has committed offset {committed:?}, acknowledged {acknowledged}, \
                 attempted up to {attempted}"
            ),
            Violation::ReadVanished { read, now } => write!(
                f,
                "VANISHED: a consumer read {} at {:?}, the log now holds {}",
                read.value,
                read.placed,
                now.as_ref().map_or("nothing".to_string(), |v| v.to_string())
            ),
        }
    }
}

/// Checks the final log against the acknowledgements: every acknowledged message exactly at
/// its acknowledged place, no message twice, each producer's messages in send order within a
/// partition, offsets dense from 0, nothing foreign. `sent[producer][seq]` is its outcome.
pub(crate) fn check_log(log: &FinalLog, sent: &[Vec<Outcome>]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut found: BTreeMap<MessageId, Placed> = BTreeMap::new();
    for (&partition, stored) in log {
        check_partition(partition, stored, sent, &mut found, &mut violations);
    }
    for (producer, outcomes) in sent.iter().enumerate() {
        for (seq, outcome) in outcomes.iter().enumerate() {
            let Outcome::Acked(acked) = *outcome else { continue };
            let id = MessageId {
                producer: u32::try_from(producer).expect("few producers"),
                seq: u32::try_from(seq).expect("sequence fits u32"),
            };
            let at = found.get(&id).copied();
            let kept = match at {
                Some(at) if acked.offset < 0 => at.partition == acked.partition,
                at => at == Some(acked),
            };
            if !kept {
                violations.push(Violation::Lost { id, acked, found: at });
            }
        }
    }
    violations
}

pub(crate) fn check_partition(
    partition: i32,
    stored: &[Stored],
    sent: &[Vec<Outcome>],
    found: &mut BTreeMap<MessageId, Placed>,
    violations: &mut Vec<Violation>,
) {
    let was_sent = |id: &MessageId| {
        usize::try_from(id.producer).ok().and_then(|p| sent.get(p)).is_some_and(|o| (id.seq as usize) < o.len())
    };
    let mut expected = 0;
    let mut last_of_producer: HashMap<u32, MessageId> = HashMap::new();
    for record in stored {
        let at = Placed { partition, offset: record.offset };
        if record.offset != expected {
            violations.push(Violation::Gap { partition, expected, found: record.offset });
        }
        expected = record.offset + 1;
        let id = match &record.value {
            Value::Ours(id) if was_sent(id) => *id,
            value => {
                violations.push(Violation::Foreign { at, value: value.clone() });
                continue;
            }
        };
        match found.entry(id) {
            Entry::Occupied(first) => violations.push(Violation::Duplicate { id, first: *first.get(), again: at }),
            Entry::Vacant(slot) => {
                slot.insert(at);
            }
        }
        if let Some(after) = last_of_producer.insert(id.producer, id).filter(|previous| previous.seq >= id.seq) {
            violations.push(Violation::OutOfOrder { id, at, after });
        }
    }
}

/// Checks that every record a live consumer read is in the final log at that offset.
pub(crate) fn check_reads(log: &FinalLog, reads: &[Read]) -> Vec<Violation> {
    reads
        .iter()
        .filter_map(|read| {
            let now = log.get(&read.placed.partition).and_then(|stored| {
                let index = stored.binary_search_by_key(&read.placed.offset, |s| s.offset).ok()?;
                Some(&stored[index].value)
            });
            (now != Some(&read.value)).then(|| Violation::ReadVanished { read: read.clone(), now: now.cloned() })
        })
        .collect()
}

/// Checks the group's final committed offsets: every partition at least the last
/// acknowledged commit (none lost) and at most the last attempted one (a commit whose
/// answer was lost may have taken effect). The committer commits the same offset for every
/// partition; `acknowledged` 0 means none was acknowledged.
pub(crate) fn check_commits(
    committed: &BTreeMap<i32, Option<i64>>,
    acknowledged: i64,
    attempted: i64,
) -> Vec<Violation> {
    committed
        .iter()
        .filter(|(_, offset)| match offset {
            Some(offset) => *offset < acknowledged || *offset > attempted,
            None => acknowledged > 0,
        })
        .map(|(&partition, &committed)| Violation::Commit { partition, committed, acknowledged, attempted })
        .collect()
}

/// `None` when every node's copy is the same bytes, else the sizes and the common prefix.
pub(crate) fn replica_difference(copies: &BTreeMap<i32, Vec<u8>>) -> Option<String> {
    let first = copies.values().next()?;
    if copies.values().all(|copy| copy == first) {
        return None;
    }
    let sizes: Vec<String> = copies.iter().map(|(id, copy)| format!("node {id}: {} bytes", copy.len())).collect();
    let same = copies.values().map(|copy| first.iter().zip(copy).take_while(|(a, b)| a == b).count()).min();
    Some(format!("{}; identical for the first {} bytes", sizes.join(", "), same.unwrap_or(0)))
}

pub(crate) fn assert_no_violations(seed: u64, what: &str, violations: &[Violation]) {
    if violations.is_empty() {
        return;
    }
    let shown: Vec<String> = violations.iter().take(VIOLATIONS_SHOWN).map(|v| v.to_string()).collect();
    panic!(
        "chaos[{seed:#x}] {what}: {} violations (reproduce with {SEED_ENV}={seed:#x}); the first {}:\n  {}",
        violations.len(),
        shown.len(),
        shown.join("\n  ")
    );
}

// ----- the checker can fail -----

fn acked_at(partition: i32, offsets: &[i64]) -> Vec<Outcome> {
    offsets.iter().map(|&offset| Outcome::Acked(Placed { partition, offset })).collect()
}

fn partition_of(values: &[&str]) -> Vec<Stored> {
    (0..).zip(values).map(|(offset, value)| Stored { offset, value: Value::of(value.as_bytes()) }).collect()
}

#[test]
fn chaos_checker_detects_a_lost_acknowledged_message() {
    let sent = vec![acked_at(0, &[0, 1, 2]), vec![Outcome::Failed, Outcome::Pending]];
    let log_of = |values: &[&str]| FinalLog::from([(0, partition_of(values)), (1, Vec::new())]);
    let healthy = log_of(&["p0-0", "p0-1", "p0-2", "p1-0"]);
    assert_eq!(check_log(&healthy, &sent), vec![], "a failed message may be written, a pending one absent");

    let lost = check_log(&log_of(&["p0-0", "p0-2"]), &sent);
    assert!(lost.iter().any(|v| matches!(v, Violation::Lost { id, .. } if id.seq == 1)), "missing: {lost:?}");
    let moved = check_log(&FinalLog::from([(0, partition_of(&["p0-0", "p1-0", "p0-1", "p0-2"]))]), &sent);
    assert!(moved.iter().any(|v| matches!(v, Violation::Lost { found: Some(_), .. })), "misplaced: {moved:?}");
    // Acknowledged without an offset: anywhere in its partition, but there.
    let unplaced = vec![vec![Outcome::Acked(Placed { partition: 0, offset: -1001 }); 3]];
    assert_eq!(check_log(&log_of(&["p0-0", "p0-1", "p0-2"]), &unplaced), vec![], "without an offset, and present");
    let elsewhere = FinalLog::from([(0, partition_of(&["p0-0", "p0-1"])), (1, partition_of(&["p0-2"]))]);
    let lost = check_log(&elsewhere, &unplaced);
    assert!(matches!(lost[..], [Violation::Lost { id: MessageId { seq: 2, .. }, .. }]), "other partition: {lost:?}");
    let lost = check_log(&log_of(&["p0-0", "p0-1"]), &unplaced);
    assert!(matches!(lost[..], [Violation::Lost { found: None, .. }]), "absent: {lost:?}");

    let twice = check_log(&log_of(&["p0-0", "p0-1", "p0-2", "p0-1"]), &sent);
    assert!(twice.iter().any(|v| matches!(v, Violation::Duplicate { .. })), "duplicate: {twice:?}");

    let reordered_sent = vec![acked_at(0, &[0, 2, 1])];
    let reordered = check_log(&log_of(&["p0-0", "p0-2", "p0-1"]), &reordered_sent);
    assert_eq!(reordered.len(), 1, "only the order is wrong: {reordered:?}");
    assert!(matches!(reordered[0], Violation::OutOfOrder { .. }), "reorder: {reordered:?}");

    let mut gap = log_of(&["p0-0", "p0-1", "p0-2"]);
    gap.get_mut(&0).expect("partition 0")[2].offset = 3;
    let gapped = check_log(&gap, &[acked_at(0, &[0, 1, 3])]);
    assert!(matches!(gapped[..], [Violation::Gap { expected: 2, found: 3, .. }]), "gap: {gapped:?}");
    let foreign = check_log(&log_of(&["p0-0", "p0-1", "p0-2", "p7-0", "hello"]), &sent);
    assert_eq!(foreign.iter().filter(|v| matches!(v, Violation::Foreign { .. })).count(), 2, "{foreign:?}");

    let read =
        |offset, value: &str| Read { placed: Placed { partition: 0, offset }, value: Value::of(value.as_bytes()) };
    let reads = [read(1, "p0-1"), read(2, "p0-2"), read(3, "p0-3")];
    let vanished = check_reads(&log_of(&["p0-0", "p0-1", "p0-9"]), &reads);
    assert_eq!(vanished.len(), 2, "offset 2 changed and offset 3 is gone: {vanished:?}");
    assert!(vanished.iter().all(|v| matches!(v, Violation::ReadVanished { .. })), "{vanished:?}");
    assert_eq!(check_reads(&healthy, &reads[..2]), vec![], "reads of what stayed");

    let commits = BTreeMap::from([(0, Some(7)), (1, Some(9)), (2, None), (3, Some(12))]);
    let wrong = check_commits(&commits, 8, 10);
    let partitions: Vec<i32> = wrong
        .iter()
        .map(|v| match v {
            Violation::Commit { partition, .. } => *partition,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(partitions, vec![0, 2, 3], "7 was superseded by an acknowledged 8, none is lost, 12 was never sent");
    assert_eq!(check_commits(&BTreeMap::from([(0, None)]), 0, 3), vec![], "nothing acknowledged, nothing owed");

    let same = BTreeMap::from([(1, b"abc".to_vec()), (2, b"abc".to_vec()), (3, b"abc".to_vec())]);
    assert_eq!(replica_difference(&same), None);
    let diverged = BTreeMap::from([(1, b"abc".to_vec()), (2, b"abd".to_vec()), (3, b"ab".to_vec())]);
    let difference = replica_difference(&diverged).expect("copies differ");
    assert!(difference.contains("identical for the first 2 bytes"), "{difference}");
}
