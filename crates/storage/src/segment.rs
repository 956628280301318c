//! One segment: a `.log` file of record batches plus its offset and time indexes.
//!
//! Format: `<base>.log` holds v2 record batches exactly as on the wire, concatenated, with
//! strictly increasing offsets, the first one >= the base offset named in the file name
//! (20 digits, zero-padded). Only the last segment of a log (the active one) is appended
//! to; a segment is never rewritten in place except by truncation of its tail.
//!
//! The segment keeps in memory what appends and reads need without touching the file:
//! its size, its next offset, its largest timestamp (and the offset that carries it), and
//! the index entries. Reads locate a batch through the sparse index and then read batch
//! headers only (`pread` of 61 bytes), never record data.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_protocol::batch::{BatchView, HEADER_BYTES};

use crate::header::{read_header, BatchHeader, HeaderScan};
use crate::offset_index::OffsetIndex;
use crate::time_index::TimeIndex;
use crate::{Corruption, FileSlice, LogConfig, StorageError};

/// The file name stem of a segment: its base offset, 20 digits, zero-padded.
pub(crate) fn segment_file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// What one segment answers to a read.
pub(crate) enum SegmentRead {
    /// The segment holds no batch with last offset >= the requested offset.
    NotHere,
    /// The first batch at or after the offset starts here; `slice` is `None` when the
    /// high watermark or `max_bytes` allowed nothing.
    Found { slice: Option<FileSlice>, first_offset: i64 },
}

pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) dir: PathBuf,
    pub(crate) log: Arc<File>,
    pub(crate) size_bytes: u64,
    /// One past the last offset in this segment (the base offset when empty).
    pub(crate) next_offset: i64,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    pub(crate) index_interval_bytes: u64,
    pub(crate) bytes_since_index_entry: u64,
    /// Largest batch max timestamp, -1 when none, and the last offset of the first batch
    /// that carries it.
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
    /// When the first batch was appended (or the segment was loaded non-empty): segment_ms.
    pub(crate) first_append_ms: Option<i64>,
}

impl Segment {
    pub fn path(&self, extension: &str) -> PathBuf {
        self.dir.join(segment_file_name(self.base_offset, extension))
    }

    /// Creates an empty segment, replacing any files of the same name.
    pub fn create(dir: &Path, base_offset: i64, config: &LogConfig) -> Result<Self, StorageError> {
        Self::create_named(dir, base_offset, config, "")
    }

    /// Creates an empty segment whose files carry `suffix` after their extension (the
    /// cleaner's `.cleaned` files, renamed to the plain names when swapped in).
    pub fn create_named(dir: &Path, base_offset: i64, config: &LogConfig, suffix: &str) -> Result<Self, StorageError> {
        let name = |ext: &str| dir.join(segment_file_name(base_offset, &format!("{ext}{suffix}")));
        let log = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(name("log"))?;
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log: Arc::new(log),
            size_bytes: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::create(&name("index"), base_offset, config.segment_index_bytes)?,
            time_index: TimeIndex::create(&name("timeindex"), base_offset, config.segment_index_bytes)?,
            index_interval_bytes: u64::from(config.index_interval_bytes),
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_append_ms: None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// Whether an append of `records_bytes` ending at `last_offset` must go to a new segment.
    pub fn should_roll(&self, records_bytes: u64, last_offset: i64, now_ms: i64, config: &LogConfig) -> bool {
        if self.is_empty() {
            return false;
        }
        let too_big = self.size_bytes + records_bytes > config.segment_bytes;
        let roll_after = config.segment_ms.saturating_sub(self.roll_jitter_ms(config));
        let too_old = self.first_append_ms.is_some_and(|first| now_ms.saturating_sub(first) >= roll_after);
        let index_full = self.offset_index.is_full() || self.time_index.is_full();
        let offset_overflow = last_offset - self.base_offset > i64::from(u32::MAX);
        too_big || too_old || index_full || offset_overflow
    }

    /// How much earlier than `segment_ms` this segment rolls (Kafka's `randomSegmentJitter`):
    /// below `min(segment.jitter.ms, segment_ms)`, fixed per partition folder and base
    /// offset, so it is stable across restarts and differs between partitions.
    pub fn roll_jitter_ms(&self, config: &LogConfig) -> i64 {
        use std::hash::{Hash, Hasher};
        let bound = config.segment_jitter_ms.min(config.segment_ms);
        if bound <= 0 {
            return 0;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.dir, self.base_offset).hash(&mut hasher);
        i64::try_from(hasher.finish() % bound.unsigned_abs()).unwrap_or(0)
    }

    /// Writes already-stamped batches at the end of the file with one write, then indexes them.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<(), StorageError> {
        let position = self.size_bytes;
        self.log.write_all_at(records, position)?;
        if self.first_append_ms.is_none() {
            self.first_append_ms = Some(now_ms);
        }
        let mut at = 0usize;
        while at < records.len() {
            let bytes: &[u8; runnel_protocol::batch::HEADER_BYTES] =
                records[at..].first_chunk().expect("append: records were framed by the caller");
            let header = BatchHeader::decode(position + at as u64, bytes)?;
            self.index_batch(&header);
            at += header.size_bytes as usize;
        }
        assert_eq!(at, records.len(), "append: batches must tile the record set");
        Ok(())
    }

    /// Appends one batch given as its (stamped) header and the rest of its bytes, with one
    /// `pwritev`: the record bytes go from the caller's buffer to the file with no copy.
    pub fn append_parts(&mut self, header: &[u8; HEADER_BYTES], rest: &[u8], now_ms: i64) -> Result<(), StorageError> {
        let position = self.size_bytes;
        write_all_vectored_at(&self.log, &[header, rest], position)?;
        if self.first_append_ms.is_none() {
            self.first_append_ms = Some(now_ms);
        }
        let decoded = BatchHeader::decode(position, header)?;
        assert_eq!(decoded.size_bytes as usize, HEADER_BYTES + rest.len(), "append_parts: one whole batch");
        self.index_batch(&decoded);
        Ok(())
    }

    /// Accounts one batch that now lies at `header.position`: size, offsets, max timestamp,
    /// and an index entry when an index interval has passed. Shared by append and rebuilds.
    pub fn index_batch(&mut self, header: &BatchHeader) {
        assert_eq!(header.position, self.size_bytes, "batches are indexed in file order");
        assert!(header.base_offset >= self.next_offset, "offsets must increase");
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset;
        }
        let room = !self.offset_index.is_full() && !self.time_index.is_full();
        if self.bytes_since_index_entry > 0 && self.bytes_since_index_entry >= self.index_interval_bytes && room {
            self.offset_index.append(header.last_offset, header.position);
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += u64::from(header.size_bytes);
        self.size_bytes = header.end_position();
        self.next_offset = header.next_offset();
    }

    /// The first batch whose last offset is >= `offset`: an index lookup, then a header
    /// scan of about one index interval.
    pub fn find_batch(&self, offset: i64) -> Result<Option<BatchHeader>, StorageError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let start = self.offset_index.lookup(offset).map_or(0, |(_, position)| position);
        for header in HeaderScan::new(&self.log, start, self.size_bytes) {
            let header = header?;
            if header.last_offset >= offset {
                return Ok(Some(header));
            }
        }
        Ok(None)
    }

    /// Whole batches from the one holding `offset`, at most `max_bytes` (but one whole batch
    /// if `min_one_batch`), none with last offset >= `max_offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<SegmentRead, StorageError> {
        let Some(first) = self.find_batch(offset)? else {
            return Ok(SegmentRead::NotHere);
        };
        let first_offset = first.base_offset;
        if first.last_offset >= max_offset {
            return Ok(SegmentRead::Found { slice: None, first_offset });
        }
        let watermark_end = match self.find_batch(max_offset)? {
            Some(header) => header.position,
            None => self.size_bytes,
        };
        let limit = first.position.saturating_add(max_bytes as u64);
        let mut end =
            if limit >= watermark_end { watermark_end } else { self.boundary_at_or_below(first.position, limit)? };
        if end == first.position {
            if !min_one_batch {
                return Ok(SegmentRead::Found { slice: None, first_offset });
            }
            end = first.end_position();
        }
        let len = u32::try_from(end - first.position).expect("segment_bytes <= i32::MAX");
        let slice = FileSlice { file: Arc::clone(&self.log), position: first.position, len };
        Ok(SegmentRead::Found { slice: Some(slice), first_offset })
    }

    /// The largest batch boundary in `[start, limit]`, found from the index entry at or
    /// below `limit` and a scan of about one interval.
    fn boundary_at_or_below(&self, start: u64, limit: u64) -> Result<u64, StorageError> {
        let from = self.offset_index.lookup_position(limit).map_or(start, |(_, position)| position.max(start));
        let mut end = from;
        for header in HeaderScan::new(&self.log, from, self.size_bytes) {
            let header = header?;
            if header.end_position() > limit {
                break;
            }
            end = header.end_position();
        }
        Ok(end)
    }

    /// The first batch whose max timestamp is >= `timestamp`: (base offset, max timestamp).
    pub fn find_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start = match self.time_index.lookup(timestamp) {
            Some((_, offset)) => self.offset_index.lookup(offset).map_or(0, |(_, position)| position),
            None => 0,
        };
        for header in HeaderScan::new(&self.log, start, self.size_bytes) {
            let header = header?;
            if header.max_timestamp >= timestamp {
                // The batch reaches the timestamp; find the exact record inside it.
                let mut bytes = vec![0u8; header.size_bytes as usize];
                self.log.read_exact_at(&mut bytes, header.position)?;
                let batch =
                    BatchView::parse(&bytes).map_err(|error| Corruption::Batch { position: header.position, error })?;
                return Ok(batch.first_at_or_after(timestamp));
            }
        }
        Ok(None)
    }

    /// Removes every batch from the one holding `offset` on; returns the new next offset.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, StorageError> {
        let Some(first_removed) = self.find_batch(offset)? else {
            // No batch at or after `offset`, but the segment may end in a gap the cleaner
            // left (its end is the next segment's base): the end comes down to `offset`.
            if offset < self.next_offset {
                self.next_offset = offset.max(self.base_offset);
            }
            return Ok(self.next_offset);
        };
        self.log.set_len(first_removed.position)?;
        self.size_bytes = first_removed.position;
        self.next_offset = offset.min(first_removed.base_offset).max(self.base_offset);
        self.offset_index.truncate_to(self.next_offset)?;
        self.time_index.truncate_to(self.next_offset)?;
        self.recompute_tail_state()?;
        if self.is_empty() {
            self.first_append_ms = None;
        }
        Ok(self.next_offset)
    }

    /// Recomputes the max timestamp and bytes since the last index entry from the indexes
    /// and a scan of the batches after the last offset index entry.
    pub fn recompute_tail_state(&mut self) -> Result<(), StorageError> {
        (self.max_timestamp, self.offset_of_max_timestamp) = self.time_index.last().unwrap_or((-1, self.base_offset));
        let from = self.offset_index.last().map_or(0, |(_, position)| position);
        self.bytes_since_index_entry = self.size_bytes - from;
        for header in HeaderScan::new(&self.log, from, self.size_bytes) {
            let header = header?;
            if header.max_timestamp > self.max_timestamp {
                (self.max_timestamp, self.offset_of_max_timestamp) = (header.max_timestamp, header.last_offset);
            }
            self.next_offset = self.next_offset.max(header.next_offset());
        }
        Ok(())
    }

    /// Re-reads the header at the last offset index entry: it must be the batch the entry
    /// names. A cheap check that the index belongs to this log.
    pub fn check_last_index_entry(&self) -> Result<(), StorageError> {
        if let Some((offset, position)) = self.offset_index.last() {
            let header = read_header(&self.log, position, self.size_bytes)?;
            if header.last_offset != offset {
                return Err(Corruption::IndexEntryMismatch { offset, position, last_offset: header.last_offset }.into());
            }
        }
        Ok(())
    }

    /// Seals a segment that stops being active: adds the closing time index entry and
    /// writes both indexes, without an fsync. Returns the files to fsync before the
    /// segment counts as durable (the caller does it off the append path).
    pub fn seal(&mut self) -> Result<Vec<Arc<File>>, StorageError> {
        if !self.is_empty() {
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        }
        let mut files = vec![Arc::clone(&self.log)];
        files.extend(self.offset_index.write_unsynced()?.map(Arc::new));
        files.extend(self.time_index.write_unsynced()?.map(Arc::new));
        Ok(files)
    }

    /// Adds the closing time index entry, persists both indexes and fsyncs the log.
    pub fn flush(&mut self, closing: bool) -> Result<(), StorageError> {
        if closing && !self.is_empty() {
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        }
        self.log.sync_data()?;
        self.offset_index.persist()?;
        self.time_index.persist()?;
        Ok(())
    }

    /// The largest timestamp for retention: the max batch timestamp, or the file's
    /// modification time when no batch carries a timestamp (as Kafka does).
    pub fn largest_timestamp_ms(&self) -> Result<i64, StorageError> {
        if self.max_timestamp >= 0 {
            return Ok(self.max_timestamp);
        }
        self.last_modified_ms()
    }

    /// The `.log` file's modification time, in ms since the epoch.
    pub fn last_modified_ms(&self) -> Result<i64, StorageError> {
        let modified = self.log.metadata()?.modified()?;
        let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// Removes the segment's files. Open `FileSlice`s keep the log readable.
    pub fn delete_files(&self) -> Result<(), StorageError> {
        for extension in ["log", "index", "timeindex", crate::txn_index::EXTENSION] {
            match std::fs::remove_file(self.path(extension)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// `pwritev` until every byte of `parts` is written at `position`.
#[allow(unsafe_code)]
fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut position: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    while !parts.is_empty() {
        let iov: Vec<libc::iovec> =
            parts.iter().map(|p| libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() }).collect();
        let count = libc::c_int::try_from(iov.len())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many buffers for pwritev"))?;
        // SAFETY: every iovec points into a live borrowed slice of the stated length, and the
        // file descriptor is open for the duration of the call.
        let written = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), count, position as libc::off_t) };
        if written < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "pwritev wrote nothing"));
        }
        position += written as u64;
        let mut skip = written as usize;
        while skip > 0 {
            if skip >= parts[0].len() {
                skip -= parts[0].len();
                parts.remove(0);
            } else {
                parts[0] = &parts[0][skip..];
                skip = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn jitter_rolls_a_segment_early_by_a_stable_amount_below_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_ms: 1_000, segment_jitter_ms: 400, ..LogConfig::default() };
        let mut a = Segment::create(dir.path(), 0, &config).unwrap();
        let jitters: Vec<i64> = (0..50)
            .map(|base| Segment::create(dir.path(), base * 7, &config).unwrap().roll_jitter_ms(&config))
            .collect();
        assert!(jitters.iter().all(|j| (0..400).contains(j)), "{jitters:?}");
        assert!(jitters.iter().any(|j| *j != jitters[0]), "segments differ");
        assert_eq!(a.roll_jitter_ms(&config), a.roll_jitter_ms(&config), "stable");
        a.append(&runnel_protocol::batch::build_batch(0, &[b"x".as_slice()]), 10_000).unwrap();
        let jitter = a.roll_jitter_ms(&config);
        assert!(!a.should_roll(1, 1, 10_000 + 999 - jitter, &config));
        assert!(a.should_roll(1, 1, 10_000 + 1_000 - jitter, &config), "rolls {jitter} ms early");
        let none = LogConfig { segment_jitter_ms: 0, ..config };
        assert_eq!(a.roll_jitter_ms(&none), 0);
    }

    use super::*;
    use runnel_protocol::batch::build_batch;

    fn segment_with_batches(dir: &Path, count: i64) -> (Segment, usize) {
        let config = LogConfig { index_interval_bytes: 100, ..LogConfig::default() };
        let mut segment = Segment::create(dir, 50, &config).unwrap();
        let mut size = 0;
        for i in 0..count {
            let mut records = build_batch(i * 10, &[b"xx", b"yy"]);
            size = records.len();
            runnel_protocol::batch::BatchMut::new(&mut records).set_base_offset(50 + 2 * i);
            segment.append(&records, 0).unwrap();
        }
        (segment, size)
    }

    #[test]
    fn index_gets_an_entry_per_interval_and_reads_land_on_batch_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, batch_bytes) = segment_with_batches(dir.path(), 30);
        assert_eq!(segment.next_offset, 110);
        assert!(segment.offset_index.last().is_some());
        let header = segment.find_batch(77).unwrap().unwrap();
        assert_eq!((header.base_offset, header.position), (76, 13 * batch_bytes as u64));
        let SegmentRead::Found { slice: Some(slice), first_offset } =
            segment.read(77, batch_bytes * 4 + 1, 90, false).unwrap()
        else {
            panic!("data expected");
        };
        assert_eq!((first_offset, slice.len as usize), (76, batch_bytes * 4));
        assert!(matches!(segment.read(110, 1000, i64::MAX, true).unwrap(), SegmentRead::NotHere));
    }

    #[test]
    fn truncate_recomputes_the_max_timestamp_from_what_remains() {
        let dir = tempfile::tempdir().unwrap();
        let (mut segment, batch_bytes) = segment_with_batches(dir.path(), 30);
        assert_eq!(segment.truncate_to(71).unwrap(), 70);
        assert_eq!(segment.size_bytes, 10 * batch_bytes as u64);
        assert_eq!((segment.max_timestamp, segment.offset_of_max_timestamp), (91, 69));
        // The batch at 62 holds timestamps 60 and 61: the lookup lands on the exact record.
        assert_eq!(segment.find_timestamp(55).unwrap(), Some((62, 60)));
        assert_eq!(segment.find_timestamp(92).unwrap(), None);
    }
}
