//! Transactions as a cleaning pass meets them, in offset order (Kafka's
//! `CleanedTransactionMetadata`): the records of an aborted transaction go, and a marker
//! goes once nothing of its transaction is left and its delete horizon has passed.
//!
//! Invariants: a batch of an aborted transaction (per the transaction index) keeps no
//! record, and stays (empty) only when it is its producer's last batch; a marker stays
//! while any batch of its transaction stays (else a replay would find a transaction that
//! never ends and hold the last stable offset back for ever), and otherwise gets a delete
//! horizon of `now + delete.retention.ms` the first time it is cleaned (so consumers that
//! read its transaction still see it end) and goes once that has passed; a transaction
//! index entry stays exactly as long as its abort marker.

use std::collections::HashMap;

use runnel_protocol::batch::{rewrite_batch, BatchError, BatchView, Rewrite};
use runnel_protocol::compression::RecordStream;

use super::filter::{CleanContext, Cleaned};
use crate::txn_index::AbortedTxn;

/// A transaction of one producer, from its first batch met in the pass to its marker.
#[derive(Debug, Clone, Copy)]
struct Open {
    aborted: bool,
    /// Some batch of it stays in the cleaned log (with records, or empty as its
    /// producer's last).
    kept_batch: bool,
}

/// The pass's view of transactions.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    /// The aborted transactions of the segments being cleaned.
    aborted: Vec<AbortedTxn>,
    open: HashMap<i64, Open>,
}

impl Transactions {
    pub fn new(aborted: Vec<AbortedTxn>) -> Self {
        Transactions { aborted, open: HashMap::new() }
    }

    /// Whether a transactional data batch belongs to an aborted transaction (stateless:
    /// building the offset map skips such batches, so an aborted value never supersedes
    /// a committed one).
    pub fn is_aborted(&self, batch: &BatchView<'_>) -> bool {
        let (producer_id, base) = (batch.producer_id(), batch.base_offset());
        batch.is_transactional()
            && self
                .aborted
                .iter()
                .any(|a| a.producer_id == producer_id && a.first_offset <= base && base <= a.last_offset)
    }

    /// A transactional data batch: whether its transaction was aborted (its records go).
    pub fn on_data(&mut self, batch: &BatchView<'_>) -> bool {
        let aborted = self.is_aborted(batch);
        self.open.entry(batch.producer_id()).or_insert(Open { aborted, kept_batch: false }).aborted
    }

    /// A batch of `producer_id`'s open transaction stays in the cleaned log.
    pub fn kept(&mut self, producer_id: i64) {
        if let Some(open) = self.open.get_mut(&producer_id) {
            open.kept_batch = true;
        }
    }

    /// A marker: whether it may go (nothing of its transaction stays); the transaction ends.
    pub fn on_marker(&mut self, producer_id: i64) -> bool {
        self.open.remove(&producer_id).is_none_or(|open| !open.kept_batch)
    }
}

/// A batch of an aborted transaction: dropped, or kept empty when it is its producer's last.
pub(crate) fn discard_records(batch: &BatchView<'_>, producer_last: bool) -> Result<Cleaned, BatchError> {
    if !producer_last {
        return Ok(Cleaned::Dropped);
    }
    if batch.record_count() == 0 {
        return Ok(Cleaned::Unchanged);
    }
    let rewrite = Rewrite {
        record_count: 0,
        base_timestamp: batch.base_timestamp(),
        max_timestamp: batch.max_timestamp(),
        delete_horizon: false,
    };
    Ok(Cleaned::Rewritten(rewrite_batch(batch, rewrite, &[])?))
}

/// A marker nothing of whose transaction stays: it gets a delete horizon the first time,
/// and goes once the horizon has passed.
pub(crate) fn expiring_marker(batch: &BatchView<'_>, ctx: &CleanContext<'_>) -> Result<Cleaned, BatchError> {
    match batch.delete_horizon() {
        Some(horizon) if ctx.now_ms >= horizon => Ok(Cleaned::Dropped),
        Some(_) => Ok(Cleaned::Unchanged),
        None => {
            let horizon = ctx.now_ms.saturating_add(ctx.delete_retention_ms);
            let original_base = batch.base_timestamp();
            let mut stream = RecordStream::new(
                batch.compression()?,
                &batch.bytes()[runnel_protocol::batch::HEADER_BYTES..],
                ctx.decompressed_max_bytes,
            )?;
            let mut plain = Vec::new();
            let mut count = 0i32;
            while let Some(record) = stream.next_record()? {
                let timestamp = original_base.saturating_add(record.timestamp_delta);
                record.encode(timestamp.saturating_sub(horizon), record.offset_delta, &mut plain);
                count += 1;
            }
            let rewrite = Rewrite {
                record_count: count,
                base_timestamp: horizon,
                max_timestamp: batch.max_timestamp(),
                delete_horizon: true,
            };
            Ok(Cleaned::Rewritten(rewrite_batch(batch, rewrite, &plain)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::batch::{build_batch, BatchMut};
    use runnel_protocol::control::Marker;

    fn transactional(producer_id: i64, base: i64, records: usize) -> Vec<u8> {
        let values: Vec<&[u8]> = (0..records).map(|_| b"v".as_slice()).collect();
        let mut batch = build_batch(1_000, &values);
        let mut stamped = BatchMut::new(&mut batch);
        stamped.set_producer(producer_id, 0, 0);
        stamped.set_transactional(false);
        stamped.set_base_offset(base);
        batch
    }

    #[test]
    fn aborted_records_go_and_markers_outlive_what_stays_of_their_transaction() {
        let aborted = vec![AbortedTxn { producer_id: 7, first_offset: 10, last_offset: 12, last_stable_offset: 13 }];
        let mut txns = Transactions::new(aborted);
        let aborted_batch = transactional(7, 10, 2);
        let committed_batch = transactional(8, 11, 1);
        assert!(txns.on_data(&BatchView::parse(&aborted_batch).unwrap()), "producer 7's transaction was aborted");
        assert!(!txns.on_data(&BatchView::parse(&committed_batch).unwrap()), "producer 8's was not");
        txns.kept(8);
        assert!(txns.on_marker(7), "nothing of the aborted transaction stays: its marker may go");
        assert!(!txns.on_marker(8), "a committed record stays: its marker too");
        assert!(txns.on_marker(9), "a marker of a transaction with nothing here may go");

        let view = BatchView::parse(&aborted_batch).unwrap();
        assert_eq!(discard_records(&view, false).unwrap(), Cleaned::Dropped);
        let Cleaned::Rewritten(empty) = discard_records(&view, true).unwrap() else { panic!("kept empty") };
        let empty = BatchView::parse(&empty).unwrap();
        assert_eq!((empty.record_count(), empty.base_offset(), empty.last_offset()), (0, 10, 11));

        let map = crate::cleaner::OffsetMap::with_buffer(1 << 16);
        let ctx =
            CleanContext { map: &map, now_ms: 5_000, delete_retention_ms: 1_000, decompressed_max_bytes: 1 << 20 };
        let mut marker = Marker { commit: false, coordinator_epoch: 3 }.batch(7, 0, 4_000);
        BatchMut::new(&mut marker).set_base_offset(12);
        let Cleaned::Rewritten(expiring) = expiring_marker(&BatchView::parse(&marker).unwrap(), &ctx).unwrap() else {
            panic!("the first cleaning sets a horizon")
        };
        let expiring = BatchView::parse(&expiring).unwrap();
        assert_eq!(expiring.delete_horizon(), Some(6_000));
        assert_eq!(Marker::of(&expiring).unwrap(), Some(Marker { commit: false, coordinator_epoch: 3 }));
        assert_eq!(expiring_marker(&expiring, &ctx).unwrap(), Cleaned::Unchanged, "before its horizon");
        let later = CleanContext { now_ms: 6_000, ..ctx };
        assert_eq!(expiring_marker(&expiring, &later).unwrap(), Cleaned::Dropped, "once its horizon passed");
    }
}
