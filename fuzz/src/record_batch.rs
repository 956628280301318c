//! `record_batch`: a record set as a producer or a replica leader sends it, through
//! `runnel_protocol::batch` validation and the storage appends that take it.
//!
//! Input: one flags byte, then the record set.
//! * bit 0: recompute the CRC32C of every framed batch first (so mutations get past the
//!   CRC and reach what follows it);
//! * bit 1: the topic uses LogAppendTime.
//!
//! Paths, in order:
//! 1. the produce handler's checks (`produce_batch::single_batch`: framing, one batch,
//!    `max.message.bytes`, `BatchView::validate` for every codec, including the compressed
//!    ones whose records are not walked), then stamping and the read-side record walks;
//! 2. a batch that passed is appended by the leader path, `PartitionLog::append_batch`
//!    (producer id/epoch/sequence checks, header stamping, zero-copy write), twice, so the
//!    second append meets its own producer state (a duplicate), and once more through
//!    `PartitionLog::append` (the internal topics' path, `stamp_batches`);
//! 3. the whole record set, whatever it holds, is offered to a fresh log as a follower
//!    would append it (`PartitionLog::append_as_follower`: framing, CRC, contiguity);
//! 4. each log is read back (Fetch, ListOffsets by timestamp), closed, and reopened both
//!    after a clean shutdown and with recovery, which re-checks every batch.

use runnel_protocol::batch::{HEADER_BYTES, LOG_OVERHEAD};
use runnel_storage::PartitionLog;

use crate::produce_batch;
use crate::scratch::{self, NOW_MS};

const FIX_CRC: u8 = 1;
const LOG_APPEND_TIME: u8 = 2;

/// Recomputes the CRC of every whole batch the bytes frame, in place.
pub fn fix_crcs(records: &mut [u8]) {
    let mut at = 0usize;
    while records.len() - at >= HEADER_BYTES {
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let Ok(length) = usize::try_from(length) else { return };
        let Some(end) = (at + LOG_OVERHEAD).checked_add(length).filter(|end| *end <= records.len()) else { return };
        if end - at < HEADER_BYTES {
            return;
        }
        let crc = crc32c::crc32c(&records[at + 21..end]);
        records[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

fn read_back(log: &PartitionLog) {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    for offset in [start, end.saturating_sub(1).max(start), end] {
        let _ = log.read(offset, 1 << 20, end, true);
        let _ = log.read(offset, 1, end, false);
    }
    // ListOffsets asks for timestamps >= 0 (negative ones are the special queries).
    for timestamp in [0, NOW_MS, i64::MAX] {
        let _ = log.offset_for_timestamp(timestamp);
    }
    if let Some((timestamp, _)) = log.max_timestamp_and_offset().filter(|(timestamp, _)| *timestamp >= 0) {
        let _ = log.offset_for_timestamp(timestamp);
    }
    let _ = (log.latest_epoch(), log.end_offset_for_epoch(0), log.epoch_for_offset(start));
}

/// Reads, closes, and reopens the log in `dir` clean and then with recovery.
fn close_and_reopen(log: PartitionLog, dir: &std::path::Path) {
    read_back(&log);
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    log.close().expect("close");
    let reopened =
        PartitionLog::open(dir, scratch::small_log_config(), end, start, true, NOW_MS).expect("clean reopen");
    assert_eq!(reopened.log_end_offset(), end, "a clean reopen keeps the log end");
    read_back(&reopened);
    drop(reopened);
    let recovered = PartitionLog::open(dir, scratch::small_log_config(), 0, start, false, NOW_MS).expect("recovery");
    assert_eq!(recovered.log_end_offset(), end, "recovery keeps every batch it appended");
    read_back(&recovered);
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let Some((&flags, records)) = data.split_first() else { return };
    let mut records = records.to_vec();
    if flags & FIX_CRC != 0 {
        fix_crcs(&mut records);
    }
    let log_append_time = flags & LOG_APPEND_TIME != 0;

    // 1-2: the produce path.
    if let Ok(batch) = produce_batch::single_batch(&records, produce_batch::MAX_MESSAGE_BYTES) {
        produce_batch::read_header(&batch);
        produce_batch::after_append(batch.bytes(), 0, log_append_time.then_some(NOW_MS));
        let dir = scratch::dir();
        let mut log = PartitionLog::open(dir.path(), scratch::small_log_config(), 0, 0, false, NOW_MS).expect("open");
        for _ in 0..2 {
            let _ = log.append_batch(batch.bytes(), 1, log_append_time, NOW_MS);
        }
        let mut copy = batch.bytes().to_vec();
        let _ = log.append(&mut copy, 2, log_append_time, NOW_MS);
        close_and_reopen(log, dir.path());
    }

    // 3: the follower path, for any record set.
    let dir = scratch::dir();
    let mut log = PartitionLog::open(dir.path(), scratch::small_log_config(), 0, 0, false, NOW_MS).expect("open");
    if let Ok(Some(_)) = log.append_as_follower(&records, NOW_MS) {
        close_and_reopen(log, dir.path());
    }
}
