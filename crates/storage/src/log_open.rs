//! Opening a partition log: listing its segment files, then trusting or recovering each.
//!
//! After a clean shutdown nothing is scanned: indexes are loaded and sanity-checked, and
//! only the active segment's batches after its last index entry are read (headers only) to
//! find the log end. After an unclean shutdown, every segment from the one holding the
//! recovery point on is scanned with CRC checks; the first invalid batch and everything
//! after it (including later segments) is removed.

use std::path::Path;

use crate::leader_epoch::LeaderEpochCache;
use crate::log::{sync_dir, PartitionLog};
use crate::segment::{segment_file_name, Segment};
use crate::segment_load::Loaded;
use crate::{LogConfig, StorageError};

impl PartitionLog {
    /// Opens or creates the log in `dir`; see the module doc for what is scanned.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset: i64,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<PartitionLog, StorageError> {
        config.validate()?;
        std::fs::create_dir_all(dir)?;
        crate::cleaner::swap::recover(dir)?;
        let bases = list_segments(dir)?;
        let mut clean_shutdown = clean_shutdown;
        let (mut segments, scanned_bytes) = if clean_shutdown {
            match load_trusted(dir, &bases, &config, now_ms) {
                // The files changed after the clean shutdown (a torn or appended tail):
                // recover rather than refuse to start.
                Err(StorageError::Corrupt(reason)) => {
                    tracing::warn!(dir = %dir.display(), %reason, "log inconsistent after a clean shutdown; recovering");
                    clean_shutdown = false;
                    load_recovering(dir, &bases, &config, recovery_point, now_ms)?
                }
                loaded => loaded?,
            }
        } else {
            load_recovering(dir, &bases, &config, recovery_point, now_ms)?
        };
        if segments.is_empty() {
            segments.push(Segment::create(dir, log_start_offset.max(0), &config)?);
            sync_dir(dir)?;
        }
        let config_tiered = config.tiered;
        let segment_bases: Vec<i64> = segments.iter().map(|s| s.base_offset).collect();
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: 0,
            recovery_point: 0,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            last_open_scanned_bytes: scanned_bytes,
            producers: Default::default(),
            txn_indexes: crate::txn_index::TxnIndexes::load(dir, &segment_bases)?,
            epochs: LeaderEpochCache::empty(dir),
            rolled_flushes: Vec::new(),
            generation: 0,
            truncated_to: None,
            snapshots_kept_above: if config_tiered { -1 } else { i64::MAX },
        };
        let log_end = log.log_end_offset();
        log.log_start_offset = log_start_offset.max(log.segments[0].base_offset).min(log_end);
        log.recovery_point = if clean_shutdown { log_end } else { recovery_point.clamp(0, log_end) };
        log.rebuild_producer_state()?;
        match LeaderEpochCache::load(dir)? {
            Some(mut epochs) => {
                // Entries past a torn tail that recovery removed.
                epochs.truncate_from_end(log_end)?;
                log.epochs = epochs;
            }
            None => log.rebuild_epoch_cache()?,
        }
        tracing::debug!(
            dir = %dir.display(), segments = log.segments.len(), log_start = log.log_start_offset,
            log_end, scanned_bytes, "opened log"
        );
        Ok(log)
    }
}

/// Base offsets of the `.log` files in `dir`, sorted. Index files without a log are removed.
fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, extension)) = name.split_once('.') else {
            continue;
        };
        let Some(base) = parse_base_offset(stem) else {
            continue;
        };
        match extension {
            "log" => bases.push(base),
            "index" | "timeindex" => orphans.push((base, name.to_string())),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, name) in orphans {
        if bases.binary_search(&base).is_err() {
            tracing::warn!(dir = %dir.display(), file = %name, "removing index without a log");
            std::fs::remove_file(dir.join(name))?;
        }
    }
    Ok(bases)
}

fn parse_base_offset(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = stem.parse::<i64>().ok()?;
    debug_assert_eq!(segment_file_name(base, "log"), format!("{stem}.log"));
    Some(base)
}

fn load_trusted(
    dir: &Path,
    bases: &[i64],
    config: &LogConfig,
    now_ms: i64,
) -> Result<(Vec<Segment>, u64), StorageError> {
    let mut segments = Vec::with_capacity(bases.len());
    let mut scanned_bytes = 0;
    for (i, &base) in bases.iter().enumerate() {
        let Loaded { segment, scanned_bytes: scanned, .. } =
            Segment::open_trusted(dir, base, config, bases.get(i + 1).copied(), now_ms)?;
        scanned_bytes += scanned;
        segments.push(segment);
    }
    Ok((segments, scanned_bytes))
}

fn load_recovering(
    dir: &Path,
    bases: &[i64],
    config: &LogConfig,
    recovery_point: i64,
    now_ms: i64,
) -> Result<(Vec<Segment>, u64), StorageError> {
    // Segments wholly below the recovery point are trusted; the rest are scanned.
    let first_scanned = bases.partition_point(|&base| base <= recovery_point).saturating_sub(1);
    let (mut segments, mut scanned_bytes) = load_trusted_prefix(dir, bases, first_scanned, config, now_ms)?;
    for (i, &base) in bases.iter().enumerate().skip(first_scanned) {
        let next_offset_min = segments.last().map_or(base, |s: &Segment| s.next_offset);
        let loaded = Segment::recover(dir, base, config, next_offset_min, now_ms)?;
        scanned_bytes += loaded.scanned_bytes;
        segments.push(loaded.segment);
        if loaded.truncated {
            delete_segments_from(dir, &bases[i + 1..])?;
            break;
        }
    }
    // A segment emptied by recovery whose name overlaps the previous segment's offsets
    // would move the log end backwards: drop it, the previous segment becomes active.
    if let [.., previous, last] = &segments[..] {
        if last.is_empty() && last.base_offset < previous.next_offset {
            let last = segments.pop().expect("two segments");
            last.delete_files()?;
        }
    }
    Ok((segments, scanned_bytes))
}

fn load_trusted_prefix(
    dir: &Path,
    bases: &[i64],
    count: usize,
    config: &LogConfig,
    now_ms: i64,
) -> Result<(Vec<Segment>, u64), StorageError> {
    let mut segments = Vec::with_capacity(bases.len());
    let mut scanned_bytes = 0;
    for i in 0..count {
        let loaded = Segment::open_trusted(dir, bases[i], config, Some(bases[i + 1]), now_ms)?;
        scanned_bytes += loaded.scanned_bytes;
        segments.push(loaded.segment);
    }
    Ok((segments, scanned_bytes))
}

fn delete_segments_from(dir: &Path, bases: &[i64]) -> Result<(), StorageError> {
    for &base in bases {
        tracing::warn!(dir = %dir.display(), base, "deleting segment after a truncated one");
        for extension in ["log", "index", "timeindex"] {
            match std::fs::remove_file(dir.join(segment_file_name(base, extension))) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
                _ => {}
            }
        }
    }
    if !bases.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}
