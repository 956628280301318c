//! Criterion micro-benchmarks of the storage hot paths: append, index lookup (read
//! positioning), batch validation, and the recovery scan. Run with
//! `cargo bench -p runnel-storage`; figures go to docs/performance.md as ratios.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use runnel_protocol::batch::{build_batch, BatchView};
use runnel_storage::{LogConfig, PartitionLog};

/// A batch of `records` 1 KB records, as a producer with linger would send.
fn batch_of(records: usize) -> Vec<u8> {
    let value = vec![b'v'; 1024];
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    build_batch(0, &values)
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 256 << 20, ..LogConfig::default() }
}

fn append(c: &mut Criterion) {
    let batch = batch_of(16);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("append_batch 16 x 1 KB (page cache)", |b| {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), 0, 0, true, 0).unwrap();
        let mut now = 0;
        b.iter(|| {
            now += 1;
            if log.size_bytes() > 200 << 20 {
                log.truncate_to(0).unwrap();
            }
            black_box(log.append_batch(&batch, 0, false, now).unwrap())
        });
    });
    group.finish();
}

fn filled_log(dir: &std::path::Path, batches: usize) -> PartitionLog {
    let batch = batch_of(4);
    let mut log = PartitionLog::open(dir, config(), 0, 0, true, 0).unwrap();
    for i in 0..batches {
        log.append_batch(&batch, 0, false, i as i64).unwrap();
    }
    log
}

fn index_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = filled_log(dir.path(), 10_000);
    let end = log.log_end_offset();
    let mut offset = 0;
    c.bench_function("read positioning (index lookup + header scan), 40k-offset log", |b| {
        b.iter(|| {
            offset = (offset + 7_919) % end;
            black_box(log.read(offset, 1 << 20, end, true).unwrap())
        });
    });
}

fn validation(c: &mut Criterion) {
    let batch = batch_of(1000);
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("1000 x 1 KB uncompressed (CRC32C + record walk)", |b| {
        b.iter(|| BatchView::parse(black_box(&batch)).unwrap().validate().unwrap());
    });
    group.finish();
}

fn recovery_scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = filled_log(dir.path(), 8_000);
    let bytes = log.size_bytes();
    log.close().unwrap();
    let mut group = c.benchmark_group("recovery");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    group.bench_function("unclean open scanning 32 MB", |b| {
        b.iter_batched(
            || (),
            |_| black_box(PartitionLog::open(dir.path(), config(), 0, 0, false, 0).unwrap()),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, append, index_lookup, validation, recovery_scan);
criterion_main!(benches);
