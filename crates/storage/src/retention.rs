//! Retention decisions: which closed segments to delete. Pure: the log gathers the
//! summaries and the clock, this decides, the log deletes.

use crate::LogConfig;

/// What retention needs to know about one closed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub next_offset: i64,
    pub size_bytes: u64,
    pub largest_timestamp_ms: i64,
}

/// How many of the oldest closed segments (`closed`, oldest first) to delete, given the
/// whole log's size. In order, as Kafka applies them: segments entirely below the log
/// start offset, then by age (`now - largest timestamp > retention_ms`), then by size
/// (while the log stays at least `retention_bytes` without the segment).
pub(crate) fn deletable_segments(
    closed: &[SegmentSummary],
    log_bytes: u64,
    log_start_offset: i64,
    config: &LogConfig,
    now_ms: i64,
) -> usize {
    by_limits(closed, log_bytes, log_start_offset, (config.retention_ms, config.retention_bytes), now_ms)
}

/// Tiered storage's local retention: as [`deletable_segments`] with `local.retention.*`,
/// but a segment goes by age or size only once remote storage holds every offset of it
/// (`uploaded_through`, the highest offset copied; -1: none).
pub(crate) fn locally_deletable_segments(
    closed: &[SegmentSummary],
    log_bytes: u64,
    log_start_offset: i64,
    config: &LogConfig,
    now_ms: i64,
    uploaded_through: i64,
) -> usize {
    let below_start = closed.iter().take_while(|s| s.next_offset <= log_start_offset).count();
    let uploaded = closed.iter().take_while(|s| s.next_offset - 1 <= uploaded_through).count();
    let by_retention = by_limits(closed, log_bytes, log_start_offset, config.local_retention(), now_ms);
    below_start.max(by_retention.min(uploaded))
}

fn by_limits(
    closed: &[SegmentSummary],
    log_bytes: u64,
    log_start_offset: i64,
    (retention_ms, retention_bytes): (i64, i64),
    now_ms: i64,
) -> usize {
    let mut count = closed.iter().take_while(|s| s.next_offset <= log_start_offset).count();
    if retention_ms >= 0 {
        count +=
            closed[count..].iter().take_while(|s| now_ms.saturating_sub(s.largest_timestamp_ms) > retention_ms).count();
    }
    if retention_bytes >= 0 {
        let deleted_bytes: u64 = closed[..count].iter().map(|s| s.size_bytes).sum();
        let mut excess_bytes = i128::from(log_bytes - deleted_bytes) - i128::from(retention_bytes);
        for segment in &closed[count..] {
            if excess_bytes - i128::from(segment.size_bytes) < 0 {
                break;
            }
            excess_bytes -= i128::from(segment.size_bytes);
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summaries() -> Vec<SegmentSummary> {
        (0..4)
            .map(|i| SegmentSummary { next_offset: (i + 1) * 10, size_bytes: 100, largest_timestamp_ms: i * 1000 })
            .collect()
    }

    fn config(retention_ms: i64, retention_bytes: i64) -> LogConfig {
        LogConfig { retention_ms, retention_bytes, ..LogConfig::default() }
    }

    #[test]
    fn by_time_deletes_the_oldest_run_of_expired_segments() {
        let closed = summaries();
        assert_eq!(deletable_segments(&closed, 450, 0, &config(1500, -1), 3000), 2);
        assert_eq!(deletable_segments(&closed, 450, 0, &config(-1, -1), 3000), 0);
    }

    #[test]
    fn by_size_keeps_at_least_retention_bytes() {
        let closed = summaries();
        // 450 bytes in the log (4 closed of 100 + 50 active); keep >= 200.
        assert_eq!(deletable_segments(&closed, 450, 0, &config(-1, 200), 0), 2);
        assert_eq!(deletable_segments(&closed, 450, 0, &config(-1, 0), 0), 4);
        assert_eq!(deletable_segments(&closed, 450, 0, &config(-1, 1000), 0), 0);
    }

    #[test]
    fn segments_below_the_log_start_offset_go_first() {
        let closed = summaries();
        assert_eq!(deletable_segments(&closed, 450, 25, &config(-1, -1), 0), 2);
    }

    #[test]
    fn local_retention_waits_for_uploads() {
        let closed = summaries();
        let config = LogConfig { retention_ms: -1, local_retention_ms: 500, ..LogConfig::default() };
        // Every segment is older than 500 ms at t=10 000, but only two are uploaded.
        assert_eq!(locally_deletable_segments(&closed, 500, 0, &config, 10_000, 19), 2);
        assert_eq!(
            locally_deletable_segments(&closed, 500, 0, &config, 10_000, 18),
            1,
            "a partly uploaded segment stays"
        );
        assert_eq!(locally_deletable_segments(&closed, 500, 0, &config, 10_000, -1), 0, "nothing uploaded");
        // Below the log start offset (DeleteRecords) goes whatever was uploaded.
        assert_eq!(locally_deletable_segments(&closed, 500, 30, &config, 0, -1), 3);
        // -2: the total retention.
        let same = LogConfig { retention_bytes: 250, ..LogConfig::default() };
        assert_eq!(same.local_retention(), (same.retention_ms, 250));
        assert_eq!(locally_deletable_segments(&closed, 500, 0, &same, 0, 1_000), 2);
    }
}
