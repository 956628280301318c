//! Reading batch headers straight from a segment file with `pread`, without the records.
//!
//! Reads and index rebuilds only need the framing fields (offsets, length, max timestamp),
//! so they read the 61-byte header of each batch and skip its records.

use std::fs::File;
use std::os::unix::fs::FileExt;

use runnel_protocol::batch::{HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2};

use crate::{Corruption, StorageError};

/// The header fields of one stored batch, plus where it sits in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub position: u64,
    pub size_bytes: u32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// The leader epoch stamped into the batch when it was appended.
    pub leader_epoch: i32,
    /// Idempotence fields: producer id (-1 if none), epoch, first sequence.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// The batch's attributes (codec, timestamp type, transactional, control).
    pub attributes: i16,
}

impl BatchHeader {
    pub fn end_position(&self) -> u64 {
        self.position + u64::from(self.size_bytes)
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset + 1
    }
    /// `last_offset - base_offset`: the batch's `lastOffsetDelta`, an `i32` ([`Self::decode`]).
    fn last_offset_delta(&self) -> i32 {
        i32::try_from(self.last_offset - self.base_offset).expect("decode adds an i32 delta to the base offset")
    }

    /// The idempotence fields, when the batch has a producer id.
    pub fn producer_batch(&self) -> Option<crate::producer_state::ProducerBatch> {
        (self.producer_id >= 0).then(|| crate::producer_state::ProducerBatch {
            producer_id: self.producer_id,
            epoch: self.producer_epoch,
            first_seq: self.base_sequence,
            // Sequences wrap at i32::MAX, as in Kafka.
            last_seq: self.base_sequence.wrapping_add(self.last_offset_delta()),
            transactional: self.attributes & runnel_protocol::batch::ATTR_TRANSACTIONAL != 0,
            control: self.attributes & runnel_protocol::batch::ATTR_CONTROL != 0,
        })
    }

    /// Decodes the header fields of a batch whose first `HEADER_BYTES` are `bytes`.
    /// Checks framing only: the length covers at least a header and the magic is 2.
    pub fn decode(position: u64, bytes: &[u8; HEADER_BYTES]) -> Result<Self, Corruption> {
        let be_i64 = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let be_i32 = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let length = be_i32(8);
        // The length counts the bytes after it: at least the rest of a header (a negative one
        // is below that too), and with the bytes before it the size fits a `u32`.
        let size_bytes = usize::try_from(length)
            .ok()
            .filter(|length| *length >= HEADER_BYTES - LOG_OVERHEAD)
            .and_then(|length| u32::try_from(LOG_OVERHEAD + length).ok())
            .ok_or(Corruption::BatchLength { position, length })?;
        if bytes[16] as i8 != MAGIC_V2 {
            return Err(Corruption::Magic { position, magic: bytes[16] as i8 });
        }
        let last_offset_delta = be_i32(23);
        if last_offset_delta < 0 {
            return Err(Corruption::NegativeLastOffsetDelta { position });
        }
        let base_offset = be_i64(0);
        let last_offset = base_offset
            .checked_add(i64::from(last_offset_delta))
            .filter(|_| base_offset >= 0)
            .ok_or(Corruption::OffsetsOutOfRange { position })?;
        Ok(BatchHeader {
            position,
            size_bytes,
            base_offset,
            last_offset,
            max_timestamp: be_i64(35),
            leader_epoch: be_i32(12),
            producer_id: be_i64(43),
            producer_epoch: i16::from_be_bytes([bytes[51], bytes[52]]),
            base_sequence: be_i32(53),
            attributes: i16::from_be_bytes([bytes[21], bytes[22]]),
        })
    }
}

/// Reads the header of the batch at `position`. The file must hold the whole batch below
/// `end_position`; anything else is corruption of our own log.
pub(crate) fn read_header(file: &File, position: u64, end_position: u64) -> Result<BatchHeader, StorageError> {
    if position + HEADER_BYTES as u64 > end_position {
        return Err(Corruption::PartialHeader { position }.into());
    }
    let mut bytes = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut bytes, position)?;
    let header = BatchHeader::decode(position, &bytes)?;
    if header.end_position() > end_position {
        return Err(Corruption::PastSegmentEnd { position }.into());
    }
    Ok(header)
}

/// Iterates the batch headers of `file` in `[start, end)`. Bounded by `end`: every step
/// advances by at least one header.
pub(crate) struct HeaderScan<'a> {
    file: &'a File,
    position: u64,
    end: u64,
}

impl<'a> HeaderScan<'a> {
    pub fn new(file: &'a File, start: u64, end: u64) -> Self {
        HeaderScan { file, position: start, end }
    }
}

impl Iterator for HeaderScan<'_> {
    type Item = Result<BatchHeader, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.end {
            return None;
        }
        match read_header(self.file, self.position, self.end) {
            Ok(header) => {
                self.position = header.end_position();
                Some(Ok(header))
            }
            Err(error) => {
                self.position = self.end;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::batch::{build_batch, BatchMut};

    #[test]
    fn scans_headers_and_reports_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut first = build_batch(100, &[b"a", b"b"]);
        BatchMut::new(&mut first).set_base_offset(10);
        let mut second = build_batch(200, &[b"c"]);
        BatchMut::new(&mut second).set_base_offset(12);
        let mut bytes = [first.clone(), second.clone()].concat();
        bytes.extend_from_slice(&second[..30]);
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let headers: Vec<_> = HeaderScan::new(&file, 0, bytes.len() as u64).collect();
        assert_eq!(headers.len(), 3);
        let h0 = headers[0].as_ref().unwrap();
        assert_eq!((h0.base_offset, h0.last_offset, h0.max_timestamp), (10, 11, 101));
        assert_eq!(h0.size_bytes as usize, first.len());
        let h1 = headers[1].as_ref().unwrap();
        assert_eq!((h1.position, h1.next_offset()), (first.len() as u64, 13));
        assert!(matches!(headers[2], Err(StorageError::Corrupt(_))));
    }
}
