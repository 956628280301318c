//! The binary format of `__consumer_offsets` records: Kafka's own, so Kafka's tools can read
//! Runnel's offsets topic and the other way round. Every key and value starts with an int16
//! version; strings are int16-length-prefixed UTF-8 (-1 for null), bytes int32-prefixed.
//!
//! ```text
//! key v0/v1  OffsetCommitKey     group: string, topic: string, partition: int32
//! key v2     GroupMetadataKey    group: string
//! OffsetCommitValue   v0: offset: int64, metadata: string, commit_timestamp: int64
//!                     v1: v0 + expire_timestamp: int64
//!                     v2: as v0
//!                     v3: offset: int64, leader_epoch: int32, metadata: string, commit_timestamp: int64
//! GroupMetadataValue  protocol_type: string, generation: int32, protocol: nullable string,
//!                     leader: nullable string, [v2+] current_state_timestamp: int64,
//!                     members: [member_id: string, [v3+] group_instance_id: nullable string,
//!                               client_id: string, client_host: string,
//!                               [v1+] rebalance_timeout: int32, session_timeout: int32,
//!                               subscription: bytes, assignment: bytes]
//! ```
//!
//! Runnel writes offset values v3 (v1 when the commit carried an expiry time, as Kafka does)
//! and group values v3. A null value is a tombstone. Flexible versions (v4 values) and other
//! key versions (Kafka's newer consumer-group records) are reported as unsupported; replay
//! skips such records with a warning.

use bytes::Bytes;

use super::group::CommittedOffset;
use super::record::{GroupMetadataValue, MemberMetadata, Record};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const OFFSET_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
const GROUP_VALUE_VERSION: i16 = 3;

#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
}

/// A bounded reader: every read checks the remaining length, and `finish` rejects leftovers.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn i8(&mut self) -> Result<i8, CodecError> {
        Ok(i8::from_be_bytes(self.take(1, "int8")?.try_into().expect("one byte")))
    }

    /// An unsigned varint (the flexible versions' lengths and tags), at most 5 bytes.
    pub fn uvarint(&mut self) -> Result<u32, CodecError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, "varint")?[0];
            value |= u32::from(byte & 0x7f).checked_shl(shift).ok_or(CodecError::Invalid("varint"))?;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::Invalid("varint longer than 5 bytes"))
    }

    pub fn i16(&mut self) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.take(2, "int16")?.try_into().expect("two bytes")))
    }

    pub fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.take(4, "int32")?.try_into().expect("four bytes")))
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.take(8, "int64")?.try_into().expect("eight bytes")))
    }

    pub fn nullable_string(&mut self) -> Result<Option<String>, CodecError> {
        let length = self.i16()?;
        if length < 0 {
            return Ok(None);
        }
        let bytes = self.take(length as usize, "string")?;
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| CodecError::Invalid("UTF-8 in string"))
    }

    pub fn string(&mut self) -> Result<String, CodecError> {
        self.nullable_string()?.ok_or(CodecError::Invalid("null in a non-nullable string"))
    }

    pub fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let length = self.i32()?;
        let length = usize::try_from(length).map_err(|_| CodecError::Invalid("negative bytes length"))?;
        Ok(Bytes::copy_from_slice(self.take(length, "bytes")?))
    }

    pub fn finish(self) -> Result<(), CodecError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing(self.bytes.len()))
        }
    }
}

/// Big-endian writer of Kafka's non-flexible record formats, starting with the version.
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn new(version: i16) -> Self {
        let mut writer = Writer(Vec::with_capacity(64));
        writer.i16(version);
        writer
    }
    pub fn i8(&mut self, v: i8) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            None => self.i16(-1),
            Some(s) => {
                // Group ids, topics, member ids and metadata are bounded far below this by
                // the request sizes that carried them.
                let length = i16::try_from(s.len()).expect("strings in offsets records fit int16 lengths");
                self.i16(length);
                self.0.extend_from_slice(s.as_bytes());
            }
        }
    }
    pub fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(i32::try_from(b.len()).expect("member metadata fits an int32 length"));
        self.0.extend_from_slice(b);
    }
}

/// The key and value of a persistent record; `None` for in-memory records.
pub fn encode(group_id: &str, record: &Record) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    match record {
        Record::GroupMetadata(value) => {
            let mut key = Writer::new(GROUP_KEY_VERSION);
            key.string(group_id);
            Some((key.0, value.as_ref().map(encode_group_value)))
        }
        Record::OffsetCommit { topic, partition, value } => {
            let mut key = Writer::new(OFFSET_KEY_VERSION);
            key.string(group_id);
            key.string(topic);
            key.i32(*partition);
            Some((key.0, value.as_ref().map(encode_offset_value)))
        }
        _ => None,
    }
}

fn encode_offset_value(value: &CommittedOffset) -> Vec<u8> {
    match value.expire_timestamp_ms {
        Some(expire) => {
            let mut w = Writer::new(OFFSET_VALUE_VERSION_WITH_EXPIRY);
            w.i64(value.offset);
            w.string(&value.metadata);
            w.i64(value.commit_timestamp_ms);
            w.i64(expire);
            w.0
        }
        None => {
            let mut w = Writer::new(OFFSET_VALUE_VERSION);
            w.i64(value.offset);
            w.i32(value.leader_epoch);
            w.string(&value.metadata);
            w.i64(value.commit_timestamp_ms);
            w.0
        }
    }
}

fn encode_group_value(value: &GroupMetadataValue) -> Vec<u8> {
    let mut w = Writer::new(GROUP_VALUE_VERSION);
    w.string(&value.protocol_type);
    w.i32(value.generation_id);
    w.nullable_string(value.protocol_name.as_deref());
    w.nullable_string(value.leader_id.as_deref());
    w.i64(value.state_timestamp_ms);
    w.i32(i32::try_from(value.members.len()).expect("group.max.size bounds members"));
    for m in &value.members {
        w.string(&m.member_id);
        w.nullable_string(m.instance_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.rebalance_timeout_ms);
        w.i32(m.session_timeout_ms);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
    w.0
}

/// Decodes one record of `__consumer_offsets` into its group id and record.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<(String, Record), CodecError> {
    let mut reader = Reader::new(key);
    let version = reader.i16()?;
    match version {
        0 | 1 => {
            let group_id = reader.string()?;
            let topic = reader.string()?;
            let partition = reader.i32()?;
            reader.finish()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok((group_id, Record::OffsetCommit { topic, partition, value }))
        }
        2 => {
            let group_id = reader.string()?;
            reader.finish()?;
            let value = value.map(decode_group_value).transpose()?;
            Ok((group_id, Record::GroupMetadata(value)))
        }
        version => Err(CodecError::UnsupportedVersion { what: "record key", version }),
    }
}

fn decode_offset_value(bytes: &[u8]) -> Result<CommittedOffset, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(CodecError::UnsupportedVersion { what: "offset commit value", version });
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    let expire_timestamp_ms = if version == 1 { Some(r.i64()?).filter(|t| *t >= 0) } else { None };
    r.finish()?;
    Ok(CommittedOffset { offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms })
}

fn decode_group_value(bytes: &[u8]) -> Result<GroupMetadataValue, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(CodecError::UnsupportedVersion { what: "group metadata value", version });
    }
    let protocol_type = r.string()?;
    let generation_id = r.i32()?;
    let protocol_name = r.nullable_string()?;
    let leader_id = r.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = usize::try_from(r.i32()?).map_err(|_| CodecError::Invalid("negative member count"))?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        members.push(decode_member(&mut r, version)?);
    }
    r.finish()?;
    Ok(GroupMetadataValue { protocol_type, generation_id, protocol_name, leader_id, state_timestamp_ms, members })
}

fn decode_member(r: &mut Reader, version: i16) -> Result<MemberMetadata, CodecError> {
    let member_id = r.string()?;
    let instance_id = if version >= 3 { r.nullable_string()? } else { None };
    let client_id = r.string()?;
    let client_host = r.string()?;
    let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
    let session_timeout_ms = r.i32()?;
    let subscription = r.bytes()?;
    let assignment = r.bytes()?;
    Ok(MemberMetadata {
        member_id,
        instance_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        session_timeout_ms,
        subscription,
        assignment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_value() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation_id: 7,
            protocol_name: Some("range".into()),
            leader_id: Some("m-1".into()),
            state_timestamp_ms: 1_700_000_000_000,
            members: vec![MemberMetadata {
                member_id: "m-1".into(),
                instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"\x00\x01sub"),
                assignment: Bytes::from_static(b"\x00\x01asg"),
            }],
        }
    }

    #[test]
    fn records_round_trip() {
        let offset = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 5,
            expire_timestamp_ms: None,
        };
        let expiring = CommittedOffset { leader_epoch: -1, expire_timestamp_ms: Some(9), ..offset.clone() };
        let records = [
            Record::GroupMetadata(Some(group_value())),
            Record::GroupMetadata(None),
            Record::OffsetCommit { topic: "t".into(), partition: 3, value: Some(offset) },
            Record::OffsetCommit { topic: "t".into(), partition: 3, value: Some(expiring) },
            Record::OffsetCommit { topic: "t".into(), partition: 3, value: None },
        ];
        for record in records {
            let (key, value) = encode("g", &record).expect("persistent");
            assert_eq!(decode(&key, value.as_deref()).unwrap(), ("g".to_string(), record));
        }
        assert!(encode("g", &Record::SyncDeadlinePassed).is_none());
    }

    /// Bytes as Kafka's `OffsetCommitKey` v1 / `OffsetCommitValue` v3 serialisers write them.
    #[test]
    fn offset_commit_matches_kafka_layout() {
        let record = Record::OffsetCommit {
            topic: "t".into(),
            partition: 1,
            value: Some(CommittedOffset {
                offset: 2,
                leader_epoch: 4,
                metadata: "".into(),
                commit_timestamp_ms: 3,
                expire_timestamp_ms: None,
            }),
        };
        let (key, value) = encode("g", &record).unwrap();
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        let value = value.unwrap();
        assert_eq!(value, [0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn old_versions_decode_and_garbage_is_refused() {
        // GroupMetadataValue v0: no rebalance timeout, no state timestamp, no instance id.
        let mut v0 = vec![0, 0, 0, 8];
        v0.extend_from_slice(b"consumer");
        v0.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let key = [0, 2, 0, 1, b'g'];
        let (_, record) = decode(&key, Some(&v0)).unwrap();
        let Record::GroupMetadata(Some(value)) = record else { panic!("{record:?}") };
        assert_eq!((value.generation_id, value.protocol_name, value.state_timestamp_ms), (1, None, -1));
        assert_eq!(decode(&key[..3], None), Err(CodecError::Truncated("int16")));
        assert_eq!(decode(&key[..4], None), Err(CodecError::Truncated("string")));
        assert_eq!(decode(&[0, 2, 0, 1, b'g', 0], None), Err(CodecError::Trailing(1)));
        assert!(matches!(decode(&[0, 9], None), Err(CodecError::UnsupportedVersion { .. })));
        let mut trailing = v0.clone();
        trailing.push(0);
        assert_eq!(decode(&key, Some(&trailing)), Err(CodecError::Trailing(1)));
    }
}
