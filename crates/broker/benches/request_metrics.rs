//! What the per-request metrics cost (issue 20): recording one Produce request's latency split (five histograms)
//! and its topic's bytes, messages and request count, against a baseline from the same
//! run: appending one 16 x 1 KB batch to a partition log in the page cache (the work of the
//! smallest useful produce). Run with `cargo bench -p runnel-broker --bench request_metrics`.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use runnel_broker::request_metrics::{RequestMetrics, Split};
use runnel_protocol::batch::build_batch;
use runnel_storage::{LogConfig, PartitionLog};

fn per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("per request");
    let metrics = RequestMetrics::default();
    group.bench_function("record a produce (histogram + topic counters)", |b| {
        b.iter(|| {
            let split = Split { local: Duration::from_micros(700), ..Split::default() };
            metrics.request(black_box(0), black_box(11), black_box(split));
            if let Some(topic) = metrics.topic(black_box("orders")) {
                topic.bytes_in.fetch_add(16_384, Ordering::Relaxed);
                topic.messages_in.fetch_add(16, Ordering::Relaxed);
                topic.produce_requests.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let value = vec![b'v'; 1024];
    let batch = build_batch(0, &(0..16).map(|_| value.as_slice()).collect::<Vec<_>>());
    group.bench_function("baseline: append 16 x 1 KB (page cache)", |b| {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 256 << 20, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), config, 0, 0, true, 0).unwrap();
        let mut now = 0;
        b.iter(|| {
            now += 1;
            if log.size_bytes() > 200 << 20 {
                log.truncate_to(0).unwrap();
            }
            black_box(log.append_batch(&batch, 0, false, now).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
