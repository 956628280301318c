//! ISR changes decided by partition leaders (Kafka's AlterPartition), committed through the
//! metadata log as conditional [`MetadataRecord::ChangePartition`] records: a change decided
//! against a partition epoch that is no longer current is skipped when applied, on every
//! node alike, and the leader decides again from the new state. The leader's in-memory ISR
//! changes only when the committed image arrives.
//!
//! The shrink check runs every `replica.lag.time.max.ms / 2` over the partitions this node
//! leads; expansions come from follower fetches (see `handlers::fetch`).

use std::sync::Arc;
use std::time::Duration;

use runnel_metadata::MetadataRecord;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::partition::{IsrChange, Partition};

/// Proposes `change` for `partition` in the background.
pub fn propose(broker: Arc<Broker>, partition: Arc<Partition>, change: IsrChange) {
    tokio::spawn(async move {
        let committed = tokio::task::block_in_place(|| commit(&broker, &partition, &change));
        if !committed {
            partition.isr_change_failed(&change);
        }
    });
}

/// Commits `change` if the image still shows this node leading at the change's partition
/// epoch; returns whether it took effect.
fn commit(broker: &Broker, partition: &Partition, change: &IsrChange) -> bool {
    let node = broker.config.node_id;
    let mut isr_before = 0;
    let decided = broker.metadata.commit(|image| {
        let Some(topic) = image.topic_by_id(&partition.topic_id) else { return Err("topic gone") };
        let Some(current) = topic.partitions.get(partition.index as usize) else { return Err("partition gone") };
        if current.leader != node || current.partition_epoch != change.partition_epoch {
            return Err("stale");
        }
        isr_before = current.isr.len();
        Ok(vec![MetadataRecord::ChangePartition {
            topic_id: partition.topic_id,
            partition: partition.index,
            expected_partition_epoch: change.partition_epoch,
            leader: node,
            isr: change.isr.clone(),
            replicas: None,
            reassignment: None,
        }])
    });
    let image = match decided {
        Ok(Ok(image)) => image,
        Ok(Err(why)) => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, why, "ISR change not proposed");
            return false;
        }
        Err(e) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "ISR change failed");
            return false;
        }
    };
    let won = image
        .topic_by_id(&partition.topic_id)
        .and_then(|t| t.partitions.get(partition.index as usize))
        .is_some_and(|p| p.partition_epoch > change.partition_epoch && p.isr == change.isr);
    if won {
        tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?change.isr, "ISR changed");
        let counter = if change.isr.len() < isr_before { &broker.stats.isr_shrinks } else { &broker.stats.isr_expands };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // The local image has the change (or the one that beat it): take it now rather than
    // waiting for the image follower (single node mode has none).
    if let Err(e) = broker.publish(&image) {
        tracing::warn!(error = %e, "applying an ISR change failed");
    }
    won
}

/// Checks the ISRs of the partitions this node leads every half `replica.lag.time.max.ms`.
pub fn spawn_shrinker(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let lag_max = broker.config.replication.lag_time_max_ms;
        let mut ticks = tokio::time::interval(Duration::from_millis((lag_max / 2).max(1) as u64));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            let now = now_ms();
            for partition in broker.replicas.all_partitions() {
                if let Some(change) = partition.isr_shrink(now, lag_max) {
                    tracing::info!(
                        topic = %partition.topic, partition = partition.index, isr = ?change.isr,
                        "followers fell behind; shrinking the ISR"
                    );
                    propose(broker.clone(), partition, change);
                }
            }
        }
    })
}
