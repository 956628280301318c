//! Offset assignment for an append: stamps each batch's header in place, nothing else.
//!
//! Pure over the bytes (no I/O, no clock), so it is tested directly. Works on headers only:
//! no per-record work, no copy.

use runnel_protocol::batch::{BatchError, BatchMut, BatchView, HEADER_BYTES, LOG_OVERHEAD};

/// What the stamped record set holds, for the log to account and report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamped {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp (-1 if none) and the last offset of the first batch with it.
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub record_count: u64,
}

/// Assigns offsets from `next_offset` to every batch of `records` and sets the leader
/// epoch, and LogAppendTime when `log_append_time_ms` is given. The batches must already
/// have been validated; framing is re-checked because a mistake here would corrupt the log.
pub(crate) fn stamp_batches(
    records: &mut [u8],
    next_offset: i64,
    leader_epoch: i32,
    log_append_time_ms: Option<i64>,
) -> Result<Stamped, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Truncated("empty record set"));
    }
    let mut stamped = Stamped {
        base_offset: next_offset,
        last_offset: next_offset - 1,
        max_timestamp: -1,
        offset_of_max_timestamp: next_offset,
        record_count: 0,
    };
    let mut at = 0usize;
    while at < records.len() {
        let rest = &mut records[at..];
        if rest.len() < HEADER_BYTES {
            return Err(BatchError::Truncated("partial batch header"));
        }
        let length = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let size = usize::try_from(length).map_err(|_| BatchError::Invalid("negative batch length"))? + LOG_OVERHEAD;
        if size > rest.len() {
            return Err(BatchError::Truncated("batch extends past the record set"));
        }
        let batch = &mut rest[..size];
        let view = BatchView::parse(batch)?;
        if view.last_offset_delta() < 0 {
            return Err(BatchError::Invalid("negative lastOffsetDelta"));
        }
        let record_count = u64::try_from(view.record_count()).unwrap_or(0);
        let mut batch = BatchMut::new(batch);
        batch.set_base_offset(stamped.last_offset + 1);
        batch.set_partition_leader_epoch(leader_epoch);
        if let Some(now_ms) = log_append_time_ms {
            batch.set_log_append_time(now_ms);
        }
        let view = batch.view();
        if view.max_timestamp() > stamped.max_timestamp {
            stamped.max_timestamp = view.max_timestamp();
            stamped.offset_of_max_timestamp = view.last_offset();
        }
        stamped.last_offset = view.last_offset();
        stamped.record_count += record_count;
        at += size;
    }
    Ok(stamped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::batch::build_batch;

    #[test]
    fn assigns_contiguous_offsets_and_tracks_the_max_timestamp() {
        let mut records = build_batch(500, &[b"a", b"b", b"c"]);
        records.extend(build_batch(100, &[b"d"]));
        let stamped = stamp_batches(&mut records, 10, 7, None).unwrap();
        assert_eq!((stamped.base_offset, stamped.last_offset), (10, 13));
        assert_eq!((stamped.max_timestamp, stamped.offset_of_max_timestamp), (502, 12));
        assert_eq!(stamped.record_count, 4);
        let first = BatchView::parse(&records[..records.len() - build_batch(100, &[b"d"]).len()]).unwrap();
        assert_eq!((first.base_offset(), first.partition_leader_epoch()), (10, 7));
        first.validate().unwrap();
    }

    #[test]
    fn log_append_time_replaces_the_max_timestamp_and_keeps_the_crc_valid() {
        let mut records = build_batch(500, &[b"a", b"b"]);
        let stamped = stamp_batches(&mut records, 0, 0, Some(9_000)).unwrap();
        assert_eq!(stamped.max_timestamp, 9_000);
        let view = BatchView::parse(&records).unwrap();
        assert!(view.is_log_append_time());
        view.validate().unwrap();
    }

    #[test]
    fn rejects_a_torn_record_set() {
        let mut records = build_batch(0, &[b"a"]);
        records.extend_from_slice(&[0; 20]);
        assert!(stamp_batches(&mut records, 0, 0, None).is_err());
        assert!(stamp_batches(&mut [], 0, 0, None).is_err());
    }
}
