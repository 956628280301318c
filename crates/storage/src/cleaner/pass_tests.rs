//! Cleaning a log's files: passes over real segments, the swap, and a crash after each of
//! its steps (the process gone, its memory with it, the files as they were left).

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use runnel_protocol::batch::{build_batch_records, recompress, BatchIter, BatchMut, Compression, HEADER_BYTES};
use runnel_protocol::compression::RecordStream;

use super::choose::{dirtiness, LogState};
use super::swap::{StopAfter, SWAP_STEPS};
use super::*;
use crate::{LogConfig, PartitionLog};

const MAX: usize = 1 << 20;
type Read = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn config() -> LogConfig {
    LogConfig { segment_bytes: 2_000, index_interval_bytes: 200, ..LogConfig::default() }
}

fn open(dir: &Path, clean_shutdown: bool) -> PartitionLog {
    PartitionLog::open(dir, config(), 0, 0, clean_shutdown, 1_000).unwrap()
}

/// 60 batches of 4 records over 10 keys (`k0`..`k9`), alternating codecs; key 3 is deleted
/// half way; batches of producer 7 are idempotent. Then a roll, so everything is closed.
fn write_log(log: &mut PartitionLog) {
    let mut sequence = 0;
    for i in 0..60u8 {
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..4u8)
            .map(|j| {
                let key = (i * 4 + j) % 10;
                let value = (!(key == 3 && i >= 30)).then(|| vec![i, j]);
                (vec![b'k', key], value)
            })
            .collect();
        let refs: Vec<runnel_protocol::batch::KeyValue> =
            records.iter().map(|(k, v)| (Some(k.as_slice()), v.as_deref())).collect();
        let codec = [Compression::None, Compression::Lz4, Compression::Zstd][usize::from(i % 3)];
        let mut batch = recompress(&build_batch_records(1_000 + i64::from(i), &refs), codec);
        if i % 2 == 0 {
            BatchMut::new(&mut batch).set_producer(7, 0, sequence);
            sequence += 4;
        }
        log.append(&mut batch, 0, false, 1_000).unwrap();
    }
    log.roll(1_000).unwrap();
}

fn read_all(log: &PartitionLog) -> Vec<Read> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, MAX, i64::MAX, true).unwrap();
        let Some(slice) = read.slice else { break };
        let mut bytes = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut bytes, slice.position).unwrap();
        for item in BatchIter::new(&bytes) {
            let (_, batch) = item.unwrap();
            batch.validate_replicated().unwrap();
            let mut stream =
                RecordStream::new(batch.compression().unwrap(), &batch.bytes()[HEADER_BYTES..], MAX).unwrap();
            while let Some(r) = stream.next_record().unwrap() {
                out.push((batch.base_offset() + r.offset_delta, r.key, r.value));
            }
            offset = batch.last_offset() + 1;
        }
    }
    out
}

fn latest(records: &[Read]) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
    records.iter().filter_map(|(_, k, v)| Some((k.clone()?, v.clone()))).collect()
}

fn settings(buffer: usize, now_ms: i64) -> CleanSettings {
    CleanSettings { dedupe_buffer_bytes: buffer, now_ms, delete_retention_ms: 1_000, decompressed_max_bytes: MAX }
}

/// One pass from `first_dirty` over everything closed; returns the next first dirty offset.
fn pass(log: &mut PartitionLog, first_dirty: i64, buffer: usize, now_ms: i64) -> i64 {
    let end = log.log_end_offset();
    let plan = log.plan_clean(first_dirty, end).unwrap().expect("something to clean");
    let result = clean(&plan, &settings(buffer, now_ms), &Throttle::new(f64::INFINITY)).unwrap();
    let map_end = result.map_end;
    assert_eq!(log.commit_clean(result).unwrap(), CommitOutcome::Committed);
    map_end
}

fn stray_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n.contains(".swap"))
        .collect()
}

#[test]
fn a_pass_keeps_each_keys_latest_value_groups_segments_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    write_log(&mut log);
    let before = read_all(&log);
    let (segments_before, bytes_before) = (log.segment_count(), log.size_bytes());
    let producers_before = log.producer_state().clone();
    let plan = log.plan_clean(0, log.log_end_offset()).unwrap().unwrap();
    let result = clean(&plan, &settings(MAX, 1_000), &Throttle::new(f64::INFINITY)).unwrap();
    assert_eq!(result.map_end, log.log_end_offset(), "a map of 1 MiB holds every key: one pass cleans all");
    assert_eq!(result.stats.earliest_delete_horizon, 1_000 + 1_000, "the tombstone's horizon");
    assert_eq!(log.commit_clean(result).unwrap(), CommitOutcome::Committed);
    let after = read_all(&log);
    assert_eq!(latest(&after), latest(&before));
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
    assert!(after.len() <= 12, "ten keys, a tombstone and the producer's last batch: {after:?}");
    assert!(log.size_bytes() * 4 < bytes_before);
    assert_eq!(log.producer_state(), &producers_before, "the producer's last batch stayed");
    assert!(stray_files(dir.path()).is_empty());
    // Reads by timestamp land on what is left; the end offsets did not move.
    let (offset, _) = log.offset_for_timestamp(0).unwrap().unwrap();
    assert_eq!(offset, after[0].0);
    for clean_shutdown in [true, false] {
        let end = log.log_end_offset();
        drop(log);
        log = open(dir.path(), clean_shutdown);
        assert_eq!((read_all(&log), log.log_end_offset()), (after.clone(), end));
        assert_eq!(log.producer_state(), &producers_before);
    }
    // With nothing dirty, a pass past the delete horizon removes the tombstone only.
    let plan = log.plan_clean(log.log_end_offset(), log.log_end_offset()).unwrap().unwrap();
    let result = clean(&plan, &settings(MAX, 1_000 + 1_001), &Throttle::new(f64::INFINITY)).unwrap();
    assert_eq!(result.map_end, log.log_end_offset());
    log.commit_clean(result).unwrap();
    let without_tombstone: Vec<Read> = after.iter().filter(|r| r.2.is_some()).cloned().collect();
    assert_eq!(read_all(&log), without_tombstone);
    // The next pass over new data groups the small cleaned segments into one.
    let cleaned_end = log.log_end_offset();
    write_log(&mut log);
    pass(&mut log, cleaned_end, MAX, 1_000 + 1_001);
    assert!(read_all(&log).iter().all(|(_, k, v)| v.is_some() || k.as_deref() != Some(b"k3")));
    let bases = log.segment_base_offsets();
    assert_eq!(bases.iter().filter(|b| **b < cleaned_end).count(), 1, "{segments_before} segments became one");
}

#[test]
fn a_small_offset_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    write_log(&mut log);
    let before = read_all(&log);
    let mut first_dirty = 0;
    let mut passes = 0;
    while first_dirty < log.log_end_offset() {
        // Six keys: a batch's four always fit, all ten never do.
        first_dirty = pass(&mut log, first_dirty, 6 * offset_map::ENTRY_BYTES, 1_000);
        passes += 1;
        assert!(passes < 100, "every pass makes progress");
    }
    assert!(passes > 1);
    let after = read_all(&log);
    assert_eq!(latest(&after), latest(&before));
}

/// A log written by [`write_log`] and the pass that cleans all of it.
fn planned(dir: &Path) -> (PartitionLog, PassResult) {
    let mut log = open(dir, true);
    write_log(&mut log);
    let plan = log.plan_clean(0, log.log_end_offset()).unwrap().unwrap();
    let result = clean(&plan, &settings(MAX, 1_000), &Throttle::new(f64::INFINITY)).unwrap();
    (log, result)
}

#[test]
fn a_kill_at_any_step_of_the_swap_recovers_the_old_or_the_new_segments() {
    // What the log reads before and after the whole pass, and where each group starts.
    let reference = tempfile::tempdir().unwrap();
    let (mut log, result) = planned(reference.path());
    let old = read_all(&log);
    let group_starts: Vec<i64> = result.groups.iter().map(|g| g.bases[0]).collect();
    assert!(group_starts.len() > 2, "several groups: {group_starts:?}");
    log.commit_clean(result).unwrap();
    let new = read_all(&log);
    // Groups before `swapped` read as cleaned, the others as before.
    let expected = |swapped: usize| -> Vec<Read> {
        let boundary = group_starts.get(swapped).copied().unwrap_or(i64::MAX);
        new.iter().filter(|r| r.0 < boundary).chain(old.iter().filter(|r| r.0 >= boundary)).cloned().collect()
    };
    // A kill while the cleaned files are being written, before any swap.
    let dir = tempfile::tempdir().unwrap();
    let (log, result) = planned(dir.path());
    std::mem::forget(result);
    drop(log);
    let log = open(dir.path(), false);
    assert_eq!(read_all(&log), old);
    assert!(stray_files(dir.path()).is_empty(), "{:?}", stray_files(dir.path()));
    for group in 0..group_starts.len() {
        for steps in 0..=SWAP_STEPS {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, result) = planned(dir.path());
            log.commit_clean_until(result, Some(StopAfter { group, steps })).unwrap();
            drop(log);
            let log = open(dir.path(), false);
            assert!(stray_files(dir.path()).is_empty(), "group {group} step {steps}: {:?}", stray_files(dir.path()));
            // The manifest (step 1) is the commit point.
            let swapped = if steps == 0 { group } else { group + 1 };
            assert_eq!(read_all(&log), expected(swapped), "group {group} step {steps}");
            assert_eq!(latest(&read_all(&log)), latest(&old));
        }
    }
}

#[test]
fn a_pass_over_a_log_truncated_meanwhile_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    write_log(&mut log);
    let plan = log.plan_clean(0, log.log_end_offset()).unwrap().unwrap();
    let result = clean(&plan, &settings(MAX, 1_000), &Throttle::new(f64::INFINITY)).unwrap();
    log.truncate_to(100).unwrap();
    let before = read_all(&log);
    assert_eq!(log.commit_clean(result).unwrap(), CommitOutcome::Stale);
    assert_eq!(read_all(&log), before);
    assert!(stray_files(dir.path()).is_empty(), "a stale pass removes its files");
}

#[test]
fn the_chooser_sees_the_files_dirty_part() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    write_log(&mut log);
    let state = |first_dirty| LogState {
        segments: log.segment_states().unwrap(),
        first_dirty,
        high_watermark: log.log_end_offset(),
        min_cleanable_ratio: 0.5,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        earliest_delete_horizon: -1,
    };
    let d = dirtiness(&state(0), 10_000);
    assert_eq!((d.first_uncleanable, d.clean_bytes, d.cleanable_bytes), (240, 0, log.size_bytes()));
    assert_eq!(choose::choose(&[state(0)], 10_000), Some(0));
    assert_eq!(choose::choose(&[state(240)], 10_000), None);
}

#[test]
fn a_truncation_into_a_cleaned_segments_trailing_gap_ends_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), true);
    write_log(&mut log);
    pass(&mut log, 0, MAX, 1_000);
    let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
    // A segment whose predecessor ends in a gap: the last record below its base is not
    // the offset just before it.
    let base = log
        .segment_base_offsets()
        .into_iter()
        .skip(1)
        .find(|b| offsets.iter().filter(|o| *o < b).max().is_none_or(|last| *last < b - 1))
        .unwrap_or_else(|| {
            panic!("no gap before a segment: bases {:?} offsets {offsets:?}", log.segment_base_offsets())
        });
    log.truncate_to(base - 1).unwrap();
    assert_eq!(log.log_end_offset(), base - 1);
}
