//! Tests of the batch view: framing, validation, stamping, compressed records.
use super::*;

fn keyed(n: usize, keyless_at: Option<usize>) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    (0..n)
        .map(|i| ((Some(i) != keyless_at).then(|| format!("k{i}").into_bytes()), format!("v{i}").into_bytes()))
        .collect()
}

fn as_records(owned: &[(Option<Vec<u8>>, Vec<u8>)]) -> Vec<KeyValue<'_>> {
    owned.iter().map(|(k, v)| (k.as_deref(), Some(v.as_slice()))).collect()
}

const COMPRESSED: [Compression; 4] = [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

#[test]
fn compressed_batches_are_counted_and_compacted_topics_need_keys() {
    let open = RecordChecks::for_topic(false);
    let compacted = RecordChecks::for_topic(true);
    for codec in COMPRESSED {
        let good = build_batch_compressed(1_000, &as_records(&keyed(5, None)), codec);
        let view = BatchView::parse(&good).unwrap();
        assert_eq!(view.compression().unwrap(), codec);
        view.validate().unwrap();
        assert_eq!(view.validate_records(compacted), Ok(()), "{codec:?}");
        let keyless = build_batch_compressed(1_000, &as_records(&keyed(5, Some(3))), codec);
        let view = BatchView::parse(&keyless).unwrap();
        assert_eq!(view.validate_records(open), Ok(()), "{codec:?}: keys are optional elsewhere");
        let refused = view.validate_records(compacted).unwrap_err();
        assert_eq!(refused.response_error(), ResponseError::InvalidRecord, "{codec:?}");
        // A header claiming more records than the compressed region holds.
        let mut lying = build_batch_compressed(1_000, &as_records(&keyed(5, None)), codec);
        lying[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&6i32.to_be_bytes());
        lying[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&lying[OFF_ATTRIBUTES..]);
        lying[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let view = BatchView::parse(&lying).unwrap();
        view.validate().unwrap();
        assert_eq!(view.validate_records(open).unwrap_err().response_error(), ResponseError::InvalidRecord);
        // Garbage behind a valid header and CRC.
        let mut garbage = good[..HEADER_BYTES].to_vec();
        garbage.extend_from_slice(b"definitely not compressed");
        let length = i32::try_from(garbage.len() - LOG_OVERHEAD).unwrap();
        garbage[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&garbage[OFF_ATTRIBUTES..]);
        garbage[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let err = BatchView::parse(&garbage).unwrap().validate_records(open).unwrap_err();
        assert_eq!(err.response_error(), ResponseError::CorruptMessage, "{codec:?}: {err}");
    }
    let plain_keyless = build_batch_records(1_000, &as_records(&keyed(3, Some(0))));
    let view = BatchView::parse(&plain_keyless).unwrap();
    assert!(view.validate_records(open).is_ok() && view.validate_records(compacted).is_err());
}

#[test]
fn recompression_keeps_the_records_and_the_header() {
    let records = keyed(8, None);
    let lz4 = build_batch_compressed(5_000, &as_records(&records), Compression::Lz4);
    let lz4_view = BatchView::parse(&lz4).unwrap();
    for target in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let again = recompress_batch(&lz4_view, target, Some(5), DECOMPRESSED_BATCH_BYTES_MAX).unwrap();
        let view = BatchView::parse(&again).unwrap();
        view.validate().unwrap();
        assert_eq!(view.compression().unwrap(), target);
        assert_eq!(
            (view.record_count(), view.base_timestamp(), view.max_timestamp()),
            (8, 5_000, lz4_view.max_timestamp())
        );
        assert_eq!(view.validate_records(RecordChecks::for_topic(true)), Ok(()));
        let plain = crate::compression::decompress(target, &again[HEADER_BYTES..], 1 << 20).unwrap();
        assert_eq!(plain, build_batch_records(5_000, &as_records(&records))[HEADER_BYTES..]);
    }
}

#[test]
fn a_timestamp_search_finds_the_exact_record_in_a_compressed_batch() {
    let records = keyed(10, None);
    for codec in COMPRESSED {
        let mut batch = build_batch_compressed(1_000, &as_records(&records), codec);
        BatchMut::new(&mut batch).set_base_offset(100);
        let view = BatchView::parse(&batch).unwrap();
        // build_batch_records stamps record i at base_timestamp + i.
        assert_eq!(view.first_at_or_after(1_004), Some((104, 1_004)), "{codec:?}");
        assert_eq!(view.first_at_or_after(0), Some((100, 1_000)));
        assert_eq!(view.first_at_or_after(1_010), None);
        // From a log start inside the batch: the first record at or above it.
        assert_eq!(view.first_at_or_after_from(1_002, 106), Some((106, 1_006)), "{codec:?}");
        assert_eq!(view.first_at_or_after_from(1_007, 106), Some((107, 1_007)));
        assert_eq!(view.first_at_or_after_from(0, 200), None, "every record is below the start");
    }
}

#[test]
fn built_batch_validates_and_offsets_stamp_outside_crc() {
    let mut batch = build_batch(1000, &[b"a", b"bc", b"def"]);
    BatchView::parse(&batch).unwrap().validate().unwrap();
    let mut view = BatchMut::new(&mut batch);
    view.set_base_offset(42);
    view.set_partition_leader_epoch(7);
    let view = BatchView::parse(&batch).unwrap();
    view.validate().unwrap();
    assert_eq!(view.base_offset(), 42);
    assert_eq!(view.last_offset(), 44);
    assert_eq!(view.partition_leader_epoch(), 7);
    assert_eq!(view.max_timestamp(), 1002);
}

#[test]
fn records_read_back_keys_and_values() {
    let batch = build_batch_with_keys(0, &[(Some(b"k"), b"v1"), (None, b"v2")]);
    let records = BatchView::parse(&batch).unwrap().records().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key, Some(&b"k"[..]));
    assert_eq!(records[1].value, Some(&b"v2"[..]));
    assert_eq!(records[1].offset_delta, 1);
}

#[test]
fn null_values_read_back_as_tombstones() {
    let batch = build_batch_records(0, &[(Some(b"k"), None), (None, Some(b""))]);
    BatchView::parse(&batch).unwrap().validate().unwrap();
    let records = BatchView::parse(&batch).unwrap().records().unwrap();
    assert_eq!((records[0].key, records[0].value), (Some(&b"k"[..]), None));
    assert_eq!((records[1].key, records[1].value), (None, Some(&b""[..])));
}

#[test]
fn timestamp_lookup_is_exact_inside_an_uncompressed_batch() {
    let mut batch = build_batch(100, &[b"a", b"b", b"c"]);
    BatchMut::new(&mut batch).set_base_offset(10);
    let view = BatchView::parse(&batch).unwrap();
    assert_eq!(view.first_at_or_after(101), Some((11, 101)));
    assert_eq!(view.first_at_or_after(0), Some((10, 100)));
    assert_eq!(view.first_at_or_after(103), None);
}

#[test]
fn flipped_payload_bit_is_a_crc_error() {
    let mut batch = build_batch(0, &[b"hello"]);
    let last = batch.len() - 2;
    batch[last] ^= 1;
    let err = BatchView::parse(&batch).unwrap().validate().unwrap_err();
    assert_eq!(err.response_error(), ResponseError::CorruptMessage);
}

#[test]
fn wrong_count_is_invalid_record() {
    let mut batch = build_batch(0, &[b"x", b"y"]);
    batch[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&3i32.to_be_bytes());
    batch[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4].copy_from_slice(&2i32.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    let err = BatchView::parse(&batch).unwrap().validate().unwrap_err();
    assert_eq!(err.response_error(), ResponseError::InvalidRecord);
}

#[test]
fn log_append_time_rewrites_crc() {
    let mut batch = build_batch(5, &[b"x"]);
    BatchMut::new(&mut batch).set_log_append_time(99);
    let view = BatchView::parse(&batch).unwrap();
    view.validate().unwrap();
    assert!(view.is_log_append_time());
    assert_eq!(view.max_timestamp(), 99);
}

#[test]
fn stamped_header_equals_stamping_in_place() {
    for log_append_time in [None, Some(12345)] {
        let original = build_batch(5, &[b"x", b"yz"]);
        let mut in_place = original.clone();
        let mut batch = BatchMut::new(&mut in_place);
        batch.set_base_offset(9);
        batch.set_partition_leader_epoch(3);
        if let Some(now) = log_append_time {
            batch.set_log_append_time(now);
        }
        let mut header: [u8; HEADER_BYTES] = original[..HEADER_BYTES].try_into().unwrap();
        stamp_header(&mut header, &original[HEADER_BYTES..], 9, 3, log_append_time);
        assert_eq!(&header[..], &in_place[..HEADER_BYTES]);
    }
}

#[test]
fn iterator_frames_concatenated_batches_and_stops_at_torn_tail() {
    let mut set = build_batch(0, &[b"a"]);
    let second = build_batch(0, &[b"b", b"c"]);
    set.extend_from_slice(&second);
    set.extend_from_slice(&second[..20]);
    let items: Vec<_> = BatchIter::new(&set).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    assert!(matches!(items[2], Err(BatchError::Truncated(_))));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        for (_, view) in BatchIter::new(&bytes).flatten() {
            let _ = view.validate();
        }
    }
}
