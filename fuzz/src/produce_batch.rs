//! What the broker does with a producer's record set before and after it reaches storage,
//! using only `runnel_protocol::batch` (shared by `request_frame` and `record_batch`).
//!
//! [`single_batch`] is the produce handler's check (`single_produce_batch` in
//! `runnel_protocol::batch`): exactly one batch, framed, within `max.message.bytes`, then
//! `BatchView::validate` (CRC32C, codec, count, lastOffsetDelta, record length walk for
//! uncompressed batches) and `BatchView::validate_records` (compressed batches decompressed
//! and their records read; keys on compacted topics, chosen here by the input's length). [`after_append`] is what the log and the read paths do with a
//! batch that passed: stamp base offset and leader epoch in place (and LogAppendTime),
//! then read it back the way ListOffsets-by-timestamp and the internal-topic replays do.

use runnel_protocol::batch::{BatchMut, BatchView, Compression, RecordChecks};
use runnel_protocol::ResponseError;

/// The broker's default `max.message.bytes` (Kafka's: 1 MiB + record batch overhead).
pub const MAX_MESSAGE_BYTES: usize = 1_048_588;

/// The produce handler's check (`runnel_protocol::batch::single_produce_batch`).
pub fn single_batch(records: &[u8], max_message_bytes: usize) -> Result<BatchView<'_>, (ResponseError, String)> {
    // A smaller decompression bound than the broker's keeps each input quick.
    let checks = RecordChecks { keys_required: records.len().is_multiple_of(2), decompressed_max_bytes: 1 << 20 };
    runnel_protocol::batch::single_produce_batch(records, max_message_bytes, checks)
}

/// Every header accessor the broker reads from a framed batch (none may panic).
pub fn read_header(view: &BatchView<'_>) {
    let _ = (view.size(), view.last_offset_delta(), view.partition_leader_epoch(), view.crc(), view.attributes());
    let _ = (view.base_timestamp(), view.max_timestamp(), view.producer_id(), view.producer_epoch());
    let _ = (view.base_sequence(), view.record_count(), view.is_transactional(), view.is_control());
    let _ = (view.is_log_append_time(), view.compression(), view.computed_crc());
}

/// What happens to a validated producer batch once the leader appends it at `log_end`,
/// and when it is read back: stamping, then the read-side record walks.
pub fn after_append(batch: &[u8], log_end: i64, log_append_time_ms: Option<i64>) {
    let mut copy = batch.to_vec();
    {
        let mut stamped = BatchMut::new(&mut copy);
        stamped.set_base_offset(log_end);
        stamped.set_partition_leader_epoch(0);
        if let Some(now_ms) = log_append_time_ms {
            stamped.set_log_append_time(now_ms);
        }
    }
    let view = BatchView::parse(&copy).expect("stamping keeps the framing");
    view.check_crc().expect("stamping keeps the CRC valid");
    read_header(&view);
    let _ = view.last_offset();
    // ListOffsets by timestamp (`Segment::find_timestamp`, for a requested timestamp >= 0):
    // any timestamp up to the batch's max makes it walk the records of an uncompressed
    // CreateTime batch.
    for timestamp in [view.max_timestamp(), view.base_timestamp(), 0, i64::MAX] {
        if timestamp >= 0 && timestamp <= view.max_timestamp() {
            let _ = view.first_at_or_after(timestamp);
        }
    }
    // Internal-topic replays (groups, local metadata log) read records of uncompressed
    // batches; compressed ones are refused.
    match view.compression() {
        Ok(Compression::None) => {
            let _ = view.records();
        }
        _ => assert!(view.records().is_err(), "records() refuses compressed batches"),
    }
}
