//! Which compacted log to clean next (Kafka's `LogCleanerManager.grabFilthiestCompactedLog`):
//! each log's cleanable range runs from its first dirty offset (the cleaner checkpoint) to
//! its first uncleanable offset (the active segment, the high watermark, or the first
//! segment with a record newer than `min.compaction.lag.ms`); its dirty ratio is the
//! cleanable bytes over the log's bytes up to that point. A log is due when its ratio
//! reaches `min.cleanable.dirty.ratio`, or when a dirty record is older than
//! `max.compaction.lag.ms`; of those due, the dirtiest goes first.

/// One closed or active segment, as the chooser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentState {
    pub base_offset: i64,
    pub bytes: u64,
    /// The earliest and latest record timestamps in it (-1 when unknown).
    pub first_timestamp: i64,
    pub max_timestamp: i64,
}

/// One compacted log and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LogState {
    /// Segments in offset order; the last is the active one.
    pub segments: Vec<SegmentState>,
    /// The cleaner's checkpoint: everything below is clean.
    pub first_dirty: i64,
    pub high_watermark: i64,
    pub min_cleanable_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    /// The earliest delete horizon of the tombstones the last pass kept (-1: none known).
    /// Once it has passed, the log is due even with nothing dirty (KIP-534).
    pub earliest_delete_horizon: i64,
}

/// A log's cleanable range and how dirty it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dirtiness {
    pub first_dirty: i64,
    pub first_uncleanable: i64,
    pub clean_bytes: u64,
    pub cleanable_bytes: u64,
    /// Whether a dirty record is older than `max.compaction.lag.ms`.
    pub overdue: bool,
}

impl Dirtiness {
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }
}

/// The cleanable range of one log at `now_ms`.
pub fn dirtiness(log: &LogState, now_ms: i64) -> Dirtiness {
    let Some((active, closed)) = log.segments.split_last() else {
        return Dirtiness {
            first_dirty: log.first_dirty,
            first_uncleanable: log.first_dirty,
            clean_bytes: 0,
            cleanable_bytes: 0,
            overdue: false,
        };
    };
    // The first segment that must not be cleaned yet: one holding a record too recent.
    let too_recent = closed
        .iter()
        .find(|s| s.max_timestamp > now_ms.saturating_sub(log.min_compaction_lag_ms))
        .map_or(active.base_offset, |s| s.base_offset);
    let first_uncleanable = too_recent.min(active.base_offset).min(log.high_watermark);
    let mut clean_bytes = 0;
    let mut cleanable_bytes = 0;
    let mut overdue = false;
    for (i, segment) in closed.iter().enumerate() {
        let next = closed.get(i + 1).map_or(active.base_offset, |s| s.base_offset);
        if next <= log.first_dirty {
            clean_bytes += segment.bytes;
        } else if next <= first_uncleanable {
            cleanable_bytes += segment.bytes;
            overdue |= segment.first_timestamp >= 0
                && log.max_compaction_lag_ms > 0
                && segment.first_timestamp < now_ms.saturating_sub(log.max_compaction_lag_ms);
        }
    }
    Dirtiness { first_dirty: log.first_dirty, first_uncleanable, clean_bytes, cleanable_bytes, overdue }
}

/// Whether a log is due: dirty enough, or a dirty record waited past
/// `max.compaction.lag.ms`, or kept tombstones are past their delete horizon.
pub fn is_due(log: &LogState, d: &Dirtiness, now_ms: i64) -> bool {
    let dirty = d.cleanable_bytes > 0 && (d.overdue || d.ratio() >= log.min_cleanable_ratio);
    dirty || (log.earliest_delete_horizon >= 0 && log.earliest_delete_horizon <= now_ms)
}

/// The index of the log to clean next, if any is due.
pub fn choose(logs: &[LogState], now_ms: i64) -> Option<usize> {
    logs.iter()
        .enumerate()
        .map(|(i, log)| (i, log, dirtiness(log, now_ms)))
        .filter(|(_, log, d)| is_due(log, d, now_ms))
        .max_by(|(_, _, a), (_, _, b)| a.ratio().total_cmp(&b.ratio()))
        .map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(base_offset: i64, bytes: u64, first_timestamp: i64, max_timestamp: i64) -> SegmentState {
        SegmentState { base_offset, bytes, first_timestamp, max_timestamp }
    }

    fn log(first_dirty: i64) -> LogState {
        LogState {
            // Three closed segments of 100 bytes and an active one.
            segments: vec![
                segment(0, 100, 1_000, 1_999),
                segment(10, 100, 2_000, 2_999),
                segment(20, 100, 3_000, 3_999),
                segment(30, 50, 4_000, 4_999),
            ],
            first_dirty,
            high_watermark: 35,
            min_cleanable_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            earliest_delete_horizon: -1,
        }
    }

    #[test]
    fn the_cleanable_range_stops_at_the_active_segment_the_high_watermark_and_the_lag() {
        let d = dirtiness(&log(10), 10_000);
        assert_eq!((d.first_uncleanable, d.clean_bytes, d.cleanable_bytes), (30, 100, 200));
        let mut behind = log(0);
        behind.high_watermark = 15;
        assert_eq!(dirtiness(&behind, 10_000).first_uncleanable, 15);
        let mut lagging = log(0);
        lagging.min_compaction_lag_ms = 8_000;
        // now - lag = 2_000: the segment at 10 has a record at 2_999, too recent.
        let d = dirtiness(&lagging, 10_000);
        assert_eq!((d.first_uncleanable, d.cleanable_bytes), (10, 100));
    }

    #[test]
    fn the_dirtiest_due_log_goes_first_and_overdue_logs_are_due_whatever_their_ratio() {
        let (clean, half, dirty) = (log(30), log(20), log(0));
        assert_eq!(choose(&[clean.clone(), half.clone(), dirty.clone()], 10_000), Some(2));
        assert_eq!(choose(&[clean.clone(), half.clone()], 10_000), None, "a third dirty is below 0.5");
        let mut overdue = half;
        overdue.max_compaction_lag_ms = 5_000;
        assert_eq!(choose(&[clean.clone(), overdue], 10_000), Some(1), "a dirty record older than the max lag");
        let mut tombstones = clean;
        tombstones.earliest_delete_horizon = 10_000;
        assert_eq!(choose(&[tombstones.clone()], 9_999), None);
        assert_eq!(choose(&[tombstones], 10_000), Some(0), "kept tombstones past their horizon");
    }
}
