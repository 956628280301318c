//! Tiered storage on a real S3-compatible server (moto, behind a proxy that can cut it
//! off): segments are uploaded and deleted locally; while the store is down, uploads fail
//! and are retried, local retention keeps what is not uploaded, and a consumer reading the
//! remote part gets retriable errors; once the store is back everything resumes, and the
//! consumer has every record, byte for byte.

mod support;

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::Message;
use support::proxy::Proxy;
use support::s3::S3Server;
use support::tiered::{local_start, value};
use support::*;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_delays_uploads_and_reads_and_loses_nothing() {
    let s3 = S3Server::start("runnel-tiered");
    let proxy = Proxy::start_transparent(7);
    proxy.set_target(s3.address.parse().unwrap());
    let data = TempDir::new().unwrap();
    let mut settings = support::s3::node_settings(&proxy.addr().to_string(), "runnel-tiered");
    for setting in ["remote.log.manager.task.interval.ms=100", "log.retention.check.interval.ms=100"] {
        settings.extend(["--set".to_string(), setting.to_string()]);
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let node = Node::start_with_metrics(data.path(), &settings);
    let bootstrap = node.bootstrap().to_string();
    let topic_settings =
        [("remote.storage.enable", "true"), ("internal.segment.bytes", "500000"), ("local.retention.bytes", "1000000")];
    create_topic(&bootstrap, "tiered", 1, &topic_settings).await;
    let producer = producer(&bootstrap, &[("batch.size", "65536"), ("linger.ms", "5")]);
    let messages: Vec<Msg> = (0..8_000).map(|i| Msg::new(format!("k{i}"), value(i))).collect();
    produce_all(&producer, "tiered", Some(0), &messages[..4_000], None).await;
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "uploads through S3", || {
        (local_start(data.path(), "tiered-0").unwrap() > 2_000).then_some(())
    });

    // The store goes away: new segments stay local, the remote part is unreadable.
    proxy.cut_for(Duration::from_secs(600));
    produce_all(&producer, "tiered", Some(0), &messages[4_000..], None).await;
    let failures = metric(node.metrics_url(), "runnel_remote_copy_failures_total");
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "failed upload rounds", || {
        (metric(node.metrics_url(), "runnel_remote_copy_failures_total") > failures + 2).then_some(())
    });
    // Without the uploads, 1 MB of local retention would keep only the last ~1 000.
    let start = local_start(data.path(), "tiered-0").unwrap();
    assert!(start <= 4_000, "local retention waits for uploads: the local log starts at {start}");
    let consumer = consumer(&bootstrap, &[("auto.offset.reset", "earliest")]);
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset("tiered", 0, rdkafka::Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "a remote read to fail", || {
        (metric(node.metrics_url(), "runnel_remote_read_failures_total") > 0).then_some(())
    });

    // The store is back: the consumer reads everything, the uploads catch up.
    proxy.end_outage();
    for i in 0..8_000 {
        let message = tokio::time::timeout(IO_TIMEOUT, consumer.recv()).await.expect("in time").expect("a record");
        assert_eq!(message.offset(), i as i64, "records in order, none missing");
        assert!(message.payload() == Some(value(i).as_slice()), "value of {i} differs");
    }
    poll_until(Duration::from_secs(60), Duration::from_millis(100), "the uploads to catch up", || {
        (local_start(data.path(), "tiered-0").unwrap() > 6_000).then_some(())
    });
}
