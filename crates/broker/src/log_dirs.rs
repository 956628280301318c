//! The data directory's layout, and the rules that keep a node from destroying what it
//! cannot account for.
//!
//! Invariants:
//! - Start-up never deletes a partition folder. A folder the metadata does not name (a
//!   stray: its topic was deleted while the node was down, or the metadata log is missing,
//!   empty or behind) is renamed to `<folder>.<uuid>-stray` and reported, as Kafka does
//!   with KIP-858's stray logs; the operator removes it. The new name never parses as a
//!   partition folder, so it is never opened or moved again.
//! - A folder left by an older topic of the same name (another topic id in
//!   `partition.metadata`) is moved aside the same way, not deleted.
//! - Every entry Runnel keeps in a data directory is listed in [`DATA_DIR_ENTRIES`]; one of
//!   partition-folder shape names a reserved topic (checked by a test), so no topic's
//!   folder can ever be one of them.
//! - A topic's folder names fit the file system's name limit for every partition it has:
//!   checked before anything is committed ([`check_folder_names`]).

use std::collections::HashMap;
use std::path::Path;

use runnel_storage::{parse_partition_dir, OffsetCheckpoint, StorageError};
use uuid::Uuid;

use crate::broker::{CLEAN_SHUTDOWN_MARKER, META_PROPERTIES};
use crate::metadata_store::METADATA_DIR;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// High watermarks, so a restarted replica does not expose data it never knew committed.
pub const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const PARTITION_METADATA: &str = "partition.metadata";
const STRAY_SUFFIX: &str = "-stray";

/// Every file or folder a node keeps directly in its data directory, besides partition
/// folders (and the temporary files of atomic replacements, `<entry>.tmp`).
pub const DATA_DIR_ENTRIES: &[&str] = &[
    METADATA_DIR,
    META_PROPERTIES,
    CLEAN_SHUTDOWN_MARKER,
    RECOVERY_POINT_CHECKPOINT,
    LOG_START_CHECKPOINT,
    HIGH_WATERMARK_CHECKPOINT,
    crate::tiered_config::LOCAL_DIR,
];

/// The longest file name the file system under `dir` takes (`NAME_MAX`), 255 if unknown.
#[allow(unsafe_code)]
pub fn name_max(dir: &Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return 255 };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a properly sized buffer.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 || stat.f_namemax == 0 {
        return 255;
    }
    usize::try_from(stat.f_namemax).unwrap_or(255)
}

/// Whether every partition folder of a topic with `partitions` partitions fits `name_max`
/// (the longest is that of the last partition); an error message for the client if not.
pub fn check_folder_names(topic: &str, partitions: i32, name_max: usize) -> Result<(), String> {
    let last = partitions.max(1) - 1;
    let longest = topic.len() + 1 + last.to_string().len();
    if longest > name_max {
        return Err(format!(
            "topic '{topic}' with {partitions} partition(s) needs folder names of {longest} bytes; \
             the file system takes at most {name_max}"
        ));
    }
    Ok(())
}

/// Renames a partition folder aside to `<name>.<uuid>-stray` (shortened to fit the name
/// limit) and says so; returns the new path.
pub fn move_aside(dir: &Path, why: &str) -> Result<std::path::PathBuf, StorageError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tail = format!(".{}{STRAY_SUFFIX}", Uuid::new_v4().simple());
    let keep = name_max(parent).saturating_sub(tail.len()).min(name.len());
    let mut cut = keep;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let target = parent.join(format!("{}{tail}", &name[..cut]));
    std::fs::rename(dir, &target)?;
    runnel_storage::sync_dir(parent)?;
    tracing::warn!(dir = %dir.display(), moved_to = %target.display(), why, "moved a partition folder aside (stray); remove it by hand once it is not needed");
    Ok(target)
}

/// Moves aside every partition folder that `keep` does not name; returns how many.
pub fn move_aside_strays(data_dir: &Path, keep: impl Fn(&str, i32) -> bool) -> Result<usize, StorageError> {
    let mut moved = 0;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        if DATA_DIR_ENTRIES.contains(&name.as_str()) {
            continue;
        }
        let Some((topic, index)) = parse_partition_dir(&name) else { continue };
        if !keep(&topic, index) {
            move_aside(&entry.path(), "the metadata names no replica of this partition on this node")?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Creates the partition folder with its `partition.metadata`; a folder left by an older
/// topic of the same name (another topic id) is moved aside first.
pub fn prepare_dir(dir: &Path, topic_id: Uuid) -> Result<(), StorageError> {
    let file = dir.join(PARTITION_METADATA);
    let expected = format!("version: 0\ntopic_id: {topic_id}\n");
    match std::fs::read_to_string(&file) {
        Ok(existing) if existing == expected => return Ok(()),
        Ok(_) => {
            move_aside(dir, "the folder belongs to an older topic of the same name")?;
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(dir)?;
    runnel_storage::write_atomically(&file, expected.as_bytes())?;
    Ok(())
}

pub type Checkpoints = HashMap<(String, i32), i64>;

/// A node-wide checkpoint file; `None` when it is absent or unreadable (a damaged file is
/// reported and treated as absent: the caller then recovers every log in full).
pub fn read_checkpoint(path: &Path) -> Option<Checkpoints> {
    if !path.exists() {
        return None;
    }
    match OffsetCheckpoint::read(path) {
        Ok(map) => Some(map),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "checkpoint file is damaged; ignoring it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_data_dir_entry_can_be_a_topic_folder() {
        for entry in DATA_DIR_ENTRIES {
            if let Some((topic, _)) = parse_partition_dir(entry) {
                assert!(
                    runnel_metadata::controller::validate_topic_name(&topic).is_err(),
                    "{entry} has the shape of a folder of topic '{topic}', which must be reserved"
                );
            }
        }
    }

    #[test]
    fn folder_names_are_checked_for_the_last_partition() {
        assert!(check_folder_names("t", 1, 255).is_ok());
        let name = "x".repeat(249);
        assert!(check_folder_names(&name, 10, 255).is_ok()); // "x..x-9": 251 bytes
        assert!(check_folder_names(&name, 10_000, 255).is_ok()); // "-9999": 254 bytes
        assert!(check_folder_names(&name, 1_000_000, 255).is_err());
        assert!(check_folder_names(&name, 1, 143).is_err()); // eCryptfs-like limits
    }

    #[test]
    fn strays_are_moved_aside_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["keep-0", "gone-0", METADATA_DIR, "not-a-partition"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("data"), name).unwrap();
        }
        let moved = move_aside_strays(dir.path(), |topic, _| topic == "keep").unwrap();
        assert_eq!(moved, 1);
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert!(names.contains(&"keep-0".to_string()) && names.contains(&METADATA_DIR.to_string()));
        let stray = names.iter().find(|n| n.starts_with("gone-0.") && n.ends_with(STRAY_SUFFIX)).expect("moved aside");
        assert_eq!(std::fs::read_to_string(dir.path().join(stray).join("data")).unwrap(), "gone-0");
        assert_eq!(parse_partition_dir(stray), None, "a stray is never taken for a partition again");
        // A second pass leaves the stray alone.
        assert_eq!(move_aside_strays(dir.path(), |topic, _| topic == "keep").unwrap(), 0);
    }

    #[test]
    fn a_folder_of_an_older_topic_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("t-0");
        prepare_dir(&partition, Uuid::from_u128(1)).unwrap();
        std::fs::write(partition.join("00000000000000000000.log"), b"old").unwrap();
        prepare_dir(&partition, Uuid::from_u128(2)).unwrap();
        assert!(!partition.join("00000000000000000000.log").exists());
        let strays = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(STRAY_SUFFIX))
            .count();
        assert_eq!(strays, 1);
    }
}
