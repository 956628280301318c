//! Labelled metrics the request path and the data path record, rendered in Prometheus's
//! text format by `metrics.rs`: per API and version, latency histograms split as Kafka's
//! `RequestMetrics` splits them (queue, local, remote, send and total time, in seconds);
//! per API, errors by Kafka's error name (`ErrorsPerSec`); per topic, bytes and messages in,
//! bytes out, and produce and fetch requests and failures (Kafka's `BrokerTopicMetrics`);
//! open connections per listener.
//!
//! Invariants: recording takes a read lock and atomics (a write lock only the first time a
//! label is seen); cardinality is bounded: API keys and versions are Kafka's few, and at
//! most [`TOPICS_MAX`] topics get series (others count only in the node's totals).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Topics with series of their own, at most.
pub const TOPICS_MAX: usize = 1000;

/// Histogram bounds, in seconds (Prometheus `le`), then +Inf.
const BUCKETS_S: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram with fixed buckets ([`BUCKETS_S`]), recorded with atomics.
#[derive(Default)]
pub struct Histogram {
    /// Per bucket of [`BUCKETS_S`], then +Inf (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
    micros: AtomicU64,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS_S.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS_S.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The series of family `name` with `labels` (`k="v",...`, may be empty), without the
    /// `# HELP` / `# TYPE` lines.
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_S.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS_S.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let sum = self.micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |l: &str| if l.is_empty() { String::new() } else { format!("{{{l}}}") };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// One of a topic's counters.
type TopicCounter = fn(&TopicStats) -> &AtomicU64;

#[derive(Default)]
pub struct TopicStats {
    pub bytes_in: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Partitions produced to and fetched from (one per partition of a request, as Kafka
    /// counts them), and those answered with an error.
    pub produce_requests: AtomicU64,
    pub produce_failures: AtomicU64,
    pub fetch_requests: AtomicU64,
    pub fetch_failures: AtomicU64,
}

/// Counters of a node's traffic, summed over topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throughput {
    pub bytes_in: u64,
    pub messages_in: u64,
    pub bytes_out: u64,
}

/// Where a request's time went (Kafka's RequestMetrics): waiting for the node's request
/// budget, handling, waiting on others (acks=all, a long poll, remote storage), and writing
/// the response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub queue: Duration,
    pub local: Duration,
    pub remote: Duration,
    pub send: Duration,
}

impl Split {
    pub fn total(&self) -> Duration {
        self.queue + self.local + self.remote + self.send
    }
}

/// One API version's histograms.
#[derive(Default)]
pub struct ApiTimes {
    total: Histogram,
    queue: Histogram,
    local: Histogram,
    remote: Histogram,
    send: Histogram,
}

/// The histogram families of [`ApiTimes`]: name, help, which.
type TimeFamily = (&'static str, &'static str, fn(&ApiTimes) -> &Histogram);
const TIME_FAMILIES: [TimeFamily; 5] = [
    ("runnel_request_seconds", "Total time of a request: queue, local, remote and send.", |t| &t.total),
    ("runnel_request_queue_seconds", "Time a request waited for the node's request budget.", |t| &t.queue),
    ("runnel_request_local_seconds", "Time a request was handled, waits on others excluded.", |t| &t.local),
    (
        "runnel_request_remote_seconds",
        "Time a request waited on others: acks=all replication, a fetch's long poll, remote storage.",
        |t| &t.remote,
    ),
    ("runnel_request_send_seconds", "Time writing a request's response to the socket.", |t| &t.send),
];

#[derive(Default)]
pub struct RequestMetrics {
    apis: RwLock<HashMap<(i16, i16), Arc<ApiTimes>>>,
    /// Error codes answered, per API (only Kafka's codes: a bounded set).
    errors: RwLock<HashMap<(i16, i16), Arc<AtomicU64>>>,
    topics: RwLock<HashMap<String, Arc<TopicStats>>>,
    /// Open connections per listener (the node's few configured listeners).
    connections: RwLock<HashMap<String, Arc<AtomicU64>>>,
    /// Ids of logged slow requests, unique per process.
    request_ids: AtomicU64,
}

/// Counts one open connection of a listener until dropped.
pub struct ConnectionGuard(Arc<AtomicU64>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RequestMetrics {
    /// One request of `api_key` v`version` and where its time went.
    pub fn request(&self, api_key: i16, version: i16, split: Split) {
        let times = self.api(api_key, version);
        times.total.record(split.total());
        times.queue.record(split.queue);
        times.local.record(split.local);
        times.remote.record(split.remote);
        times.send.record(split.send);
    }

    /// Counts the error codes of a response of `api_key` (none for success).
    pub fn errors(&self, api_key: i16, response: &impl crate::response_errors::ErrorCodes) {
        response.error_codes(&mut |code| self.error(api_key, code));
    }

    /// Counts one error `code` answered by `api_key`; success (0) and codes that are not
    /// Kafka's are not counted.
    pub fn error(&self, api_key: i16, code: i16) {
        use kafka_protocol::error::ResponseError;
        if !matches!(ResponseError::try_from_code(code), Some(error) if !matches!(error, ResponseError::Unknown(_))) {
            return;
        }
        let existing = self.errors.read().expect("metrics lock").get(&(api_key, code)).cloned();
        let count = existing
            .unwrap_or_else(|| self.errors.write().expect("metrics lock").entry((api_key, code)).or_default().clone());
        count.fetch_add(1, Ordering::Relaxed);
    }

    fn api(&self, api_key: i16, version: i16) -> Arc<ApiTimes> {
        if let Some(stats) = self.apis.read().expect("metrics lock").get(&(api_key, version)) {
            return stats.clone();
        }
        self.apis.write().expect("metrics lock").entry((api_key, version)).or_default().clone()
    }

    /// The series of `topic`, unless [`TOPICS_MAX`] topics have theirs already.
    pub fn topic(&self, topic: &str) -> Option<Arc<TopicStats>> {
        if let Some(stats) = self.topics.read().expect("metrics lock").get(topic) {
            return Some(stats.clone());
        }
        let mut topics = self.topics.write().expect("metrics lock");
        if topics.len() >= TOPICS_MAX && !topics.contains_key(topic) {
            return None;
        }
        Some(topics.entry(topic.to_string()).or_default().clone())
    }

    /// A new id for a request that is logged.
    pub fn next_request_id(&self) -> u64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A connection accepted on `listener`: counted as open until the guard is dropped.
    pub fn connection_opened(&self, listener: &str) -> ConnectionGuard {
        let existing = self.connections.read().expect("metrics lock").get(listener).cloned();
        let count = existing.unwrap_or_else(|| {
            self.connections.write().expect("metrics lock").entry(listener.to_string()).or_default().clone()
        });
        count.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(count)
    }

    /// This node's record bytes in and out and messages in, summed over the topics with
    /// series (a deleted topic's counts leave the sums).
    pub fn throughput(&self) -> Throughput {
        let topics = self.topics.read().expect("metrics lock");
        let mut total = Throughput::default();
        for t in topics.values() {
            total.bytes_in += t.bytes_in.load(Ordering::Relaxed);
            total.messages_in += t.messages_in.load(Ordering::Relaxed);
            total.bytes_out += t.bytes_out.load(Ordering::Relaxed);
        }
        total
    }

    /// Forgets the series of topics that are gone (`exists` says which remain).
    pub fn retain_topics(&self, exists: impl Fn(&str) -> bool) {
        self.topics.write().expect("metrics lock").retain(|topic, _| exists(topic));
    }

    pub fn render(&self, out: &mut String) {
        let mut apis: Vec<_> = self.apis.read().expect("metrics lock").iter().map(|(k, v)| (*k, v.clone())).collect();
        apis.sort_by_key(|(key, _)| *key);
        let api_name = |api_key: i16| {
            kafka_protocol::messages::ApiKey::try_from(api_key)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|_| api_key.to_string())
        };
        for (name, help, which) in TIME_FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for ((api_key, version), times) in &apis {
                which(times).render(name, &format!("api=\"{}\",version=\"{version}\"", api_name(*api_key)), out);
            }
        }
        let name = "runnel_request_errors_total";
        let _ = writeln!(out, "# HELP {name} Errors answered, per API and Kafka error name.\n# TYPE {name} counter");
        let mut errors: Vec<_> =
            self.errors.read().expect("metrics lock").iter().map(|(k, v)| (*k, v.load(Ordering::Relaxed))).collect();
        errors.sort();
        for ((api_key, code), count) in errors {
            let _ = writeln!(out, "{name}{{api=\"{}\",error=\"{}\"}} {count}", api_name(api_key), error_name(code));
        }
        let name = "runnel_connections";
        let _ = writeln!(out, "# HELP {name} Open Kafka connections, per listener.\n# TYPE {name} gauge");
        let mut connections: Vec<_> = self
            .connections
            .read()
            .expect("metrics lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect();
        connections.sort();
        for (listener, open) in connections {
            let _ = writeln!(out, "{name}{{listener=\"{}\"}} {open}", escape(&listener));
        }
        let mut topics: Vec<_> =
            self.topics.read().expect("metrics lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        let series: [(&str, &str, TopicCounter); 7] = [
            ("runnel_topic_bytes_in_total", "Record bytes appended by Produce, per topic.", |t| &t.bytes_in),
            ("runnel_topic_messages_in_total", "Offsets appended by Produce, per topic.", |t| &t.messages_in),
            ("runnel_topic_bytes_out_total", "Record bytes sent to consumers (not followers), per topic.", |t| {
                &t.bytes_out
            }),
            ("runnel_topic_produce_requests_total", "Partitions produced to, per topic.", |t| &t.produce_requests),
            ("runnel_topic_produce_failures_total", "Partitions whose produce failed, per topic.", |t| {
                &t.produce_failures
            }),
            ("runnel_topic_fetch_requests_total", "Partitions fetched by consumers, per topic.", |t| &t.fetch_requests),
            ("runnel_topic_fetch_failures_total", "Consumer partition fetches that failed, per topic.", |t| {
                &t.fetch_failures
            }),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (topic, stats) in &topics {
                let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", escape(topic), value(stats).load(Ordering::Relaxed));
            }
        }
    }
}

/// A label value as Prometheus's text format needs it (Kafka topic names are
/// `[a-zA-Z0-9._-]`, but nothing here relies on that).
/// Kafka's name of error `code`, as its `Errors` enum spells it (NOT_LEADER_OR_FOLLOWER).
pub fn error_name(code: i16) -> String {
    let Some(error) = kafka_protocol::error::ResponseError::try_from_code(code) else { return code.to_string() };
    let camel = format!("{error:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_topics_bounded() {
        let metrics = RequestMetrics::default();
        let local = |d| Split { local: d, ..Split::default() };
        metrics.request(0, 9, local(Duration::from_micros(300)));
        metrics.request(0, 9, local(Duration::from_millis(3)));
        metrics.request(
            0,
            9,
            Split { queue: Duration::from_secs(10), remote: Duration::from_secs(20), ..Split::default() },
        );
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("runnel_request_seconds_bucket{api=\"Produce\",version=\"9\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("runnel_request_seconds_bucket{api=\"Produce\",version=\"9\",le=\"0.005\"} 2\n"));
        assert!(out.contains("runnel_request_seconds_bucket{api=\"Produce\",version=\"9\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("runnel_request_seconds_count{api=\"Produce\",version=\"9\"} 3\n"));
        // The split: two requests were all local time, one waited 10 s queued and 20 s on others.
        assert!(out.contains("runnel_request_remote_seconds_bucket{api=\"Produce\",version=\"9\",le=\"10\"} 2\n"));
        assert!(out.contains("runnel_request_remote_seconds_sum{api=\"Produce\",version=\"9\"} 20\n"), "{out}");
        assert!(out.contains("runnel_request_queue_seconds_sum{api=\"Produce\",version=\"9\"} 10\n"));
        metrics.error(1, 6);
        metrics.error(1, 6);
        metrics.error(1, 0);
        metrics.error(1, 12345);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("runnel_request_errors_total{api=\"Fetch\",error=\"NOT_LEADER_OR_FOLLOWER\"} 2\n"),
            "{out}"
        );
        assert_eq!(out.matches("runnel_request_errors_total{").count(), 1, "success and unknown codes are not counted");
        for i in 0..TOPICS_MAX {
            assert!(metrics.topic(&format!("t{i}")).is_some());
        }
        assert!(metrics.topic("one-too-many").is_none() && metrics.topic("t0").is_some());
        metrics.retain_topics(|topic| topic == "t0");
        assert!(metrics.topic("another").is_some(), "room again once topics are gone");
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
