//! The cleaner's decisions against a model: any sequence of batches (keys, tombstones,
//! keyless records, every codec, idempotent producers), cleaned in passes whose offset map
//! may be too small for the whole dirty range, reads back the model's latest value of every
//! key, with offsets unchanged and increasing, and every producer's last batch kept.

use std::collections::BTreeMap;

use proptest::prelude::*;
use runnel_protocol::batch::{build_batch_records, recompress, BatchMut, BatchView, Compression, HEADER_BYTES};
use runnel_protocol::compression::RecordStream;

use super::offset_map::ENTRY_BYTES;
use super::*;

const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
const MAX: usize = 1 << 20;
const RETENTION_MS: i64 = 1_000;

/// One record: key (none = keyless), value (none = tombstone).
type Rec = (Option<u8>, Option<u8>);
/// A record's key and value, either null.
type Bytes2 = (Option<Vec<u8>>, Option<Vec<u8>>);
/// A record read back: offset, key, value.
type Read = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// A log of batches at consecutive offsets; producer `p` writes with id `p`.
fn log_of(batches: &[(Vec<Rec>, usize, Option<u8>)]) -> Vec<Vec<u8>> {
    let mut offset = 0i64;
    let mut sequences: BTreeMap<u8, i32> = BTreeMap::new();
    batches
        .iter()
        .map(|(records, codec, producer)| {
            let owned: Vec<Bytes2> =
                records.iter().map(|(k, v)| (k.map(|k| vec![b'k', k]), v.map(|v| vec![v]))).collect();
            let refs: Vec<runnel_protocol::batch::KeyValue> =
                owned.iter().map(|(k, v)| (k.as_deref(), v.as_deref())).collect();
            let mut batch = recompress(&build_batch_records(offset * 10, &refs), CODECS[*codec]);
            let mut stamped = BatchMut::new(&mut batch);
            stamped.set_base_offset(offset);
            if let Some(producer) = producer {
                let sequence = sequences.entry(*producer).or_default();
                stamped.set_producer(i64::from(*producer), 0, *sequence);
                *sequence += i32::try_from(records.len()).unwrap();
            }
            offset += i64::try_from(records.len()).unwrap();
            batch
        })
        .collect()
}

/// Every record of the log: (offset, key, value).
fn read_all(log: &[Vec<u8>]) -> Vec<Read> {
    let mut out = Vec::new();
    for bytes in log {
        let batch = BatchView::parse(bytes).unwrap();
        batch.check_crc().unwrap();
        let mut stream = RecordStream::new(batch.compression().unwrap(), &bytes[HEADER_BYTES..], MAX).unwrap();
        while let Some(record) = stream.next_record().unwrap() {
            out.push((batch.base_offset() + record.offset_delta, record.key, record.value));
        }
    }
    out
}

/// The latest value of each key (None: a tombstone).
fn latest(records: &[Read]) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    records.iter().filter_map(|(_, k, v)| Some((k.clone()?, v.clone()))).collect()
}

/// The offset of each producer's last batch.
fn producer_last(log: &[Vec<u8>]) -> BTreeMap<i64, i64> {
    log.iter()
        .map(|b| BatchView::parse(b).unwrap())
        .filter(|b| b.producer_id() >= 0)
        .map(|b| (b.producer_id(), b.base_offset()))
        .collect()
}

/// Cleaning passes until the whole log but its last batch (the active segment) is clean.
fn clean(log: &mut Vec<Vec<u8>>, map_bytes: usize, now_ms: i64) {
    let lasts = producer_last(log);
    let active_base = BatchView::parse(log.last().unwrap()).unwrap().base_offset();
    let mut first_dirty = 0;
    while first_dirty < active_base {
        let mut map = OffsetMap::with_buffer(map_bytes);
        let dirty: Vec<BatchView> = log
            .iter()
            .map(|b| BatchView::parse(b).unwrap())
            .filter(|b| b.last_offset() >= first_dirty && b.base_offset() < active_base)
            .collect();
        if dirty.is_empty() {
            // Cleaned away already: nothing left to map below the active segment.
            break;
        }
        let end = build_map(dirty, &mut map, first_dirty, MAX).unwrap();
        assert!(end > first_dirty, "a map that holds a batch's keys always makes progress");
        let ctx = CleanContext { map: &map, now_ms, delete_retention_ms: RETENTION_MS, decompressed_max_bytes: MAX };
        let mut cleaned = Vec::new();
        for bytes in log.drain(..) {
            let batch = BatchView::parse(&bytes).unwrap();
            if batch.last_offset() >= end {
                cleaned.push(bytes);
                continue;
            }
            let last = lasts.get(&batch.producer_id()) == Some(&batch.base_offset());
            match clean_batch(&batch, &ctx, last).unwrap() {
                Cleaned::Unchanged => cleaned.push(bytes),
                Cleaned::Rewritten(new) => cleaned.push(new),
                Cleaned::Dropped => {}
            }
        }
        *log = cleaned;
        first_dirty = end;
    }
}

fn batch_strategy() -> impl Strategy<Value = (Vec<Rec>, usize, Option<u8>)> {
    let record = (prop::option::weighted(0.95, 0u8..8), prop::option::weighted(0.8, any::<u8>()));
    (prop::collection::vec(record, 1..6), 0..CODECS.len(), prop::option::of(0u8..3))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_keeps_every_keys_latest_value_and_every_producers_last_batch(
        batches in prop::collection::vec(batch_strategy(), 2..24),
        // From the 8 keys a batch may hold (passes must progress) to all keys at once.
        map_entries in 8usize..20,
    ) {
        let original = log_of(&batches);
        let before = read_all(&original);
        let active_base = BatchView::parse(original.last().unwrap()).unwrap().base_offset();
        let mut log = original.clone();
        clean(&mut log, map_entries * ENTRY_BYTES, 0);
        let after = read_all(&log);
        // Offsets unchanged and increasing; nothing invented.
        prop_assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
        prop_assert!(after.iter().all(|r| before.contains(r)));
        // The model's latest value of every key (tombstones kept before their horizon).
        prop_assert_eq!(latest(&after), latest(&before));
        // Keyless records and records superseded within the cleaned range (everything
        // below the active segment) are gone; the active segment is untouched.
        for (offset, key, _) in &after {
            if *offset < active_base {
                let key = key.as_ref().expect("keyless records are cleaned away");
                let newest = before
                    .iter()
                    .filter(|(o, k, _)| *o < active_base && k.as_ref() == Some(key))
                    .map(|(o, _, _)| *o)
                    .max();
                prop_assert_eq!(newest, Some(*offset));
            }
        }
        // Every producer's last batch is still there (possibly empty), with its sequence.
        prop_assert_eq!(producer_last(&log), producer_last(&original));
        for batch in log.iter().map(|b| BatchView::parse(b).unwrap()) {
            let source = original.iter().map(|b| BatchView::parse(b).unwrap()).find(|b| b.base_offset() == batch.base_offset()).unwrap();
            prop_assert_eq!((batch.last_offset(), batch.base_sequence()), (source.last_offset(), source.base_sequence()));
        }
        prop_assert_eq!(
            after.iter().filter(|r| r.0 >= active_base).collect::<Vec<_>>(),
            before.iter().filter(|r| r.0 >= active_base).collect::<Vec<_>>()
        );
        // Past the delete horizon, a second cleaning removes the tombstones it had kept.
        clean(&mut log, map_entries * ENTRY_BYTES, RETENTION_MS + 1);
        let expired = read_all(&log);
        prop_assert!(expired.iter().all(|(offset, _, value)| value.is_some() || *offset >= active_base));
        let live = |m: BTreeMap<Vec<u8>, Option<Vec<u8>>>| -> BTreeMap<Vec<u8>, Vec<u8>> {
            m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
        };
        prop_assert_eq!(live(latest(&expired)), live(latest(&before)));
    }
}

#[test]
fn a_rewritten_batch_keeps_its_record_timestamps_under_a_delete_horizon() {
    let log = log_of(&[(vec![(Some(1), Some(1)), (Some(1), None), (Some(2), Some(2))], 3, None)]);
    let batch = BatchView::parse(&log[0]).unwrap();
    let mut map = OffsetMap::with_buffer(1024);
    build_map([batch], &mut map, 0, MAX).unwrap();
    let ctx =
        CleanContext { map: &map, now_ms: 50_000, delete_retention_ms: RETENTION_MS, decompressed_max_bytes: MAX };
    let Cleaned::Rewritten(bytes) = clean_batch(&batch, &ctx, false).unwrap() else { panic!("one record goes") };
    let cleaned = BatchView::parse(&bytes).unwrap();
    assert_eq!(cleaned.delete_horizon(), Some(51_000), "a kept tombstone sets the horizon");
    assert_eq!((cleaned.record_count(), cleaned.last_offset()), (2, 2));
    // build_batch_records stamps record i at base + i: the tombstone (offset 1) at 1, the
    // other at 2, whatever the new base timestamp.
    let timestamps: Vec<i64> = {
        let mut stream = RecordStream::new(Compression::Lz4, &bytes[HEADER_BYTES..], MAX).unwrap();
        std::iter::from_fn(|| stream.next_record().unwrap())
            .map(|r| cleaned.base_timestamp() + r.timestamp_delta)
            .collect()
    };
    assert_eq!(timestamps, [1, 2]);
}
