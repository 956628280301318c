//! RecordBatch v2 ("magic 2"), viewed in place.
//!
//! Layout (big-endian), `HEADER_BYTES` = 61:
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
//! 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
//! 53 baseSequence i32 | 57 recordCount i32 | 61 records...
//! ```
//! `baseOffset` and `partitionLeaderEpoch` lie outside the CRC, so the broker assigns them in
//! place without re-checksumming. The broker validates the header, the lengths and the CRC,
//! and for uncompressed batches walks the record length prefixes to check the record count,
//! which is one varint per record and no copy. Compressed batches are read where Kafka reads
//! them ([`BatchView::validate_records`], [`BatchView::first_at_or_after`]): decompressed as
//! a bounded stream of records (`compression.rs`), never stored other than as they came.

use crate::compression::{write_varint, RecordStream};
use crate::ResponseError;

/// The most a compressed batch may decompress to when the broker reads it: its records are
/// streamed, so this bounds the work per batch and the largest record held.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Kafka's message for a keyless record on a compacted topic.
const KEY_REQUIRED: &str = "compacted topic cannot accept a record without a key";

/// What a producer's records are checked against beyond the batch's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordChecks {
    /// A compacted topic (`cleanup.policy` includes `compact`): every record needs a key.
    pub keys_required: bool,
    /// The most a compressed batch may decompress to.
    pub decompressed_max_bytes: usize,
}

impl RecordChecks {
    pub fn for_topic(keys_required: bool) -> Self {
        RecordChecks { keys_required, decompressed_max_bytes: DECOMPRESSED_BATCH_BYTES_MAX }
    }
}

pub const HEADER_BYTES: usize = 61;
/// Bytes before the `batchLength` field ends: the length counts what follows it.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
/// The transactional bit of a batch's attributes.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// The control bit (a transaction marker) of a batch's attributes.
pub const ATTR_CONTROL: i16 = 0x20;
/// KIP-534: the base timestamp holds the time after which the cleaner may remove the
/// batch's tombstones.
const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Why a batch was refused. Maps onto the Kafka error code the producer gets.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record set truncated: {0}")]
    Truncated(&'static str),
    #[error("unsupported magic {0}")]
    UnsupportedMagic(i8),
    #[error("crc mismatch: stored {stored:#x}, computed {computed:#x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid batch: {0}")]
    Invalid(&'static str),
    #[error("batch of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
    #[error("compressed records do not decode: {0}")]
    Undecodable(&'static str),
}

impl BatchError {
    pub fn response_error(&self) -> ResponseError {
        match self {
            BatchError::Truncated(_) | BatchError::CrcMismatch { .. } => ResponseError::CorruptMessage,
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            BatchError::Invalid(_) => ResponseError::InvalidRecord,
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::UnknownCompression(_) | BatchError::Undecodable(_) => ResponseError::CorruptMessage,
        }
    }
}

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The attribute bits of the codec.
    pub fn code(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A read-only view of one whole batch. Construct with [`BatchView::parse`], which checks
/// that the slice holds exactly the batch it announces.
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Checks the header fields needed to frame the batch (length, magic). Does not check
    /// the CRC: see [`BatchView::validate`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated("shorter than a batch header"));
        }
        // A negative length is below the header size too.
        let length = usize::try_from(be_i32(bytes, OFF_LENGTH))
            .ok()
            .filter(|length| *length >= HEADER_BYTES - LOG_OVERHEAD)
            .ok_or(BatchError::Invalid("batch length below header size"))?;
        if bytes.len() != LOG_OVERHEAD + length {
            return Err(BatchError::Truncated("batch length disagrees with its bytes"));
        }
        let magic = bytes[OFF_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(BatchView { bytes })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, OFF_BASE_OFFSET)
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, OFF_LAST_OFFSET_DELTA)
    }
    /// Saturates instead of overflowing: the header may come from a peer that lies.
    pub fn last_offset(&self) -> i64 {
        self.base_offset().saturating_add(self.last_offset_delta() as i64)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, OFF_LEADER_EPOCH)
    }
    pub fn crc(&self) -> u32 {
        be_u32(self.bytes, OFF_CRC)
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, OFF_ATTRIBUTES)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFF_BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFF_MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, OFF_PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, OFF_PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, OFF_BASE_SEQUENCE)
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, OFF_RECORD_COUNT)
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    /// KIP-534's delete horizon, when a cleaner has set one: tombstones in this batch may
    /// be removed from then on.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes() & ATTR_DELETE_HORIZON != 0).then(|| self.base_timestamp())
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes() & ATTR_COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[OFF_ATTRIBUTES..])
    }

    /// The first record whose timestamp is at least `timestamp`: (offset, its timestamp).
    /// Exact for CreateTime batches, compressed ones too (decompressed, at most
    /// [`DECOMPRESSED_BATCH_BYTES_MAX`]); a LogAppendTime batch stamps all its records
    /// alike, so its base offset and max timestamp answer when it reaches `timestamp`.
    pub fn first_at_or_after(&self, timestamp: i64) -> Option<(i64, i64)> {
        self.first_at_or_after_from(timestamp, i64::MIN)
    }

    /// [`BatchView::first_at_or_after`] among the records at or above `min_offset` (a log
    /// start inside the batch).
    pub fn first_at_or_after_from(&self, timestamp: i64, min_offset: i64) -> Option<(i64, i64)> {
        if self.max_timestamp() < timestamp || self.last_offset() < min_offset {
            return None;
        }
        if self.is_log_append_time() {
            return Some((self.base_offset().max(min_offset), self.max_timestamp()));
        }
        let matching = |timestamp_delta: i64, offset_delta: i64| {
            // Deltas come from the producer: a sum that overflows matches nothing.
            let record_timestamp = self.base_timestamp().checked_add(timestamp_delta)?;
            let offset = self.base_offset().checked_add(offset_delta)?;
            (record_timestamp >= timestamp && offset >= min_offset).then_some((offset, record_timestamp))
        };
        let exact = match self.compression() {
            Ok(Compression::None) => self
                .records()
                .ok()
                .and_then(|records| records.iter().find_map(|r| matching(r.timestamp_delta, r.offset_delta))),
            Ok(codec) => {
                let region = &self.bytes[HEADER_BYTES..];
                RecordStream::new(codec, region, DECOMPRESSED_BATCH_BYTES_MAX).ok().and_then(|mut stream| {
                    std::iter::from_fn(|| stream.next_summary().ok().flatten())
                        .find_map(|r| matching(r.timestamp_delta, r.offset_delta))
                })
            }
            Err(_) => None,
        };
        // A batch whose records disagree with its header falls back to the header.
        exact.or(Some((self.base_offset().max(min_offset), self.max_timestamp())))
    }

    /// Full validation of a batch arriving from a producer: CRC, codec, offsets and count.
    pub fn validate(&self) -> Result<(), BatchError> {
        let computed = self.computed_crc();
        if computed != self.crc() {
            return Err(BatchError::CrcMismatch { stored: self.crc(), computed });
        }
        let compression = self.compression()?;
        let count = self.record_count();
        if count <= 0 {
            return Err(BatchError::Invalid("batch holds no records"));
        }
        if self.last_offset_delta() != count - 1 {
            return Err(BatchError::Invalid("lastOffsetDelta disagrees with the record count"));
        }
        if compression == Compression::None {
            let walked = count_records(&self.bytes[HEADER_BYTES..])?;
            if walked != count as usize {
                return Err(BatchError::Invalid("record count disagrees with the records"));
            }
        }
        Ok(())
    }

    /// The checks of the records themselves that Kafka's log validator makes: a compressed
    /// batch is decompressed (at most `checks.decompressed_max_bytes`) and its records must
    /// number `recordCount` with offset deltas 0, 1, 2, ...; on a compacted topic every
    /// record needs a key. An uncompressed batch's count was checked by
    /// [`BatchView::validate`]; its records are only walked (in place) for keys.
    pub fn validate_records(&self, checks: RecordChecks) -> Result<(), BatchError> {
        let codec = self.compression()?;
        if codec == Compression::None {
            if checks.keys_required && self.records()?.iter().any(|r| r.key.is_none()) {
                return Err(BatchError::Invalid(KEY_REQUIRED));
            }
            return Ok(());
        }
        let mut stream = RecordStream::new(codec, &self.bytes[HEADER_BYTES..], checks.decompressed_max_bytes)?;
        let mut count: i64 = 0;
        while let Some(record) = stream.next_summary()? {
            if record.offset_delta != count {
                return Err(BatchError::Invalid("a record's offset delta is out of sequence"));
            }
            if checks.keys_required && !record.has_key {
                return Err(BatchError::Invalid(KEY_REQUIRED));
            }
            count += 1;
        }
        if count != i64::from(self.record_count()) {
            return Err(BatchError::Invalid("record count disagrees with the records"));
        }
        Ok(())
    }

    /// Only the checks needed when reading our own log back (recovery): framing and CRC.
    /// The checks a batch copied from a leader gets (Kafka validates a follower's appends
    /// no further): its CRC, a known codec, and a record count that a compacted log allows
    /// (from 0, an empty batch the cleaner kept for its producer, to `lastOffsetDelta + 1`;
    /// the records of an uncompressed batch must number exactly that).
    pub fn validate_replicated(&self) -> Result<(), BatchError> {
        self.check_crc()?;
        let compression = self.compression()?;
        let count = self.record_count();
        if count < 0 || i64::from(count) > i64::from(self.last_offset_delta()) + 1 || self.last_offset_delta() < 0 {
            return Err(BatchError::Invalid("record count outside [0, lastOffsetDelta + 1]"));
        }
        if compression == Compression::None && count_records(&self.bytes[HEADER_BYTES..])? != count as usize {
            return Err(BatchError::Invalid("record count disagrees with the records"));
        }
        Ok(())
    }

    pub fn check_crc(&self) -> Result<(), BatchError> {
        let computed = self.computed_crc();
        if computed != self.crc() {
            return Err(BatchError::CrcMismatch { stored: self.crc(), computed });
        }
        Ok(())
    }
}

/// Reads a zig-zag varint; returns (value, bytes consumed).
fn read_varint(bytes: &[u8]) -> Result<(i64, usize), BatchError> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let signed = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Ok((signed, i + 1));
        }
    }
    Err(BatchError::Truncated("varint"))
}

/// Walks the length prefixes of uncompressed records; the records must end exactly at the end.
fn count_records(mut records: &[u8]) -> Result<usize, BatchError> {
    let mut count = 0usize;
    while !records.is_empty() {
        let (length, used) = read_varint(records)?;
        let length = usize::try_from(length)
            .ok()
            .filter(|length| *length <= records.len() - used)
            .ok_or(BatchError::Invalid("record length beyond the batch"))?;
        records = &records[used + length..];
        count += 1;
    }
    Ok(count)
}

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl<'a> BatchView<'a> {
    /// The records of an uncompressed batch (the broker's own internal logs write these).
    pub fn records(&self) -> Result<Vec<RecordRef<'a>>, BatchError> {
        if self.compression()? != Compression::None {
            return Err(BatchError::Invalid("records() needs an uncompressed batch"));
        }
        let mut rest = &self.bytes[HEADER_BYTES..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (length, used) = read_varint(rest)?;
            let length = usize::try_from(length)
                .ok()
                .filter(|length| *length <= rest.len() - used)
                .ok_or(BatchError::Invalid("record length beyond the batch"))?;
            let mut record = &rest[used..used + length];
            rest = &rest[used + length..];
            record = record.get(1..).ok_or(BatchError::Truncated("record attributes"))?;
            let (timestamp_delta, used) = read_varint(record)?;
            record = &record[used..];
            let (offset_delta, used) = read_varint(record)?;
            record = &record[used..];
            let (key, after) = read_nullable(record)?;
            let (value, _) = read_nullable(after)?;
            out.push(RecordRef { timestamp_delta, offset_delta, key, value });
        }
        Ok(out)
    }
}

fn read_nullable(bytes: &[u8]) -> Result<(Option<&[u8]>, &[u8]), BatchError> {
    let (length, used) = read_varint(bytes)?;
    let rest = &bytes[used..];
    if length < 0 {
        return Ok((None, rest));
    }
    let length = usize::try_from(length)
        .ok()
        .filter(|length| *length <= rest.len())
        .ok_or(BatchError::Truncated("record field"))?;
    Ok((Some(&rest[..length]), &rest[length..]))
}

/// A mutable view used by the log to stamp offsets and epochs in place.
pub struct BatchMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> BatchMut<'a> {
    /// `bytes` must already have passed [`BatchView::parse`].
    pub fn new(bytes: &'a mut [u8]) -> Self {
        assert!(bytes.len() >= HEADER_BYTES, "BatchMut over a parsed batch only");
        BatchMut { bytes }
    }
    pub fn view(&self) -> BatchView<'_> {
        BatchView { bytes: self.bytes }
    }
    pub fn set_base_offset(&mut self, offset: i64) {
        self.bytes[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
    }
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.bytes[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    }
    /// Sets the idempotence fields (producer id, epoch, base sequence) and recomputes the
    /// CRC. Producers do this; the broker uses it only in tests and tools.
    pub fn set_producer(&mut self, producer_id: i64, epoch: i16, base_sequence: i32) {
        self.bytes[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
        self.bytes[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
        self.bytes[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
        let crc = crc32c::crc32c(&self.bytes[OFF_ATTRIBUTES..]);
        self.bytes[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Marks the batch transactional and, with `control`, a control batch (a transaction
    /// marker), and recomputes the CRC.
    pub fn set_transactional(&mut self, control: bool) {
        let bits = if control { ATTR_TRANSACTIONAL | ATTR_CONTROL } else { ATTR_TRANSACTIONAL };
        let attributes = be_i16(self.bytes, OFF_ATTRIBUTES) | bits;
        self.bytes[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&self.bytes[OFF_ATTRIBUTES..]);
        self.bytes[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// LogAppendTime: the broker's clock becomes the batch's max timestamp and the attribute
    /// says so. Both lie inside the CRC, which is recomputed.
    pub fn set_log_append_time(&mut self, now_ms: i64) {
        let attributes = be_i16(self.bytes, OFF_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
        self.bytes[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c(&self.bytes[OFF_ATTRIBUTES..]);
        self.bytes[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Stamps a copy of a batch's 61-byte header for appending without copying the records:
/// base offset, leader epoch and, when `log_append_time_ms` is given, LogAppendTime with the
/// CRC recomputed over the header's tail and `records` (the rest of the batch).
/// A producer's record set for one partition, as Kafka requires it from Produce v3: exactly
/// one v2 batch, within `max_message_bytes`, valid (CRC32C, codec, counts, record walk).
/// The error is Kafka's code and a message for the client.
pub fn single_produce_batch(
    records: &[u8],
    max_message_bytes: usize,
    checks: RecordChecks,
) -> Result<BatchView<'_>, (ResponseError, String)> {
    let mut batches = BatchIter::new(records);
    let (_, batch): (usize, BatchView) = match batches.next() {
        None => return Err((ResponseError::InvalidRecord, "produce request holds no record batch".into())),
        Some(Err(e)) => return Err((e.response_error(), e.to_string())),
        Some(Ok(item)) => item,
    };
    if batches.next().is_some() {
        return Err((ResponseError::InvalidRecord, "produce v3+ allows exactly one record batch per partition".into()));
    }
    if batch.size() > max_message_bytes {
        return Err((
            ResponseError::MessageTooLarge,
            format!("batch of {} bytes exceeds max.message.bytes {}", batch.size(), max_message_bytes),
        ));
    }
    batch.validate().map_err(|e| (e.response_error(), e.to_string()))?;
    batch.validate_records(checks).map_err(|e| (e.response_error(), e.to_string()))?;
    Ok(batch)
}

pub fn stamp_header(
    header: &mut [u8; HEADER_BYTES],
    records: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time_ms: Option<i64>,
) {
    header[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    header[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now_ms) = log_append_time_ms {
        let attributes = be_i16(header, OFF_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
        header[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        header[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header[OFF_ATTRIBUTES..]), records);
        header[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Iterates the batches of a record set (a produce payload or a log file region), yielding
/// each batch's byte range. Stops with an error at the first batch that does not frame.
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BatchIter { bytes, position: 0 }
    }
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(usize, BatchView<'a>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.bytes[self.position..];
        if rest.is_empty() {
            return None;
        }
        if rest.len() < LOG_OVERHEAD {
            self.position = self.bytes.len();
            return Some(Err(BatchError::Truncated("partial batch header")));
        }
        // A negative length is below the header size too.
        let length = usize::try_from(be_i32(rest, OFF_LENGTH))
            .ok()
            .filter(|length| *length >= HEADER_BYTES - LOG_OVERHEAD && rest.len() >= LOG_OVERHEAD + length);
        let Some(length) = length else {
            self.position = self.bytes.len();
            return Some(Err(BatchError::Truncated("batch extends past the record set")));
        };
        let end = LOG_OVERHEAD + length;
        let start = self.position;
        match BatchView::parse(&rest[..end]) {
            Ok(view) => {
                self.position += end;
                Some(Ok((start, view)))
            }
            Err(error) => {
                self.position = self.bytes.len();
                Some(Err(error))
            }
        }
    }
}

/// Test and tooling helper: builds an uncompressed v2 batch of `values` (no keys, no
/// headers) with timestamps `base_timestamp + i`. Producers build real batches; this exists
/// so storage tests and benchmarks have valid input without a client.
pub fn build_batch(base_timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
    build_batch_with_keys(base_timestamp, &values.iter().map(|v| (None, *v)).collect::<Vec<_>>())
}

/// A record to build: key and value, either may be null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// As [`build_batch`], with an optional key per record.
pub fn build_batch_with_keys(base_timestamp: i64, records: &[(Option<&[u8]>, &[u8])]) -> Vec<u8> {
    let records: Vec<KeyValue> = records.iter().map(|(k, v)| (*k, Some(*v))).collect();
    build_batch_records(base_timestamp, &records)
}

fn write_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            write_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => write_varint(out, -1),
    }
}

/// As [`build_batch_with_keys`], with nullable values too (a null value is a tombstone in a
/// compacted topic). The broker's internal topics write their records with this.
pub fn build_batch_records(base_timestamp: i64, records: &[KeyValue]) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut record = Vec::new();
        record.push(0u8); // attributes
        write_varint(&mut record, i as i64); // timestamp delta
        write_varint(&mut record, i as i64); // offset delta
        write_nullable(&mut record, *key);
        write_nullable(&mut record, *value);
        write_varint(&mut record, 0); // headers
        write_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    // The batch format counts records and bytes in `i32`s: a larger batch cannot be built.
    let count = i32::try_from(records.len()).expect("a batch holds at most i32::MAX records");
    let length = i32::try_from(HEADER_BYTES - LOG_OVERHEAD + body.len()).expect("a batch is at most i32::MAX bytes");
    let mut batch = Vec::with_capacity(HEADER_BYTES + body.len());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes());
    batch.extend_from_slice(&0i16.to_be_bytes());
    batch.extend_from_slice(&(count - 1).to_be_bytes());
    batch.extend_from_slice(&base_timestamp.to_be_bytes());
    batch.extend_from_slice(&(base_timestamp + count as i64 - 1).to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes());
    batch.extend_from_slice(&(-1i16).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.extend_from_slice(&count.to_be_bytes());
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// As [`build_batch_records`], with the records compressed with `codec` (tests and tools:
/// what a producer with `compression.type` sends).
pub fn build_batch_compressed(base_timestamp: i64, records: &[KeyValue], codec: Compression) -> Vec<u8> {
    let plain = build_batch_records(base_timestamp, records);
    recompress(&plain, codec)
}

/// A copy of an uncompressed batch with its record region compressed by `codec`, the
/// attributes' codec bits, length and CRC set accordingly.
pub fn recompress(plain: &[u8], codec: Compression) -> Vec<u8> {
    let view = BatchView::parse(plain).expect("a framed batch");
    recompress_batch(&view, codec, None, DECOMPRESSED_BATCH_BYTES_MAX).expect("an uncompressed batch decodes")
}

/// A copy of `batch` whose records are recompressed with `codec` at `level` (the codec's
/// default when `None`): what a topic whose `compression.type` names a codec stores. The
/// header's other fields (offsets, timestamps, producer) are kept; the length, the codec
/// bits and the CRC are set for the new region.
pub fn recompress_batch(
    batch: &BatchView<'_>,
    codec: Compression,
    level: Option<i32>,
    decompressed_max_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let region = &batch.bytes()[HEADER_BYTES..];
    let plain = crate::compression::decompress(batch.compression()?, region, decompressed_max_bytes)?;
    let packed = crate::compression::compress(codec, &plain, level);
    let mut out = batch.bytes()[..HEADER_BYTES].to_vec();
    out.extend_from_slice(&packed);
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::TooLarge { size: out.len(), limit: i32::MAX as usize })?;
    out[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let attributes = (be_i16(&out, OFF_ATTRIBUTES) & !ATTR_COMPRESSION_MASK) | codec.code();
    out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[OFF_ATTRIBUTES..]);
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// The header fields a cleaner's rewrite of a batch sets (the rest is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    pub record_count: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    /// Whether `base_timestamp` is a KIP-534 delete horizon.
    pub delete_horizon: bool,
}

/// A batch with `original`'s base offset, last offset delta, producer, epoch and codec,
/// holding `plain_records` (uncompressed, length-prefixed records, possibly none: a
/// producer's last batch kept empty), compressed again with the original codec.
pub fn rewrite_batch(original: &BatchView<'_>, rewrite: Rewrite, plain_records: &[u8]) -> Result<Vec<u8>, BatchError> {
    let codec = original.compression()?;
    let region =
        if plain_records.is_empty() { Vec::new() } else { crate::compression::compress(codec, plain_records, None) };
    let mut out = original.bytes()[..HEADER_BYTES].to_vec();
    out.extend_from_slice(&region);
    let length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::TooLarge { size: out.len(), limit: i32::MAX as usize })?;
    out[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let mut attributes = be_i16(&out, OFF_ATTRIBUTES) & !ATTR_DELETE_HORIZON;
    if rewrite.delete_horizon {
        attributes |= ATTR_DELETE_HORIZON;
    }
    out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[OFF_BASE_TIMESTAMP..OFF_BASE_TIMESTAMP + 8].copy_from_slice(&rewrite.base_timestamp.to_be_bytes());
    out[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&rewrite.max_timestamp.to_be_bytes());
    out[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&rewrite.record_count.to_be_bytes());
    let crc = crc32c::crc32c(&out[OFF_ATTRIBUTES..]);
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
