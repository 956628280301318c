//! A minimal Prometheus text endpoint (`GET /metrics`) for the broker's counters, the
//! labelled request and topic metrics (`request_metrics.rs`) and per-partition gauges, and
//! `GET /health` for load balancers and orchestrators: 200 once this node is registered
//! with the cluster and not fenced and (in a cluster) knows a quorum leader; 503
//! otherwise. Bounded: one small request per connection, read with a size cap and a
//! timeout; at most [`PARTITIONS_MAX`] partitions get series.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::broker::Broker;

const REQUEST_BYTES_MAX: usize = 8192;
/// Partitions with gauges of their own, at most (the first ones by topic and index).
pub const PARTITIONS_MAX: usize = 10_000;

pub async fn serve(broker: Arc<Broker>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            // An accept error (EMFILE, a connection reset before accept) is one connection's
            // problem: the endpoint keeps serving.
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let broker = broker.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; REQUEST_BYTES_MAX];
                let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
                let Ok(Ok(n)) = read else { return };
                if n == 0 {
                    return;
                }
                let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let (status, body, content_type) = if request.starts_with("get /health") {
                    let (status, body) = health(&broker);
                    (status, body, "text/plain; charset=utf-8")
                } else if request.contains("application/openmetrics-text") {
                    let body = to_openmetrics(&render(&broker));
                    ("200 OK", body, "application/openmetrics-text; version=1.0.0; charset=utf-8")
                } else {
                    ("200 OK", render(&broker), "text/plain; version=0.0.4")
                };
                let head = format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    Ok(bound)
}

/// The Prometheus text as OpenMetrics (asked for with `Accept:
/// application/openmetrics-text`): a counter family is named without its `_total` suffix,
/// and the exposition ends with `# EOF`.
fn to_openmetrics(text: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("# TYPE ").and_then(|rest| rest.strip_suffix(" counter")) {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{} {tail}", name.trim_end_matches("_total")))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// `/health`: ready once registered and unfenced.
fn health(broker: &Broker) -> (&'static str, String) {
    let image = broker.metadata.image();
    // In a cluster, also a quorum leader known: a node cut off from the quorum is not ready.
    let quorum_ok = broker.metadata.quorum().is_none_or(|q| q.metrics().current_leader.is_some());
    let registered =
        !broker.config.roles.broker || image.brokers.get(&broker.config.node_id).is_some_and(|b| !b.fenced);
    let ready = quorum_ok && registered;
    if ready {
        ("200 OK", "ready\n".to_string())
    } else {
        ("503 Service Unavailable", "not registered with the cluster yet, or fenced\n".to_string())
    }
}

/// Per hosted partition: its log and, where this node leads, its replication state.
fn partition_gauges(mut partitions: Vec<Arc<crate::partition::Partition>>, out: &mut String) {
    use std::fmt::Write;
    partitions.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
    partitions.truncate(PARTITIONS_MAX);
    let names: [(&str, &str); 7] = [
        ("runnel_partition_log_size_bytes", "Bytes of the partition's local log."),
        ("runnel_partition_log_start_offset", "The partition's log start offset (local)."),
        ("runnel_partition_log_end_offset", "The partition's log end offset."),
        ("runnel_partition_high_watermark", "The partition's high watermark."),
        ("runnel_partition_leader", "1 when this node leads the partition."),
        ("runnel_partition_under_replicated", "1 when led here with an ISR smaller than its replicas."),
        ("runnel_partition_under_min_isr", "1 when led here with an ISR smaller than min.insync.replicas."),
    ];
    let mut rows: Vec<(String, [i64; 7])> = Vec::with_capacity(partitions.len());
    for p in &partitions {
        let Ok((size, start)) = p.inspect_log(|log| Ok((log.size_bytes(), log.log_start_offset()))) else { continue };
        let leader = p.is_leader();
        let labels = format!("topic=\"{}\",partition=\"{}\"", crate::request_metrics::escape(&p.topic), p.index);
        let isr = p.isr_len();
        rows.push((
            labels,
            [
                size as i64,
                start,
                p.log_end_offset(),
                p.high_watermark(),
                i64::from(leader),
                i64::from(leader && isr < p.replica_count()),
                i64::from(leader && isr < p.min_insync_replicas()),
            ],
        ));
    }
    for (i, (name, help)) in names.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, values) in &rows {
            let _ = writeln!(out, "{name}{{{labels}}} {}", values[i]);
        }
    }
    // Followers of the partitions led here (Kafka's ReplicaFetcherManager MaxLag, per replica).
    let now = crate::clock::now_ms();
    let lags: Vec<(String, i64, i64)> = partitions
        .iter()
        .flat_map(|p| {
            let topic = crate::request_metrics::escape(&p.topic);
            p.follower_lags(now).into_iter().map(move |(replica, behind, ms)| {
                (format!("topic=\"{topic}\",partition=\"{}\",replica=\"{replica}\"", p.index), behind, ms)
            })
        })
        .collect();
    let name = "runnel_partition_follower_lag_messages";
    let _ = writeln!(out, "# HELP {name} Offsets a follower is behind the leader's log end.\n# TYPE {name} gauge");
    for (labels, behind, _) in &lags {
        let _ = writeln!(out, "{name}{{{labels}}} {behind}");
    }
    let name = "runnel_partition_follower_lag_seconds";
    let _ =
        writeln!(out, "# HELP {name} Time since a follower was last caught up (0 when it is).\n# TYPE {name} gauge");
    for (labels, _, ms) in &lags {
        let _ = writeln!(out, "{name}{{{labels}}} {}", *ms as f64 / 1000.0);
    }
    let at_min = partitions.iter().filter(|p| p.is_leader() && p.isr_len() == p.min_insync_replicas()).count();
    let name = "runnel_at_min_isr_partitions";
    let _ = writeln!(out, "# HELP {name} Partitions led here whose ISR is exactly min.insync.replicas.\n# TYPE {name} gauge\n{name} {at_min}");
}

fn render(broker: &Broker) -> String {
    // One look at the hosted partitions serves every partition family of this scrape.
    let partitions = broker.replicas.all_partitions();
    let s = &broker.stats;
    let counters = [
        ("runnel_sendfile_bytes_total", &s.sendfile_bytes, "Record bytes sent to sockets with sendfile(2)."),
        ("runnel_connections_accepted_total", &s.connections_accepted, "Kafka connections accepted."),
        ("runnel_connections_rejected_total", &s.connections_rejected, "Connections closed at max.connections."),
        ("runnel_requests_total", &s.requests, "Kafka requests handled."),
        ("runnel_bad_frames_total", &s.bad_frames, "Connections closed for malformed frames."),
        ("runnel_produce_bytes_total", &s.produce_bytes, "Record bytes appended by Produce."),
        ("runnel_isr_shrinks_total", &s.isr_shrinks, "ISR shrinks committed by this node as leader."),
        ("runnel_isr_expands_total", &s.isr_expands, "ISR expansions committed by this node as leader."),
        ("runnel_replicated_bytes_total", &s.replicated_bytes, "Record bytes appended as a follower."),
        ("runnel_follower_truncations_total", &s.truncations, "Follower truncations that removed records."),
        ("runnel_remote_copied_segments_total", &s.remote_copied_segments, "Segments copied to remote storage."),
        ("runnel_remote_copied_bytes_total", &s.remote_copied_bytes, "Segment bytes copied to remote storage."),
        (
            "runnel_remote_abandoned_copies_removed_total",
            &s.remote_abandoned_removed,
            "Unfinished remote copies of earlier leaders or crashes deleted.",
        ),
        (
            "runnel_remote_expired_segments_total",
            &s.remote_expired_segments,
            "Remote segments deleted by retention (time, size or log start).",
        ),
        (
            "runnel_remote_copy_failures_total",
            &s.remote_copy_failures,
            "Remote copy rounds of a partition that failed.",
        ),
    ];
    let mut out = String::new();
    for (name, value, help) in counters {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            value.load(Ordering::Relaxed)
        ));
    }
    if let Some(reader) = &broker.remote {
        let r = &reader.stats;
        let remote = [
            ("runnel_remote_reads_total", &r.reads, "Fetch reads answered from remote storage."),
            ("runnel_remote_read_bytes_total", &r.read_bytes, "Record bytes read from remote storage for fetches."),
            ("runnel_remote_read_failures_total", &r.read_failures, "Remote reads that failed (store down, corrupt)."),
            ("runnel_remote_read_microseconds_total", &r.read_micros, "Time spent in remote reads (sum)."),
            (
                "runnel_remote_store_gets_total",
                &r.store_gets,
                "Objects and ranges read from the store (read-ahead too).",
            ),
            ("runnel_remote_store_get_bytes_total", &r.store_get_bytes, "Bytes read from the store."),
        ];
        for (name, value, help) in remote {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        let led: Vec<_> = partitions
            .iter()
            .filter(|p| p.is_leader())
            .filter_map(|p| crate::tiering::partition_state(broker, p))
            .collect();
        let gauges = [
            (
                "runnel_remote_log_segments",
                led.iter().map(|s| s.remote_segments).sum::<u64>(),
                "Remote segments of the partitions led here.",
            ),
            (
                "runnel_remote_log_bytes",
                led.iter().map(|s| s.remote_bytes).sum(),
                "Remote bytes of the partitions led here.",
            ),
            (
                "runnel_remote_upload_lag_segments",
                led.iter().map(|s| s.upload_lag_segments).sum(),
                "Closed segments of the partitions led here not uploaded yet.",
            ),
            (
                "runnel_remote_upload_lag_bytes",
                led.iter().map(|s| s.upload_lag_bytes).sum(),
                "Bytes of closed segments of the partitions led here not uploaded yet.",
            ),
        ];
        for (name, value, help) in gauges {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
        }
    }
    let led: Vec<_> = partitions.iter().filter(|p| p.is_leader()).collect();
    // Kafka's UnderReplicatedPartitions: led here with fewer in-sync replicas than replicas.
    let under = led.iter().filter(|p| p.isr_len() < p.replica_count()).count();
    let gauges = [
        ("runnel_partitions", partitions.len(), "Partition replicas hosted by this node."),
        ("runnel_leader_partitions", led.len(), "Partitions this node leads."),
        ("runnel_under_replicated_partitions", under, "Partitions led here whose ISR lacks a replica."),
        (
            "runnel_request_bytes_in_flight",
            broker.config.queued_max_request_bytes - broker.request_budget.available_permits(),
            "Request bytes read and not yet answered (bounded by queued.max.request.bytes).",
        ),
        (
            "runnel_offline_replicas",
            broker.replicas.offline().len(),
            "Replicas this node should host but could not open (see the log for why).",
        ),
    ];
    for (name, value, help) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
    }
    out.push_str(&broker.cleaner.render_metrics(crate::clock::now_ms()));
    let image = broker.metadata.image();
    broker.request_metrics.retain_topics(|topic| image.topic(topic).is_some());
    broker.request_metrics.render(&mut out);
    partition_gauges(partitions, &mut out);
    crate::metrics_state::groups(broker, &mut out);
    crate::metrics_state::quorum(broker, &mut out);
    crate::metrics_state::process(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n";
        assert_eq!(
            to_openmetrics(text),
            "# HELP a A.\n# TYPE a counter\na_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n# EOF\n"
        );
    }
}
