//! Loading a segment at open: trusted (clean shutdown, or below the recovery point) or
//! recovered (scanned batch by batch with CRC checks, torn or corrupt tail truncated).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use runnel_protocol::batch::{BatchView, HEADER_BYTES};

use crate::header::{BatchHeader, HeaderScan};
use crate::offset_index::OffsetIndex;
use crate::segment::{segment_file_name, Segment};
use crate::time_index::TimeIndex;
use crate::{Corruption, LogConfig, StorageError};

/// Recovery reads the log in chunks of this size (a batch larger than it is read whole).
const RECOVERY_CHUNK_BYTES: usize = 1 << 20;

/// How a segment was loaded.
pub(crate) struct Loaded {
    pub segment: Segment,
    /// Bytes read to check or index the log (0 when indexes were trusted).
    pub scanned_bytes: u64,
    /// True when bytes at the end of the `.log` were invalid and removed.
    pub truncated: bool,
}

impl Segment {
    /// Opens the files of an existing segment with fresh, empty indexes and size 0, ready
    /// for `index_batch` to account its batches one by one.
    fn open_for_scan(dir: &Path, base_offset: i64, config: &LogConfig) -> Result<(Segment, u64), StorageError> {
        let name = |ext| dir.join(segment_file_name(base_offset, ext));
        let log = OpenOptions::new().read(true).write(true).open(name("log"))?;
        let file_bytes = log.metadata()?.len();
        let segment = Segment {
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
        };
        Ok((segment, file_bytes))
    }

    /// Why `header` cannot follow the batches accounted so far, if it cannot.
    fn misfit(&self, header: &BatchHeader) -> Option<Corruption> {
        if header.base_offset < self.next_offset {
            return Some(Corruption::OffsetGoesBack { offset: header.base_offset, next_offset: self.next_offset });
        }
        if header.last_offset - self.base_offset > i64::from(u32::MAX) {
            return Some(Corruption::TooFarFromBase { offset: header.last_offset, base_offset: self.base_offset });
        }
        None
    }

    /// Loads a segment whose data is trusted. Indexes are loaded and sanity-checked, and
    /// rebuilt from batch headers if they fail. `next_offset` is the next segment's base for
    /// a closed segment; for the last one (`None`) it comes from a scan after the last
    /// index entry.
    pub fn open_trusted(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        next_offset: Option<i64>,
        now_ms: i64,
    ) -> Result<Loaded, StorageError> {
        match Self::load_indexes(dir, base_offset, config, next_offset)? {
            Ok(mut segment) => {
                segment.first_append_ms = (!segment.is_empty()).then_some(now_ms);
                Ok(Loaded { segment, scanned_bytes: 0, truncated: false })
            }
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), base_offset, %reason, "rebuilding indexes");
                let (mut segment, file_bytes) = Self::open_for_scan(dir, base_offset, config)?;
                for header in HeaderScan::new(&segment.log.clone(), 0, file_bytes) {
                    let header = header?;
                    if let Some(reason) = segment.misfit(&header) {
                        return Err(StorageError::Corrupt(reason));
                    }
                    segment.index_batch(&header);
                }
                segment.first_append_ms = (!segment.is_empty()).then_some(now_ms);
                Ok(Loaded { segment, scanned_bytes: file_bytes, truncated: false })
            }
        }
    }

    /// Loads both indexes; the inner `Err` says why they cannot be trusted.
    fn load_indexes(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        next_offset: Option<i64>,
    ) -> Result<Result<Segment, Corruption>, StorageError> {
        let name = |ext| dir.join(segment_file_name(base_offset, ext));
        let log = OpenOptions::new().read(true).write(true).open(name("log"))?;
        let size_bytes = log.metadata()?.len();
        let index_bytes = config.segment_index_bytes;
        let offset_index = match OffsetIndex::load(&name("index"), base_offset, index_bytes, size_bytes)? {
            Ok(index) => index,
            Err(reason) => return Ok(Err(reason)),
        };
        let time_index = match TimeIndex::load(&name("timeindex"), base_offset, index_bytes)? {
            Ok(index) => index,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut segment = Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log: Arc::new(log),
            size_bytes,
            next_offset: next_offset.unwrap_or(base_offset),
            offset_index,
            time_index,
            index_interval_bytes: u64::from(config.index_interval_bytes),
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_append_ms: None,
        };
        // Damage means rebuild; an I/O error is reported as it is.
        match segment.check_last_index_entry() {
            Err(StorageError::Corrupt(damage)) => return Ok(Err(damage)),
            other => other?,
        }
        match next_offset {
            // A closed segment: the closing time index entry holds its maximum.
            Some(_) => {
                (segment.max_timestamp, segment.offset_of_max_timestamp) =
                    segment.time_index.last().unwrap_or((-1, base_offset));
                let from = segment.offset_index.last().map_or(0, |(_, position)| position);
                segment.bytes_since_index_entry = size_bytes - from;
            }
            None => match segment.recompute_tail_state() {
                Err(StorageError::Corrupt(damage)) => return Ok(Err(damage)),
                other => other?,
            },
        }
        // A time index naming offsets this segment does not hold is not this segment's
        // (the next append would find its offsets going backwards): rebuild it.
        if let Some((_, offset)) = segment.time_index.last().filter(|(_, offset)| *offset >= segment.next_offset) {
            return Ok(Err(Corruption::TimeIndexPastSegment { offset, next_offset: segment.next_offset }));
        }
        Ok(Ok(segment))
    }

    /// Scans every batch (framing, CRC, increasing offsets >= `next_offset_min`), rebuilds
    /// the indexes, and truncates the file at the first invalid batch.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        next_offset_min: i64,
        now_ms: i64,
    ) -> Result<Loaded, StorageError> {
        let (mut segment, file_bytes) = Self::open_for_scan(dir, base_offset, config)?;
        segment.next_offset = segment.next_offset.max(next_offset_min);
        let mut chunk = Chunk { bytes: Vec::new(), start: 0 };
        while segment.size_bytes < file_bytes {
            let position = segment.size_bytes;
            match segment.check_batch_at(&mut chunk, position, file_bytes)? {
                Ok(header) => segment.index_batch(&header),
                Err(reason) => {
                    tracing::warn!(dir = %dir.display(), base_offset, position, %reason, "truncating log");
                    break;
                }
            }
        }
        let truncated = segment.size_bytes < file_bytes;
        if truncated {
            segment.log.set_len(segment.size_bytes)?;
            segment.log.sync_data()?;
        }
        segment.first_append_ms = (!segment.is_empty()).then_some(now_ms);
        Ok(Loaded { segment, scanned_bytes: file_bytes, truncated })
    }

    /// Reads and checks the batch at `position`; the inner `Err` says why it is invalid.
    fn check_batch_at(
        &self,
        chunk: &mut Chunk,
        position: u64,
        file_bytes: u64,
    ) -> Result<Result<BatchHeader, Corruption>, StorageError> {
        if file_bytes - position < HEADER_BYTES as u64 {
            return Ok(Err(Corruption::PartialHeader { position }));
        }
        let header_bytes = chunk.get(&self.log, position, HEADER_BYTES, file_bytes)?;
        let header_bytes: &[u8; HEADER_BYTES] = header_bytes.first_chunk().expect("chunk holds a header");
        let header = match BatchHeader::decode(position, header_bytes) {
            Ok(header) => header,
            Err(reason) => return Ok(Err(reason)),
        };
        if header.end_position() > file_bytes {
            return Ok(Err(Corruption::PastSegmentEnd { position }));
        }
        if let Some(reason) = self.misfit(&header) {
            return Ok(Err(reason));
        }
        let bytes = chunk.get(&self.log, position, header.size_bytes as usize, file_bytes)?;
        if let Err(error) = BatchView::parse(bytes).and_then(|view| view.check_crc()) {
            return Ok(Err(Corruption::Batch { position, error }));
        }
        Ok(Ok(header))
    }
}

/// A window of the file read with one `pread`, refilled when a batch is not inside it.
struct Chunk {
    bytes: Vec<u8>,
    start: u64,
}

impl Chunk {
    fn get(&mut self, file: &std::fs::File, position: u64, len: usize, file_bytes: u64) -> std::io::Result<&[u8]> {
        let inside = position >= self.start && position + len as u64 <= self.start + self.bytes.len() as u64;
        if !inside {
            let want = len.max(RECOVERY_CHUNK_BYTES);
            // The rest of the file, capped at `want`: a rest beyond `usize` is more than `want`.
            let read_len = usize::try_from(file_bytes - position).map_or(want, |left| want.min(left));
            self.bytes.resize(read_len, 0);
            file.read_exact_at(&mut self.bytes, position)?;
            self.start = position;
        }
        let from = usize::try_from(position - self.start).expect("position lies inside the chunk, a Vec");
        Ok(&self.bytes[from..from + len])
    }
}
