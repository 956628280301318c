//! Offset checkpoint files (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `replication-offset-checkpoint`), Kafka's format.
//!
//! Format (text, '\n' line ends): a line with the version `0`, a line with the entry count,
//! then one line per entry: `<topic> <partition> <offset>`. The count must match the entry
//! lines and nothing may follow them. Written atomically: a `.tmp` sibling is written and
//! fsynced, renamed over the file, and the directory is fsynced.

use std::collections::HashMap;
use std::path::Path;

use crate::{CheckpointFault, StorageError};

const VERSION: &str = "0";

/// Reads and writes offset checkpoint files.
pub struct OffsetCheckpoint;

impl OffsetCheckpoint {
    /// Reads a checkpoint; a missing file is an empty checkpoint.
    pub fn read(path: &Path) -> Result<HashMap<(String, i32), i64>, StorageError> {
        let Some(text) = runnel_fs::read_optional_string(path)? else { return Ok(HashMap::new()) };
        parse(&text).map_err(|fault| StorageError::InvalidCheckpoint { path: path.to_path_buf(), fault })
    }

    /// Replaces the checkpoint at `path` atomically.
    pub fn write(path: &Path, entries: &[((String, i32), i64)]) -> Result<(), StorageError> {
        let mut text = format!("{VERSION}\n{}\n", entries.len());
        for ((topic, partition), offset) in entries {
            assert!(!topic.contains([' ', '\n']), "topic names never hold spaces or newlines");
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }
        runnel_fs::write_atomically(path, text.as_bytes())?;
        Ok(())
    }
}

fn parse(text: &str) -> Result<HashMap<(String, i32), i64>, CheckpointFault> {
    let mut lines = text.lines();
    match lines.next() {
        Some(VERSION) => {}
        other => return Err(CheckpointFault::Version(other.unwrap_or_default().to_string())),
    }
    let count: usize =
        lines.next().ok_or(CheckpointFault::Count)?.trim().parse().map_err(|_| CheckpointFault::Count)?;
    let mut entries = HashMap::with_capacity(count.min(1 << 16));
    for i in 0..count {
        let line = lines.next().ok_or(CheckpointFault::EntryCount { expected: count, found: i })?;
        let malformed = || CheckpointFault::Entry(line.to_string());
        let fields: Vec<&str> = line.split(' ').collect();
        let [topic, partition, offset] = fields[..] else { return Err(malformed()) };
        let partition = partition.parse().map_err(|_| malformed())?;
        let offset = offset.parse().map_err(|_| malformed())?;
        entries.insert((topic.to_string(), partition), offset);
    }
    if lines.any(|line| !line.trim().is_empty()) {
        return Err(CheckpointFault::TrailingLines);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(OffsetCheckpoint::read(&path).unwrap().is_empty());
        let entries = vec![(("a-b".to_string(), 0), 10), (("c".to_string(), 3), 0)];
        OffsetCheckpoint::write(&path, &entries).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n2\na-b 0 10\nc 3 0\n");
        let read = OffsetCheckpoint::read(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[&("a-b".to_string(), 0)], 10);
        OffsetCheckpoint::write(&path, &[]).unwrap();
        assert!(OffsetCheckpoint::read(&path).unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_files() {
        for text in ["1\n0\n", "0\n2\na 0 1\n", "0\n1\na 0\n", "0\n1\na x 1\n", "0\n0\nextra 0 1\n", ""] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
