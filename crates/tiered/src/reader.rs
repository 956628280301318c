//! Reads records back from remote segments (Kafka's `RemoteLogReader`): the segment's
//! offset index (fetched whole, checked against its CRC32C, cached) gives the position of
//! the batch to start from; the `.log` object is read in aligned chunks, all a read needs
//! at once, through a cache bounded in bytes; as much again as a read took is fetched
//! ahead, so that a consumer catching up in order rarely waits for the store. A chunk being
//! fetched is fetched once: every reader of it (a read-ahead included) waits for the same
//! request. Records go out as slices of the cached chunks, not copied.
//!
//! Invariants: only whole batches are returned, each one's CRC checked (a batch that fails
//! is [`RemoteError::Corrupt`], never served); a read never crosses the end of its
//! segment; at least one batch when `min_one_batch`, else nothing larger than `max_bytes`;
//! the cache never holds more than its bound; at most [`PREFETCHES_MAX`] chunks are being
//! fetched ahead at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::future::try_join_all;
use runnel_metadata::remote_log::{RemoteSegment, RemoteSegmentState};
use runnel_protocol::batch::{BatchView, HEADER_BYTES, LOG_OVERHEAD};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::cache::ByteLru;
use crate::{ObjectKind, RemoteError, RemoteStore, SegmentKey};

/// Chunks fetched ahead at most at a time (each `remote.log.reader.chunk.bytes`).
pub const PREFETCHES_MAX: usize = 8;
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
    /// The transaction index, when the segment was uploaded with one.
    txn_index: Option<(String, u32)>,
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
            txn_index: crc(ObjectKind::TransactionIndex).map(|c| (key(ObjectKind::TransactionIndex), c)),
        }
    }
}

/// What a read returns.
#[derive(Debug)]
pub enum RemoteRecords {
    /// Slices of the cached chunks, in order (object stores).
    Pieces(Vec<Bytes>),
    /// A checked range of the object's file (the local-directory backend), to be sent with
    /// sendfile(2) like a local segment.
    File { file: Arc<std::fs::File>, position: u64, len: u64 },
}

impl RemoteRecords {
    pub fn len(&self) -> u64 {
        match self {
            RemoteRecords::Pieces(pieces) => pieces.iter().map(|p| p.len() as u64).sum(),
            RemoteRecords::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    Index,
    TimeIndex,
    TxnIndex,
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

/// A chunk being fetched: whoever needs it waits for the one request.
type Pending = Arc<OnceCell<Result<Bytes, RemoteError>>>;

pub struct RemoteReader {
    store: RemoteStore,
    chunk_bytes: u64,
    cache: Mutex<ByteLru<(Uuid, Part)>>,
    pending: Mutex<HashMap<(Uuid, u64), Pending>>,
    prefetching: AtomicU64,
    pub stats: ReaderStats,
}

impl RemoteReader {
    /// `chunk_bytes`: the unit of reads from the store; `cache_bytes`: the cache's bound.
    pub fn new(store: RemoteStore, chunk_bytes: u64, cache_bytes: u64) -> Self {
        RemoteReader {
            store,
            chunk_bytes: chunk_bytes.max(4096),
            cache: Mutex::new(ByteLru::new(cache_bytes)),
            pending: Mutex::new(HashMap::new()),
            prefetching: AtomicU64::new(0),
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
    ) -> Result<RemoteRecords, RemoteError> {
        let began = Instant::now();
        let result = match self.store.local_file(&segment.log_key) {
            Some(path) => self.read_file(segment, path, offset, max_bytes as u64, min_one_batch).await,
            None => {
                self.read_batches(segment, offset, max_bytes as u64, min_one_batch).await.map(RemoteRecords::Pieces)
            }
        };
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        self.stats.read_micros.fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
        match &result {
            Ok(records) => {
                self.stats.read_bytes.fetch_add(records.len(), Ordering::Relaxed);
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
    ) -> Result<Vec<Bytes>, RemoteError> {
        let size = segment.size_bytes;
        let corrupt = |why: String| RemoteError::Corrupt { key: segment.log_key.clone(), why };
        let index = self.whole(segment, Part::Index).await?;
        let mut position = index_floor(&index, segment.base_offset, offset).unwrap_or(0);
        let mut start = None;
        let mut end = position;
        let mut previous_last = segment.base_offset - 1;
        while position + LOG_OVERHEAD as u64 <= size {
            let head = self.range(segment, position, (position + HEAD_BYTES).min(size)).await?;
            if head.len() < HEAD_BYTES as usize {
                return Err(corrupt(format!("a batch header cut short at {position}")));
            }
            let length = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
            let last = header_last_offset(&head, previous_last, segment.end_offset)
                .map_err(|why| corrupt(format!("at {position}: {why}")))?;
            previous_last = last;
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
        let Some(first) = start.filter(|first| end > *first) else { return Ok(Vec::new()) };
        let pieces = self.pieces(segment, first, end).await?;
        check_batches(&pieces, first).map_err(corrupt)?;
        self.read_ahead(segment, end, end - first);
        Ok(pieces)
    }

    /// [`RemoteReader::read`] from the local-directory backend's file: the range is read
    /// once (to check every batch's CRC) and then sent from the file, like a local segment.
    async fn read_file(
        &self,
        segment: &SegmentRef,
        path: std::path::PathBuf,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<RemoteRecords, RemoteError> {
        let index = self.whole(segment, Part::Index).await?;
        let position = index_floor(&index, segment.base_offset, offset).unwrap_or(0);
        let (key, size) = (segment.log_key.clone(), segment.size_bytes);
        let offsets = (segment.base_offset, segment.end_offset);
        tokio::task::spawn_blocking(move || {
            read_checked_range(&path, &key, (size, offsets), position, offset, max_bytes, min_one_batch)
        })
        .await
        .map_err(|e| RemoteError::Unavailable(e.to_string()))?
    }

    /// The first record at or above `min_offset` (the log start) whose timestamp is at or
    /// after `timestamp` in `segment`, as (offset, timestamp), by its time index and then
    /// its batches (`None`: every such record is older).
    pub async fn offset_for_timestamp(
        self: &Arc<Self>,
        segment: &SegmentRef,
        timestamp: i64,
        min_offset: i64,
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
                if let Some(found) = view.first_at_or_after_from(timestamp, min_offset) {
                    return Ok(Some(found));
                }
            }
            position = batch_end;
        }
        Ok(None)
    }

    /// The segment's transaction index object (Kafka's 34-byte entries), cached like its
    /// other indexes; `None` when it was uploaded without one (no aborted transaction).
    pub async fn transaction_index(&self, segment: &SegmentRef) -> Result<Option<Bytes>, RemoteError> {
        if segment.txn_index.is_none() {
            return Ok(None);
        }
        self.whole(segment, Part::TxnIndex).await.map(Some)
    }

    /// A whole index object, from the cache or the store (checked against its CRC32C).
    async fn whole(&self, segment: &SegmentRef, part: Part) -> Result<Bytes, RemoteError> {
        let cache_key = (segment.segment_id, part);
        if let Some(bytes) = self.cache.lock().expect("cache lock").get(&cache_key) {
            return Ok(bytes);
        }
        let (key, crc) = match (part, &segment.txn_index) {
            (Part::TimeIndex, _) => (&segment.time_index_key, segment.time_index_crc),
            (Part::TxnIndex, Some((key, crc))) => (key, Some(*crc)),
            _ => (&segment.index_key, segment.index_crc),
        };
        let bytes = self.store.get(key, crc).await?;
        self.stats.store_gets.fetch_add(1, Ordering::Relaxed);
        self.stats.store_get_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.cache.lock().expect("cache lock").insert(cache_key, bytes.clone());
        Ok(bytes)
    }

    /// Bytes `from..to` of the segment's `.log` as one buffer (copied only when it spans
    /// chunks: for batch headers).
    async fn range(&self, segment: &SegmentRef, from: u64, to: u64) -> Result<Bytes, RemoteError> {
        let pieces = self.pieces(segment, from, to).await?;
        if pieces.len() == 1 {
            return Ok(pieces.into_iter().next().expect("one piece"));
        }
        let mut out = BytesMut::with_capacity((to - from) as usize);
        for piece in pieces {
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    /// Bytes `from..to` of the segment's `.log` as slices of its chunks, the missing chunks
    /// fetched at once.
    async fn pieces(&self, segment: &SegmentRef, from: u64, to: u64) -> Result<Vec<Bytes>, RemoteError> {
        let first = from / self.chunk_bytes;
        let last = (to.max(from + 1) - 1) / self.chunk_bytes;
        let chunks = try_join_all((first..=last).map(|index| self.chunk(segment, index))).await?;
        Ok(chunks
            .into_iter()
            .zip(first..=last)
            .map(|(chunk, index)| {
                let chunk_start = index * self.chunk_bytes;
                let a = from.saturating_sub(chunk_start) as usize;
                let b = ((to - chunk_start) as usize).min(chunk.len());
                chunk.slice(a.min(b)..b)
            })
            .filter(|piece| !piece.is_empty())
            .collect())
    }

    /// One chunk: from the cache, or from the one request fetching it (started here when
    /// there is none).
    async fn chunk(&self, segment: &SegmentRef, index: u64) -> Result<Bytes, RemoteError> {
        let cache_key = (segment.segment_id, Part::Chunk(index));
        if let Some(bytes) = self.cache.lock().expect("cache lock").get(&cache_key) {
            return Ok(bytes);
        }
        let key = (segment.segment_id, index);
        let pending = self.pending.lock().expect("pending lock").entry(key).or_default().clone();
        let result = pending
            .get_or_init(|| async {
                let from = index * self.chunk_bytes;
                let to = (from + self.chunk_bytes).min(segment.size_bytes);
                let fetched = self.store.get_range(&segment.log_key, from..to).await;
                if let Ok(bytes) = &fetched {
                    self.stats.store_gets.fetch_add(1, Ordering::Relaxed);
                    self.stats.store_get_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    self.cache.lock().expect("cache lock").insert(cache_key, bytes.clone());
                }
                fetched
            })
            .await
            .clone();
        let mut all = self.pending.lock().expect("pending lock");
        if all.get(&key).is_some_and(|p| Arc::ptr_eq(p, &pending)) {
            all.remove(&key);
        }
        result
    }

    /// Fetches up to `bytes` of the segment from `position` into the cache in the
    /// background: the chunks not cached nor being fetched, at most [`PREFETCHES_MAX`] at
    /// a time in all.
    fn read_ahead(self: &Arc<Self>, segment: &SegmentRef, position: u64, bytes: u64) {
        let end = (position + bytes.max(1)).min(segment.size_bytes);
        if position >= end {
            return;
        }
        for index in position / self.chunk_bytes..=(end - 1) / self.chunk_bytes {
            let cached = self.cache.lock().expect("cache lock").contains(&(segment.segment_id, Part::Chunk(index)));
            let fetching = self.pending.lock().expect("pending lock").contains_key(&(segment.segment_id, index));
            if cached || fetching {
                continue;
            }
            if self.prefetching.fetch_add(1, Ordering::AcqRel) >= PREFETCHES_MAX as u64 {
                self.prefetching.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            let reader = self.clone();
            let segment = segment.clone();
            tokio::spawn(async move {
                let _ = reader.chunk(&segment, index).await;
                reader.prefetching.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }
}

/// How much of a local object one read brings in at a time (grown for a larger batch).
const WINDOW_BYTES: usize = 1 << 20;
/// A reading thread keeps its window buffer up to this size between reads.
const WINDOW_KEPT_BYTES: usize = 8 << 20;

thread_local! {
    /// The window buffer of this (blocking pool) thread: reused, so that reads do not
    /// fault in and zero fresh pages each time.
    static WINDOW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The local-directory backend's read: from `position` (an index entry's), the object is
/// read a window at a time into this thread's buffer, batches below `offset` skipped, and
/// every batch taken CRC-checked; the range is then sent from the file.
fn read_checked_range(
    path: &std::path::Path,
    key: &str,
    (size, (segment_base, segment_end)): (u64, (i64, i64)),
    position: u64,
    offset: i64,
    max_bytes: u64,
    min_one_batch: bool,
) -> Result<RemoteRecords, RemoteError> {
    use std::os::unix::fs::FileExt;
    let corrupt = |why: String| RemoteError::Corrupt { key: key.to_string(), why };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RemoteError::NotFound(key.to_string()),
        _ => RemoteError::Unavailable(format!("{}: {e}", path.display())),
    })?;
    let unavailable = |e: std::io::Error| RemoteError::Unavailable(format!("{}: {e}", path.display()));
    if file.metadata().map_err(unavailable)?.len() < size {
        return Err(corrupt(format!("shorter than the {size} bytes recorded")));
    }
    let result = WINDOW.with_borrow_mut(|buffer| {
        let mut window = WINDOW_BYTES;
        let mut position = position;
        let mut first: Option<u64> = None;
        let mut end = position;
        let mut previous_last = segment_base - 1;
        'windows: while position + LOG_OVERHEAD as u64 <= size {
            let len = (window as u64).min(size - position) as usize;
            if buffer.len() < len {
                buffer.resize(len, 0);
            }
            file.read_exact_at(&mut buffer[..len], position).map_err(unavailable)?;
            let mut at = 0usize;
            loop {
                let here = position + at as u64;
                if here + LOG_OVERHEAD as u64 > size {
                    break 'windows;
                }
                if at + HEAD_BYTES as usize > len {
                    if at == 0 {
                        return Err(corrupt(format!("a batch header cut short at {here}")));
                    }
                    break;
                }
                let head = &buffer[at..at + HEAD_BYTES as usize];
                let length = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
                let last = header_last_offset(head, previous_last, segment_end)
                    .map_err(|why| corrupt(format!("at {here}: {why}")))?;
                let batch = usize::try_from(length)
                    .ok()
                    .filter(|l| *l >= HEADER_BYTES - LOG_OVERHEAD && here + (LOG_OVERHEAD + l) as u64 <= size)
                    .map(|l| LOG_OVERHEAD + l)
                    .ok_or_else(|| corrupt(format!("a batch at {here} claims {length} bytes")))?;
                if at + batch > len {
                    window = window.max(batch);
                    break; // read again from this batch, in a window it fits
                }
                previous_last = last;
                if last >= offset {
                    let from = *first.get_or_insert(here);
                    if here + batch as u64 - from > max_bytes && !(min_one_batch && from == here) {
                        break 'windows;
                    }
                    check_one(&buffer[at..at + batch], here).map_err(corrupt)?;
                    end = here + batch as u64;
                }
                at += batch;
                if first.is_some_and(|from| end - from >= max_bytes) {
                    break 'windows;
                }
            }
            position += at as u64;
        }
        let first = first.unwrap_or(end).min(end);
        Ok((first, end))
    });
    // However the read ended, a window grown for a large batch is not kept.
    WINDOW.with_borrow_mut(|buffer| {
        if buffer.len() > WINDOW_KEPT_BYTES {
            buffer.truncate(WINDOW_KEPT_BYTES);
            buffer.shrink_to_fit();
        }
    });
    let (first, end) = result?;
    Ok(RemoteRecords::File { file: Arc::new(file), position: first, len: end - first })
}

/// A batch header's last offset, checked against the batch before it (offsets go up) and
/// the segment's last offset: the base offset is outside the CRC, so a corrupt one is
/// caught here.
fn header_last_offset(head: &[u8], previous_last: i64, segment_end: i64) -> Result<i64, String> {
    let base = i64::from_be_bytes(head[0..8].try_into().expect("8 bytes"));
    let delta = i32::from_be_bytes(head[23..27].try_into().expect("4 bytes"));
    base.checked_add(i64::from(delta))
        .filter(|last| base > previous_last && *last >= base && *last <= segment_end)
        .ok_or_else(|| format!("offsets {base}+{delta} after {previous_last}, segment ends at {segment_end}"))
}

/// Checks every batch of `pieces` (consecutive, whole batches from `first`, a position in
/// the segment): its framing and CRC. A batch split between pieces is joined to be checked.
fn check_batches(pieces: &[Bytes], first: u64) -> Result<(), String> {
    let batch_len = |head: &[u8]| {
        usize::try_from(i32::from_be_bytes(head[8..12].try_into().expect("4 bytes")))
            .map(|length| LOG_OVERHEAD + length)
            .map_err(|_| "a negative batch length".to_string())
    };
    let mut joined = BytesMut::new();
    let mut position = first;
    for piece in pieces {
        let mut at = 0usize;
        if !joined.is_empty() {
            // Complete the batch that began in an earlier piece.
            if joined.len() < LOG_OVERHEAD {
                let take = (LOG_OVERHEAD - joined.len()).min(piece.len());
                joined.extend_from_slice(&piece[..take]);
                at = take;
                if joined.len() < LOG_OVERHEAD {
                    continue;
                }
            }
            let total = batch_len(&joined)?;
            let take = total.saturating_sub(joined.len()).min(piece.len() - at);
            joined.extend_from_slice(&piece[at..at + take]);
            at += take;
            if joined.len() < total {
                continue;
            }
            check_one(&joined, position)?;
            position += joined.len() as u64;
            joined.clear();
        }
        while at < piece.len() {
            let rest = &piece[at..];
            if rest.len() < LOG_OVERHEAD || rest.len() < batch_len(rest)? {
                joined.extend_from_slice(rest);
                break;
            }
            let total = batch_len(rest)?;
            check_one(&rest[..total], position)?;
            position += total as u64;
            at += total;
        }
    }
    if joined.is_empty() {
        Ok(())
    } else {
        Err(format!("a batch at {position} is cut short"))
    }
}

fn check_one(batch: &[u8], position: u64) -> Result<(), String> {
    BatchView::parse(batch).and_then(|view| view.check_crc()).map_err(|e| format!("batch at {position}: {e}"))
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
    fn batches_split_anywhere_between_pieces_are_checked_whole() {
        let mut log = Vec::new();
        for i in 0..4u8 {
            let mut batch = runnel_protocol::batch::build_batch(1_000, &[[i; 300].as_slice()]);
            runnel_protocol::batch::BatchMut::new(&mut batch).set_base_offset(i64::from(i));
            log.extend_from_slice(&batch);
        }
        let whole = Bytes::from(log.clone());
        for split in [1, 5, 12, 13, 100, log.len() / 2, log.len() - 1] {
            let pieces = [whole.slice(..split), whole.slice(split..)];
            assert_eq!(check_batches(&pieces, 0), Ok(()), "split at {split}");
        }
        let mut corrupt = log.clone();
        corrupt[log.len() / 3] ^= 1;
        let corrupt = Bytes::from(corrupt);
        let pieces = [corrupt.slice(..7), corrupt.slice(7..)];
        assert!(check_batches(&pieces, 0).is_err(), "a flipped byte fails its batch's CRC");
        assert!(check_batches(&[whole.slice(..whole.len() - 3)], 0).is_err(), "a batch cut short");
    }

    /// Batches of 300 KB, and one of 1.5 MB: reads cross windows and grow one.
    fn segment_file() -> (tempfile::NamedTempFile, Vec<u64>, u64) {
        let mut log = Vec::new();
        let mut starts = Vec::new();
        for i in 0..8u8 {
            let value = vec![i; if i == 5 { 1_500_000 } else { 300_000 }];
            let mut batch = runnel_protocol::batch::build_batch(1_000, &[value.as_slice()]);
            runnel_protocol::batch::BatchMut::new(&mut batch).set_base_offset(i64::from(i));
            starts.push(log.len() as u64);
            log.extend_from_slice(&batch);
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &log).unwrap();
        let size = log.len() as u64;
        (file, starts, size)
    }

    fn range(records: RemoteRecords) -> (u64, u64) {
        match records {
            RemoteRecords::File { position, len, .. } => (position, position + len),
            RemoteRecords::Pieces(_) => panic!("pieces from a file"),
        }
    }

    #[test]
    fn a_local_read_skips_to_the_offset_and_takes_checked_whole_batches_within_the_bound() {
        let (file, starts, size) = segment_file();
        let read = |position, offset, max, min_one| {
            read_checked_range(file.path(), "k", (size, (0, 7)), position, offset, max, min_one).map(range)
        };
        assert_eq!(read(0, 2, u64::MAX, false), Ok((starts[2], size)), "across windows, the large batch too");
        assert_eq!(read(starts[1], 2, 700_000, false), Ok((starts[2], starts[4])));
        assert_eq!(read(0, 5, 10, true), Ok((starts[5], starts[6])), "one required batch, larger than a window");
        let (from, to) = read(0, 5, 10, false).unwrap();
        assert_eq!(from, to, "nothing when the first batch is too large and not required");
        let (from, to) = read(0, 9, u64::MAX, false).unwrap();
        assert_eq!(from, to, "nothing at or past the end");
        let mut bytes = std::fs::read(file.path()).unwrap();
        // Base offsets are outside the CRC: one that goes back, or past the segment, is refused.
        for base in [0i64, 1_000] {
            let mut moved = bytes.clone();
            moved[starts[2] as usize..starts[2] as usize + 8].copy_from_slice(&base.to_be_bytes());
            std::fs::write(file.path(), &moved).unwrap();
            assert!(matches!(read(0, 0, u64::MAX, false), Err(RemoteError::Corrupt { .. })), "base {base}");
        }
        bytes[starts[3] as usize + 1_000] ^= 1;
        std::fs::write(file.path(), &bytes).unwrap();
        assert!(matches!(read(0, 0, u64::MAX, false), Err(RemoteError::Corrupt { .. })));
        assert_eq!(read(0, 0, starts[3], false), Ok((0, starts[3])), "the batches before it are fine");
        bytes[starts[1] as usize + 8..starts[1] as usize + 12].copy_from_slice(&i32::MAX.to_be_bytes());
        std::fs::write(file.path(), &bytes).unwrap();
        assert!(matches!(read(0, 0, u64::MAX, false), Err(RemoteError::Corrupt { .. })), "a length past the end");
        assert!(matches!(
            read_checked_range(file.path(), "k", (size + 1, (0, 7)), 0, 0, 1, false),
            Err(RemoteError::Corrupt { .. })
        ));
    }

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
