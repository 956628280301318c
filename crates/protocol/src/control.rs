//! Transaction markers: the control records a partition leader writes when a transaction
//! commits or aborts (Kafka's `EndTransactionMarker`). A marker is a control batch (the
//! transactional and control attributes set) of the producer's id and epoch holding one
//! record whose key is `version: i16 = 0, type: i16` (0 abort, 1 commit) and whose value is
//! `version: i16 = 0, coordinator_epoch: i32`.

use crate::batch::{build_batch_records, BatchError, BatchMut, BatchView};

const CONTROL_VERSION: i16 = 0;
const TYPE_ABORT: i16 = 0;
const TYPE_COMMIT: i16 = 1;

/// A commit or abort marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl Marker {
    /// The marker's batch for `producer_id` at `producer_epoch` (sequence -1, as Kafka
    /// writes markers), timestamped `timestamp_ms`; the log stamps its offset.
    pub fn batch(&self, producer_id: i64, producer_epoch: i16, timestamp_ms: i64) -> Vec<u8> {
        let mut key = Vec::with_capacity(4);
        key.extend_from_slice(&CONTROL_VERSION.to_be_bytes());
        key.extend_from_slice(&(if self.commit { TYPE_COMMIT } else { TYPE_ABORT }).to_be_bytes());
        let mut value = Vec::with_capacity(6);
        value.extend_from_slice(&CONTROL_VERSION.to_be_bytes());
        value.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        let mut batch = build_batch_records(timestamp_ms, &[(Some(&key), Some(&value))]);
        let mut stamped = BatchMut::new(&mut batch);
        stamped.set_producer(producer_id, producer_epoch, -1);
        stamped.set_transactional(true);
        batch
    }

    /// The marker a control batch holds; `None` for a batch that is not a control batch.
    /// A control record of an unknown type or version (a newer writer) is an error.
    pub fn of(batch: &BatchView<'_>) -> Result<Option<Marker>, BatchError> {
        if !batch.is_control() {
            return Ok(None);
        }
        let records = batch.records()?;
        let record = records.first().ok_or(BatchError::Invalid("a control batch without a record"))?;
        let key = record.key.ok_or(BatchError::Invalid("a control record without a key"))?;
        let field = |bytes: &[u8], at: usize| -> Option<i16> {
            bytes.get(at..at + 2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        };
        if field(key, 0) != Some(CONTROL_VERSION) {
            return Err(BatchError::Invalid("control record key version"));
        }
        let commit = match field(key, 2) {
            Some(TYPE_COMMIT) => true,
            Some(TYPE_ABORT) => false,
            _ => return Err(BatchError::Invalid("control record type")),
        };
        let coordinator_epoch = record
            .value
            .and_then(|v| v.get(2..6))
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(BatchError::Invalid("control record value"))?;
        Ok(Some(Marker { commit, coordinator_epoch }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build_batch;

    #[test]
    fn markers_round_trip_as_valid_control_batches() {
        for commit in [true, false] {
            let marker = Marker { commit, coordinator_epoch: 7 };
            let bytes = marker.batch(42, 3, 1_000);
            let view = BatchView::parse(&bytes).unwrap();
            view.validate().unwrap();
            assert!(view.is_control() && view.is_transactional());
            assert_eq!((view.producer_id(), view.producer_epoch(), view.base_sequence()), (42, 3, -1));
            assert_eq!(Marker::of(&view).unwrap(), Some(marker));
        }
        let plain = build_batch(0, &[b"v"]);
        assert_eq!(Marker::of(&BatchView::parse(&plain).unwrap()).unwrap(), None);
    }
}
