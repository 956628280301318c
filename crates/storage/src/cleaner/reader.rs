//! Reading whole batches of a closed segment for the cleaner, outside the log's lock: the
//! file is read in chunks of [`CHUNK_BYTES`] with `pread` (a larger batch is read whole),
//! and each batch is handed out as a slice of the chunk.
//!
//! Invariants: memory is bounded by one chunk or one batch (a batch is at most a segment);
//! every batch handed out lies wholly inside `[start, end)` and passed its CRC check, so a
//! torn or corrupt file (truncated under the cleaner) is an error, never a wrong record.

use std::fs::File;
use std::os::unix::fs::FileExt;

use runnel_protocol::batch::{BatchView, HEADER_BYTES};

use crate::header::BatchHeader;
use crate::{Corruption, StorageError};

const CHUNK_BYTES: usize = 1 << 20;

pub(crate) struct BatchReader<'a> {
    file: &'a File,
    position: u64,
    end: u64,
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl<'a> BatchReader<'a> {
    pub fn new(file: &'a File, start: u64, end: u64) -> Self {
        BatchReader { file, position: start, end, chunk: Vec::new(), chunk_start: start }
    }

    /// The next batch, `None` at the end of the range.
    pub fn next_batch(&mut self) -> Result<Option<BatchView<'_>>, StorageError> {
        if self.position >= self.end {
            return Ok(None);
        }
        let position = self.position;
        if self.end - position < HEADER_BYTES as u64 {
            return Err(Corruption::PartialHeader { position }.into());
        }
        let header_bytes: [u8; HEADER_BYTES] =
            self.bytes(position, HEADER_BYTES)?.try_into().expect("bytes returns what was asked");
        let header = BatchHeader::decode(position, &header_bytes)?;
        if header.end_position() > self.end {
            return Err(Corruption::PastSegmentEnd { position }.into());
        }
        self.position = header.end_position();
        let size = usize::try_from(header.size_bytes).expect("a u32 fits a usize here");
        let bytes = self.bytes(position, size)?;
        let batch = BatchView::parse(bytes).map_err(|error| Corruption::Batch { position, error })?;
        batch.check_crc().map_err(|error| Corruption::Batch { position, error })?;
        Ok(Some(batch))
    }

    /// `len` bytes at `position`, from the chunk or after refilling it.
    fn bytes(&mut self, position: u64, len: usize) -> Result<&[u8], StorageError> {
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if position < self.chunk_start || position + len as u64 > chunk_end {
            let left = self.end - position;
            let want = len.max(CHUNK_BYTES);
            let read_len = usize::try_from(left).map_or(want, |left| want.min(left));
            self.chunk.resize(read_len, 0);
            self.file.read_exact_at(&mut self.chunk, position)?;
            self.chunk_start = position;
        }
        let from = usize::try_from(position - self.chunk_start).expect("inside the chunk, a Vec");
        Ok(&self.chunk[from..from + len])
    }
}
