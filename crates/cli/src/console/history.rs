//! The console's charts: samples taken every interval and kept for an hour. This node's
//! traffic (bytes in and out, messages in) comes from its own counters; each topic's message
//! rate (cluster-wide, from its partitions' log end offsets) and each group's total lag
//! (log end minus committed offset) come from the Kafka API, as the sampler's principal.
//!
//! Invariants: at most [`POINTS_MAX`] samples per series, at most [`TOPICS_MAX`] topics and
//! [`GROUPS_MAX`] groups with series (others are not charted); a rate is never negative (a
//! counter that went back, a deleted topic's counts or a truncated log, counts as no traffic).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_broker::request_metrics::Throughput;
use runnel_client::security::ClientSecurity;
use runnel_client::Connection;

/// Samples kept per series: an hour at the default 10 s interval.
pub const POINTS_MAX: usize = 360;
pub const TOPICS_MAX: usize = 1000;
pub const GROUPS_MAX: usize = 200;

/// One point of a chart: epoch ms and a value.
pub type Point = (i64, f64);

/// Each partition's log end offset, by topic and partition.
pub type PartitionEnds = BTreeMap<(String, i32), i64>;

#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    bytes_in: VecDeque<Point>,
    bytes_out: VecDeque<Point>,
    messages_in: VecDeque<Point>,
    last_node: Option<(i64, Throughput)>,
    topics: HashMap<String, VecDeque<Point>>,
    /// The last sample's log end of each partition, and when it was taken.
    last_ends: Option<(i64, PartitionEnds)>,
    groups: HashMap<String, VecDeque<Point>>,
}

fn push(series: &mut VecDeque<Point>, point: Point) {
    if series.len() == POINTS_MAX {
        series.pop_front();
    }
    series.push_back(point);
}

/// Per second from two counter readings; a counter that went back counts as zero.
fn rate(before: u64, after: u64, elapsed_ms: i64) -> f64 {
    if elapsed_ms <= 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 * 1000.0 / elapsed_ms as f64
}

impl History {
    /// A reading of this node's counters at `now_ms`.
    pub fn record_node(&self, now_ms: i64, now: Throughput) {
        let mut inner = self.inner.lock().expect("history lock");
        if let Some((at, before)) = inner.last_node {
            let elapsed = now_ms - at;
            push(&mut inner.bytes_in, (now_ms, rate(before.bytes_in, now.bytes_in, elapsed)));
            push(&mut inner.bytes_out, (now_ms, rate(before.bytes_out, now.bytes_out, elapsed)));
            push(&mut inner.messages_in, (now_ms, rate(before.messages_in, now.messages_in, elapsed)));
        }
        inner.last_node = Some((now_ms, now));
    }

    /// Each partition's log end offset at `now_ms`: a topic's rate counts only partitions
    /// present in this sample and the one before (a partition without a leader for a moment
    /// is not a drop and then a spike); topics not in `ends` lose their series.
    pub fn record_topics(&self, now_ms: i64, ends: &PartitionEnds) {
        let mut inner = self.inner.lock().expect("history lock");
        inner.topics.retain(|topic, _| ends.keys().any(|(t, _)| t == topic));
        let Some((before_ms, before)) = inner.last_ends.replace((now_ms, ends.clone())) else { return };
        let mut moved: BTreeMap<&str, u64> = BTreeMap::new();
        for ((topic, partition), end) in ends {
            let grew = before.get(&(topic.clone(), *partition)).map_or(0, |b| u64::try_from(end - b).unwrap_or(0));
            *moved.entry(topic.as_str()).or_default() += grew;
        }
        for (topic, grew) in moved {
            let known = inner.topics.len();
            if known >= TOPICS_MAX && !inner.topics.contains_key(topic) {
                continue;
            }
            let series = inner.topics.entry(topic.to_string()).or_default();
            push(series, (now_ms, rate(0, grew, now_ms - before_ms)));
        }
    }

    /// Each group's total lag at `now_ms`; groups not in `lags` lose their series.
    pub fn record_groups(&self, now_ms: i64, lags: &BTreeMap<String, i64>) {
        let mut inner = self.inner.lock().expect("history lock");
        inner.groups.retain(|group, _| lags.contains_key(group));
        for (group, lag) in lags {
            let known = inner.groups.len();
            if known >= GROUPS_MAX && !inner.groups.contains_key(group) {
                continue;
            }
            push(inner.groups.entry(group.clone()).or_default(), (now_ms, *lag as f64));
        }
    }

    /// This node's traffic: bytes in, bytes out, messages in per second.
    pub fn node(&self) -> serde_json::Value {
        let inner = self.inner.lock().expect("history lock");
        serde_json::json!({
            "bytes_in": inner.bytes_in,
            "bytes_out": inner.bytes_out,
            "messages_in": inner.messages_in,
        })
    }

    /// A topic's messages in per second (cluster-wide).
    pub fn topic(&self, topic: &str) -> Vec<Point> {
        let inner = self.inner.lock().expect("history lock");
        inner.topics.get(topic).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// The latest message rate of each topic.
    pub fn topic_rates(&self) -> HashMap<String, f64> {
        let inner = self.inner.lock().expect("history lock");
        inner.topics.iter().filter_map(|(t, s)| s.back().map(|(_, v)| (t.clone(), *v))).collect()
    }

    /// A group's total lag.
    pub fn group(&self, group: &str) -> Vec<Point> {
        let inner = self.inner.lock().expect("history lock");
        inner.groups.get(group).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }
}

/// Samples forever: this node's counters always; topics and groups when the sampler has a
/// principal (`security`).
pub async fn sample(
    history: Arc<History>,
    kafka: String,
    security: Option<ClientSecurity>,
    throughput: Arc<dyn Fn() -> Throughput + Send + Sync>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        ticks.tick().await;
        let now = runnel_broker::clock::now_ms();
        history.record_node(now, throughput());
        let Some(security) = &security else { continue };
        // The Kafka part of a round is bounded by the interval: a slow node skips samples.
        let round = tokio::time::timeout(interval.max(Duration::from_secs(1)), sample_cluster(&kafka, security));
        match round.await {
            Ok(Ok((ends, lags))) => {
                history.record_topics(now, &ends);
                history.record_groups(now, &lags);
                warned = false;
            }
            Ok(Err(e)) if !warned => {
                tracing::warn!(error = %crate::one_line(&e), "console sampling failed; charts miss this sample");
                warned = true;
            }
            Err(_) if !warned => {
                tracing::warn!(?interval, "console sampling took longer than its interval; charts miss this sample");
                warned = true;
            }
            _ => {}
        }
    }
}

/// Every partition's log end offset and every group's total lag.
async fn sample_cluster(
    kafka: &str,
    security: &ClientSecurity,
) -> anyhow::Result<(PartitionEnds, BTreeMap<String, i64>)> {
    let mut conn = Connection::connect_secure(kafka, None, security).await?;
    let metadata = crate::offsets::metadata(&mut conn, None).await?;
    let ends = crate::offsets::latest_of_all(&metadata, security, TOPICS_MAX).await?;
    let listed = crate::group::list_value(&mut conn).await?;
    let mut lags = BTreeMap::new();
    // One connection per coordinator node for the round, not one per group.
    let mut coordinators: HashMap<String, Connection> = HashMap::new();
    for group in listed["groups"].as_array().into_iter().flatten().take(GROUPS_MAX) {
        let Some(id) = group["group"].as_str() else { continue };
        let Ok(addr) = crate::group::coordinator_address(&mut conn, id).await else { continue };
        if !coordinators.contains_key(&addr) {
            let Ok(opened) = crate::connect::connect_to(&addr, security).await else { continue };
            coordinators.insert(addr.clone(), opened);
        }
        let coordinator = coordinators.get_mut(&addr).expect("inserted above");
        let Ok(committed) = crate::group::committed(coordinator, id).await else { continue };
        let lag: i64 = committed
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .filter_map(|(p, offset)| ends.get(&(topic.clone(), *p)).map(|end| (end - offset).max(0)))
            })
            .sum();
        lags.insert(id.to_string(), lag);
    }
    Ok((ends, lags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_successive_readings_and_never_go_negative() {
        let history = History::default();
        history.record_node(0, Throughput { bytes_in: 100, messages_in: 1, bytes_out: 0 });
        history.record_node(2_000, Throughput { bytes_in: 2_100, messages_in: 21, bytes_out: 500 });
        history.record_node(4_000, Throughput { bytes_in: 0, messages_in: 0, bytes_out: 500 });
        let node = history.node();
        assert_eq!(node["bytes_in"], serde_json::json!([[2000, 1000.0], [4000, 0.0]]));
        assert_eq!(node["messages_in"], serde_json::json!([[2000, 10.0], [4000, 0.0]]));
        assert_eq!(node["bytes_out"], serde_json::json!([[2000, 250.0], [4000, 0.0]]));
    }

    #[test]
    fn series_are_bounded_and_forget_what_is_gone() {
        let history = History::default();
        for i in 0..(POINTS_MAX as i64 + 10) {
            history.record_topics(i * 1000, &BTreeMap::from([(("t".to_string(), 0), i * 5)]));
            history.record_groups(i * 1000, &BTreeMap::from([("g".to_string(), i)]));
        }
        assert_eq!(history.topic("t").len(), POINTS_MAX);
        assert_eq!(history.topic("t").last(), Some(&((POINTS_MAX as i64 + 9) * 1000, 5.0)));
        assert_eq!(history.group("g").len(), POINTS_MAX);
        history.record_topics(1_000_000, &BTreeMap::new());
        history.record_groups(1_000_000, &BTreeMap::new());
        assert!(history.topic("t").is_empty() && history.group("g").is_empty());
    }

    #[test]
    fn a_partition_missing_from_a_sample_is_neither_a_drop_nor_a_spike() {
        let history = History::default();
        let ends = |p1: Option<i64>| {
            let mut ends = BTreeMap::from([(("t".to_string(), 0), 1_000)]);
            if let Some(end) = p1 {
                ends.insert(("t".to_string(), 1), end);
            }
            ends
        };
        history.record_topics(0, &ends(Some(5_000)));
        history.record_topics(1_000, &ends(None));
        history.record_topics(2_000, &ends(Some(5_010)));
        history.record_topics(3_000, &ends(Some(5_020)));
        let rates: Vec<f64> = history.topic("t").iter().map(|(_, r)| *r).collect();
        assert_eq!(rates, [0.0, 0.0, 10.0]);
    }
}
