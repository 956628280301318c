//! Runnel patch: decoding a hostile frame must not allocate by the lengths and counts it claims.
//!
//! A tracking allocator records the largest single allocation each test thread makes, so the
//! tests see a reservation even when the system would grant it lazily.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::string::String as StdString;

use anyhow::Result;
use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;

use super::buf::NotEnoughBytesError;
use super::types::{self, RESERVE_BYTES_MAX, TAGGED_FIELDS_MAX};
use super::{Decodable, Decoder, Encodable, StrBytes};
use crate::messages::create_topics_request::CreatableTopic;
use crate::messages::{ApiVersionsRequest, CreateTopicsRequest, TopicName};
use crate::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(bytes: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(bytes)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f`; returns its result and the largest single allocation it made.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|largest| largest.set(0));
    let result = f();
    (result, LARGEST.with(|largest| largest.get()))
}

fn frame(head: &[u8], body_byte: u8, body_bytes: usize) -> Bytes {
    let mut buf = BytesMut::from(head);
    buf.put_bytes(body_byte, body_bytes);
    buf.freeze()
}

const MIB: usize = 1024 * 1024;
/// Room for an error value, with the backtrace `anyhow` captures when `RUST_BACKTRACE` is set.
const SMALL: usize = 16 * 1024;

#[test]
fn an_array_count_beyond_the_bytes_left_fails_before_reserving() {
    // CreateTopics v2 (Array) and v5 (CompactArray) claiming 2^31 topics, then 1 MiB of zeros.
    let cases: [(i16, &[u8]); 2] = [
        (2, &[0x7f, 0xff, 0xff, 0xff]),
        (5, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (version, count) in cases {
        let mut buf = frame(count, 0, MIB);
        let (decoded, largest) =
            largest_allocation(|| CreateTopicsRequest::decode(&mut buf, version));
        let error = decoded.expect_err("more topics than bytes");
        assert!(
            error.downcast_ref::<NotEnoughBytesError>().is_some(),
            "v{version}: {error}"
        );
        assert!(
            largest <= RESERVE_BYTES_MAX,
            "v{version}: reserved {largest} bytes"
        );
    }
}

#[test]
fn an_array_reservation_is_capped_by_bytes_however_many_elements_fit() {
    // 2^20 topics claimed and 2^20 bytes left: a count that fits the bytes, but the first
    // topic is already junk (a null name). Reserving 2^20 topics would take ~100 MiB.
    let mut buf = frame(&[0x00, 0x10, 0x00, 0x00], 0xff, MIB);
    let (decoded, largest) = largest_allocation(|| CreateTopicsRequest::decode(&mut buf, 2));
    let error = decoded.expect_err("a null topic name");
    assert!(
        error.to_string().contains("String length is negative"),
        "{error}"
    );
    assert!(largest <= RESERVE_BYTES_MAX, "reserved {largest} bytes");

    // Arrays longer than the up-front reservation still decode whole.
    let topics: Vec<CreatableTopic> = (0..5000)
        .map(|i| {
            CreatableTopic::default().with_name(TopicName(StrBytes::from_string(format!("t{i}"))))
        })
        .collect();
    let request = CreateTopicsRequest::default().with_topics(topics);
    for version in [2, 5] {
        let mut encoded = BytesMut::new();
        request.encode(&mut encoded, version).unwrap();
        let decoded = CreateTopicsRequest::decode(&mut encoded.freeze(), version).unwrap();
        assert_eq!(decoded, request, "v{version}");
    }
}

#[test]
fn string_and_bytes_lengths_beyond_the_bytes_left_fail_before_allocating() {
    let tail = b"abc";
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("String", vec![0x7f, 0xff]),
        ("CompactString", vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("Bytes", vec![0x7f, 0xff, 0xff, 0xff]),
        ("CompactBytes", vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (name, head) in &mut cases {
        head.extend_from_slice(tail);
        let mut buf = &head[..];
        let (failed, largest) = largest_allocation(|| match *name {
            "String" => Decoder::<Option<StdString>>::decode(&types::String, &mut buf).is_err(),
            "CompactString" => {
                Decoder::<Option<StdString>>::decode(&types::CompactString, &mut buf).is_err()
            }
            "Bytes" => Decoder::<Option<Vec<u8>>>::decode(&types::Bytes, &mut buf).is_err(),
            _ => Decoder::<Option<Vec<u8>>>::decode(&types::CompactBytes, &mut buf).is_err(),
        });
        assert!(failed, "{name}");
        assert!(largest <= SMALL, "{name}: allocated {largest} bytes");
    }
    // Lengths that fit still decode.
    let decoded: Result<Option<StdString>> =
        types::CompactString.decode(&mut &[0x04, b'a', b'b', b'c'][..]);
    assert_eq!(decoded.unwrap().as_deref(), Some("abc"));
    let decoded: Result<Option<Vec<u8>>> = types::Bytes.decode(&mut &[0, 0, 0, 2, 7, 8][..]);
    assert_eq!(decoded.unwrap(), Some(vec![7, 8]));
}

/// ApiVersions v3 (flexible): two empty compact strings, then `count` empty unknown tagged
/// fields with tags 100, 101, ...
fn api_versions_with_tagged_fields(count: u32) -> Bytes {
    let mut buf = BytesMut::from(&[0x01, 0x01][..]);
    let varint = |buf: &mut BytesMut, mut value: u32| {
        while value >= 0x80 {
            buf.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        buf.put_u8(value as u8);
    };
    varint(&mut buf, count);
    for tag in 100..100 + count {
        varint(&mut buf, tag);
        varint(&mut buf, 0);
    }
    buf.freeze()
}

#[test]
fn a_struct_carries_at_most_64_tagged_fields() {
    let decoded =
        ApiVersionsRequest::decode(&mut api_versions_with_tagged_fields(TAGGED_FIELDS_MAX), 3)
            .unwrap();
    assert_eq!(
        decoded.unknown_tagged_fields.len(),
        TAGGED_FIELDS_MAX as usize
    );

    let over = ApiVersionsRequest::decode(
        &mut api_versions_with_tagged_fields(TAGGED_FIELDS_MAX + 1),
        3,
    );
    assert!(over
        .expect_err("65 tagged fields")
        .to_string()
        .contains("tagged fields exceed"));
    // A frame of nothing but empty tagged fields fails at the count, before building a map.
    let mut buf = api_versions_with_tagged_fields(500_000);
    let (decoded, largest) = largest_allocation(|| ApiVersionsRequest::decode(&mut buf, 3));
    assert!(decoded.is_err());
    assert!(largest <= SMALL, "allocated {largest} bytes");
}

/// A record batch of one record, re-framed around `records` (the raw records section) with
/// `record_count` claimed and the CRC recomputed.
fn batch_with(records: &[u8], record_count: i32) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        sequence: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: IndexMap::new(),
    };
    let mut encoded = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut encoded, [&record], &options).unwrap();
    // baseOffset(8) batchLength(4) leaderEpoch(4) magic(1) crc(4) ... recordCount at 57..61.
    let mut batch = encoded[..61].to_vec();
    batch.extend_from_slice(records);
    batch[57..61].copy_from_slice(&record_count.to_be_bytes());
    let batch_length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(batch)
}

#[test]
fn record_and_header_counts_reserve_a_bounded_amount() {
    // One well-formed record (empty body, no headers), then 1 MiB of zeros, claiming 2^31 records.
    let record = [0x0c, 0, 0, 0, 0x01, 0x01, 0]; // size 6 | attrs | ts | offset | key -1 | value -1 | 0 headers
    let mut records = record.to_vec();
    records.resize(record.len() + MIB, 0);
    let mut buf = batch_with(&records, i32::MAX);
    let (decoded, largest) = largest_allocation(|| RecordBatchDecoder::decode(&mut buf));
    assert!(decoded.is_err());
    assert!(largest <= 2 * RESERVE_BYTES_MAX, "reserved {largest} bytes");

    // One record claiming 2^31 - 1 headers, with no bytes left for them.
    let record = [0x14, 0, 0, 0, 0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    let mut buf = batch_with(&record, 1);
    let (decoded, largest) = largest_allocation(|| RecordBatchDecoder::decode(&mut buf));
    assert!(decoded.is_err());
    assert!(largest <= 2 * RESERVE_BYTES_MAX, "reserved {largest} bytes");

    // A well-formed batch still decodes.
    let record = [0x0c, 0, 0, 0, 0x01, 0x01, 0];
    let decoded = RecordBatchDecoder::decode(&mut batch_with(&record, 1)).unwrap();
    assert_eq!(decoded.records.len(), 1);
}
