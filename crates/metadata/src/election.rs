//! Leader election when a broker is fenced, shuts down, or comes back. Only ISR members may
//! lead (unclean election is off), so an acknowledged write is never lost to a lagging
//! replica. Each leader change bumps the leader epoch and the partition epoch. Pure.

use uuid::Uuid;

use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;

fn change(topic_id: Uuid, p: &PartitionImage, leader: i32, isr: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition: p.partition,
        replicas: p.replicas.clone(),
        isr,
        leader,
        leader_epoch: p.leader_epoch + 1,
        partition_epoch: p.partition_epoch + 1,
    }
}

fn alive(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

/// Moves leadership off `broker`: every partition it leads gets the first other live ISR
/// member as leader, or goes offline (leader -1) when there is none. `broker` leaves the
/// ISR of those partitions unless it is the last member, as in KRaft (the last ISR member
/// keeps the partition's durability claim until it returns).
pub fn move_leaders_away(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in topic.partitions.iter().filter(|p| p.leader == broker) {
            let others: Vec<i32> = p.isr.iter().copied().filter(|id| *id != broker).collect();
            let leader = others.iter().copied().find(|id| alive(image, *id)).unwrap_or(-1);
            let isr = if others.is_empty() { p.isr.clone() } else { others };
            records.push(change(topic.topic_id, p, leader, isr));
        }
    }
    records
}

/// Gives offline partitions a leader now that `broker` is alive again, if it is in their ISR.
pub fn elect_returning(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in topic.partitions.iter().filter(|p| p.leader == -1 && p.isr.contains(&broker)) {
            records.push(change(topic.topic_id, p, broker, p.isr.clone()));
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(partitions: &[(Vec<i32>, Vec<i32>, i32)], fenced: &[i32]) -> MetadataImage {
        let id = Uuid::from_u128(1);
        let mut records: Vec<MetadataRecord> = (1..=3).map(|n| MetadataRecord::test_broker(n, 0)).collect();
        records.extend(fenced.iter().map(|n| MetadataRecord::FenceBroker { node_id: *n, shutting_down: false }));
        records.push(MetadataRecord::Topic { name: "t".into(), topic_id: id });
        for (i, (replicas, isr, leader)) in partitions.iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id: id,
                partition: i as i32,
                replicas: replicas.clone(),
                isr: isr.clone(),
                leader: *leader,
                leader_epoch: 4,
                partition_epoch: 7,
            });
        }
        MetadataImage::default().apply(&records)
    }

    #[test]
    fn a_fenced_leader_hands_over_to_a_live_isr_member_and_epochs_bump() {
        let image = image(&[(vec![1, 2, 3], vec![1, 2, 3], 1), (vec![2, 1], vec![2, 1], 2)], &[1]);
        let records = move_leaders_away(&image, 1);
        assert_eq!(records.len(), 1, "only partitions led by broker 1 change");
        let next = image.apply(&records);
        let p = &next.topic("t").unwrap().partitions[0];
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch), (2, vec![2, 3], 5, 8));
    }

    #[test]
    fn a_fenced_follower_outside_the_isr_is_never_elected() {
        // Broker 2 is a replica but not in the ISR: with 1 fenced, the partition goes offline.
        let image = image(&[(vec![1, 2], vec![1], 1)], &[1]);
        let next = image.apply(&move_leaders_away(&image, 1));
        let p = &next.topic("t").unwrap().partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (-1, vec![1]), "the last ISR member keeps its place");
        let back = next.apply(&[MetadataRecord::UnfenceBroker { node_id: 1 }]);
        let again = back.apply(&elect_returning(&back, 1));
        assert_eq!(again.topic("t").unwrap().partitions[0].leader, 1);
        assert!(elect_returning(&back, 2).is_empty(), "2 is not in the ISR");
    }
}
