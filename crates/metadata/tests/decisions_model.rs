//! Properties of the controller's pure decisions and of image application, over random
//! clusters: leader election reconciles to a fixed point (reconciling twice changes
//! nothing) and never elects a fenced broker or (without unclean election) a replica
//! outside the ISR; applying the same records gives the same image on every node, also
//! through a snapshot (JSON round trip) taken at any point.

use std::collections::BTreeMap;

use proptest::prelude::*;
use runnel_metadata::election::reconcile;
use runnel_metadata::{MetadataImage, MetadataRecord};
use uuid::Uuid;

const BROKERS: i32 = 5;

/// One partition: replicas (a non-empty subset of the brokers), an ISR drawn from them,
/// and a leader that is an ISR member or none.
fn partition() -> impl Strategy<Value = (Vec<i32>, Vec<bool>, Option<usize>)> {
    proptest::sample::subsequence((1..=BROKERS).collect::<Vec<_>>(), 1..=3).prop_flat_map(|replicas| {
        let n = replicas.len();
        (Just(replicas), proptest::collection::vec(any::<bool>(), n), proptest::option::of(0..n))
    })
}

/// Records that build a cluster: brokers, some fenced; topics with partitions.
fn cluster() -> impl Strategy<Value = Vec<MetadataRecord>> {
    (
        proptest::collection::vec(any::<bool>(), BROKERS as usize),
        proptest::collection::vec(proptest::collection::vec(partition(), 1..4), 1..4),
    )
        .prop_map(|(fenced, topics)| {
            let mut records = Vec::new();
            for id in 1..=BROKERS {
                records.push(MetadataRecord::RegisterBroker {
                    node_id: id,
                    host: "127.0.0.1".into(),
                    port: 9000 + id,
                    rack: None,
                    incarnation_id: Uuid::from_u128(id as u128),
                    endpoints: Vec::new(),
                });
                if fenced[(id - 1) as usize] {
                    records.push(MetadataRecord::FenceBroker { node_id: id, shutting_down: false });
                }
            }
            for (t, partitions) in topics.into_iter().enumerate() {
                let topic_id = Uuid::from_u128(1_000 + t as u128);
                records.push(MetadataRecord::Topic { name: format!("t{t}"), topic_id });
                for (index, (replicas, in_isr, leader)) in partitions.into_iter().enumerate() {
                    let mut isr: Vec<i32> =
                        replicas.iter().zip(&in_isr).filter(|(_, keep)| **keep).map(|(id, _)| *id).collect();
                    if isr.is_empty() {
                        isr.push(replicas[0]);
                    }
                    let leader = leader.map_or(-1, |i| replicas[i]);
                    let leader = if isr.contains(&leader) { leader } else { -1 };
                    records.push(MetadataRecord::Partition {
                        topic_id,
                        partition: index as i32,
                        replicas,
                        isr,
                        leader,
                        leader_epoch: 0,
                        partition_epoch: 0,
                    });
                }
            }
            records
        })
}

fn leaders(image: &MetadataImage) -> BTreeMap<(String, i32), (i32, Vec<i32>)> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(|p| ((t.name.clone(), p.partition), (p.leader, p.isr.clone()))))
        .collect()
}

proptest! {
    #[test]
    fn reconciling_twice_changes_nothing(records in cluster(), unclean in any::<bool>()) {
        let image = MetadataImage::default().apply(&records);
        let once = image.apply(&reconcile(&image, unclean));
        let again = reconcile(&once, unclean);
        prop_assert!(again.is_empty(), "a second reconciliation decided {again:?}");
        for ((topic, partition), (leader, isr)) in leaders(&once) {
            if leader < 0 {
                continue;
            }
            let broker = &once.brokers[&leader];
            prop_assert!(!broker.fenced, "{topic}-{partition}: fenced broker {leader} elected");
            let before = &image.topics[&topic].partitions[partition as usize];
            prop_assert!(
                unclean || before.isr.contains(&leader),
                "{topic}-{partition}: {leader} elected from outside the ISR {:?} without unclean election", before.isr
            );
            prop_assert!(isr.contains(&leader), "{topic}-{partition}: the leader is in its own ISR");
        }
    }

    #[test]
    fn the_same_records_give_the_same_image_through_any_snapshot(records in cluster(), cut in any::<prop::sample::Index>(), unclean in any::<bool>()) {
        let image = MetadataImage::default().apply(&records);
        let changes = reconcile(&image, unclean);
        let all: Vec<MetadataRecord> = records.iter().cloned().chain(changes).collect();
        // Node A applies everything in one go; node B applies a prefix, snapshots, restarts
        // from the snapshot and applies the rest one record at a time.
        let a = MetadataImage::default().apply(&all);
        let at = cut.index(all.len() + 1);
        let prefix = MetadataImage::default().apply(&all[..at]);
        let snapshot = serde_json::to_string(&prefix).expect("encode snapshot");
        let mut b: MetadataImage = serde_json::from_str(&snapshot).expect("decode snapshot");
        for record in &all[at..] {
            b = b.apply(std::slice::from_ref(record));
        }
        prop_assert_eq!(a, b);
    }
}
