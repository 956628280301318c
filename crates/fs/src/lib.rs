//! Replacing a file atomically: the one way Runnel writes a small file that must be either
//! wholly old or wholly new after a crash (checkpoints, `meta.properties`, producer-state
//! snapshots, `partition.metadata`, the quorum's vote state and snapshots).
//!
//! Steps: write `<name>.tmp` beside the target, fsync it, rename it over the target, fsync
//! the directory (so the rename itself survives a crash). A crash before the rename leaves
//! the old file (and a stale `.tmp` that the next write truncates).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents` atomically and durably.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Replaces `path` with `contents` by the same rename, without any fsync, and returns the
/// new file opened for reading so that the caller can fsync it (and the directory) later,
/// off its latency-sensitive path. Until then a crash may leave the file torn or missing:
/// only for files whose readers discard a damaged copy.
pub fn replace_unsynced(path: &Path, contents: &[u8]) -> std::io::Result<File> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    File::open(path)
}

/// fsyncs a directory so that created, renamed or removed entries survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a whole small file, `None` if it does not exist.
pub fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a whole small text file, `None` if it does not exist (text that is not UTF-8 is an
/// `InvalidData` error).
pub fn read_optional_string(path: &Path) -> std::io::Result<Option<String>> {
    read_optional(path)?
        .map(|bytes| String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
        .transpose()
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("checkpoint")]);
    }
}
