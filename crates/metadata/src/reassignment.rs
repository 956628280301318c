//! Partition reassignment (KIP-455), decided by the controller. Pure.
//!
//! Starting one sets `replicas` to the target replicas followed by the ones being removed,
//! and records which are being added and removed. The added replicas open the partition,
//! fetch from the leader and join the ISR by catching up like any follower, so no data is
//! trusted to a replica before it holds it. [`complete`] then finishes every reassignment
//! whose target replicas are all in sync: the replicas become the target, the removed ones
//! leave the ISR (and delete their copy), and a leader outside the target hands over to the
//! first in-sync target replica. Cancelling restores the original replicas.

use uuid::Uuid;

use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;

/// Why a reassignment cannot start; each maps onto a Kafka error code in the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid replica assignment: {0}")]
    InvalidAssignment(String),
    #[error("the replication factor would change from {from} to {to}")]
    ReplicationFactorChange { from: usize, to: usize },
    #[error("no reassignment in progress")]
    NoReassignmentInProgress,
}

/// A change of leader, ISR and replicas that also sets (or clears) the reassignment.
fn change(
    topic_id: Uuid,
    p: &PartitionImage,
    leader: i32,
    isr: Vec<i32>,
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
) -> MetadataRecord {
    p.change_replicas(topic_id, leader, isr, Some(replicas), Some((adding, removing)))
}

fn find<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(Uuid, &'a PartitionImage), ReassignError> {
    let t = image.topic(topic).ok_or(ReassignError::UnknownTopicOrPartition)?;
    let p = usize::try_from(partition).ok().and_then(|i| t.partitions.get(i));
    Ok((t.topic_id, p.ok_or(ReassignError::UnknownTopicOrPartition)?))
}

/// The replicas before the reassignment in progress (all of them when none is).
fn original(p: &PartitionImage) -> Vec<i32> {
    p.replicas.iter().copied().filter(|id| !p.adding_replicas.contains(id)).collect()
}

/// Starts moving `topic`-`partition` to `target` (replacing a reassignment in progress).
pub fn start(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: &[i32],
    allow_replication_factor_change: bool,
) -> Result<Vec<MetadataRecord>, ReassignError> {
    let (topic_id, p) = find(image, topic, partition)?;
    if target.is_empty() {
        return Err(ReassignError::InvalidAssignment("no replicas".into()));
    }
    let mut unique = target.to_vec();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != target.len() {
        return Err(ReassignError::InvalidAssignment(format!("duplicate replicas in {target:?}")));
    }
    if let Some(unknown) = target.iter().find(|id| !image.brokers.contains_key(id)) {
        return Err(ReassignError::InvalidAssignment(format!("broker {unknown} is not registered")));
    }
    let before = original(p);
    if !allow_replication_factor_change && before.len() != target.len() {
        return Err(ReassignError::ReplicationFactorChange { from: before.len(), to: target.len() });
    }
    if !p.is_reassigning() && p.replicas == target {
        return Ok(vec![]);
    }
    let adding: Vec<i32> = target.iter().copied().filter(|id| !before.contains(id)).collect();
    let removing: Vec<i32> = before.iter().copied().filter(|id| !target.contains(id)).collect();
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    // Replicas dropped by a replaced reassignment leave the ISR too.
    let isr: Vec<i32> = p.isr.iter().copied().filter(|id| replicas.contains(id)).collect();
    let leader = if replicas.contains(&p.leader) { p.leader } else { isr.first().copied().unwrap_or(-1) };
    let isr = if isr.is_empty() { p.isr.clone() } else { isr };
    Ok(vec![change(topic_id, p, leader, isr, replicas, adding, removing)])
}

/// Cancels the reassignment of `topic`-`partition`: back to the original replicas.
pub fn cancel(image: &MetadataImage, topic: &str, partition: i32) -> Result<Vec<MetadataRecord>, ReassignError> {
    let (topic_id, p) = find(image, topic, partition)?;
    if !p.is_reassigning() {
        return Err(ReassignError::NoReassignmentInProgress);
    }
    let replicas = original(p);
    let isr: Vec<i32> = p.isr.iter().copied().filter(|id| replicas.contains(id)).collect();
    let isr = if isr.is_empty() { p.isr.clone() } else { isr };
    let leader = if replicas.contains(&p.leader) { p.leader } else { isr.first().copied().unwrap_or(-1) };
    Ok(vec![change(topic_id, p, leader, isr, replicas, vec![], vec![])])
}

/// Finishes every reassignment whose target replicas are all in the ISR.
pub fn complete(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in topic.partitions.iter().filter(|p| p.is_reassigning()) {
            let target = p.target_replicas();
            if !target.iter().all(|id| p.isr.contains(id)) {
                continue;
            }
            let isr: Vec<i32> = target.iter().copied().filter(|id| p.isr.contains(id)).collect();
            let alive = |id: &i32| image.brokers.get(id).is_some_and(|b| !b.fenced);
            let leader =
                if target.contains(&p.leader) { p.leader } else { isr.iter().copied().find(alive).unwrap_or(-1) };
            records.push(change(topic.topic_id, p, leader, isr, target, vec![], vec![]));
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> MetadataImage {
        let id = Uuid::from_u128(5);
        let mut records: Vec<MetadataRecord> = (1..=4).map(|n| MetadataRecord::test_broker(n, 0)).collect();
        records.push(MetadataRecord::Topic { name: "t".into(), topic_id: id });
        records.push(MetadataRecord::test_partition(id, 0, &[1, 2]));
        MetadataImage::default().apply(&records)
    }

    fn p(image: &MetadataImage) -> PartitionImage {
        image.topic("t").unwrap().partitions[0].clone()
    }

    #[test]
    fn a_move_adds_first_and_removes_only_once_the_new_replicas_are_in_sync() {
        let image = image();
        let started = image.apply(&start(&image, "t", 0, &[3, 4], true).unwrap());
        let during = p(&started);
        assert_eq!(during.replicas, vec![3, 4, 1, 2]);
        assert_eq!((during.adding_replicas.clone(), during.removing_replicas.clone()), (vec![3, 4], vec![1, 2]));
        assert_eq!((during.leader, during.isr.clone()), (1, vec![1, 2]), "nothing trusted to the new replicas yet");
        assert!(complete(&started).is_empty(), "not in sync yet");
        // The leader adds 3 and 4 to the ISR as they catch up.
        let synced = started.apply(&[MetadataRecord::ChangePartition {
            topic_id: Uuid::from_u128(5),
            partition: 0,
            expected_partition_epoch: during.partition_epoch,
            leader: 1,
            isr: vec![1, 2, 3, 4],
            replicas: None,
            reassignment: None,
        }]);
        let done = synced.apply(&complete(&synced));
        let after = p(&done);
        assert_eq!((after.replicas.clone(), after.isr.clone(), after.leader), (vec![3, 4], vec![3, 4], 3));
        assert!(!after.is_reassigning());
    }

    #[test]
    fn cancel_restores_the_original_replicas_and_bad_targets_are_refused() {
        let image = image();
        let started = image.apply(&start(&image, "t", 0, &[1, 3], true).unwrap());
        let cancelled = started.apply(&cancel(&started, "t", 0).unwrap());
        assert_eq!((p(&cancelled).replicas, p(&cancelled).is_reassigning()), (vec![1, 2], false));
        assert_eq!(cancel(&cancelled, "t", 0), Err(ReassignError::NoReassignmentInProgress));
        assert!(matches!(start(&image, "t", 0, &[1, 1], true), Err(ReassignError::InvalidAssignment(_))));
        assert!(matches!(start(&image, "t", 0, &[9], true), Err(ReassignError::InvalidAssignment(_))));
        assert!(matches!(start(&image, "t", 0, &[1], false), Err(ReassignError::ReplicationFactorChange { .. })));
        assert_eq!(start(&image, "u", 0, &[1], true), Err(ReassignError::UnknownTopicOrPartition));
        assert!(start(&image, "t", 0, &[1, 2], true).unwrap().is_empty(), "already there");
    }
}
