//! Corpus replay for the stable test suite: runs every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through a target body, the same function the libFuzzer
//! target calls, and fails naming every input that panicked. Included with `#[path]` by the
//! `fuzz_corpus.rs` test of the crate each target exercises, so CI replays the seeds and
//! every crash ever found without cargo-fuzz or nightly.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The `fuzz/` directory, from the manifest directory of a crate under `crates/`.
pub fn fuzz_dir(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

/// Replays the seeds and regressions of `target`; panics listing the inputs that failed.
/// The seed corpus must exist and be non-empty, so a moved directory cannot pass silently.
pub fn replay(manifest_dir: &str, target: &str, run: fn(&[u8])) {
    let fuzz = fuzz_dir(manifest_dir);
    let seeds = files(&fuzz.join("corpus").join(target));
    assert!(!seeds.is_empty(), "no seed corpus in {}", fuzz.join("corpus").join(target).display());
    let regressions = files(&fuzz.join("regressions").join(target));
    let mut failed = Vec::new();
    for path in seeds.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked:\n{}",
        failed.len(),
        seeds.len() + regressions.len(),
        failed.join("\n")
    );
    eprintln!("{target}: replayed {} seeds and {} regressions", seeds.len(), regressions.len());
}
