//! `metadata_records`: metadata record values as the metadata log holds them (one JSON
//! document per record, `MetadataRecord::decode`, as `LocalMetadataLog::replay` in
//! `crates/broker/src/metadata_store.rs` and the quorum's state machine read them), applied
//! to a `MetadataImage`, then the controller's pure decisions over the resulting image and
//! their records applied in turn. Nothing may panic, and every decoded record must encode
//! and decode back to itself.
//!
//! Input: one record value per line; an empty line ends a batch (a quorum log entry, or
//! one commit of the local log). Batches are applied one by one as the quorum does, and
//! all records at once as a single node's start-up replay does.

use std::collections::{BTreeMap, BTreeSet};

use runnel_metadata::controller::{self, NewTopic};
use runnel_metadata::{election, liveness, reassignment, MetadataImage, MetadataRecord};

/// Decodes the batches of the input; undecodable lines are left out (the local log refuses
/// to start on one, the quorum's log store on a bad frame: neither gets to apply).
pub fn batches(data: &[u8]) -> Vec<Vec<MetadataRecord>> {
    let mut batches = vec![Vec::new()];
    for line in data.split(|b| *b == b'\n') {
        if line.is_empty() {
            batches.push(Vec::new());
            continue;
        }
        if let Ok(record) = MetadataRecord::decode(line) {
            let encoded = record.encode();
            let again = MetadataRecord::decode(&encoded).expect("an encoded record decodes");
            assert_eq!(again, record, "a record survives its encoding");
            batches.last_mut().expect("one batch at least").push(record);
        }
    }
    batches.retain(|batch| !batch.is_empty());
    batches
}

/// What the active controller decides against `image` on its own (liveness ticks,
/// elections, reassignment completion) or for common requests, each applied.
fn decide(image: &MetadataImage) {
    // Every registered broker silent since 0, and every one just seen.
    for seen_ms in [0, 1_000_000] {
        let last_seen: BTreeMap<i32, i64> = image.brokers.keys().map(|id| (*id, seen_ms)).collect();
        for unclean in [false, true] {
            let records = liveness::decide(image, &last_seen, 1_000_000, 18_000, unclean);
            let _ = image.apply(&records);
        }
    }
    let _ = image.apply(&election::reconcile(image, false));
    let _ = image.apply(&election::preferred_leaders(image, None));
    let _ = image.apply(&election::unclean_leaders(image, None));
    let _ = image.apply(&reassignment::complete(image));
    let configs = BTreeMap::new();
    for (partitions, replication_factor) in [(1, 1), (3, 2)] {
        let topic = NewTopic { name: "fuzz-new-topic", partitions, replication_factor, configs: &configs };
        if let Ok(records) = controller::create_topic(image, &topic, uuid_of(image)) {
            let _ = image.apply(&records);
        }
    }
    let names: BTreeSet<&String> = image.topics.keys().take(4).collect();
    for name in names {
        let count = image.topics[name].partitions.len() as i32 + 1;
        if let Ok(records) = controller::create_partitions(image, name, count) {
            let _ = image.apply(&records);
        }
        let targets: Vec<i32> = image.brokers.keys().copied().take(3).collect();
        if let Ok(records) = reassignment::start(image, name, 0, &targets, true) {
            let next = image.apply(&records);
            let _ = reassignment::cancel(&next, name, 0).map(|records| next.apply(&records));
        }
    }
}

fn uuid_of(image: &MetadataImage) -> uuid::Uuid {
    uuid::Uuid::from_u128(0xf0f0 + image.records_applied as u128)
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let batches = batches(data);
    let mut image = MetadataImage::default();
    for batch in &batches {
        image = image.apply(batch);
    }
    let all: Vec<MetadataRecord> = batches.into_iter().flatten().collect();
    let at_once = MetadataImage::default().apply(&all);
    assert_eq!(at_once.records_applied, image.records_applied);
    let _ = image.topic_by_id(&uuid::Uuid::nil());
    decide(&image);
    decide(&at_once);
}
