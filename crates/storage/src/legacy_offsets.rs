//! ListOffsets v0's answer (`OldStyleOffsets`): offsets at segment boundaries, as Kafka's
//! `UnifiedLog.legacyFetchOffsetsBefore` computed them. Pure; the log supplies the segments.

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// One candidate offset and the time it stands for: a segment's base offset (not below the
/// log start) and its file's modification time, or the log end and now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetTime {
    pub offset: i64,
    pub time_ms: i64,
}

/// Up to `max_num_offsets` offsets, newest first: from the last candidate (LATEST), the
/// first (EARLIEST), or the newest candidate whose time is at or before `timestamp`,
/// walking back towards the log start. `candidates` are oldest first.
pub fn offsets_before(candidates: &[OffsetTime], timestamp: i64, max_num_offsets: usize) -> Vec<i64> {
    let start = match timestamp {
        LATEST => candidates.len().checked_sub(1),
        EARLIEST => (!candidates.is_empty()).then_some(0),
        _ => candidates.iter().rposition(|c| c.time_ms <= timestamp),
    };
    let Some(start) = start else { return Vec::new() };
    let mut offsets: Vec<i64> = candidates[..=start].iter().rev().take(max_num_offsets).map(|c| c.offset).collect();
    // Kafka sorts the result in descending order of offsets.
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<OffsetTime> {
        vec![
            OffsetTime { offset: 5, time_ms: 100 },
            OffsetTime { offset: 10, time_ms: 200 },
            OffsetTime { offset: 20, time_ms: 300 },
            OffsetTime { offset: 25, time_ms: 400 },
        ]
    }

    #[test]
    fn latest_and_earliest() {
        assert_eq!(offsets_before(&candidates(), LATEST, 1), vec![25]);
        assert_eq!(offsets_before(&candidates(), LATEST, 10), vec![25, 20, 10, 5]);
        assert_eq!(offsets_before(&candidates(), EARLIEST, 3), vec![5]);
        assert_eq!(offsets_before(&candidates(), LATEST, 0), Vec::<i64>::new());
    }

    #[test]
    fn by_time_walks_back_from_the_newest_segment_not_after_it() {
        assert_eq!(offsets_before(&candidates(), 250, 5), vec![10, 5]);
        assert_eq!(offsets_before(&candidates(), 300, 2), vec![20, 10]);
        assert_eq!(offsets_before(&candidates(), 50, 5), Vec::<i64>::new());
        assert_eq!(offsets_before(&[], LATEST, 5), Vec::<i64>::new());
    }
}
