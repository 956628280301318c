//! The record codecs of Kafka's batches, read where Kafka reads them: gzip, snappy (a raw
//! block as librdkafka writes it, or the xerial framing Java producers write), lz4 (the LZ4
//! frame format) and zstd. A compressed batch's records are read as a stream, one record at
//! a time ([`RecordStream`]), so validating or scanning a batch holds one record, never the
//! whole decompressed batch.
//!
//! Invariants: decompression never produces more than the caller's `max_bytes` (a small
//! batch cannot expand without limit); a zstd frame may not ask for a window above
//! [`ZSTD_WINDOW_LOG_MAX`]; a record longer than what remains of that bound is refused
//! before anything is allocated for it.

use std::io::{BufRead, BufReader, Read};

use crate::batch::{BatchError, Compression};

/// The largest zstd window a batch may ask for (16 MiB; producers' default levels use at
/// most 8 MiB), which bounds the decoder's memory.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The first bytes of xerial's snappy framing (`SnappyOutputStream`), followed by two
/// big-endian i32 versions, then blocks of (i32 compressed length, raw snappy block).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

fn corrupt(why: &'static str) -> BatchError {
    BatchError::Undecodable(why)
}

/// A reader of `input` decompressed with `codec`.
fn decoder<'a>(codec: Compression, input: &'a [u8], max_bytes: usize) -> Result<Box<dyn Read + 'a>, BatchError> {
    // An empty region is an empty batch (a producer's last, kept by the cleaner), in any
    // codec: nothing to decompress.
    if input.is_empty() {
        return Ok(Box::new(input));
    }
    Ok(match codec {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Snappy => Box::new(std::io::Cursor::new(snappy(input, max_bytes)?)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(|_| corrupt("zstd decoder"))?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(|_| corrupt("zstd window"))?;
            Box::new(decoder)
        }
    })
}

/// Snappy blocks carry their decompressed length up front, so the whole output is checked
/// against the bound before it is allocated.
fn snappy(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, BatchError> {
    let block = |block: &[u8], budget: usize| -> Result<Vec<u8>, BatchError> {
        let length = snap::raw::decompress_len(block).map_err(|_| corrupt("snappy block header"))?;
        if length > budget {
            return Err(BatchError::TooLarge { size: length, limit: budget });
        }
        snap::raw::Decoder::new().decompress_vec(block).map_err(|_| corrupt("snappy block"))
    };
    if !input.starts_with(&XERIAL_MAGIC) {
        return block(input, max_bytes);
    }
    let mut rest = input.get(XERIAL_HEADER_BYTES..).ok_or(BatchError::Truncated("xerial snappy header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let length = rest.get(..4).ok_or(BatchError::Truncated("xerial block length"))?;
        let length = usize::try_from(i32::from_be_bytes(length.try_into().expect("4 bytes")))
            .map_err(|_| corrupt("negative xerial block length"))?;
        let data = rest.get(4..4 + length).ok_or(BatchError::Truncated("xerial block"))?;
        out.extend(block(data, max_bytes - out.len())?);
        rest = &rest[4 + length..];
    }
    Ok(out)
}

/// Decompresses a whole record region (tests and tools; the broker streams).
pub fn decompress(codec: Compression, input: &[u8], max_bytes: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    let read = decoder(codec, input, max_bytes)?
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| corrupt("compressed records do not decompress"))?;
    if read > max_bytes {
        return Err(BatchError::TooLarge { size: read, limit: max_bytes });
    }
    Ok(out)
}

/// Compresses a record region with `codec` at `level` (the codec's default when `None`),
/// for a topic whose `compression.type` names a codec.
pub fn compress(codec: Compression, input: &[u8], level: Option<i32>) -> Vec<u8> {
    use std::io::Write;
    match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let level = level.map_or(flate2::Compression::default(), |l| {
                flate2::Compression::new(u32::try_from(l.clamp(1, 9)).expect("clamped"))
            });
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(input).expect("writing to memory");
            encoder.finish().expect("writing to memory")
        }
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(input).expect("snappy of a bounded input"),
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(input).expect("writing to memory");
            encoder.finish().expect("writing to memory")
        }
        Compression::Zstd => zstd::bulk::compress(input, level.unwrap_or(3)).expect("zstd of a bounded input"),
    }
}

/// One record read from a batch, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The headers as encoded (their count, then each header), copied as they are when a
    /// record is written again.
    pub headers: Vec<u8>,
}

impl Record {
    /// Appends this record, length-prefixed, as a batch holds it, with the given deltas.
    pub fn encode(&self, timestamp_delta: i64, offset_delta: i64, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(
            16 + self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len) + self.headers.len(),
        );
        body.push(self.attributes);
        write_varint(&mut body, timestamp_delta);
        write_varint(&mut body, offset_delta);
        for field in [&self.key, &self.value] {
            match field {
                Some(bytes) => {
                    write_varint(&mut body, i64::try_from(bytes.len()).expect("a record field fits a batch"));
                    body.extend_from_slice(bytes);
                }
                None => write_varint(&mut body, -1),
            }
        }
        body.extend_from_slice(&self.headers);
        write_varint(out, i64::try_from(body.len()).expect("a record fits a batch"));
        out.extend_from_slice(&body);
    }
}

/// Appends a zig-zag varint.
pub fn write_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let low = u8::try_from(zigzag & 0x7f).expect("masked to 7 bits");
        if zigzag < 0x80 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
        zigzag >>= 7;
    }
}

fn varint_bytes(value: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    write_varint(&mut out, value);
    out
}

/// What validation needs of a record, read without copying its key, value or headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub has_key: bool,
    pub has_value: bool,
}

/// The records of a batch's record region, decompressed as they are read.
pub struct RecordStream<'a> {
    reader: BufReader<Box<dyn Read + 'a>>,
    /// Decompressed bytes still allowed.
    budget: usize,
}

impl<'a> RecordStream<'a> {
    /// `region`: the bytes after the batch header; `max_bytes`: the most it may decompress to.
    pub fn new(codec: Compression, region: &'a [u8], max_bytes: usize) -> Result<Self, BatchError> {
        Ok(RecordStream { reader: BufReader::new(decoder(codec, region, max_bytes)?), budget: max_bytes })
    }

    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(self.reader.fill_buf().map_err(|_| corrupt("compressed records do not decompress"))?.is_empty())
    }

    fn byte(&mut self) -> Result<u8, BatchError> {
        let mut byte = [0u8; 1];
        self.reader.read_exact(&mut byte).map_err(|_| BatchError::Truncated("record"))?;
        self.budget = self.budget.checked_sub(1).ok_or(BatchError::TooLarge { size: 0, limit: 0 })?;
        Ok(byte[0])
    }

    fn varint(&mut self) -> Result<i64, BatchError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(BatchError::Truncated("varint"))
    }

    /// `length` bytes, refused before allocation when beyond the budget.
    fn bytes(&mut self, length: usize) -> Result<Vec<u8>, BatchError> {
        if length > self.budget {
            return Err(BatchError::TooLarge { size: length, limit: self.budget });
        }
        let mut out = vec![0u8; length];
        self.reader.read_exact(&mut out).map_err(|_| BatchError::Truncated("record field"))?;
        self.budget -= length;
        Ok(out)
    }

    fn nullable(&mut self) -> Result<Option<Vec<u8>>, BatchError> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| corrupt("record field length"))?;
        self.bytes(length).map(Some)
    }

    /// The next record's offset and timestamp deltas and whether it has a key and a value,
    /// reading past its bytes without keeping them (validation and timestamp lookups).
    pub fn next_summary(&mut self) -> Result<Option<RecordSummary>, BatchError> {
        let Some(budget_after) = self.begin_record()? else {
            return Ok(None);
        };
        let _attributes = self.byte()?;
        let timestamp_delta = self.varint()?;
        let offset_delta = self.varint()?;
        let has_key = self.skip_nullable()?;
        let has_value = self.skip_nullable()?;
        let count = usize::try_from(self.varint()?).map_err(|_| corrupt("negative header count"))?;
        for _ in 0..count {
            let key_length = usize::try_from(self.varint()?).map_err(|_| corrupt("header key length"))?;
            self.skip(key_length)?;
            self.skip_nullable()?;
        }
        self.end_record(budget_after)?;
        Ok(Some(RecordSummary { timestamp_delta, offset_delta, has_key, has_value }))
    }

    /// Reads the next record's length prefix; `None` at the end of the region, else the
    /// budget that must remain once the record is read (see [`RecordStream::end_record`]).
    fn begin_record(&mut self) -> Result<Option<usize>, BatchError> {
        if self.at_end()? {
            return Ok(None);
        }
        let length = usize::try_from(self.varint()?).map_err(|_| corrupt("negative record length"))?;
        if length > self.budget {
            return Err(BatchError::TooLarge { size: length, limit: self.budget });
        }
        Ok(Some(self.budget - length))
    }

    /// A record's declared length must match its fields exactly.
    fn end_record(&self, budget_after: usize) -> Result<(), BatchError> {
        if self.budget != budget_after {
            return Err(corrupt("record length disagrees with its fields"));
        }
        Ok(())
    }

    /// Reads past a nullable field; whether it was present.
    fn skip_nullable(&mut self) -> Result<bool, BatchError> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(false);
        }
        self.skip(usize::try_from(length).map_err(|_| corrupt("record field length"))?)?;
        Ok(true)
    }

    /// Reads past `length` bytes without allocating.
    fn skip(&mut self, mut length: usize) -> Result<(), BatchError> {
        if length > self.budget {
            return Err(BatchError::TooLarge { size: length, limit: self.budget });
        }
        self.budget -= length;
        while length > 0 {
            let available = self.reader.fill_buf().map_err(|_| corrupt("compressed records do not decompress"))?;
            if available.is_empty() {
                return Err(BatchError::Truncated("record field"));
            }
            let step = available.len().min(length);
            self.reader.consume(step);
            length -= step;
        }
        Ok(())
    }

    /// The next record; `None` at the end of the region. The record's declared length must
    /// match its fields exactly.
    pub fn next_record(&mut self) -> Result<Option<Record>, BatchError> {
        let Some(budget_after) = self.begin_record()? else {
            return Ok(None);
        };
        let attributes = self.byte()?;
        let timestamp_delta = self.varint()?;
        let offset_delta = self.varint()?;
        let key = self.nullable()?;
        let value = self.nullable()?;
        let count = self.varint()?;
        let mut headers = varint_bytes(count);
        let count = usize::try_from(count).map_err(|_| corrupt("negative header count"))?;
        for _ in 0..count {
            let key_length = self.varint()?;
            headers.extend(varint_bytes(key_length));
            let key_length = usize::try_from(key_length).map_err(|_| corrupt("header key length"))?;
            headers.extend(self.bytes(key_length)?);
            let value_length = self.varint()?;
            headers.extend(varint_bytes(value_length));
            if value_length >= 0 {
                let value_length = usize::try_from(value_length).map_err(|_| corrupt("header value length"))?;
                headers.extend(self.bytes(value_length)?);
            }
        }
        self.end_record(budget_after)?;
        Ok(Some(Record { attributes, timestamp_delta, offset_delta, key, value, headers }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch_records, BatchView, HEADER_BYTES};

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    fn region() -> Vec<u8> {
        let records: Vec<crate::batch::KeyValue> =
            vec![(Some(&b"k1"[..]), Some(&b"v1"[..])), (None, Some(&b"v2"[..])), (Some(&b"k3"[..]), None)];
        build_batch_records(1_000, &records)[HEADER_BYTES..].to_vec()
    }

    #[test]
    fn every_codec_round_trips_and_streams_the_records() {
        let plain = region();
        for codec in CODECS {
            let packed = compress(codec, &plain, None);
            assert_eq!(decompress(codec, &packed, 1 << 20).unwrap(), plain, "{codec:?}");
            let mut stream = RecordStream::new(codec, &packed, 1 << 20).unwrap();
            let mut keys = Vec::new();
            while let Some(record) = stream.next_record().unwrap() {
                keys.push(record.key.clone());
                assert_eq!(record.offset_delta, keys.len() as i64 - 1);
            }
            assert_eq!(keys, [Some(b"k1".to_vec()), None, Some(b"k3".to_vec())], "{codec:?}");
            // The summaries agree with the records, without copying them.
            let mut stream = RecordStream::new(codec, &packed, 1 << 20).unwrap();
            let summaries: Vec<(i64, bool, bool)> = std::iter::from_fn(|| stream.next_summary().unwrap())
                .map(|s| (s.offset_delta, s.has_key, s.has_value))
                .collect();
            assert_eq!(summaries, [(0, true, true), (1, false, true), (2, true, false)], "{codec:?}");
        }
        // The stream agrees with the in-place reader of uncompressed batches.
        let batch = build_batch_records(1_000, &[(Some(b"k".as_slice()), Some(b"v".as_slice()))]);
        let view = BatchView::parse(&batch).unwrap();
        let mut stream = RecordStream::new(Compression::None, &batch[HEADER_BYTES..], 1 << 20).unwrap();
        let record = stream.next_record().unwrap().unwrap();
        assert_eq!(record.key.as_deref(), view.records().unwrap()[0].key);
    }

    #[test]
    fn a_record_read_and_encoded_again_is_the_same_bytes() {
        let plain = region();
        let mut stream = RecordStream::new(Compression::None, &plain, 1 << 20).unwrap();
        let mut again = Vec::new();
        while let Some(record) = stream.next_record().unwrap() {
            record.encode(record.timestamp_delta, record.offset_delta, &mut again);
        }
        assert_eq!(again, plain);
    }

    #[test]
    fn xerial_framed_snappy_as_java_writes_it() {
        let plain = region();
        let (first, second) = plain.split_at(plain.len() / 2);
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend(1i32.to_be_bytes());
        framed.extend(1i32.to_be_bytes());
        for part in [first, second] {
            let block = snap::raw::Encoder::new().compress_vec(part).unwrap();
            framed.extend(i32::try_from(block.len()).unwrap().to_be_bytes());
            framed.extend(block);
        }
        assert_eq!(decompress(Compression::Snappy, &framed, 1 << 20).unwrap(), plain);
    }

    #[test]
    fn a_bomb_stops_at_the_bound_and_garbage_is_an_error() {
        let zeros = vec![0u8; 4 << 20];
        for codec in CODECS.into_iter().skip(1) {
            let packed = compress(codec, &zeros, None);
            assert!(packed.len() < zeros.len() / 20, "{codec:?} compresses zeros");
            assert!(
                matches!(decompress(codec, &packed, 1 << 20), Err(BatchError::TooLarge { .. })),
                "{codec:?} stops at the bound"
            );
            assert!(decompress(codec, b"\x01\x02garbage", 1 << 20).is_err(), "{codec:?} garbage");
        }
        // A record claiming more than the bound is refused before it is read.
        let mut claim = Vec::new();
        claim.push(0xfe);
        claim.extend([0xff, 0xff, 0x7f]);
        let mut stream = RecordStream::new(Compression::None, &claim, 1 << 10).unwrap();
        assert!(stream.next_record().is_err());
    }
}
