//! The console's message browser: records of one partition from an offset or a time, read
//! with Fetch from the partition's leader (read_uncommitted, as a plain consumer), batches
//! decompressed here, control batches left out. Keys, values and header values go to the
//! page as base64; the page shows them as text, JSON or hex.
//!
//! Bounded: at most [`LIMIT_MAX`] records a page, [`PAGE_BYTES_MAX`] of keys, values and
//! header values a page (a record's field beyond what is left is cut and marked
//! `truncated`), [`FETCH_BYTES_MAX`] a fetch, [`FETCHES_MAX`] fetches a page,
//! [`DECOMPRESSED_BYTES_MAX`] per batch decompressed.

use base64::Engine as _;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use runnel_client::security::ClientSecurity;
use runnel_client::Connection;
use runnel_protocol::batch::{BatchIter, BatchView, HEADER_BYTES};
use runnel_protocol::compression::RecordStream;
use serde_json::{json, Value};

use super::ApiError;

pub const LIMIT_MAX: usize = 100;
const LIMIT_DEFAULT: usize = 20;
pub const FETCH_BYTES_MAX: i32 = 1024 * 1024;
const FETCHES_MAX: usize = 4;
pub const DECOMPRESSED_BYTES_MAX: usize = 16 * 1024 * 1024;
pub const PAGE_BYTES_MAX: usize = 1024 * 1024;
const FETCH_VERSION: i16 = 12;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Offset(i64),
    /// The first record at or after this time (epoch ms).
    Timestamp(i64),
    /// The last `limit` records.
    Newest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub partition: i32,
    pub start: Start,
    pub limit: usize,
}

impl Query {
    pub fn parse(pairs: &[(String, String)]) -> Result<Query, ApiError> {
        let get = |key: &str| pairs.iter().find(|(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.trim());
        let whole = |key: &str, text: &str| {
            text.parse::<i64>().map_err(|_| ApiError::Bad(format!("`{key}` must be a whole number, not {text}")))
        };
        let partition = match get("partition") {
            None => 0,
            Some(text) => {
                i32::try_from(whole("partition", text)?).map_err(|_| ApiError::Bad("bad partition".into()))?
            }
        };
        let start = match (get("offset"), get("timestamp")) {
            (Some(offset), _) => Start::Offset(whole("offset", offset)?),
            (None, Some(time)) => Start::Timestamp(crate::group::parse_timestamp(time)?),
            (None, None) => Start::Newest,
        };
        let limit = match get("limit") {
            None => LIMIT_DEFAULT,
            Some(text) => usize::try_from(whole("limit", text)?).unwrap_or(0).clamp(1, LIMIT_MAX),
        };
        Ok(Query { partition, start, limit })
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn read_varint(bytes: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// A record's headers (as encoded in the batch) as `[{key, value}]`, values in base64.
fn headers(mut encoded: &[u8], page: &mut Page) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(count) = read_varint(&mut encoded) else { return out };
    for _ in 0..count.max(0) {
        let Some(key_len) = read_varint(&mut encoded).and_then(|l| usize::try_from(l).ok()) else { break };
        let Some((key, rest)) = encoded.split_at_checked(key_len) else { break };
        encoded = rest;
        let Some(value_len) = read_varint(&mut encoded) else { break };
        let value = match usize::try_from(value_len) {
            Err(_) => None,
            Ok(len) => {
                let Some((value, rest)) = encoded.split_at_checked(len) else { break };
                encoded = rest;
                Some(page.field(value))
            }
        };
        out.push(json!({ "key": String::from_utf8_lossy(key), "value": value }));
    }
    out
}

/// A page being filled: its records and the bytes of fields it may still take.
struct Page {
    records: Vec<Value>,
    bytes_left: usize,
    truncated: bool,
}

impl Page {
    fn new() -> Page {
        Page { records: Vec::new(), bytes_left: PAGE_BYTES_MAX, truncated: false }
    }

    /// A field in base64, cut to what the page may still take.
    fn field(&mut self, bytes: &[u8]) -> String {
        let kept = bytes.len().min(self.bytes_left);
        self.truncated |= kept < bytes.len();
        self.bytes_left -= kept;
        base64(&bytes[..kept])
    }

    fn full(&self, limit: usize) -> bool {
        self.records.len() >= limit || self.bytes_left == 0
    }
}

/// The records of the batches in `records` at or after `from`, until the page is full; the
/// offset after the last one taken.
fn decode(records: &[u8], from: i64, limit: usize, page: &mut Page) -> Result<Option<i64>, ApiError> {
    let mut next = None;
    for (_, batch) in BatchIter::new(records).flatten() {
        if batch.last_offset() < from || page.full(limit) {
            continue;
        }
        next = Some(batch.last_offset() + 1);
        if batch.is_control() {
            continue;
        }
        decode_batch(&batch, from, limit, page)?;
        if page.full(limit) {
            let last = page.records.last().and_then(|r| r["offset"].as_i64()).unwrap_or(from);
            return Ok(Some(last + 1));
        }
    }
    Ok(next)
}

fn decode_batch(batch: &BatchView<'_>, from: i64, limit: usize, page: &mut Page) -> Result<(), ApiError> {
    let corrupt = |e: runnel_protocol::batch::BatchError| ApiError::Bad(format!("a batch could not be read: {e:?}"));
    let codec = batch.compression().map_err(corrupt)?;
    let mut stream =
        RecordStream::new(codec, &batch.bytes()[HEADER_BYTES..], DECOMPRESSED_BYTES_MAX).map_err(corrupt)?;
    while let Some(record) = stream.next_record().map_err(corrupt)? {
        let offset = batch.base_offset() + record.offset_delta;
        if offset < from {
            continue;
        }
        if page.full(limit) {
            break;
        }
        let timestamp = if batch.is_log_append_time() {
            batch.max_timestamp()
        } else {
            batch.base_timestamp() + record.timestamp_delta
        };
        let key = record.key.as_deref().map(|k| page.field(k));
        let value = record.value.as_deref().map(|v| page.field(v));
        let headers = headers(&record.headers, page);
        page.records.push(json!({
            "offset": offset,
            "timestamp": timestamp,
            "key": key,
            "value": value,
            "headers": headers,
        }));
    }
    Ok(())
}

/// One page of `topic`'s partition as the query asks.
pub async fn messages(
    conn: &mut Connection,
    security: &ClientSecurity,
    topic: &str,
    query: &Query,
) -> Result<Value, ApiError> {
    let metadata = crate::offsets::metadata(conn, Some(&[topic])).await?;
    let partitions = std::collections::BTreeSet::from([query.partition]);
    let missing = || ApiError::NotFound(format!("{topic} has no partition {}", query.partition));
    let list = |timestamp| crate::offsets::of_partitions(&metadata, security, topic, &partitions, timestamp);
    let earliest = *list(crate::offsets::EARLIEST).await?.get(&query.partition).ok_or_else(missing)?;
    let latest = *list(crate::offsets::LATEST).await?.get(&query.partition).ok_or_else(missing)?;
    let from = match query.start {
        Start::Offset(offset) => offset.max(earliest).min(latest),
        Start::Newest => (latest - query.limit as i64).max(earliest),
        Start::Timestamp(time) => {
            let found = *list(time).await?.get(&query.partition).ok_or_else(missing)?;
            if found < 0 {
                latest
            } else {
                found
            }
        }
    };
    let leader = crate::connect::partition_leader(&metadata, query.partition)
        .ok_or_else(|| ApiError::Unavailable(format!("{topic}-{} has no leader now", query.partition)))?;
    let mut leader = crate::connect::connect_to_node(&metadata, leader, security).await?;
    let mut page = Page::new();
    let mut position = from;
    for _ in 0..FETCHES_MAX {
        if page.full(query.limit) || position >= latest {
            break;
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(FETCH_BYTES_MAX)
            .with_isolation_level(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(query.partition)
                    .with_fetch_offset(position)
                    .with_partition_max_bytes(FETCH_BYTES_MAX)])]);
        let response = leader.send(&request, FETCH_VERSION).await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let Some(answer) = response.responses.iter().flat_map(|t| t.partitions.iter()).next() else { break };
        crate::connect::check(answer.error_code, None, &format!("fetching {topic}-{}", query.partition))?;
        let Some(bytes) = &answer.records else { break };
        match decode(bytes, position, query.limit, &mut page)? {
            Some(next) if next > position => position = next,
            _ => break,
        }
    }
    Ok(json!({
        "topic": topic,
        "partition": query.partition,
        "earliest_offset": earliest,
        "latest_offset": latest,
        "from": from,
        "next_offset": position,
        "records": page.records,
        "truncated": page.truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::batch::Compression;

    fn pairs(text: &str) -> Vec<(String, String)> {
        super::super::http::parse_query(text)
    }

    #[test]
    fn a_query_names_a_partition_and_where_to_start_within_bounds() {
        let q = Query::parse(&pairs("partition=2&offset=40&limit=500")).unwrap();
        assert_eq!(q, Query { partition: 2, start: Start::Offset(40), limit: LIMIT_MAX });
        let q = Query::parse(&pairs("timestamp=1970-01-01T00:00:01Z")).unwrap();
        assert_eq!(q, Query { partition: 0, start: Start::Timestamp(1000), limit: LIMIT_DEFAULT });
        assert_eq!(Query::parse(&pairs("")).unwrap().start, Start::Newest);
        assert!(matches!(Query::parse(&pairs("offset=x")), Err(ApiError::Bad(_))));
    }

    #[test]
    fn compressed_batches_decode_from_the_asked_offset_with_headers() {
        let values: Vec<Vec<u8>> = (0..10).map(|i| format!("v{i}").into_bytes()).collect();
        let kvs: Vec<runnel_protocol::batch::KeyValue> =
            values.iter().map(|v| (Some(&b"k"[..]), Some(v.as_slice()))).collect();
        let mut batch = runnel_protocol::batch::build_batch_compressed(1_000, &kvs, Compression::Lz4);
        runnel_protocol::batch::BatchMut::new(&mut batch).set_base_offset(100);
        let mut page = Page::new();
        let next = decode(&batch, 104, 3, &mut page).unwrap();
        let offsets: Vec<i64> = page.records.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
        assert_eq!(offsets, [104, 105, 106]);
        assert_eq!(next, Some(107));
        assert_eq!(page.records[0]["value"], json!(base64(b"v4")));
        let encoded = [4u8, 2, b'a', 2, b'b', 2, b'c', 1];
        assert_eq!(
            headers(&encoded, &mut Page::new()),
            vec![json!({"key": "a", "value": base64(b"b")}), json!({"key": "c", "value": null})]
        );
    }

    #[test]
    fn a_page_holds_at_most_its_bytes_and_cuts_what_does_not_fit() {
        let big = vec![b'x'; PAGE_BYTES_MAX - 10];
        let kvs: Vec<runnel_protocol::batch::KeyValue> =
            vec![(None, Some(big.as_slice())), (None, Some(&b"0123456789abcdef"[..])), (None, Some(&b"z"[..]))];
        let batch = runnel_protocol::batch::build_batch_compressed(1_000, &kvs, Compression::Zstd);
        let mut page = Page::new();
        let next = decode(&batch, 0, 100, &mut page).unwrap();
        assert_eq!(page.records.len(), 2, "the page is full after the record that filled it");
        assert_eq!(page.records[1]["value"], json!(base64(b"0123456789")), "cut to what was left");
        assert!(page.truncated);
        assert_eq!(next, Some(2));
    }
}
