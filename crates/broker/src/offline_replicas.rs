//! Reporting offline replicas to the controller (cluster mode): a replica this node hosts
//! but could not open serves nobody, so its leadership must move to another ISR member and
//! it must leave the ISR, as Kafka does for the partitions of an offline log directory.
//!
//! The node commits [`MetadataRecord::OfflineReplicas`] naming its current offline set
//! (for its own incarnation) together with the elections that set requires, so leadership
//! moves in the same commit. The report is re-sent whenever the published image disagrees
//! with the local set (a lost race, a restart that cleared it), one at a time.
//!
//! Invariants: at most one report is in flight per node; a report is decided against the
//! image it is committed on, so a stale one is never committed over a newer registration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use runnel_metadata::{MetadataImage, MetadataRecord};

use crate::broker::Broker;

/// Whether a report is in flight.
#[derive(Default)]
pub struct OfflineReporter {
    in_flight: AtomicBool,
}

impl OfflineReporter {
    /// Sends a report in the background if `image` does not show this node's offline set.
    pub fn check(&self, broker: &Arc<Broker>, image: &MetadataImage) {
        if broker.metadata.quorum().is_none() || !broker.config.roles.broker || !needs_report(broker, image) {
            return;
        }
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let broker = broker.clone();
        tokio::spawn(async move {
            let committed = tokio::task::block_in_place(|| report(&broker));
            broker.publisher.offline.in_flight.store(false, Ordering::Release);
            match committed {
                Ok(Some(image)) => {
                    if let Err(e) = broker.publish(&image) {
                        tracing::warn!(error = %e, "publishing after the offline-replica report failed");
                    }
                }
                Ok(None) => {}
                // The next published image checks again.
                Err(e) => tracing::warn!(error = %e, "reporting offline replicas failed"),
            }
        });
    }
}

fn needs_report(broker: &Broker, image: &MetadataImage) -> bool {
    image.brokers.get(&broker.config.node_id).is_some_and(|me| {
        me.incarnation_id == broker.incarnation_id && me.offline_replicas != broker.replicas.offline_ids()
    })
}

/// Commits the report and the elections it requires; the committed image, or `None` when
/// the image already agreed (or shows another registration).
fn report(broker: &Broker) -> Result<Option<Arc<MetadataImage>>, runnel_metadata::MetadataError> {
    let node_id = broker.config.node_id;
    let unclean = broker.config.replication.unclean_leader_election;
    let decided = broker.metadata.commit(|image| {
        if !needs_report(broker, image) {
            return Err(());
        }
        let partitions: Vec<_> = broker.replicas.offline_ids().into_iter().collect();
        tracing::warn!(offline = partitions.len(), "reporting offline replicas to the controller");
        let record = MetadataRecord::OfflineReplicas { node_id, incarnation_id: broker.incarnation_id, partitions };
        let reported = image.apply(std::slice::from_ref(&record));
        let mut records = vec![record];
        records.extend(runnel_metadata::election::reconcile(&reported, unclean));
        Ok(records)
    })?;
    Ok(decided.ok())
}
