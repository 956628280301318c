//! A minimal Prometheus text endpoint (`GET /metrics`) for the broker's counters. Bounded:
//! one small request per connection, read with a size cap and a timeout.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::broker::Broker;

const REQUEST_BYTES_MAX: usize = 8192;

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
                if !matches!(read, Ok(Ok(n)) if n > 0) {
                    return;
                }
                let body = render(&broker);
                let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    Ok(bound)
}

fn render(broker: &Broker) -> String {
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
        let led: Vec<_> = broker
            .replicas
            .all_partitions()
            .into_iter()
            .filter(|p| p.is_leader())
            .filter_map(|p| crate::tiering::partition_state(broker, &p))
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
    let partitions = broker.replicas.all_partitions();
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
    out
}
