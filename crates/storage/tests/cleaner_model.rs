//! Property: log compaction on real files against a model. Whatever sequence of appends
//! (keys, tombstones, keyless-free compacted data in every codec, idempotent producers),
//! cleaning passes (with an offset map too small for the whole dirty part), rolls,
//! truncations above what was cleaned, clean and unclean restarts, and passes abandoned
//! half way (their `.cleaned` files left behind), the log reads back: offsets strictly
//! increasing, nothing that was not written, the model's latest value of every key (a
//! deleted key may be gone), every record of the part not yet cleaned, and each idempotent
//! producer's epoch, last sequence and last offset as appended.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use runnel_protocol::batch::{
    build_batch_records, recompress, BatchMut, BatchView, Compression, KeyValue, HEADER_BYTES,
};
use runnel_protocol::compression::RecordStream;
use runnel_storage::cleaner::{clean, CleanSettings, Throttle};
use runnel_storage::{LogConfig, PartitionLog};

use common::read_all_compacted as read_all;

const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
const MAX: usize = 1 << 20;
const RETENTION_MS: i64 = 50;

type Read = (i64, Vec<u8>, Option<Vec<u8>>);

#[derive(Clone, Debug)]
enum Op {
    /// Records (key, value or tombstone) in one batch of a codec, from producer `p` if any.
    Append {
        records: Vec<(u8, Option<u8>)>,
        codec: usize,
        producer: Option<u8>,
    },
    Roll,
    /// A pass whose offset map holds this many keys.
    Clean(usize),
    /// A pass that is abandoned before its swap (a crash while it writes).
    CleanAbandoned,
    /// Truncation to a point between what was cleaned and the log end (per mille).
    Truncate(u16),
    ReopenClean,
    ReopenUnclean,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..12, prop::option::weighted(0.85, any::<u8>()));
    prop_oneof![
        10 => (prop::collection::vec(record, 1..5), 0..CODECS.len(), prop::option::of(0u8..3))
            .prop_map(|(records, codec, producer)| Op::Append { records, codec, producer }),
        3 => Just(Op::Roll),
        3 => (4usize..16).prop_map(Op::Clean),
        1 => Just(Op::CleanAbandoned),
        1 => (0u16..1000).prop_map(Op::Truncate),
        1 => Just(Op::ReopenClean),
        1 => Just(Op::ReopenUnclean),
    ]
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 128, ..LogConfig::default() }
}

struct Harness {
    dir: tempfile::TempDir,
    log: Option<PartitionLog>,
    /// Every record written and not truncated, in offset order.
    model: Vec<Read>,
    /// Per producer: epoch 0, next sequence, and the offsets of its last batch.
    sequences: BTreeMap<u8, i32>,
    last_batches: BTreeMap<i64, (i32, i64, i64)>,
    /// Everything below was cleaned at least once; truncations stay above it (as a replica
    /// truncates only above the high watermark, and cleans only below it).
    cleaned_to: i64,
    /// The cleaner's checkpoint.
    first_dirty: i64,
    now_ms: i64,
}

impl Harness {
    fn log(&mut self) -> &mut PartitionLog {
        self.log.as_mut().expect("open")
    }

    fn reopen(&mut self, clean: bool) {
        let log = self.log.take().expect("open");
        let recovery_point = log.recovery_point();
        match clean {
            true => log.close().unwrap(),
            false => drop(log),
        }
        self.log = Some(PartitionLog::open(self.dir.path(), config(), recovery_point, 0, clean, self.now_ms).unwrap());
    }

    fn pass(&mut self, map_keys: usize, abandon: bool) {
        let end = self.log().log_end_offset();
        let first_dirty = self.first_dirty;
        let Some(plan) = self.log().plan_clean(first_dirty, end).unwrap() else { return };
        let settings = CleanSettings {
            dedupe_buffer_bytes: map_keys * runnel_storage::cleaner::offset_map::ENTRY_BYTES,
            now_ms: self.now_ms,
            delete_retention_ms: RETENTION_MS,
            decompressed_max_bytes: MAX,
        };
        let result = clean(&plan, &settings, &Throttle::new(f64::INFINITY)).unwrap();
        if abandon {
            std::mem::forget(result);
            self.reopen(false);
            return;
        }
        let map_end = result.map_end;
        self.log().commit_clean(result).unwrap();
        self.first_dirty = map_end;
        self.cleaned_to = self.cleaned_to.max(map_end);
    }

    fn apply(&mut self, op: &Op) {
        self.now_ms += 10;
        let now_ms = self.now_ms;
        match op {
            Op::Append { records, codec, producer } => {
                let owned: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                    records.iter().map(|(k, v)| (vec![b'k', *k], v.map(|v| vec![v]))).collect();
                let refs: Vec<KeyValue> = owned.iter().map(|(k, v)| (Some(k.as_slice()), v.as_deref())).collect();
                let mut batch = recompress(&build_batch_records(now_ms, &refs), CODECS[*codec]);
                let mut first_seq = None;
                if let Some(p) = producer {
                    let seq = *self.sequences.entry(*p).or_default();
                    BatchMut::new(&mut batch).set_producer(i64::from(*p), 0, seq);
                    first_seq = Some(seq);
                }
                let info = self.log().append_batch(&batch, 0, false, now_ms).unwrap();
                for (i, (k, v)) in owned.into_iter().enumerate() {
                    self.model.push((info.base_offset + i as i64, k, v));
                }
                if let (Some(p), Some(seq)) = (producer, first_seq) {
                    let last_seq = seq + records.len() as i32 - 1;
                    self.sequences.insert(*p, last_seq + 1);
                    self.last_batches.insert(i64::from(*p), (last_seq, info.base_offset, info.last_offset));
                }
            }
            Op::Roll => self.log().roll(now_ms).unwrap(),
            Op::Clean(keys) => self.pass(*keys, false),
            Op::CleanAbandoned => self.pass(16, true),
            Op::Truncate(per_mille) => {
                let (from, end) = (self.cleaned_to, self.log().log_end_offset());
                let offset = from + (end - from) * i64::from(*per_mille) / 1000;
                self.log().truncate_to(offset).unwrap();
                let end = self.log().log_end_offset();
                self.model.retain(|r| r.0 < end);
                self.first_dirty = self.first_dirty.min(end);
                // A producer whose last batch went continues from what is left, as the
                // log rebuilt it from its files.
                let state = self.log().producer_state().clone();
                self.last_batches.clear();
                self.sequences.clear();
                for p in 0u8..3 {
                    if let Some(batch) = state.entry(i64::from(p)).and_then(|e| e.batches.back()) {
                        self.sequences.insert(p, batch.last_seq + 1);
                        self.last_batches.insert(i64::from(p), (batch.last_seq, batch.first_offset, batch.last_offset));
                    }
                }
            }
            Op::ReopenClean => self.reopen(true),
            Op::ReopenUnclean => self.reopen(false),
        }
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let mut read = Vec::new();
        for (_, bytes) in read_all(self.log()) {
            let batch = BatchView::parse(&bytes).unwrap();
            batch.validate_replicated().unwrap();
            let mut stream = RecordStream::new(batch.compression().unwrap(), &bytes[HEADER_BYTES..], MAX).unwrap();
            while let Some(r) = stream.next_record().unwrap() {
                read.push((batch.base_offset() + r.offset_delta, r.key.unwrap(), r.value));
            }
        }
        prop_assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
        for record in &read {
            prop_assert!(self.model.contains(record), "{record:?} was never written");
        }
        let latest = |records: &[Read]| -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
            records.iter().map(|(_, k, v)| (k.clone(), v.clone())).collect()
        };
        let (have, want) = (latest(&read), latest(&self.model));
        for (key, value) in &want {
            match (value, have.get(key)) {
                // A deleted key may be gone once its tombstone expired.
                (None, None) => {}
                (want, have) => prop_assert_eq!(Some(want), have, "key {:?}", key),
            }
        }
        let tail: Vec<&Read> = self.model.iter().filter(|r| r.0 >= self.cleaned_to).collect();
        let read_tail: Vec<&Read> = read.iter().filter(|r| r.0 >= self.cleaned_to).collect();
        prop_assert_eq!(read_tail, tail, "the part never cleaned is intact");
        let producers = self.log().producer_state().clone();
        for (id, (last_seq, first, last)) in &self.last_batches {
            let entry = producers.entry(*id).expect("the producer is known");
            let batch = entry.batches.back().unwrap();
            prop_assert_eq!(
                (entry.epoch, batch.last_seq, batch.first_offset, batch.last_offset),
                (0, *last_seq, *first, *last)
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_cleaned_log_reads_back_the_models_latest_values_and_producer_state(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), config(), 0, 0, true, 0).unwrap();
        let mut harness = Harness {
            dir,
            log: Some(log),
            model: Vec::new(),
            sequences: BTreeMap::new(),
            last_batches: BTreeMap::new(),
            cleaned_to: 0,
            first_dirty: 0,
            now_ms: 0,
        };
        for op in &ops {
            harness.apply(op);
            harness.check()?;
        }
    }
}
