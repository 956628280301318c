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
    let mut count = closed.iter().take_while(|s| s.next_offset <= log_start_offset).count();
    if config.retention_ms >= 0 {
        count += closed[count..]
            .iter()
            .take_while(|s| now_ms.saturating_sub(s.largest_timestamp_ms) > config.retention_ms)
            .count();
    }
    if config.retention_bytes >= 0 {
        let deleted_bytes: u64 = closed[..count].iter().map(|s| s.size_bytes).sum();
        let mut excess_bytes = i128::from(log_bytes - deleted_bytes) - i128::from(config.retention_bytes);
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
}
