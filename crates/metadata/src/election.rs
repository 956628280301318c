//! Leader election and ISR upkeep by the controller. Pure.
//!
//! [`reconcile`] is idempotent: it looks at every partition and decides what the live
//! brokers require (fenced brokers, and brokers that reported their replica offline, leave
//! the ISR unless they are its last member; a partition whose leader is fenced, offline or
//! missing gets the first eligible ISR member in replica order), so the controller can run it on every tick and after every fence or unfence,
//! and a change that lost a race (its partition epoch was stale) is simply decided again.
//! Only ISR members may lead unless `unclean.leader.election.enable` is set for the topic:
//! an acknowledged write is then never lost to a lagging replica.

use uuid::Uuid;

use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;

pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

fn unclean_allowed(image: &MetadataImage, topic: &str, default: bool) -> bool {
    image.topic_configs(topic).and_then(|c| c.get(UNCLEAN_LEADER_ELECTION)).map_or(default, |v| v == "true")
}

/// The leader and ISR `p` should have given which brokers are alive, or `None` if it is
/// fine as it is.
fn decide(image: &MetadataImage, topic_id: &Uuid, p: &PartitionImage, unclean: bool) -> Option<(i32, Vec<i32>)> {
    let alive = |id: i32| image.replica_eligible(id, topic_id, p.partition);
    let live_isr: Vec<i32> = p.replicas.iter().copied().filter(|id| p.isr.contains(id) && alive(*id)).collect();
    // The last ISR member keeps its place while it is down: it holds every acknowledged write.
    let isr = if live_isr.is_empty() { p.isr.clone() } else { live_isr.clone() };
    let leader = if p.leader >= 0 && live_isr.contains(&p.leader) {
        p.leader
    } else if let Some(first) = live_isr.first() {
        *first
    } else if let Some(replica) = p.replicas.iter().copied().find(|id| unclean && alive(*id)) {
        // Unclean: a live replica outside the ISR leads, with whatever it holds.
        return Some((replica, vec![replica]));
    } else {
        -1
    };
    let mut current_isr = p.isr.clone();
    current_isr.sort_unstable();
    let mut next_isr = isr.clone();
    next_isr.sort_unstable();
    (leader != p.leader || next_isr != current_isr).then_some((leader, isr))
}

/// Every change the live brokers require now (see the module doc).
pub fn reconcile(image: &MetadataImage, unclean_default: bool) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_allowed(image, &topic.name, unclean_default);
        for p in &topic.partitions {
            if let Some((leader, isr)) = decide(image, &topic.topic_id, p, unclean) {
                records.push(p.change(topic.topic_id, leader, isr));
            }
        }
    }
    records
}

/// Preferred leader election: partitions whose first replica is alive, in the ISR and not
/// leading get it back as leader. `only` limits it to some partitions (topic, partition).
pub fn preferred_leaders(image: &MetadataImage, only: Option<&[(String, i32)]>) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if only.is_some_and(|only| !only.iter().any(|(t, i)| *t == topic.name && *i == p.partition)) {
                continue;
            }
            let Some(preferred) = p.replicas.first().copied() else { continue };
            if p.leader != preferred
                && p.isr.contains(&preferred)
                && image.replica_eligible(preferred, &topic.topic_id, p.partition)
            {
                records.push(p.change(topic.topic_id, preferred, p.isr.clone()));
            }
        }
    }
    records
}

/// Unclean leader election on request (ElectLeaders with election type 1): partitions
/// without a leader get the first live ISR member in replica order, or failing that the
/// first live replica, which then forms the ISR alone and leads with whatever it holds
/// (acknowledged writes it never received are lost: the operator asked for availability).
/// Partitions that have a leader are left alone. `only` limits it to some partitions
/// (topic, partition). Unlike [`reconcile`], it ignores `unclean.leader.election.enable`.
pub fn unclean_leaders(image: &MetadataImage, only: Option<&[(String, i32)]>) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if p.leader >= 0
                || only.is_some_and(|only| !only.iter().any(|(t, i)| *t == topic.name && *i == p.partition))
            {
                continue;
            }
            let alive = |id: i32| image.replica_eligible(id, &topic.topic_id, p.partition);
            let live_isr: Vec<i32> = p.replicas.iter().copied().filter(|id| p.isr.contains(id) && alive(*id)).collect();
            if let Some(first) = live_isr.first() {
                records.push(p.change(topic.topic_id, *first, live_isr.clone()));
            } else if let Some(replica) = p.replicas.iter().copied().find(|id| alive(*id)) {
                records.push(p.change(topic.topic_id, replica, vec![replica]));
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ConfigResource;
    use uuid::Uuid;

    fn image(partitions: &[(Vec<i32>, Vec<i32>, i32)], fenced: &[i32]) -> MetadataImage {
        let id = Uuid::from_u128(1);
        let mut records: Vec<MetadataRecord> = (1..=3).map(|n| MetadataRecord::test_broker(n, 0)).collect();
        records.extend(fenced.iter().map(|n| MetadataRecord::FenceBroker { node_id: *n, shutting_down: false }));
        records.push(MetadataRecord::Topic { name: "t".into(), topic_id: id });
        for (i, (replicas, isr, leader)) in (0..).zip(partitions) {
            records.push(MetadataRecord::Partition {
                topic_id: id,
                partition: i,
                replicas: replicas.clone(),
                isr: isr.clone(),
                leader: *leader,
                leader_epoch: 4,
                partition_epoch: 7,
            });
        }
        MetadataImage::default().apply(&records)
    }

    fn state(image: &MetadataImage, p: usize) -> (i32, Vec<i32>, i32, i32) {
        let p = &image.topic("t").unwrap().partitions[p];
        (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch)
    }

    #[test]
    fn a_fenced_leader_hands_over_to_a_live_isr_member_and_a_fenced_follower_leaves_the_isr() {
        let image = image(&[(vec![1, 2, 3], vec![1, 2, 3], 1), (vec![2, 1], vec![2, 1], 2)], &[1]);
        let next = image.apply(&reconcile(&image, false));
        assert_eq!(state(&next, 0), (2, vec![2, 3], 5, 8));
        assert_eq!(state(&next, 1), (2, vec![2], 4, 8), "an ISR change keeps the leader epoch");
        assert!(reconcile(&next, false).is_empty(), "nothing more to do");
    }

    #[test]
    fn a_replica_outside_the_isr_is_never_elected_unless_unclean_election_is_on() {
        // Broker 2 is a replica but not in the ISR: with 1 fenced, the partition goes offline.
        let image = image(&[(vec![1, 2], vec![1], 1)], &[1]);
        let next = image.apply(&reconcile(&image, false));
        assert_eq!(state(&next, 0).0, -1);
        assert_eq!(state(&next, 0).1, vec![1], "the last ISR member keeps its place");
        let back = next.apply(&[MetadataRecord::UnfenceBroker { node_id: 1 }]);
        let again = back.apply(&reconcile(&back, false));
        assert_eq!(state(&again, 0).0, 1, "the ISR member that returns leads again");

        let unclean = image.apply(&reconcile(&image, true));
        assert_eq!(state(&unclean, 0).0, 2, "the broker default allows it");
        let config = MetadataRecord::Config {
            resource: ConfigResource::Topic("t".into()),
            name: UNCLEAN_LEADER_ELECTION.into(),
            value: Some("true".into()),
        };
        let configured = image.apply(&[config]);
        let unclean = configured.apply(&reconcile(&configured, false));
        assert_eq!((state(&unclean, 0).0, state(&unclean, 0).1), (2, vec![2]), "the topic config allows it");
    }

    #[test]
    fn preferred_leaders_return_when_in_sync() {
        let image = image(&[(vec![1, 2], vec![2, 1], 2), (vec![3, 2], vec![2], 2)], &[]);
        let next = image.apply(&preferred_leaders(&image, None));
        assert_eq!(state(&next, 0).0, 1);
        assert_eq!(state(&next, 1).0, 2, "3 is not in the ISR");
        assert!(preferred_leaders(&image, Some(&[("t".into(), 1)])).is_empty());
    }

    #[test]
    fn unclean_leaders_elect_only_leaderless_partitions_preferring_the_isr() {
        // 0: offline, ISR [1] fenced, replica 2 alive -> 2 leads alone.
        // 1: offline, ISR [1, 3] with 3 alive (not yet reconciled) -> 3 leads, ISR [3].
        // 2: led by 2 -> untouched. 3: offline, no live replica at all -> untouched.
        let image = image(
            &[
                (vec![1, 2], vec![1], -1),
                (vec![1, 3], vec![1, 3], -1),
                (vec![2, 3], vec![2, 3], 2),
                (vec![1], vec![1], -1),
            ],
            &[1],
        );
        let next = image.apply(&unclean_leaders(&image, None));
        assert_eq!(state(&next, 0), (2, vec![2], 5, 8), "a live replica outside the ISR leads alone");
        assert_eq!(state(&next, 1), (3, vec![3], 5, 8), "a live ISR member is preferred");
        assert_eq!(state(&next, 2), state(&image, 2), "a partition with a leader is left alone");
        assert_eq!(state(&next, 3), state(&image, 3), "no live replica: nothing to elect");
        assert!(unclean_leaders(&next, None).is_empty(), "nothing more to do");

        let only = unclean_leaders(&image, Some(&[("t".into(), 1), ("t".into(), 2), ("other".into(), 0)]));
        assert_eq!(only.len(), 1, "only the requested leaderless partition: {only:?}");
        assert!(matches!(only[0], MetadataRecord::ChangePartition { partition: 1, leader: 3, .. }));
    }

    fn offline(node_id: i32, incarnation: u128, partitions: &[i32]) -> MetadataRecord {
        let id = Uuid::from_u128(1);
        MetadataRecord::OfflineReplicas {
            node_id,
            incarnation_id: Uuid::from_u128(incarnation),
            partitions: partitions.iter().map(|p| (id, *p)).collect(),
        }
    }

    #[test]
    fn an_offline_replica_hands_leadership_over_and_leaves_the_isr_unless_it_is_the_last() {
        // Partition 0: leader 1 with 2 and 3 in sync; partition 1: 1 alone in the ISR;
        // partition 2: 1 follows and is not reported offline.
        let base =
            image(&[(vec![1, 2, 3], vec![1, 2, 3], 1), (vec![1, 2], vec![1], 1), (vec![2, 1], vec![2, 1], 2)], &[]);
        let reported = base.apply(&[offline(1, 0, &[0, 1])]);
        let next = reported.apply(&reconcile(&reported, false));
        assert_eq!(state(&next, 0), (2, vec![2, 3], 5, 8), "the next ISR member leads");
        assert_eq!(state(&next, 1), (-1, vec![1], 5, 8), "leaderless, but the last ISR member keeps its place");
        assert_eq!(state(&next, 2), (2, vec![2, 1], 4, 7), "its other replicas are untouched");
        assert!(reconcile(&next, false).is_empty(), "reconciling twice changes nothing");
        // Preferred election never gives leadership back to the offline replica.
        assert!(preferred_leaders(&next, None).is_empty());
        // A report from an earlier incarnation changes nothing; a new registration clears it.
        let stale = base.apply(&[offline(1, 99, &[0])]);
        assert!(reconcile(&stale, false).is_empty());
        let restarted = next.apply(&[MetadataRecord::test_broker(1, 5)]);
        assert!(restarted.brokers[&1].offline_replicas.is_empty());
        assert!(restarted.replica_eligible(1, &Uuid::from_u128(1), 0));
    }
}
