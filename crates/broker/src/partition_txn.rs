//! The leader's side of transactions on a partition: a transactional batch is appended only
//! when its transaction is known to include the partition (KIP-890 part 1), and the
//! coordinator's commit and abort markers are appended here.
//!
//! Invariants: a transactional batch that would open a transaction (its producer has none
//! open here at the batch's epoch) is appended only if the coordinator confirmed, since
//! that producer's last marker here, that the partition is in the producer's transaction at
//! that epoch. The confirmation is consumed by the append and cleared by a marker, both
//! under the log's lock, so a batch confirmed before its transaction ended can never open
//! a transaction after the marker (the "hanging transaction" KIP-890 closes).

use runnel_protocol::control::Marker;
use runnel_storage::{AppendInfo, ProducerError, StorageError};

use crate::locks::MutexExt;
use crate::partition::{Partition, PartitionError};

impl Partition {
    /// The coordinator confirmed the partition is in `producer_id`'s transaction at `epoch`.
    pub fn txn_confirmed(&self, producer_id: i64, epoch: i16) {
        self.txn_verified.locked().insert(producer_id, epoch);
    }

    /// Leader in `leader_epoch`: appends a transactional batch of `producer_id` at `epoch`,
    /// refused with [`ProducerError::NotInTransaction`] when it would open a transaction
    /// nobody confirmed.
    pub fn append_transactional_batch(
        &self,
        batch: &[u8],
        (producer_id, epoch): (i64, i16),
        leader_epoch: i32,
        log_append_time: bool,
        now_ms: i64,
    ) -> Result<(AppendInfo, i64), PartitionError> {
        self.append_as_leader(leader_epoch, |log| {
            if !open_in(log, producer_id, epoch) {
                let mut verified = self.txn_verified.locked();
                if verified.get(&producer_id) != Some(&epoch) {
                    return Err(StorageError::Producer(ProducerError::NotInTransaction { producer_id, epoch }));
                }
                verified.remove(&producer_id);
            }
            log.append_batch(batch, leader_epoch, log_append_time, now_ms)
        })
    }

    /// Leader in `leader_epoch`: appends `marker` for `producer_id` at `producer_epoch`,
    /// ending its open transaction here (a marker for a producer with none open is written
    /// and changes nothing, as in Kafka).
    pub fn append_marker(
        &self,
        marker: Marker,
        (producer_id, producer_epoch): (i64, i16),
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, PartitionError> {
        let mut batch = marker.batch(producer_id, producer_epoch, now_ms);
        self.append_as_leader(leader_epoch, |log| {
            self.txn_verified.locked().remove(&producer_id);
            log.append(&mut batch, leader_epoch, false, now_ms)
        })
        .map(|(info, _)| info)
    }
}

fn open_in(log: &runnel_storage::PartitionLog, producer_id: i64, epoch: i16) -> bool {
    log.producer_state().entry(producer_id).is_some_and(|e| e.epoch == epoch && e.txn_first_offset.is_some())
}
