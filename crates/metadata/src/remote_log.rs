//! What each partition holds in remote storage (tiered storage, KIP-405): the remote
//! segments and their states, kept in the metadata log so that every node knows exactly
//! what is remote, a new leader continues where the old one stopped, and an upload that a
//! crash or a lost leadership cut short is found and cleaned up.
//!
//! A segment's life, as Kafka's `RemoteLogSegmentState`: COPY_SEGMENT_STARTED (objects
//! being written; readers never see it), COPY_SEGMENT_FINISHED (readable), then
//! DELETE_SEGMENT_STARTED and DELETE_SEGMENT_FINISHED (the entry is gone). A record that
//! repeats the current state changes nothing (retries and failover stay idempotent); any
//! other transition is skipped.
//!
//! Fencing, which Kafka's metadata topic lacks: a copy starts or finishes only for the
//! partition's current leader, in its current leader epoch, under its current registration
//! (incarnation). A deposed or restarted leader's late record is skipped on every node
//! alike, and the segment stays STARTED until the next leader cleans it up.
//!
//! Invariants (checked by `tests/remote_log_model.rs` against a model): pure; the readable
//! (FINISHED) segments of a partition never overlap and are indexed by their start offset;
//! a segment's range is `start_offset..=end_offset` with `start_offset >= base_offset`;
//! the remote log start never goes back; the highest offset ever uploaded never goes
//! back either, even when retention deletes every segment (so that nothing is uploaded
//! twice and local retention goes on).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a remote segment is in its life (DELETE_SEGMENT_FINISHED removes it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RemoteSegmentState {
    CopyStarted,
    /// Readable. `checksums`: CRC32C of each object, by its file extension.
    CopyFinished {
        checksums: BTreeMap<String, u32>,
    },
    DeleteStarted,
}

/// One segment in remote storage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RemoteSegment {
    pub segment_id: Uuid,
    /// The local segment's base offset (its files are uploaded whole).
    pub base_offset: i64,
    /// The first offset readers take from it: above everything uploaded before it.
    pub start_offset: i64,
    pub end_offset: i64,
    pub max_timestamp_ms: i64,
    pub size_bytes: u64,
    /// The leader epochs inside the segment: (epoch, its first offset).
    pub leader_epochs: Vec<(i32, i64)>,
    /// Who uploads it: the leader's epoch, id and registration.
    pub leader_epoch: i32,
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub state: RemoteSegmentState,
}

/// The change a `RemoteSegmentState` record asks for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RemoteStateChange {
    CopyFinished { checksums: BTreeMap<String, u32> },
    DeleteStarted,
    DeleteFinished,
}

/// One partition's remote log.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteLogImage {
    /// Every segment not yet deleted, by id.
    pub segments: BTreeMap<Uuid, RemoteSegment>,
    /// The readable segments by start offset.
    pub readable: BTreeMap<i64, Uuid>,
    /// The remote log start (DeleteRecords and remote retention move it); `None`: the
    /// first readable segment's start.
    pub log_start_offset: Option<i64>,
    /// The highest offset a finished copy ever held (Kafka's highest offset in remote
    /// storage): kept when retention deletes the segments.
    #[serde(default)]
    pub highest_uploaded: Option<i64>,
}

impl RemoteLogImage {
    /// The highest offset remote storage ever held (see `highest_uploaded`): copies start
    /// above it, and local segments at or below it may go.
    pub fn highest_remote_offset(&self) -> Option<i64> {
        let readable = self.readable.values().filter_map(|id| self.segments.get(id)).map(|s| s.end_offset).max();
        readable.max(self.highest_uploaded)
    }

    /// The readable segment holding `offset`.
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteSegment> {
        let (_, id) = self.readable.range(..=offset).next_back()?;
        self.segments.get(id).filter(|s| s.end_offset >= offset)
    }

    /// The first offset remote storage serves.
    pub fn start_offset(&self) -> Option<i64> {
        let first = self.readable.keys().next().copied()?;
        Some(self.log_start_offset.map_or(first, |start| start.max(first)))
    }

    /// Bytes of every segment not yet deleted (what retention by size counts).
    pub fn remote_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes).sum()
    }

    /// Segments a leader must clean up: started by anyone but the uploader `(epoch, broker,
    /// incarnation)` that is running now, or being deleted.
    pub fn abandoned(&self, current: (i32, i32, Uuid)) -> Vec<&RemoteSegment> {
        self.segments
            .values()
            .filter(|s| match s.state {
                RemoteSegmentState::CopyStarted => (s.leader_epoch, s.broker_id, s.incarnation_id) != current,
                RemoteSegmentState::DeleteStarted => true,
                RemoteSegmentState::CopyFinished { .. } => false,
            })
            .collect()
    }

    /// Applies a started copy, if `leader` (epoch, id, incarnation) is the partition's
    /// current leader as the record claims and the range starts above what is readable.
    pub fn start(&mut self, segment: RemoteSegment, leader: Option<(i32, i32, Uuid)>) -> bool {
        let fenced = leader != Some((segment.leader_epoch, segment.broker_id, segment.incarnation_id));
        let above = self.highest_remote_offset().is_none_or(|high| segment.start_offset > high);
        let sane = segment.start_offset >= segment.base_offset && segment.end_offset >= segment.start_offset;
        if self.segments.contains_key(&segment.segment_id) {
            return false; // a retried record of the same start changes nothing
        }
        if fenced || !above || !sane || segment.state != RemoteSegmentState::CopyStarted {
            return false;
        }
        self.segments.insert(segment.segment_id, segment);
        true
    }

    /// Applies a state change of segment `id`; `leader` is the partition's current
    /// (epoch, id, incarnation), which a finished copy must still match.
    pub fn change(&mut self, id: Uuid, change: &RemoteStateChange, leader: Option<(i32, i32, Uuid)>) -> bool {
        let Some(segment) = self.segments.get(&id) else { return false };
        let start = segment.start_offset;
        match (&segment.state, change) {
            (RemoteSegmentState::CopyStarted, RemoteStateChange::CopyFinished { checksums }) => {
                let uploader = Some((segment.leader_epoch, segment.broker_id, segment.incarnation_id));
                let above = self.highest_remote_offset().is_none_or(|high| start > high);
                if uploader != leader || !above {
                    return false;
                }
                if let Some(segment) = self.segments.get_mut(&id) {
                    segment.state = RemoteSegmentState::CopyFinished { checksums: checksums.clone() };
                    self.highest_uploaded = self.highest_uploaded.max(Some(segment.end_offset));
                }
                self.readable.insert(start, id);
                true
            }
            (
                RemoteSegmentState::CopyStarted | RemoteSegmentState::CopyFinished { .. },
                RemoteStateChange::DeleteStarted,
            ) => {
                if let Some(segment) = self.segments.get_mut(&id) {
                    segment.state = RemoteSegmentState::DeleteStarted;
                }
                if self.readable.get(&start) == Some(&id) {
                    self.readable.remove(&start);
                }
                true
            }
            (RemoteSegmentState::DeleteStarted, RemoteStateChange::DeleteFinished) => {
                self.segments.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// Moves the remote log start forward (never back).
    pub fn advance_start(&mut self, offset: i64) -> bool {
        if self.log_start_offset.is_some_and(|start| start >= offset) {
            return false;
        }
        self.log_start_offset = Some(offset);
        true
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.log_start_offset.is_none() && self.highest_uploaded.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: (i32, i32, Uuid) = (3, 1, Uuid::from_u128(9));

    fn segment(id: u128, start: i64, end: i64, uploader: (i32, i32, Uuid)) -> RemoteSegment {
        RemoteSegment {
            segment_id: Uuid::from_u128(id),
            base_offset: start,
            start_offset: start,
            end_offset: end,
            max_timestamp_ms: 0,
            size_bytes: 100,
            leader_epochs: vec![(uploader.0, start)],
            leader_epoch: uploader.0,
            broker_id: uploader.1,
            incarnation_id: uploader.2,
            state: RemoteSegmentState::CopyStarted,
        }
    }

    fn finished() -> RemoteStateChange {
        RemoteStateChange::CopyFinished { checksums: BTreeMap::new() }
    }

    #[test]
    fn a_copy_is_readable_once_the_leader_that_started_it_finishes_it() {
        let mut log = RemoteLogImage::default();
        assert!(log.start(segment(1, 0, 99, LEADER), Some(LEADER)));
        assert_eq!(log.segment_for(50), None, "a started copy is not readable");
        assert!(!log.start(segment(1, 0, 99, LEADER), Some(LEADER)), "a retried start changes nothing");
        assert!(log.change(Uuid::from_u128(1), &finished(), Some(LEADER)));
        assert_eq!(log.segment_for(50).map(|s| s.segment_id), Some(Uuid::from_u128(1)));
        assert_eq!((log.start_offset(), log.highest_remote_offset()), (Some(0), Some(99)));
        // A stale leader (older epoch, or a restarted incarnation) starts nothing.
        let stale = (2, 1, LEADER.2);
        assert!(!log.start(segment(2, 100, 199, stale), Some(LEADER)));
        let restarted = (3, 1, Uuid::from_u128(10));
        assert!(!log.start(segment(3, 100, 199, restarted), Some(LEADER)));
        // A copy whose leader moved on before it finished stays started: abandoned.
        assert!(log.start(segment(4, 100, 199, LEADER), Some(LEADER)));
        let next = (4, 2, Uuid::from_u128(11));
        assert!(!log.change(Uuid::from_u128(4), &finished(), Some(next)));
        assert_eq!(log.abandoned(next).iter().map(|s| s.segment_id).collect::<Vec<_>>(), vec![Uuid::from_u128(4)]);
        // Overlapping what is readable: refused.
        assert!(!log.start(segment(5, 50, 150, next), Some(next)));
        // Deletion: no longer readable once started, gone once finished.
        assert!(log.change(Uuid::from_u128(1), &RemoteStateChange::DeleteStarted, Some(next)));
        assert_eq!(log.segment_for(50), None);
        assert!(!log.change(Uuid::from_u128(1), &finished(), Some(next)), "no way back");
        assert!(log.change(Uuid::from_u128(1), &RemoteStateChange::DeleteFinished, Some(next)));
        assert!(!log.segments.contains_key(&Uuid::from_u128(1)));
        assert_eq!(log.highest_remote_offset(), Some(99), "what was uploaded stays uploaded");
        assert!(!log.start(segment(6, 0, 99, next), Some(next)), "and is never uploaded again");
        // The remote log start only moves forward.
        assert!(log.advance_start(40) && !log.advance_start(30));
        assert_eq!(log.remote_bytes(), 100, "the abandoned copy still counts until deleted");
    }
}
