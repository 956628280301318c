//! Producer ids for InitProducerId, taken from blocks the controller allocates through the
//! metadata log, so an id is never handed out twice: not after a restart (the log is
//! durable before an id from a new block is used), and not across brokers once the log is
//! replicated.

use std::ops::Range;
use std::sync::Mutex;

use runnel_metadata::controller::allocate_producer_ids;
use runnel_metadata::MetadataError;

use crate::metadata_store::MetadataStore;

/// Racing brokers each retry for a fresh block; bounded all the same.
const BLOCK_ATTEMPTS_MAX: u32 = 16;

pub struct ProducerIdManager {
    broker_id: i32,
    /// The unused rest of the current block.
    block: Mutex<Range<i64>>,
}

impl ProducerIdManager {
    pub fn new(broker_id: i32) -> Self {
        ProducerIdManager { broker_id, block: Mutex::new(0..0) }
    }

    /// The next unused producer id; commits a new block when the current one is spent.
    /// Blocks are granted once (the image skips a racing request for the same block), so
    /// a broker that lost a race asks again for the next one.
    pub fn next(&self, metadata: &MetadataStore) -> Result<i64, MetadataError> {
        let mut block = self.block.lock().expect("producer id block lock");
        let mut attempts = 0;
        while block.is_empty() {
            attempts += 1;
            if attempts > BLOCK_ATTEMPTS_MAX {
                return Err(MetadataError::Storage("could not obtain a producer id block".into()));
            }
            let mut asked = 0..0;
            let image = metadata
                .commit(|image| {
                    let (range, record) = allocate_producer_ids(image, self.broker_id);
                    asked = range;
                    Ok::<_, ()>(vec![record])
                })?
                .expect("allocation always decides");
            if image.producer_id_block_owner == self.broker_id && image.next_producer_id == asked.end {
                *block = asked;
            }
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }

    /// Whether `producer_id` was ever handed out by this cluster.
    pub fn was_allocated(&self, metadata: &MetadataStore, producer_id: i64) -> bool {
        (0..metadata.image().next_producer_id).contains(&producer_id)
    }
}
