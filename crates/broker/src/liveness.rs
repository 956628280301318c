//! The active controller's liveness duty (cluster mode): every heartbeat interval it asks
//! each registered broker for its status over the quorum transport, and commits what
//! `runnel_metadata::liveness::decide` says: fence brokers silent for
//! `broker.session.timeout.ms` (their leaderships move to live ISR members) and unfence
//! those that answer again. Kafka's brokers push heartbeats; here the controller pulls
//! them, which needs no extra RPC and fences exactly as a lost heartbeat would. A newly
//! elected controller counts every broker as seen when it took over, so a change of
//! controller fences nobody by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_metadata::liveness;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::clock::now_ms;

pub fn spawn(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let quorum_present = broker.metadata.quorum().is_some();
    if !quorum_present || !broker.config.roles.controller {
        return None;
    }
    Some(tokio::spawn(async move {
        let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms.max(1));
        let mut ticks = tokio::time::interval(interval);
        let mut last_seen: BTreeMap<i32, i64> = BTreeMap::new();
        let mut was_leader = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            let Some(quorum) = broker.metadata.quorum() else { return };
            let leading = quorum.current_leader().is_some_and(|(id, _)| id as i32 == broker.config.node_id);
            let image = broker.metadata.image();
            if !leading {
                was_leader = false;
                continue;
            }
            let now = now_ms();
            if !was_leader {
                last_seen = image.brokers.keys().map(|id| (*id, now)).collect();
                was_leader = true;
            }
            for id in image.brokers.keys() {
                // A broker registered since the last look gets a full session from now.
                last_seen.entry(*id).or_insert(now);
                let status = tokio::time::timeout(interval, quorum.node_status(*id as u64)).await;
                if matches!(status, Ok(Ok(_))) {
                    last_seen.insert(*id, now_ms());
                }
            }
            let timeout = broker.config.broker_session_timeout_ms;
            let unclean = broker.live_config().replication.unclean_leader_election;
            let now = now_ms();
            let committed = tokio::task::block_in_place(|| {
                broker.metadata.commit(|image| Ok::<_, ()>(liveness::decide(image, &last_seen, now, timeout, unclean)))
            });
            match committed {
                Ok(Ok(next)) if !Arc::ptr_eq(&next, &image) => {
                    let fenced: Vec<i32> = next.brokers.values().filter(|b| b.fenced).map(|b| b.node_id).collect();
                    tracing::info!(?fenced, "broker liveness changed");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "committing broker liveness failed"),
            }
        }
    }))
}

/// `auto.leader.rebalance.enable`: every `leader.imbalance.check.interval.seconds` the
/// active controller gives partitions back to their preferred (first) replica when it is in
/// sync, so leadership spreads again after failovers.
pub fn spawn_leader_rebalance(
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let config = &broker.config;
    if broker.metadata.quorum().is_none() || !config.roles.controller || !config.replication.auto_leader_rebalance {
        return None;
    }
    Some(tokio::spawn(async move {
        let interval = Duration::from_millis(broker.config.replication.leader_imbalance_check_interval_ms.max(1));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            let Some(quorum) = broker.metadata.quorum() else { return };
            if quorum.current_leader().is_none_or(|(id, _)| id as i32 != broker.config.node_id) {
                continue;
            }
            let committed = tokio::task::block_in_place(|| {
                broker.metadata.commit(|image| Ok::<_, ()>(runnel_metadata::election::preferred_leaders(image, None)))
            });
            if let Err(e) = committed {
                tracing::warn!(error = %e, "preferred leader election failed");
            }
        }
    }))
}
