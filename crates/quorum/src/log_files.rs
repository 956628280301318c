//! The Raft log on disk: segment files of checksummed entries, and one small state file.
//!
//! # Layout of the directory
//! - `<first_index, 20 digits>.log`: a segment. A sequence of frames (see [`crate::disk`]:
//!   `u32 length | u32 crc32c | payload`), each payload one JSON-encoded openraft `Entry`.
//!   The entries of a segment have consecutive indexes starting at the index in its name,
//!   and the segments follow each other without gaps. Only the newest segment is written;
//!   it rolls to a new file after `segment_bytes_max`.
//! - `raft-state`: one frame holding `{vote, committed, last_purged}` as JSON, replaced
//!   atomically (write, fsync, rename, fsync directory) whenever one of them changes.
//!
//! # Invariants, and how they are re-checked on open
//! - Present entries are exactly the indexes `last_purged + 1 ..= last`, consecutive.
//!   Entries at or below `last_purged` may still be on disk (a purge deletes whole
//!   segments, after recording `last_purged`); they are skipped on open.
//! - Appends are written and fsynced before the append is acknowledged, so a crash can only
//!   tear the tail of the newest segment. Open reads every frame; an invalid frame (short,
//!   oversized, CRC mismatch, undecodable, out of sequence) in the newest segment is a torn
//!   tail and is cut off; anywhere else it is corruption, and open fails.
//! - Truncation deletes newer segments before shortening the one that holds the cut, so a
//!   crash in between leaves a prefix of the log, never a hole.
//!
//! # Memory
//! Only a position per present entry (log id, segment, offset, length) stays in memory;
//! entries are read back from the page cache. Snapshots bound the number of present entries.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::disk::{self, FrameError};
use crate::types::{Entry, LogId, Vote};

const STATE_FILE: &str = "raft-state";
const SEGMENT_SUFFIX: &str = ".log";
/// No single entry may exceed this: a batch of metadata records far above it is a bug, and a
/// length above it on disk is damage.
pub const ENTRY_BYTES_MAX: u64 = 64 * 1024 * 1024;
pub const SEGMENT_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raft log i/o in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("raft log corrupt in {path} at byte {position}: {why}")]
    Corrupt { path: PathBuf, position: u64, why: String },
    #[error("append of index {got} would leave a hole: the log expects {expected}")]
    Hole { expected: u64, got: u64 },
    #[error("entry {index} is {bytes} bytes, above the limit of {limit}")]
    EntryTooLarge { index: u64, bytes: u64, limit: u64 },
    #[error("entry {index} cannot be encoded: {source}")]
    Encode { index: u64, source: serde_json::Error },
}

/// What must survive a crash besides the entries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HardState {
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
}

struct Segment {
    first_index: u64,
    path: PathBuf,
    file: Arc<File>,
    bytes: u64,
}

#[derive(Clone, Copy)]
struct EntryPosition {
    log_id: LogId,
    /// `first_index` of the segment holding it.
    segment: u64,
    position: u64,
    frame_bytes: u64,
}

/// The open log directory. Not thread-safe by itself; the store wraps it in a mutex.
pub struct LogFiles {
    dir: PathBuf,
    segment_bytes_max: u64,
    segments: VecDeque<Segment>,
    entries: VecDeque<EntryPosition>,
    state: HardState,
}

impl LogFiles {
    /// Opens (creating if needed) the log in `dir`, recovering from a torn tail.
    pub fn open(dir: &Path, segment_bytes_max: u64) -> Result<LogFiles, LogError> {
        assert!(segment_bytes_max > 0, "segments must hold at least one entry");
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let state = read_state(dir)?;
        let mut log = LogFiles {
            dir: dir.to_path_buf(),
            segment_bytes_max,
            segments: VecDeque::new(),
            entries: VecDeque::new(),
            state,
        };
        let names = segment_names(dir)?;
        for (i, (first_index, path)) in names.iter().enumerate() {
            let newest = i + 1 == names.len();
            log.load_segment(*first_index, path, newest)?;
        }
        log.drop_purged_segments()?;
        Ok(log)
    }

    pub fn state(&self) -> &HardState {
        &self.state
    }

    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries.back().map(|e| e.log_id).or(self.state.last_purged)
    }

    /// The index the next append must carry.
    fn next_index(&self) -> u64 {
        match (self.entries.back(), self.state.last_purged) {
            (Some(last), _) => last.log_id.index + 1,
            (None, Some(purged)) => purged.index + 1,
            (None, None) => 0,
        }
    }

    pub fn save_vote(&mut self, vote: Vote) -> Result<(), LogError> {
        let mut next = self.state.clone();
        next.vote = Some(vote);
        self.write_state(next)
    }

    pub fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), LogError> {
        let mut next = self.state.clone();
        next.committed = committed;
        self.write_state(next)
    }

    /// Writes `entries` to the page cache and makes them readable. Returns the files to fsync
    /// before acknowledging (done by the caller outside any lock): more than one if the
    /// append rolled a segment.
    pub fn append(&mut self, entries: Vec<Entry>) -> Result<Vec<Arc<File>>, LogError> {
        let mut written: Vec<(u64, Arc<File>)> = Vec::new();
        for entry in entries {
            let got = entry.log_id.index;
            if self.state.last_purged.is_some_and(|p| got <= p.index) {
                // Already covered by the snapshot the purge followed; keeping it would put an
                // entry below `last_purged`. (openraft's storage suite does this.)
                continue;
            }
            if got != self.next_index() && !(self.entries.is_empty() && self.state.last_purged.is_none()) {
                return Err(LogError::Hole { expected: self.next_index(), got });
            }
            // Entries come from the leader: an unencodable or oversized one is an error, not a panic.
            let payload = serde_json::to_vec(&entry).map_err(|source| LogError::Encode { index: got, source })?;
            if payload.len() as u64 > ENTRY_BYTES_MAX {
                return Err(LogError::EntryTooLarge {
                    index: got,
                    bytes: payload.len() as u64,
                    limit: ENTRY_BYTES_MAX,
                });
            }
            let mut frame = Vec::with_capacity(payload.len() + disk::FRAME_HEADER_BYTES);
            disk::encode_frame(&payload, &mut frame);
            let segment = self.writable_segment(got)?;
            let position = segment.bytes;
            segment.file.write_all_at(&frame, position).map_err(io_at(&segment.path))?;
            segment.bytes += frame.len() as u64;
            let at = EntryPosition {
                log_id: entry.log_id,
                segment: segment.first_index,
                position,
                frame_bytes: frame.len() as u64,
            };
            if written.last().is_none_or(|(first_index, _)| *first_index != segment.first_index) {
                written.push((segment.first_index, segment.file.clone()));
            }
            self.entries.push_back(at);
        }
        Ok(written.into_iter().map(|(_, file)| file).collect())
    }

    /// Removes entries with index `>= index`.
    pub fn truncate(&mut self, index: u64) -> Result<(), LogError> {
        let Some(cut) = self.position_of(index) else { return Ok(()) };
        while self.segments.back().is_some_and(|s| s.first_index > cut.segment) {
            let segment = self.segments.pop_back().expect("checked");
            fs::remove_file(&segment.path).map_err(io_at(&segment.path))?;
        }
        let segment = match self.segments.back_mut() {
            Some(segment) if segment.first_index == cut.segment => segment,
            _ => return Err(self.inconsistent(index)),
        };
        if cut.position == 0 {
            let segment = self.segments.pop_back().expect("checked");
            fs::remove_file(&segment.path).map_err(io_at(&segment.path))?;
        } else {
            segment.file.set_len(cut.position).map_err(io_at(&segment.path))?;
            segment.file.sync_all().map_err(io_at(&segment.path))?;
            segment.bytes = cut.position;
        }
        runnel_fs::sync_dir(&self.dir).map_err(io_at(&self.dir))?;
        while self.entries.back().is_some_and(|e| e.log_id.index >= index) {
            self.entries.pop_back();
        }
        Ok(())
    }

    /// Forgets entries up to and including `log_id`, which may lie beyond the last entry
    /// (after a snapshot was installed).
    pub fn purge(&mut self, log_id: LogId) -> Result<(), LogError> {
        if self.state.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        let mut next = self.state.clone();
        next.last_purged = Some(log_id);
        self.write_state(next)?;
        while self.entries.front().is_some_and(|e| e.log_id.index <= log_id.index) {
            self.entries.pop_front();
        }
        self.drop_purged_segments()
    }

    /// Reads the present entries with indexes in `start..end`, stopping early once
    /// `bytes_max` is reached (but always returning at least one entry if any is present).
    pub fn read(&self, start: u64, end: u64, bytes_max: u64) -> Result<Vec<Entry>, LogError> {
        let Some(first) = self.entries.front() else { return Ok(Vec::new()) };
        let from = start.max(first.log_id.index);
        let mut out = Vec::new();
        let mut bytes = 0;
        for index in from..end {
            let Some(at) = self.position_of(index) else { break };
            if !out.is_empty() && bytes + at.frame_bytes > bytes_max {
                break;
            }
            bytes += at.frame_bytes;
            out.push(self.read_at(&at)?);
        }
        Ok(out)
    }

    fn read_at(&self, at: &EntryPosition) -> Result<Entry, LogError> {
        let segment = self.segment(at.segment).ok_or_else(|| self.inconsistent(at.log_id.index))?;
        let corrupt = |why: String| LogError::Corrupt { path: segment.path.clone(), position: at.position, why };
        let frame_bytes = usize::try_from(at.frame_bytes)
            .map_err(|_| corrupt(format!("frame of {} bytes beyond the address space", at.frame_bytes)))?;
        let mut frame = vec![0u8; frame_bytes];
        segment.file.read_exact_at(&mut frame, at.position).map_err(io_at(&segment.path))?;
        let payload = disk::read_frame(&mut &frame[..], ENTRY_BYTES_MAX)
            .map_err(|e| corrupt(e.to_string()))?
            .ok_or_else(|| corrupt("empty frame".into()))?;
        let entry: Entry = serde_json::from_slice(&payload).map_err(|e| corrupt(e.to_string()))?;
        if entry.log_id != at.log_id {
            return Err(corrupt(format!("holds {} where {} was written", entry.log_id, at.log_id)));
        }
        Ok(entry)
    }

    fn position_of(&self, index: u64) -> Option<EntryPosition> {
        let first = self.entries.front()?.log_id.index;
        let offset = index.checked_sub(first)?;
        self.entries.get(usize::try_from(offset).ok()?).copied()
    }

    /// The segment named `first_index`; every present entry has one.
    fn segment(&self, first_index: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.first_index < first_index);
        self.segments.get(i).filter(|s| s.first_index == first_index)
    }

    /// Entry `index` has no segment: a bug here, reported rather than panicking.
    fn inconsistent(&self, index: u64) -> LogError {
        let why = format!("entry {index} has no segment");
        LogError::Corrupt { path: self.dir.clone(), position: 0, why }
    }

    /// The newest segment if `index` may go there, else a new one starting at `index`.
    fn writable_segment(&mut self, index: u64) -> Result<&mut Segment, LogError> {
        let continues = match self.segments.back() {
            // A fresh roll, or one a crash left empty: usable only if it is named for `index`.
            Some(s) if s.bytes == 0 && s.first_index != index => {
                let segment = self.segments.pop_back().expect("checked");
                fs::remove_file(&segment.path).map_err(io_at(&segment.path))?;
                false
            }
            Some(s) if s.bytes == 0 => true,
            Some(s) => {
                let holds_last = self.entries.back().is_some_and(|last| last.segment == s.first_index);
                holds_last && s.bytes < self.segment_bytes_max
            }
            None => false,
        };
        if !continues {
            let path = self.dir.join(format!("{index:020}{SEGMENT_SUFFIX}"));
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_at(&path))?;
            runnel_fs::sync_dir(&self.dir).map_err(io_at(&self.dir))?;
            self.segments.push_back(Segment { first_index: index, path, file: Arc::new(file), bytes: 0 });
        }
        Ok(self.segments.back_mut().expect("just ensured"))
    }

    /// Deletes segments whose entries are all purged, oldest first.
    fn drop_purged_segments(&mut self) -> Result<(), LogError> {
        let Some(purged) = self.state.last_purged else { return Ok(()) };
        loop {
            let last_index_of_oldest = match (self.segments.front(), self.segments.get(1)) {
                (Some(_), Some(next)) => next.first_index.checked_sub(1),
                (Some(_), None) if self.entries.is_empty() => Some(purged.index),
                _ => None,
            };
            match last_index_of_oldest {
                Some(last) if last <= purged.index => {
                    let segment = self.segments.pop_front().expect("checked");
                    fs::remove_file(&segment.path).map_err(io_at(&segment.path))?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn write_state(&mut self, next: HardState) -> Result<(), LogError> {
        let payload = serde_json::to_vec(&next).expect("state always serializes");
        let mut frame = Vec::new();
        disk::encode_frame(&payload, &mut frame);
        runnel_fs::write_atomically(&self.dir.join(STATE_FILE), &frame).map_err(io_at(&self.dir.join(STATE_FILE)))?;
        self.state = next;
        Ok(())
    }

    /// Reads one segment's frames into `entries`; cuts a torn tail if it is the newest.
    fn load_segment(&mut self, first_index: u64, path: &Path, newest: bool) -> Result<(), LogError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(io_at(path))?;
        let mut reader = BufReader::new(&file);
        let mut position = 0u64;
        let purged = self.state.last_purged.map(|p| p.index);
        let mut expected = first_index;
        let failure = loop {
            let payload = match disk::read_frame(&mut reader, ENTRY_BYTES_MAX) {
                Ok(Some(payload)) => payload,
                Ok(None) => break None,
                Err(FrameError::Io(e)) => return Err(LogError::Io { path: path.to_path_buf(), source: e }),
                Err(e) => break Some(e.to_string()),
            };
            let entry: Entry = match serde_json::from_slice(&payload) {
                Ok(entry) => entry,
                Err(e) => break Some(format!("undecodable entry: {e}")),
            };
            if entry.log_id.index != expected {
                break Some(format!("entry {} where {expected} was expected", entry.log_id.index));
            }
            let frame_bytes = (payload.len() + disk::FRAME_HEADER_BYTES) as u64;
            if purged.is_none_or(|p| entry.log_id.index > p) {
                let next = self.next_index();
                let constrained = !self.entries.is_empty() || purged.is_some();
                if constrained && entry.log_id.index != next {
                    break Some(format!("entry {} where {next} was expected after the purge", entry.log_id.index));
                }
                let at = EntryPosition { log_id: entry.log_id, segment: first_index, position, frame_bytes };
                self.entries.push_back(at);
            }
            position += frame_bytes;
            expected += 1;
        };
        if let Some(why) = failure {
            if !newest {
                return Err(LogError::Corrupt { path: path.to_path_buf(), position, why });
            }
            tracing::warn!(path = %path.display(), position, %why, "cutting the torn tail of the raft log");
            file.set_len(position).map_err(io_at(path))?;
            file.sync_all().map_err(io_at(path))?;
        }
        let segment = Segment { first_index, path: path.to_path_buf(), file: Arc::new(file), bytes: position };
        self.segments.push_back(segment);
        Ok(())
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

fn read_state(dir: &Path) -> Result<HardState, LogError> {
    let path = dir.join(STATE_FILE);
    let Some(bytes) = runnel_fs::read_optional(&path).map_err(io_at(&path))? else { return Ok(HardState::default()) };
    // Replaced atomically, so any damage here is corruption, never a torn write.
    let corrupt = |why: String| LogError::Corrupt { path: path.clone(), position: 0, why };
    let mut input = &bytes[..];
    let payload = disk::read_frame(&mut input, bytes.len() as u64)
        .map_err(|e| corrupt(e.to_string()))?
        .ok_or_else(|| corrupt("empty".into()))?;
    if !input.is_empty() {
        return Err(corrupt("trailing bytes".into()));
    }
    serde_json::from_slice(&payload).map_err(|e| corrupt(e.to_string()))
}

/// Segment files in `dir`, oldest first.
fn segment_names(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(io_at(dir))? {
        let path = item.map_err(io_at(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else { continue };
        if let Ok(first_index) = stem.parse::<u64>() {
            names.push((first_index, path));
        }
    }
    names.sort_by_key(|(first_index, _)| *first_index);
    Ok(names)
}

#[cfg(test)]
#[path = "log_files_tests.rs"]
mod tests;
