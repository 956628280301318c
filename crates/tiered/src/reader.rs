//! Reads records back from remote segments (Kafka's `RemoteLogReader`): the segment's
//! offset index (fetched whole, checked against its CRC32C, cached) gives the position of
//! the batch to start from; the `.log` object is read in aligned chunks through a cache
//! bounded in bytes, and the chunk after a read is fetched ahead so that a consumer
//! catching up in order rarely waits for the store.
//!
//! Invariants: only whole batches are returned, each one's CRC checked (a batch that fails
//! is [`RemoteError::Corrupt`], never served); a read never crosses the end of its
//! segment; at least one batch when `min_one_batch`, else nothing larger than `max_bytes`;
//! the cache never holds more than its bound; at most [`PREFETCHES_MAX`] read-aheads are
//! in flight.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use runnel_metadata::remote_log::{RemoteSegment, RemoteSegmentState};
use runnel_protocol::batch::{BatchView, HEADER_BYTES, LOG_OVERHEAD};
use uuid::Uuid;

use crate::cache::ByteLru;
use crate::{ObjectKind, RemoteError, RemoteStore, SegmentKey};

/// Read-aheads in flight at most (each one chunk).
pub const PREFETCHES_MAX: usize = 4;
/// Bytes of a batch header that hold its base offset, length and last offset delta.
const HEAD_BYTES: u64 = 27;

/// One readable remote segment, with the keys of its objects.
#[derive(Debug, Clone)]
pub struct SegmentRef {
    pub segment_id: Uuid,
    pub base_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
    log_key: String,
    index_key: String,
    index_crc: Option<u32>,
    time_index_key: String,
    time_index_crc: Option<u32>,
}

impl SegmentRef {
    pub fn new(prefix: &str, topic_id: Uuid, partition: i32, segment: &RemoteSegment) -> Self {
        let key = |kind| {
            SegmentKey {
                prefix: prefix.to_string(),
                topic_id,
                partition,
                base_offset: segment.base_offset,
                segment_id: segment.segment_id,
                kind,
            }
            .to_string()
        };
        let crc = |kind: ObjectKind| match &segment.state {
            RemoteSegmentState::CopyFinished { checksums } => checksums.get(kind.extension()).copied(),
            _ => None,
        };
        SegmentRef {
            segment_id: segment.segment_id,
            base_offset: segment.base_offset,
            end_offset: segment.end_offset,
            size_bytes: segment.size_bytes,
            log_key: key(ObjectKind::Log),
            index_key: key(ObjectKind::Index),
            index_crc: crc(ObjectKind::Index),
            time_index_key: key(ObjectKind::TimeIndex),
            time_index_crc: crc(ObjectKind::TimeIndex),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    Index,
    TimeIndex,
    Chunk(u64),
}

/// What the reader has done, for metrics.
#[derive(Default, Debug)]
pub struct ReaderStats {
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub read_failures: AtomicU64,
    pub read_micros: AtomicU64,
    /// Requests to the store (chunks and indexes), read-aheads included.
    pub store_gets: AtomicU64,
    pub store_get_bytes: AtomicU64,
}

pub struct RemoteReader {
    store: RemoteStore,
    chunk_bytes: u64,
    cache: Mutex<ByteLru<(Uuid, Part)>>,
    prefetching: Mutex<HashSet<(Uuid, u64)>>,
    pub stats: ReaderStats,
}

impl RemoteReader {
    /// `chunk_bytes`: the unit of reads from the store; `cache_bytes`: the cache's bound.
    pub fn new(store: RemoteStore, chunk_bytes: u64, cache_bytes: u64) -> Self {
        RemoteReader {
            store,
            chunk_bytes: chunk_bytes.max(4096),
            cache: Mutex::new(ByteLru::new(cache_bytes)),
            prefetching: Mutex::new(HashSet::new()),
            stats: ReaderStats::default(),
        }
    }

    pub fn store(&self) -> &RemoteStore {
        &self.store
    }

    /// Whole batches of `segment` from the one holding `offset`, up to `max_bytes` (at
    /// least one batch when `min_one_batch`). Empty when the segment holds nothing at or
    /// after `offset`, or the first batch is larger than `max_bytes` and not required.
    pub async fn read(
        self: &Arc<Self>,
        segment: &SegmentRef,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, RemoteError> {
        let began = Instant::now();
        let result = self.read_batches(segment, offset, max_bytes as u64, min_one_batch).await;
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        self.stats.read_micros.fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
        match &result {
            Ok(bytes) => {
                self.stats.read_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.read_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn read_batches(
        self: &Arc<Self>,
        segment: &SegmentRef,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<Bytes, RemoteError> {
        let size = segment.size_bytes;
        let corrupt = |why: String| RemoteError::Corrupt { key: segment.log_key.clone(), why };
        let index = self.whole(segment, Part::Index).await?;
        let mut position = index_floor(&index, segment.base_offset, offset).unwrap_or(0);
        let mut start = None;
        let mut end = position;
        while position + LOG_OVERHEAD as u64 <= size {
            let head = self.range(segment, position, (position + HEAD_BYTES).min(size)).await?;
            if head.len() < HEAD_BYTES as usize {
                return Err(corrupt(format!("a batch header cut short at {position}")));
            }
            let base = i64::from_be_bytes(head[0..8].try_into().expect("8 bytes"));
            let length = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
            let last = base + i64::from(i32::from_be_bytes(head[23..27].try_into().expect("4 bytes")));
            let batch_end = u64::try_from(length)
                .ok()
                .filter(|l| *l as usize >= HEADER_BYTES - LOG_OVERHEAD)
                .map(|l| position + LOG_OVERHEAD as u64 + l)
                .filter(|e| *e <= size)
                .ok_or_else(|| corrupt(format!("a batch at {position} claims {length} bytes")))?;
            if last < offset {
                position = batch_end;
                continue;
            }
            let first = *start.get_or_insert(position);
            if batch_end - first > max_bytes && !(min_one_batch && first == position) {
                break;
            }
            end = batch_end;
            position = batch_end;
            if end - first >= max_bytes {
                break;
            }
        }
        let Some(first) = start.filter(|first| end > *first) else { return Ok(Bytes::new()) };
        let data = self.range(segment, first, end).await?;
        let mut at = 0usize;
        while at < data.len() {
            let length = i32::from_be_bytes(data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let batch = &data[at..at + LOG_OVERHEAD + length];
            BatchView::parse(batch)
                .and_then(|view| view.check_crc())
                .map_err(|e| corrupt(format!("batch at {}: {e}", first + at as u64)))?;
            at += batch.len();
        }
        self.read_ahead(segment, end);
        Ok(data)
    }

    /// The offset of the first record at or after `timestamp` in `segment`, by its time
    /// index and then its batches (`None`: every record is older).
    pub async fn offset_for_timestamp(
        self: &Arc<Self>,
        segment: &SegmentRef,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, RemoteError> {
        let time_index = self.whole(segment, Part::TimeIndex).await?;
        let from_offset = time_index_floor(&time_index, segment.base_offset, timestamp).unwrap_or(segment.base_offset);
        let index = self.whole(segment, Part::Index).await?;
        let mut position = index_floor(&index, segment.base_offset, from_offset).unwrap_or(0);
        let corrupt = |why: String| RemoteError::Corrupt { key: segment.log_key.clone(), why };
        while position + LOG_OVERHEAD as u64 <= segment.size_bytes {
            let head = self.range(segment, position, (position + LOG_OVERHEAD as u64).min(segment.size_bytes)).await?;
            let length = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
            let batch_end = u64::try_from(length)
                .ok()
                .filter(|l| *l as usize >= HEADER_BYTES - LOG_OVERHEAD)
                .map(|l| position + LOG_OVERHEAD as u64 + l)
                .filter(|e| *e <= segment.size_bytes)
                .ok_or_else(|| corrupt(format!("a batch at {position} claims {length} bytes")))?;
            let bytes = self.range(segment, position, batch_end).await?;
            let view = BatchView::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
            view.check_crc().map_err(|e| corrupt(e.to_string()))?;
            if view.max_timestamp() >= timestamp {
                if let Some(found) = view.first_at_or_after(timestamp) {
                    return Ok(Some(found));
                }
            }
            position = batch_end;
        }
        Ok(None)
    }

    /// A whole index object, from the cache or the store (checked against its CRC32C).
    async fn whole(&self, segment: &SegmentRef, part: Part) -> Result<Bytes, RemoteError> {
        let cache_key = (segment.segment_id, part);
        if let Some(bytes) = self.cache.lock().expect("cache lock").get(&cache_key) {
            return Ok(bytes);
        }
        let (key, crc) = match part {
            Part::TimeIndex => (&segment.time_index_key, segment.time_index_crc),
            _ => (&segment.index_key, segment.index_crc),
        };
        let bytes = self.store.get(key, crc).await?;
        self.stats.store_gets.fetch_add(1, Ordering::Relaxed);
        self.stats.store_get_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.cache.lock().expect("cache lock").insert(cache_key, bytes.clone());
        Ok(bytes)
    }

    /// Bytes `from..to` of the segment's `.log`, assembled from chunks.
    async fn range(&self, segment: &SegmentRef, from: u64, to: u64) -> Result<Bytes, RemoteError> {
        let first = from / self.chunk_bytes;
        let last = (to.max(from + 1) - 1) / self.chunk_bytes;
        if first == last {
            let chunk = self.chunk(segment, first).await?;
            let at = (from - first * self.chunk_bytes) as usize;
            return Ok(chunk.slice(at..(at + (to - from) as usize).min(chunk.len())));
        }
        let mut out = BytesMut::with_capacity((to - from) as usize);
        for index in first..=last {
            let chunk = self.chunk(segment, index).await?;
            let chunk_start = index * self.chunk_bytes;
            let a = from.saturating_sub(chunk_start) as usize;
            let b = ((to - chunk_start) as usize).min(chunk.len());
            out.extend_from_slice(&chunk[a..b]);
        }
        Ok(out.freeze())
    }

    async fn chunk(&self, segment: &SegmentRef, index: u64) -> Result<Bytes, RemoteError> {
        let cache_key = (segment.segment_id, Part::Chunk(index));
        if let Some(bytes) = self.cache.lock().expect("cache lock").get(&cache_key) {
            return Ok(bytes);
        }
        let from = index * self.chunk_bytes;
        let to = (from + self.chunk_bytes).min(segment.size_bytes);
        let bytes = self.store.get_range(&segment.log_key, from..to).await?;
        self.stats.store_gets.fetch_add(1, Ordering::Relaxed);
        self.stats.store_get_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.cache.lock().expect("cache lock").insert(cache_key, bytes.clone());
        Ok(bytes)
    }

    /// Fetches the chunk holding `position` into the cache in the background, unless it
    /// is there, being fetched, or too many read-aheads are in flight.
    fn read_ahead(self: &Arc<Self>, segment: &SegmentRef, position: u64) {
        if position >= segment.size_bytes {
            return;
        }
        let index = position / self.chunk_bytes;
        let key = (segment.segment_id, index);
        if self.cache.lock().expect("cache lock").contains(&(segment.segment_id, Part::Chunk(index))) {
            return;
        }
        {
            let mut in_flight = self.prefetching.lock().expect("prefetch lock");
            if in_flight.len() >= PREFETCHES_MAX || !in_flight.insert(key) {
                return;
            }
        }
        let reader = self.clone();
        let segment = segment.clone();
        tokio::spawn(async move {
            let _ = reader.chunk(&segment, index).await;
            reader.prefetching.lock().expect("prefetch lock").remove(&key);
        });
    }
}

/// The position of the last offset-index entry at or below `offset` (entries: relative
/// last offset of a batch, its position; 4 bytes each, big-endian).
fn index_floor(index: &[u8], base_offset: i64, offset: i64) -> Option<u64> {
    let relative = offset - base_offset;
    let entries: Vec<(i64, u64)> = index
        .chunks_exact(8)
        .map(|e| {
            (
                i64::from(u32::from_be_bytes(e[0..4].try_into().expect("4 bytes"))),
                u64::from(u32::from_be_bytes(e[4..8].try_into().expect("4 bytes"))),
            )
        })
        .collect();
    let count = entries.partition_point(|(r, _)| *r <= relative);
    count.checked_sub(1).map(|i| entries[i].1)
}

/// The offset of the last time-index entry whose timestamp is below `timestamp` (entries:
/// timestamp i64, relative offset u32, big-endian): every record before it is older.
fn time_index_floor(index: &[u8], base_offset: i64, timestamp: i64) -> Option<i64> {
    let entries: Vec<(i64, i64)> = index
        .chunks_exact(12)
        .map(|e| {
            (
                i64::from_be_bytes(e[0..8].try_into().expect("8 bytes")),
                base_offset + i64::from(u32::from_be_bytes(e[8..12].try_into().expect("4 bytes"))),
            )
        })
        .collect();
    let count = entries.partition_point(|(t, _)| *t < timestamp);
    count.checked_sub(1).map(|i| entries[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_floors() {
        let mut index = Vec::new();
        for (relative, position) in [(9u32, 0u32), (19, 4_000), (29, 8_000)] {
            index.extend_from_slice(&relative.to_be_bytes());
            index.extend_from_slice(&position.to_be_bytes());
        }
        assert_eq!(index_floor(&index, 100, 105), None, "before the first entry: read from the start");
        assert_eq!(index_floor(&index, 100, 109), Some(0));
        assert_eq!(index_floor(&index, 100, 125), Some(4_000));
        assert_eq!(index_floor(&index, 100, 500), Some(8_000));
        let mut times = Vec::new();
        for (t, relative) in [(1_000i64, 9u32), (2_000, 19)] {
            times.extend_from_slice(&t.to_be_bytes());
            times.extend_from_slice(&relative.to_be_bytes());
        }
        assert_eq!(time_index_floor(&times, 100, 500), None);
        assert_eq!(time_index_floor(&times, 100, 1_500), Some(109));
        assert_eq!(time_index_floor(&times, 100, 2_000), Some(109));
        assert_eq!(time_index_floor(&times, 100, 9_000), Some(119));
    }
}
