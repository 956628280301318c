//! Swapping cleaned segments in, crash-safe (the equivalent of Kafka's `.cleaned` /
//! `.swap` files). A cleaned group `<base>.{log,index,timeindex,txnindex}.cleaned`
//! (the transaction index only when the group had aborted transactions), fsynced,
//! replaces the segments whose base offsets it lists in these steps:
//! 1. write the manifest `<base>.swap` (the listed base offsets) atomically: the commit
//!    point;
//! 2. remove the files of the listed segments other than `<base>`;
//! 3. rename each `.cleaned` file over its plain name (indexes first, the log last);
//! 4. fsync the directory, remove the manifest, fsync the directory.
//!
//! At open ([`recover`]), a manifest means the swap committed: steps 2 to 4 are redone
//! (each is idempotent). `.cleaned` files without a manifest belong to a pass that did not
//! commit and are removed. A kill at any point therefore leaves the old segments or the
//! new one, never a mix.
//!
//! Invariants: groups of one pass are swapped in offset order, so a later group is never
//! swapped before an earlier one (a tombstone's removal never overtakes the removal of the
//! values it deleted); a pass is committed only if the log was not truncated since it was
//! planned and still holds every segment it cleaned, each closed.

use std::path::Path;

use super::pass::{cleaned_name, PassResult, CLEANED_SUFFIX};
use crate::log::{sync_dir, PartitionLog};
use crate::segment::segment_file_name;
use crate::StorageError;

const MANIFEST_EXTENSION: &str = "swap";
/// A segment's files, indexes (the transaction index among them) before the log.
const EXTENSIONS: [&str; 4] = ["index", "timeindex", crate::txn_index::EXTENSION, "log"];

/// Where a simulated crash stops a commit (tests only): after `steps` steps of the swap of
/// group `group` (the groups before it were swapped whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StopAfter {
    pub group: usize,
    pub steps: usize,
}

/// The number of steps of one group's swap (for tests that crash after each).
pub(crate) const SWAP_STEPS: usize = 6;

/// Why a pass was not committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every group replaced its segments.
    Committed,
    /// The log changed under the pass (truncated, or a cleaned segment was deleted): nothing
    /// was swapped; the next pass starts again.
    Stale,
}

impl PartitionLog {
    /// Swaps a pass's cleaned groups in (step 3 of a pass).
    pub fn commit_clean(&mut self, pass: PassResult) -> Result<CommitOutcome, StorageError> {
        self.commit_clean_until(pass, None)
    }

    pub(crate) fn commit_clean_until(
        &mut self,
        mut pass: PassResult,
        stop: Option<StopAfter>,
    ) -> Result<CommitOutcome, StorageError> {
        if pass.generation != self.generation || !pass.groups.iter().all(|g| self.holds_closed(&g.bases)) {
            return Ok(CommitOutcome::Stale);
        }
        for (i, mut group) in pass.groups.drain(..).enumerate() {
            let at = self.segments.iter().position(|s| s.base_offset == group.bases[0]).expect("checked above");
            let stop_here = stop.filter(|s| s.group == i);
            if let Err(error) = swap_files(group.dir(), &group.bases, stop_here.map(|s| s.steps)) {
                // Past the commit point the cleaned files are the data: leave them for
                // recovery to finish the swap (the caller halts the node).
                if manifest_path(group.dir(), group.bases[0]).exists() {
                    std::mem::forget(group.segment.take());
                }
                return Err(error);
            }
            if stop_here.is_some() {
                // A simulated crash: the process is gone, memory with it.
                std::mem::forget(group.segment.take());
                return Ok(CommitOutcome::Committed);
            }
            let cleaned = group.segment.take().expect("a group holds its segment until committed");
            if let Some(entries) = group.txn_entries.take() {
                self.txn_indexes.replace_group(&group.bases, entries);
            }
            let replaced: Vec<_> = self.segments.splice(at..at + group.bases.len(), [cleaned]).collect();
            // Their files are gone or renamed over; open reads keep the old inodes alive.
            drop(replaced);
        }
        Ok(CommitOutcome::Committed)
    }

    /// Whether `bases` are consecutive closed segments of this log.
    fn holds_closed(&self, bases: &[i64]) -> bool {
        let closed = &self.segments[..self.segments.len() - 1];
        closed.windows(bases.len()).any(|w| w.iter().map(|s| s.base_offset).eq(bases.iter().copied()))
    }
}

fn manifest_path(dir: &Path, base: i64) -> std::path::PathBuf {
    dir.join(segment_file_name(base, MANIFEST_EXTENSION))
}

/// Steps 1 to 4 of the module doc; with `stop`, only the first `stop` of them.
fn swap_files(dir: &Path, bases: &[i64], stop: Option<usize>) -> Result<(), StorageError> {
    let steps = stop.unwrap_or(SWAP_STEPS);
    let base = bases[0];
    let manifest: String = bases.iter().map(|b| format!("{b}\n")).collect();
    let actions: [&dyn Fn() -> Result<(), StorageError>; SWAP_STEPS] = [
        &|| Ok(runnel_fs::write_atomically(&manifest_path(dir, base), manifest.as_bytes())?),
        &|| remove_segments(dir, &bases[1..]),
        &|| rename_cleaned(dir, base, &EXTENSIONS[..3]),
        &|| rename_cleaned(dir, base, &EXTENSIONS[3..]),
        &|| sync_dir(dir),
        &|| {
            std::fs::remove_file(manifest_path(dir, base))?;
            sync_dir(dir)
        },
    ];
    for action in actions.iter().take(steps) {
        action()?;
    }
    Ok(())
}

fn remove_segments(dir: &Path, bases: &[i64]) -> Result<(), StorageError> {
    for &base in bases {
        for extension in EXTENSIONS {
            remove_if_present(&dir.join(segment_file_name(base, extension)))?;
        }
    }
    Ok(())
}

fn rename_cleaned(dir: &Path, base: i64, extensions: &[&str]) -> Result<(), StorageError> {
    for extension in extensions {
        let from = dir.join(cleaned_name(base, extension));
        if from.exists() {
            std::fs::rename(from, dir.join(segment_file_name(base, extension)))?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// Finishes the swaps that committed and removes what uncommitted passes left (see the
/// module doc). Runs before a log's segments are listed.
pub(crate) fn recover(dir: &Path) -> Result<(), StorageError> {
    let mut manifests = Vec::new();
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(&format!(".{MANIFEST_EXTENSION}")).and_then(|s| s.parse::<i64>().ok()) {
            manifests.push(base);
        } else if name.ends_with(CLEANED_SUFFIX) || name.ends_with(&format!(".{MANIFEST_EXTENSION}.tmp")) {
            leftovers.push(name.to_string());
        }
    }
    manifests.sort_unstable();
    for base in manifests {
        let text = std::fs::read_to_string(manifest_path(dir, base))?;
        let bases: Result<Vec<i64>, _> = text.lines().map(str::parse::<i64>).collect();
        match bases {
            Ok(bases) if bases.first() == Some(&base) => {
                tracing::info!(dir = %dir.display(), base, segments = bases.len(), "finishing a cleaned segment swap");
                remove_segments(dir, &bases[1..])?;
                rename_cleaned(dir, base, &EXTENSIONS)?;
                sync_dir(dir)?;
                std::fs::remove_file(manifest_path(dir, base))?;
            }
            // Written atomically, so never torn: one that does not parse was not written by
            // Runnel. The segments are left as they are.
            _ => {
                tracing::warn!(dir = %dir.display(), base, "ignoring a swap manifest that does not parse");
                std::fs::remove_file(manifest_path(dir, base))?;
            }
        }
    }
    for name in &leftovers {
        if dir.join(name).exists() {
            tracing::info!(dir = %dir.display(), file = %name, "removing what an uncommitted cleaning left");
            remove_if_present(&dir.join(name))?;
        }
    }
    if !leftovers.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}
