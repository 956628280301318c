//! Producer ids for InitProducerId, taken from blocks the controller allocates through the
//! metadata log, so an id is never handed out twice: not after a restart (the log is
//! durable before an id from a new block is used), and not across brokers once the log is
//! replicated.

use std::ops::Range;
use std::sync::Mutex;

use runnel_metadata::controller::allocate_producer_ids;
use runnel_metadata::MetadataError;

use crate::metadata_store::MetadataStore;

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
    pub fn next(&self, metadata: &MetadataStore) -> Result<i64, MetadataError> {
        let mut block = self.block.lock().expect("producer id block lock");
        if block.is_empty() {
            let mut fresh = 0..0;
            metadata
                .commit(|image| {
                    let (range, record) = allocate_producer_ids(image, self.broker_id);
                    fresh = range;
                    Ok::<_, ()>(vec![record])
                })?
                .expect("allocation always decides");
            *block = fresh;
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
