//! `storage_files`: one damaged file among those a partition log and the broker read at
//! start-up, then the log opened and used through the public API the broker uses
//! (`crates/broker/src/replica_manager.rs` `open_partition`, `log_dirs::read_checkpoint`).
//!
//! A real log is written once per process (three segments with their offset and time
//! indexes, idempotent-producer batches, three leader epochs, producer-state snapshots, a
//! `leader-epoch-checkpoint`) and copied into a scratch directory for each input, with the
//! node-wide `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint` beside it.
//!
//! Input: `kind: u8 | flags: u8 | contents`. `kind` (mod 10) picks the file `contents`
//! replaces: 0/1 the first segment's `.index`/`.timeindex`, 2/3 the active segment's, 4 the
//! active `.log` (a torn or damaged tail), 5 the first `.log`, 6 the newest producer
//! snapshot, 7 `leader-epoch-checkpoint`, 8 `recovery-point-offset-checkpoint`,
//! 9 `log-start-offset-checkpoint`. Flags: bit 0 the previous shutdown was clean (indexes
//! and snapshots are trusted), bit 1 repair checksums in `contents` (batch CRCs of a
//! `.log`, the CRC of a snapshot) so mutations reach what the checksums guard, bit 2 no
//! recovery-point checkpoint entry (recovery scans every segment).
//!
//! After opening: reads (Fetch, ListOffsets by time, OffsetsForLeaderEpoch), a leader
//! append with a producer id, a follower append, truncation, a roll, retention, then a
//! clean close and two reopens. An `Err` anywhere ends the run; a panic is a finding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use runnel_protocol::batch::{build_batch, BatchMut};
use runnel_storage::leader_epoch::LeaderEpochCache;
use runnel_storage::{OffsetCheckpoint, PartitionLog, ProducerStateManager};

use crate::record_batch::fix_crcs;
use crate::scratch::{self, NOW_MS};

const TOPIC: &str = "t";
const LOG_DIR: &str = "t-0";
const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";

/// The files of the template log: name and contents, and its log end offset.
pub struct Template {
    pub files: Vec<(String, Vec<u8>)>,
    pub log_end: i64,
}

fn producer_batch(timestamp: i64, values: &[&[u8]], producer: Option<(i64, i16, i32)>) -> Vec<u8> {
    let mut batch = build_batch(timestamp, values);
    if let Some((id, epoch, sequence)) = producer {
        BatchMut::new(&mut batch).set_producer(id, epoch, sequence);
    }
    batch
}

fn build_template() -> Template {
    let dir = scratch::dir();
    let mut log = PartitionLog::open(dir.path(), scratch::small_log_config(), 0, 0, false, NOW_MS).expect("open");
    let mut sequences: HashMap<i64, i32> = HashMap::new();
    for i in 0..36i64 {
        if i % 12 == 0 {
            log.assign_leader_epoch((i / 12) as i32).expect("epoch");
        }
        let value = vec![b'v'; 40 + (i as usize % 7) * 9];
        let values: Vec<&[u8]> = vec![&value; 1 + (i as usize % 3)];
        let producer = (i % 2 == 0).then(|| {
            let sequence = sequences.entry(7 + i % 4).or_insert(0);
            let first = *sequence;
            *sequence += values.len() as i32;
            (7 + i % 4, 0, first)
        });
        let batch = producer_batch(NOW_MS - 100_000 + i * 1_000, &values, producer);
        log.append_batch(&batch, (i / 12) as i32, false, NOW_MS).expect("append");
        if i % 12 == 11 && i < 35 {
            log.roll(NOW_MS).expect("roll"); // the third segment stays active
        }
    }
    let log_end = log.log_end_offset();
    log.close().expect("close");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("template dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        files.push((name, std::fs::read(&path).expect("template file")));
    }
    files.sort();
    Template { files, log_end }
}

/// The template log, written on first use.
pub fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

/// The file of the log directory (or the data directory) that `kind` names.
pub fn target_file(kind: u8, template: &Template, data_dir: &Path, log_dir: &Path) -> PathBuf {
    let names = |extension: &str| -> Vec<&String> {
        template.files.iter().map(|(name, _)| name).filter(|name| name.ends_with(extension)).collect()
    };
    let pick = |extension: &str, last: bool| -> PathBuf {
        let names = names(extension);
        let name = if last { names.last() } else { names.first() };
        log_dir.join(name.expect("the template has this kind of file"))
    };
    match kind % 10 {
        0 => pick(".index", false),
        1 => pick(".timeindex", false),
        2 => pick(".index", true),
        3 => pick(".timeindex", true),
        4 => pick(".log", true),
        5 => pick(".log", false),
        6 => pick(".snapshot", true),
        7 => log_dir.join("leader-epoch-checkpoint"),
        8 => data_dir.join(RECOVERY_POINT_CHECKPOINT),
        _ => data_dir.join(LOG_START_CHECKPOINT),
    }
}

/// `log_dirs::read_checkpoint`: a damaged checkpoint is treated as absent.
fn read_checkpoint(path: &Path) -> Option<HashMap<(String, i32), i64>> {
    if !path.exists() {
        return None;
    }
    OffsetCheckpoint::read(path).ok()
}

fn read_back(log: &PartitionLog) {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let mid = start + (end - start) / 2;
    for offset in [start, mid, end.saturating_sub(1).max(start), end] {
        let _ = log.read(offset, 1 << 20, end, true);
        let _ = log.read(offset, 300, end, false);
        let _ = log.read(offset, 1 << 20, mid, true);
    }
    // ListOffsets asks for timestamps >= 0 (negative ones are the special queries).
    for timestamp in [0, NOW_MS - 100_000, NOW_MS - 50_000, NOW_MS, i64::MAX] {
        let _ = log.offset_for_timestamp(timestamp);
    }
    let _ = log.max_timestamp_and_offset();
    for epoch in [-1, 0, 1, 2, 3, i32::MAX] {
        let _ = log.end_offset_for_epoch(epoch);
    }
    let _ = (log.latest_epoch(), log.epoch_for_offset(mid), log.epoch_entries().len(), log.size_bytes());
    let _ = (log.recovery_point(), log.segment_base_offsets(), log.producer_state().len());
}

/// What the broker does with an open log, in the order a partition's life might.
fn use_log(mut log: PartitionLog, log_dir: &Path) -> Option<()> {
    read_back(&log);
    let epoch = log.latest_epoch().unwrap_or(0).max(0);
    // Leader: the next batch of producer 7 (a duplicate, in or out of order, or new).
    let batch = producer_batch(NOW_MS, &[b"next"], Some((7, 0, 6)));
    let _ = log.append_batch(&batch, epoch, false, NOW_MS);
    let batch = producer_batch(NOW_MS, &[b"fresh", b"one"], Some((99, 0, 0)));
    log.append_batch(&batch, epoch, true, NOW_MS).ok()?;
    // Follower: the leader's next batch, offset already stamped there.
    let mut batch = producer_batch(NOW_MS, &[b"replicated"], None);
    {
        let mut stamped = BatchMut::new(&mut batch);
        stamped.set_base_offset(log.log_end_offset());
        stamped.set_partition_leader_epoch(epoch.saturating_add(1));
    }
    log.append_as_follower(&batch, NOW_MS).ok()?;
    read_back(&log);
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    log.truncate_to(start + (end - start) * 2 / 3).ok()?;
    log.roll(NOW_MS).ok()?;
    // The flush task: the fsyncs the roll owes, then the recovery point moves.
    for owed in log.take_rolled_flushes() {
        owed.run().ok()?;
        log.mark_rolled_flushed(&owed);
    }
    log.advance_log_start_offset(start + (end - start) / 4);
    log.apply_retention(NOW_MS + 8 * 24 * 3_600_000).ok()?;
    read_back(&log);
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    log.close().ok()?;
    let log = PartitionLog::open(log_dir, scratch::small_log_config(), end, start, true, NOW_MS).ok()?;
    read_back(&log);
    drop(log);
    let log = PartitionLog::open(log_dir, scratch::small_log_config(), 0, start, false, NOW_MS).ok()?;
    read_back(&log);
    Some(())
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let [kind, flags, contents @ ..] = data else { return };
    let (clean, repair, no_recovery_point) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let template = template();
    let scratch = scratch::dir();
    let data_dir = scratch.path();
    let log_dir = data_dir.join(LOG_DIR);
    std::fs::create_dir(&log_dir).expect("log dir");
    for (name, bytes) in &template.files {
        std::fs::write(log_dir.join(name), bytes).expect("template file");
    }
    let recovery_point = if no_recovery_point { String::new() } else { format!("{TOPIC} 0 {}\n", template.log_end) };
    let count = usize::from(!no_recovery_point);
    std::fs::write(data_dir.join(RECOVERY_POINT_CHECKPOINT), format!("0\n{count}\n{recovery_point}")).expect("write");
    std::fs::write(data_dir.join(LOG_START_CHECKPOINT), format!("0\n1\n{TOPIC} 0 0\n")).expect("write");

    let mut contents = contents.to_vec();
    let target = target_file(*kind, template, data_dir, &log_dir);
    match kind % 10 {
        4 | 5 if repair => fix_crcs(&mut contents),
        6 => {
            if repair && contents.len() >= 10 {
                let crc = crc32c::crc32c(&contents[10..]);
                contents[6..10].copy_from_slice(&crc.to_be_bytes());
            }
            let _ = ProducerStateManager::decode(&contents);
        }
        _ => {}
    }
    std::fs::write(&target, &contents).expect("fuzzed file");
    if kind % 10 == 7 {
        let _ = LeaderEpochCache::load(&log_dir);
    }

    let key = (TOPIC.to_string(), 0);
    let recovery_point =
        read_checkpoint(&data_dir.join(RECOVERY_POINT_CHECKPOINT)).and_then(|c| c.get(&key).copied()).unwrap_or(0);
    let log_start =
        read_checkpoint(&data_dir.join(LOG_START_CHECKPOINT)).and_then(|c| c.get(&key).copied()).unwrap_or(0);
    let config = scratch::small_log_config();
    let Ok(log) = PartitionLog::open(&log_dir, config, recovery_point, log_start, clean, NOW_MS) else { return };
    let _ = use_log(log, &log_dir);
}
