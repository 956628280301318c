//! Producer-state snapshot files beside the segments: `<offset>.snapshot` holds the state as
//! of log offset `offset` (format in [`crate::producer_state`]). Written at every roll and at
//! close; at open the newest one at or below the log end is loaded and the batches after it
//! replayed, so a clean restart reads one small file and a crash replays only the tail.

use std::path::{Path, PathBuf};

use crate::log::sync_dir;
use crate::producer_state::ProducerStateManager;
use crate::StorageError;

const EXTENSION: &str = "snapshot";
/// Snapshots kept below the newest: older ones only cost disk.
const SNAPSHOTS_KEPT: usize = 2;

pub(crate) fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{EXTENSION}"))
}

/// Offsets of the snapshot files in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".snapshot") {
            if stem.len() == 20 {
                if let Ok(offset) = stem.parse::<i64>() {
                    offsets.push(offset);
                }
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the snapshot for `offset` atomically, then prunes old ones (never those above
/// `keep_above`: tiered storage has yet to upload them).
pub(crate) fn write(
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
    keep_above: i64,
) -> Result<(), StorageError> {
    let target = path(dir, offset);
    runnel_fs::write_atomically(&target, &state.encode())?;
    prune(dir, keep_above)?;
    sync_dir(dir)
}

fn prune(dir: &Path, keep_above: i64) -> Result<(), StorageError> {
    let offsets = list(dir)?;
    for old in offsets.iter().rev().skip(SNAPSHOTS_KEPT + 1).filter(|o| **o <= keep_above) {
        std::fs::remove_file(path(dir, *old))?;
    }
    Ok(())
}

/// Writes `bytes` (an encoded state, checked) as the snapshot for `offset`.
pub(crate) fn install(dir: &Path, offset: i64, bytes: &[u8]) -> Result<(), StorageError> {
    ProducerStateManager::decode(bytes).map_err(|_| StorageError::UnreadableSnapshot)?;
    runnel_fs::write_atomically(&path(dir, offset), bytes)?;
    sync_dir(dir)
}

/// Writes the snapshot for `offset` without an fsync (at a roll, off the append path's
/// fsyncs): a crash before the caller syncs the returned file can leave it torn, and
/// [`load_latest`] discards unreadable snapshots. Prunes old ones.
pub(crate) fn write_unsynced(
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
    keep_above: i64,
) -> Result<std::fs::File, StorageError> {
    let file = runnel_fs::replace_unsynced(&path(dir, offset), &state.encode())?;
    prune(dir, keep_above)?;
    Ok(file)
}

/// Removes snapshots above `offset` (after truncation, they describe batches that are gone).
pub(crate) fn delete_above(dir: &Path, offset: i64) -> Result<(), StorageError> {
    for old in list(dir)?.into_iter().filter(|o| *o > offset) {
        std::fs::remove_file(path(dir, old))?;
    }
    Ok(())
}

/// The newest readable snapshot at or below `at_most`; unreadable ones are removed.
pub(crate) fn load_latest(dir: &Path, at_most: i64) -> Result<Option<(i64, ProducerStateManager)>, StorageError> {
    for offset in list(dir)?.into_iter().rev().filter(|o| *o <= at_most) {
        let file = path(dir, offset);
        match ProducerStateManager::decode(&std::fs::read(&file)?) {
            Ok(state) => return Ok(Some((offset, state))),
            Err(why) => {
                tracing::warn!(file = %file.display(), %why, "discarding unreadable producer snapshot");
                std::fs::remove_file(&file)?;
            }
        }
    }
    Ok(None)
}
