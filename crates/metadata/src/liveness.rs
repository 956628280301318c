//! Broker liveness, decided by the active controller: a broker not seen for the session
//! timeout is fenced and its leaderships move to live ISR members; a fenced broker seen
//! again is unfenced and takes back partitions that went offline with it. Pure: the caller
//! supplies when each broker was last seen and the time.

use std::collections::BTreeMap;

use crate::election::reconcile;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Records for every liveness change due now, decided one broker at a time against the
/// image as the previous changes leave it.
///
/// A broker missing from `last_seen_ms` registered after the caller last looked (the
/// image decided against may be newer than the one it probed): it counts as alive, and
/// the caller starts its session clock on its next look.
pub fn decide(
    image: &MetadataImage,
    last_seen_ms: &BTreeMap<i32, i64>,
    now_ms: i64,
    session_timeout_ms: i64,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let mut current = image.clone();
    for (id, broker) in &image.brokers {
        let alive = last_seen_ms.get(id).is_none_or(|seen| now_ms.saturating_sub(*seen) <= session_timeout_ms);
        let change = match (broker.fenced && !broker.shutting_down, alive) {
            (false, false) if !broker.fenced => {
                vec![MetadataRecord::FenceBroker { node_id: *id, shutting_down: false }]
            }
            (true, true) => vec![MetadataRecord::UnfenceBroker { node_id: *id }],
            _ => continue,
        };
        current = current.apply(&change);
        records.extend(change);
    }
    // Leaders and ISRs follow (also retrying any change that lost a race earlier), and
    // reassignments whose new replicas caught up complete.
    let elected = reconcile(&current, unclean_default);
    let current = current.apply(&elected);
    records.extend(elected);
    records.extend(crate::reassignment::complete(&current));
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn cluster() -> MetadataImage {
        let id = Uuid::from_u128(9);
        let mut records: Vec<MetadataRecord> = (1..=2).map(|n| MetadataRecord::test_broker(n, 0)).collect();
        records.push(MetadataRecord::Topic { name: "t".into(), topic_id: id });
        for (p, leader) in [(0, 1), (1, 2)] {
            records.push(MetadataRecord::Partition {
                topic_id: id,
                partition: p,
                replicas: vec![leader],
                isr: vec![leader],
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        MetadataImage::default().apply(&records)
    }

    #[test]
    fn a_silent_broker_is_fenced_and_its_only_replica_goes_offline() {
        let image = cluster();
        let seen = BTreeMap::from([(1, 1_000), (2, 9_500)]);
        let records = decide(&image, &seen, 10_000, 5_000, false);
        let next = image.apply(&records);
        assert!(next.brokers[&1].fenced && !next.brokers[&2].fenced);
        let partitions = &next.topic("t").unwrap().partitions;
        assert_eq!((partitions[0].leader, partitions[1].leader), (-1, 2));
        assert!(decide(&next, &seen, 10_000, 5_000, false).is_empty(), "nothing more to do");
    }

    #[test]
    fn a_fenced_broker_seen_again_is_unfenced_and_leads_its_partitions_again() {
        let image = cluster();
        let silent = BTreeMap::from([(1, 1_000), (2, 9_500)]);
        let fenced = image.apply(&decide(&image, &silent, 10_000, 5_000, false));
        assert!(fenced.brokers[&1].fenced);
        let back = BTreeMap::from([(1, 10_100), (2, 10_100)]);
        let next = fenced.apply(&decide(&fenced, &back, 10_200, 5_000, false));
        assert!(!next.brokers[&1].fenced);
        let p0 = &next.topic("t").unwrap().partitions[0];
        assert_eq!((p0.leader, p0.leader_epoch), (1, 2));
    }

    #[test]
    fn a_broker_registered_since_the_caller_last_looked_is_not_fenced() {
        let image = cluster();
        // Broker 2 registered after the probe that filled `seen`.
        let seen = BTreeMap::from([(1, 10_000)]);
        let records = decide(&image, &seen, 10_000, 5_000, false);
        assert!(records.is_empty(), "nothing to do: {records:?}");
    }

    #[test]
    fn a_broker_in_controlled_shutdown_stays_fenced_while_it_still_answers() {
        let image = cluster().apply(&[MetadataRecord::FenceBroker { node_id: 1, shutting_down: true }]);
        let seen = BTreeMap::from([(1, 10_000), (2, 10_000)]);
        let next = image.apply(&decide(&image, &seen, 10_000, 5_000, false));
        assert!(next.brokers[&1].fenced, "answering does not unfence a broker that is shutting down");
        assert_eq!(next.topic("t").unwrap().partitions[0].leader, -1, "and it leads nothing");
        let registered = image.apply(&[MetadataRecord::test_broker(1, 5)]);
        assert!(!registered.brokers[&1].fenced && !registered.brokers[&1].shutting_down);
    }
}
