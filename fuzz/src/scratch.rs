//! Scratch directories for the targets that go through the file system: on tmpfs
//! (`/dev/shm`) when there is one, so fsyncs cost nothing and the disk is not worn.

use runnel_storage::LogConfig;

pub fn dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("runnel-fuzz-");
        b
    };
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder.tempdir().expect("a scratch directory")
}

/// A fixed clock: runs must be deterministic.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// Small segments and indexes, so a few batches roll segments and fill index entries.
pub fn small_log_config() -> LogConfig {
    LogConfig { segment_bytes: 64 * 1024, segment_index_bytes: 1024, index_interval_bytes: 128, ..LogConfig::default() }
}
