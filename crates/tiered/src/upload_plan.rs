//! What a partition leader uploads next (Kafka's `RLMCopyTask`, decided without I/O): the
//! closed local segments that lie wholly below the high watermark and above what remote
//! storage already holds, in offset order, and the copies to clean up first (started by a
//! leader that is no longer the uploader, a crash before it finished, or a deletion that
//! did not finish).
//!
//! A segment is uploaded whole, but counts remotely only from above the last remote
//! offset (`start_offset`), so readable remote segments never overlap even when a new
//! leader's segment boundaries differ from the old leader's.
//!
//! Invariants: pure; uploads are in offset order, contiguous with each other and with what
//! is remote, never include the active segment or anything at or above the high
//! watermark, never start below the local log start; at most `max_uploads` per round.

use std::collections::BTreeSet;

use runnel_metadata::remote_log::RemoteLogImage;
use uuid::Uuid;

/// A closed local segment, as the planner needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSegment {
    pub base_offset: i64,
    /// One past its last offset (the next segment's base).
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp_ms: i64,
}

/// A leader that uploads: its (leader epoch, broker id, registration).
pub type Uploader = (i32, i32, Uuid);

/// One segment to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    pub base_offset: i64,
    /// Where the remote copy counts from (above everything remote before it).
    pub start_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadPlan {
    /// Remote segments to delete before anything is uploaded.
    pub clean_up: Vec<Uuid>,
    pub uploads: Vec<Upload>,
}

/// The round's plan. `closed`: the closed segments in offset order (not the active one);
/// `uploader`: this leader's (epoch, id, incarnation); `in_flight`: copies this uploader
/// has started and not yet finished (left alone).
pub fn plan(
    closed: &[LocalSegment],
    high_watermark: i64,
    log_start_offset: i64,
    remote: Option<&RemoteLogImage>,
    uploader: Uploader,
    in_flight: &BTreeSet<Uuid>,
    max_uploads: usize,
) -> UploadPlan {
    let clean_up = remote
        .map(|r| r.abandoned(uploader).into_iter().map(|s| s.segment_id).filter(|id| !in_flight.contains(id)).collect())
        .unwrap_or_default();
    let mut from = remote.and_then(RemoteLogImage::highest_remote_offset).map_or(log_start_offset, |high| high + 1);
    from = from.max(log_start_offset);
    let mut uploads = Vec::new();
    for segment in closed {
        if uploads.len() >= max_uploads || segment.next_offset > high_watermark {
            break;
        }
        let end_offset = segment.next_offset - 1;
        if segment.next_offset <= segment.base_offset || end_offset < from {
            continue;
        }
        let start_offset = segment.base_offset.max(from);
        uploads.push(Upload {
            base_offset: segment.base_offset,
            start_offset,
            end_offset,
            size_bytes: segment.size_bytes,
            max_timestamp_ms: segment.max_timestamp_ms,
        });
        from = end_offset + 1;
    }
    UploadPlan { clean_up, uploads }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use runnel_metadata::remote_log::{RemoteSegment, RemoteSegmentState, RemoteStateChange};

    use super::*;

    const ME: Uploader = (2, 1, Uuid::from_u128(5));

    /// (id, start, end, who started it, finished).
    type Copy = (u128, i64, i64, Uploader, bool);

    fn local(base: i64, next: i64) -> LocalSegment {
        LocalSegment { base_offset: base, next_offset: next, size_bytes: 10, max_timestamp_ms: 0 }
    }

    fn remote(ranges: &[Copy]) -> RemoteLogImage {
        let mut log = RemoteLogImage::default();
        for (id, start, end, who, finished) in ranges {
            let segment = RemoteSegment {
                segment_id: Uuid::from_u128(*id),
                base_offset: *start,
                start_offset: *start,
                end_offset: *end,
                max_timestamp_ms: 0,
                size_bytes: 1,
                leader_epochs: Vec::new(),
                leader_epoch: who.0,
                broker_id: who.1,
                incarnation_id: who.2,
                state: RemoteSegmentState::CopyStarted,
            };
            assert!(log.start(segment, Some(*who)));
            if *finished {
                let change = RemoteStateChange::CopyFinished { checksums: BTreeMap::new() };
                assert!(log.change(Uuid::from_u128(*id), &change, Some(*who)));
            }
        }
        log
    }

    #[test]
    fn closed_segments_below_the_high_watermark_and_above_what_is_remote() {
        let closed = [local(0, 100), local(100, 200), local(200, 300), local(300, 400)];
        let none = BTreeSet::new();
        let all = plan(&closed, 350, 0, None, ME, &none, 10);
        let ranges: Vec<(i64, i64)> = all.uploads.iter().map(|u| (u.start_offset, u.end_offset)).collect();
        assert_eq!(ranges, vec![(0, 99), (100, 199), (200, 299)], "not the segment the high watermark cuts");
        assert_eq!(plan(&closed, 350, 0, None, ME, &none, 1).uploads.len(), 1);
        // A new leader whose segments are cut elsewhere continues above the old leader's.
        let earlier = remote(&[(1, 0, 149, (1, 2, Uuid::from_u128(4)), true)]);
        let next = plan(&closed, 400, 0, Some(&earlier), ME, &none, 10);
        let first = next.uploads[0];
        assert_eq!((first.base_offset, first.start_offset, first.end_offset), (100, 150, 199));
        assert_eq!(next.uploads.len(), 3);
        // Below the local log start nothing is uploaded.
        assert_eq!(plan(&closed, 400, 250, None, ME, &none, 10).uploads[0].start_offset, 250);
    }

    #[test]
    fn abandoned_copies_are_cleaned_up_unless_this_uploader_has_them_in_flight() {
        let old = (1, 3, Uuid::from_u128(3));
        let log = remote(&[(1, 0, 99, old, true), (2, 100, 199, old, false), (3, 200, 299, ME, false)]);
        let in_flight: BTreeSet<Uuid> = [Uuid::from_u128(3)].into();
        let plan = plan(&[local(0, 100)], 100, 0, Some(&log), ME, &in_flight, 10);
        assert_eq!(plan.clean_up, vec![Uuid::from_u128(2)], "the old leader's unfinished copy");
        assert!(plan.uploads.is_empty(), "offset 0..99 is remote already");
        let restarted = (2, 1, Uuid::from_u128(6));
        let after_restart = super::plan(&[], 0, 0, Some(&log), restarted, &BTreeSet::new(), 10);
        assert_eq!(
            after_restart.clean_up,
            vec![Uuid::from_u128(2), Uuid::from_u128(3)],
            "its own copy from before a crash"
        );
    }
}
