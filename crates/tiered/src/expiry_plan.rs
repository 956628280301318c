//! Which remote segments total retention deletes (Kafka's `RLMExpirationTask`): walking
//! the readable segments oldest first, a segment goes when it lies wholly below the log
//! start offset (DeleteRecords), when its newest record is older than `retention.ms`, or
//! while the partition (local-only bytes plus remote bytes) exceeds `retention.bytes` by at
//! least its size; the walk stops at the first segment that stays.
//!
//! Invariants: pure; only readable segments are planned, oldest first and contiguous from
//! the oldest; the new log start is one past the last planned segment, and only moves
//! forward.

use runnel_metadata::remote_log::RemoteLogImage;
use uuid::Uuid;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExpiryPlan {
    /// The remote log start to commit first, when it moves.
    pub new_start: Option<i64>,
    /// The segments to delete, oldest first.
    pub delete: Vec<Uuid>,
}

/// `local_only_bytes`: the bytes of local segments remote storage does not hold yet.
pub fn plan(
    remote: &RemoteLogImage,
    retention_ms: i64,
    retention_bytes: i64,
    local_only_bytes: u64,
    now_ms: i64,
) -> ExpiryPlan {
    let segments: Vec<_> = remote.readable.values().filter_map(|id| remote.segments.get(id)).collect();
    let total: u64 = local_only_bytes + segments.iter().map(|s| s.size_bytes).sum::<u64>();
    let mut excess = if retention_bytes >= 0 { i128::from(total) - i128::from(retention_bytes) } else { 0 };
    let mut plan = ExpiryPlan::default();
    let mut last_end = None;
    for segment in segments {
        let below_start = remote.log_start_offset.is_some_and(|start| segment.end_offset < start);
        let expired = retention_ms >= 0 && segment.max_timestamp_ms <= now_ms.saturating_sub(retention_ms);
        let oversize = retention_bytes >= 0 && i128::from(segment.size_bytes) <= excess;
        if !(below_start || expired || oversize) {
            break;
        }
        excess -= i128::from(segment.size_bytes);
        plan.delete.push(segment.segment_id);
        last_end = Some(segment.end_offset);
    }
    let current = remote.start_offset();
    plan.new_start = last_end.map(|end| end + 1).filter(|start| current.is_none_or(|c| *start > c));
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use runnel_metadata::remote_log::{RemoteSegment, RemoteSegmentState, RemoteStateChange};

    use super::*;

    const LEADER: (i32, i32, Uuid) = (1, 1, Uuid::from_u128(5));

    /// Four finished segments of 100 offsets and 1 000 bytes, newest record at 1 000 * (i + 1).
    fn remote() -> RemoteLogImage {
        let mut log = RemoteLogImage::default();
        for i in 0..4u128 {
            let start = i as i64 * 100;
            let segment = RemoteSegment {
                segment_id: Uuid::from_u128(i + 1),
                base_offset: start,
                start_offset: start,
                end_offset: start + 99,
                max_timestamp_ms: 1_000 * (i as i64 + 1),
                size_bytes: 1_000,
                leader_epochs: vec![(1, start)],
                leader_epoch: LEADER.0,
                broker_id: LEADER.1,
                incarnation_id: LEADER.2,
                state: RemoteSegmentState::CopyStarted,
            };
            assert!(log.start(segment, Some(LEADER)));
            let finished = RemoteStateChange::CopyFinished { checksums: BTreeMap::new() };
            assert!(log.change(Uuid::from_u128(i + 1), &finished, Some(LEADER)));
        }
        log
    }

    fn ids(plan: &ExpiryPlan) -> Vec<u128> {
        plan.delete.iter().map(|id| id.as_u128()).collect()
    }

    #[test]
    fn by_time_size_and_log_start_oldest_first() {
        let log = remote();
        assert_eq!(plan(&log, -1, -1, 0, 10_000), ExpiryPlan::default(), "unbounded keeps everything");
        let by_time = plan(&log, 1_500, -1, 0, 3_600);
        assert_eq!((ids(&by_time), by_time.new_start), (vec![1, 2], Some(200)), "newest records at or before 2 100");
        // 4 000 remote + 500 local, bound 2 600: 1 900 too many, one segment fits in it.
        let by_size = plan(&log, -1, 2_600, 500, 0);
        assert_eq!((ids(&by_size), by_size.new_start), (vec![1], Some(100)));
        let mut deleted_records = log.clone();
        assert!(deleted_records.advance_start(250));
        let by_start = plan(&deleted_records, -1, -1, 0, 0);
        assert_eq!((ids(&by_start), by_start.new_start), (vec![1, 2], None), "the start is already past them");
    }
}
