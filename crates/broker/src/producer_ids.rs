//! Producer ids for InitProducerId, taken from blocks the controller allocates through the
//! metadata log, so an id is never handed out twice: not after a restart (the log is
//! durable before an id from a new block is used), and not across brokers once the log is
//! replicated.

use std::ops::Range;
use std::sync::Mutex;

use runnel_metadata::controller::allocate_producer_ids;
use runnel_metadata::MetadataError;

use crate::locks::MutexExt;
use crate::metadata_store::MetadataStore;

/// Racing brokers each retry for a fresh block; bounded all the same.
const BLOCK_ATTEMPTS_MAX: u32 = 16;

/// Epochs remembered for KIP-360 bumps; beyond this the memory is cleared (a bump is then
/// trusted as Kafka's clients send it).
const EPOCHS_REMEMBERED_MAX: usize = 100_000;

pub struct ProducerIdManager {
    broker_id: i32,
    /// The latest epoch this broker handed out per producer id, so a client re-initialising
    /// with a stale epoch gets a fresh id instead of an epoch that is already fenced.
    epochs: Mutex<std::collections::HashMap<i64, i16>>,
    /// The unused rest of the current block.
    block: Mutex<Range<i64>>,
}

impl ProducerIdManager {
    pub fn new(broker_id: i32) -> Self {
        ProducerIdManager { broker_id, block: Mutex::new(0..0), epochs: Mutex::new(Default::default()) }
    }

    /// The next unused producer id; commits a new block when the current one is spent.
    /// Blocks are granted once (the image skips a racing request for the same block), so
    /// a broker that lost a race asks again for the next one.
    pub fn next(&self, metadata: &MetadataStore) -> Result<i64, MetadataError> {
        let mut block = self.block.locked();
        let mut attempts = 0;
        while block.is_empty() {
            attempts += 1;
            if attempts > BLOCK_ATTEMPTS_MAX {
                return Err(MetadataError::ProducerIdBlock { attempts: BLOCK_ATTEMPTS_MAX });
            }
            let mut asked = 0..0;
            // Granted only if the image names this very request: owner and end alone would
            // also match a stale request for the block this broker held before a restart.
            let request_id = uuid::Uuid::new_v4();
            let image = metadata
                .commit(|image| {
                    let (range, record) = allocate_producer_ids(image, self.broker_id, request_id);
                    asked = range;
                    Ok::<_, ()>(vec![record])
                })?
                .expect("allocation always decides");
            if image.producer_id_grant == request_id && image.next_producer_id == asked.end {
                *block = asked;
            }
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }

    /// KIP-360: the epoch after `epoch` for `producer_id`, if `epoch` is the latest this
    /// broker handed out for it (or it knows none); `None` means the caller's epoch is
    /// stale or exhausted and a fresh id is due.
    pub fn bump(&self, producer_id: i64, epoch: i16) -> Option<i16> {
        let mut epochs = self.epochs.locked();
        let latest = epochs.get(&producer_id).copied();
        if latest.is_some_and(|latest| latest != epoch) || epoch >= i16::MAX - 1 {
            return None;
        }
        if epochs.len() >= EPOCHS_REMEMBERED_MAX {
            epochs.clear();
        }
        epochs.insert(producer_id, epoch + 1);
        Some(epoch + 1)
    }

    /// Records the epoch a fresh id starts with.
    pub fn started(&self, producer_id: i64) {
        let mut epochs = self.epochs.locked();
        if epochs.len() >= EPOCHS_REMEMBERED_MAX {
            epochs.clear();
        }
        epochs.insert(producer_id, 0);
    }

    /// Whether `producer_id` was ever handed out by this cluster.
    pub fn was_allocated(&self, metadata: &MetadataStore, producer_id: i64) -> bool {
        (0..metadata.image().next_producer_id).contains(&producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_epoch_is_bumped() {
        let ids = ProducerIdManager::new(1);
        ids.started(7);
        assert_eq!(ids.bump(7, 0), Some(1));
        assert_eq!(ids.bump(7, 0), None, "epoch 0 is stale now");
        assert_eq!(ids.bump(7, 1), Some(2));
        assert_eq!(ids.bump(8, 4), Some(5), "unknown here (e.g. after a restart): trusted");
        assert_eq!(ids.bump(9, i16::MAX - 1), None, "exhausted: a fresh id");
    }
}
