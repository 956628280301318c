//! `__transaction_state` records in Kafka's own binary format, so the topic reads the same
//! to Kafka's tools: key `TransactionLogKey` v0 (the transactional id), value
//! `TransactionLogValue` (written as v0; v0 and the flexible v1, whose extra fields are
//! tagged, are read). A tombstone (no value) removes the id.

use std::collections::{BTreeMap, BTreeSet};

use super::state::{TxnMetadata, TxnRecord, TxnState};
use crate::groups::codec::{CodecError, Reader, Writer};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// The key and value of `record`.
pub fn encode(record: &TxnRecord) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut key = Writer::new(KEY_VERSION);
    key.string(&record.transactional_id);
    (key.0, record.value.as_ref().map(encode_value))
}

fn encode_value(m: &TxnMetadata) -> Vec<u8> {
    let mut w = Writer::new(VALUE_VERSION);
    w.i64(m.producer_id);
    w.i16(m.producer_epoch);
    w.i32(m.timeout_ms);
    w.i8(m.state.code());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &m.partitions {
        by_topic.entry(topic.as_str()).or_default().push(*partition);
    }
    // A transaction holds at most the partitions its requests named: far below i32::MAX.
    w.i32(i32::try_from(by_topic.len()).expect("topics fit an int32 count"));
    for (topic, partitions) in by_topic {
        w.string(topic);
        w.i32(i32::try_from(partitions.len()).expect("partitions fit an int32 count"));
        for p in partitions {
            w.i32(p);
        }
    }
    w.i64(m.last_update_ms);
    w.i64(m.start_ms);
    w.0
}

/// Decodes a record; a key or value Runnel does not understand is an error (the caller
/// skips the record, as a load does).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, CodecError> {
    let mut r = Reader::new(key);
    let version = r.i16()?;
    if version != KEY_VERSION {
        return Err(CodecError::UnsupportedVersion { what: "transaction log key", version });
    }
    let transactional_id = r.string()?;
    r.finish()?;
    let value = value.map(decode_value).transpose()?;
    Ok(TxnRecord { transactional_id, value })
}

fn decode_value(bytes: &[u8]) -> Result<TxnMetadata, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        _ => return Err(CodecError::UnsupportedVersion { what: "transaction log value", version }),
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_code(r.i8()?).ok_or(CodecError::Invalid("transaction status"))?;
    let mut partitions = BTreeSet::new();
    // Nullable array: -1 (v0) or 0 (v1, compact) is null.
    let topics = if flexible { i64::from(r.uvarint()?) - 1 } else { i64::from(r.i32()?) };
    for _ in 0..topics.max(0) {
        let topic = if flexible { compact_string(&mut r)? } else { r.string()? };
        let count = if flexible { i64::from(r.uvarint()?) - 1 } else { i64::from(r.i32()?) };
        if count < 0 {
            return Err(CodecError::Invalid("null partition ids"));
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), r.i32()?));
        }
        if flexible {
            skip_tagged(&mut r)?;
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    if flexible {
        skip_tagged(&mut r)?;
    }
    r.finish()?;
    Ok(TxnMetadata { producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms })
}

fn compact_string(r: &mut Reader<'_>) -> Result<String, CodecError> {
    let length = r.uvarint()?.checked_sub(1).ok_or(CodecError::Invalid("null topic"))?;
    let bytes = r.take(length as usize, "string")?;
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Invalid("UTF-8 in string"))
}

/// Tagged fields (PreviousProducerId, NextProducerId, ClientTransactionVersion): read past.
fn skip_tagged(r: &mut Reader<'_>) -> Result<(), CodecError> {
    for _ in 0..r.uvarint()? {
        let _tag = r.uvarint()?;
        let size = r.uvarint()?;
        r.take(size as usize, "tagged field")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        TxnMetadata {
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([("a".to_string(), 1), ("a".to_string(), 0), ("b".to_string(), 7)]),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn records_round_trip_and_tombstones_remove() {
        let record = TxnRecord { transactional_id: "tx-1".into(), value: Some(ongoing()) };
        let (key, value) = encode(&record);
        assert_eq!(decode(&key, value.as_deref()).unwrap(), record);
        let tombstone = TxnRecord { transactional_id: "tx-1".into(), value: None };
        let (key, value) = encode(&tombstone);
        assert_eq!(value, None);
        assert_eq!(decode(&key, None).unwrap(), tombstone);
    }

    #[test]
    fn the_layout_is_kafkas_v0() {
        let (key, value) = encode(&TxnRecord { transactional_id: "t".into(), value: Some(ongoing()) });
        assert_eq!(key, [0, 0, 0, 1, b't']);
        let value = value.unwrap();
        // version, producer id, epoch, timeout, status Ongoing (1), then 2 topics.
        let mut head = vec![0, 0];
        head.extend(4000i64.to_be_bytes());
        head.extend(3i16.to_be_bytes());
        head.extend(60_000i32.to_be_bytes());
        head.push(1);
        head.extend(2i32.to_be_bytes());
        head.extend([0, 1, b'a']);
        head.extend(2i32.to_be_bytes());
        head.extend(0i32.to_be_bytes());
        head.extend(1i32.to_be_bytes());
        assert!(value.starts_with(&head), "{value:?}");
        assert_eq!(value.len(), head.len() + 2 + 1 + 4 + 4 + 8 + 8);
    }

    #[test]
    fn the_flexible_version_decodes_with_its_tagged_fields() {
        let mut v1 = vec![0, 1];
        v1.extend(9i64.to_be_bytes());
        v1.extend(2i16.to_be_bytes());
        v1.extend(1000i32.to_be_bytes());
        v1.push(4); // CompleteCommit
        v1.push(1); // an empty compact array (length + 1)
        v1.extend(5i64.to_be_bytes());
        v1.extend((-1i64).to_be_bytes());
        // One tagged field: NextProducerId (tag 1), 8 bytes.
        v1.extend([1, 1, 8]);
        v1.extend(10i64.to_be_bytes());
        let decoded = decode(&[0, 0, 0, 1, b'x'], Some(&v1)).unwrap().value.unwrap();
        assert_eq!((decoded.producer_id, decoded.producer_epoch, decoded.state), (9, 2, TxnState::CompleteCommit));
        assert!(decoded.partitions.is_empty());
        assert!(decode(&[0, 0, 0, 1, b'x'], Some(&v1[..v1.len() - 3])).is_err(), "a cut tagged field is refused");
        assert!(decode(&[0, 5, 0, 1, b'x'], None).is_err(), "an unknown key version is refused");
    }
}
