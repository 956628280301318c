//! Object keys of remote segments: `<prefix>/<topic id>/<partition>/<base offset, 20
//! digits>-<segment id>.<kind>`, so that a partition's objects list in offset order under
//! one prefix, every key can be rebuilt from the segment's metadata (clean-up never needs
//! to list, except to find orphans), and a key parses back.
//!
//! Invariants: pure; `SegmentKey::parse(key.to_string())` gives the key back for every key
//! this module makes, and no other string parses.

use std::fmt;

use uuid::Uuid;

/// What one object of a remote segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// The segment's `.log` file, as on local disk.
    Log,
    Index,
    TimeIndex,
    /// The producer state snapshot at the segment's end.
    ProducerSnapshot,
    /// The leader epoch entries up to the segment's end (`leader-epoch-checkpoint` format).
    LeaderEpochs,
    /// The aborted transactions whose markers are in the segment (`.txnindex`; only for a
    /// segment that has any).
    TransactionIndex,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Log,
        ObjectKind::Index,
        ObjectKind::TimeIndex,
        ObjectKind::ProducerSnapshot,
        ObjectKind::LeaderEpochs,
        ObjectKind::TransactionIndex,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            ObjectKind::Log => "log",
            ObjectKind::Index => "index",
            ObjectKind::TimeIndex => "timeindex",
            ObjectKind::ProducerSnapshot => "snapshot",
            ObjectKind::LeaderEpochs => "epochs",
            ObjectKind::TransactionIndex => "txnindex",
        }
    }

    fn from_extension(extension: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.extension() == extension)
    }
}

/// One object of one remote segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentKey {
    /// The store's prefix for this cluster (no leading or trailing `/`; may be empty).
    pub prefix: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub base_offset: i64,
    pub segment_id: Uuid,
    pub kind: ObjectKind,
}

/// The prefix every object of a partition shares (for listing orphans).
pub fn partition_prefix(prefix: &str, topic_id: Uuid, partition: i32) -> String {
    if prefix.is_empty() {
        format!("{topic_id}/{partition}/")
    } else {
        format!("{prefix}/{topic_id}/{partition}/")
    }
}

impl fmt::Display for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{:020}-{}.{}",
            partition_prefix(&self.prefix, self.topic_id, self.partition),
            self.base_offset,
            self.segment_id,
            self.kind.extension()
        )
    }
}

impl SegmentKey {
    /// Every object of one segment.
    pub fn all(prefix: &str, topic_id: Uuid, partition: i32, base_offset: i64, segment_id: Uuid) -> Vec<SegmentKey> {
        ObjectKind::ALL
            .into_iter()
            .map(|kind| SegmentKey { prefix: prefix.to_string(), topic_id, partition, base_offset, segment_id, kind })
            .collect()
    }

    /// Reads a key back; `None` for anything this module did not make.
    pub fn parse(key: &str) -> Option<SegmentKey> {
        let mut parts: Vec<&str> = key.rsplitn(4, '/').collect();
        parts.reverse();
        let (prefix, topic, partition, file) = match parts.as_slice() {
            [topic, partition, file] => ("", *topic, *partition, *file),
            [prefix, topic, partition, file] if !prefix.is_empty() => (*prefix, *topic, *partition, *file),
            _ => return None,
        };
        let topic_id = Uuid::parse_str(topic).ok().filter(|id| id.to_string() == topic)?;
        let partition: i32 = partition.parse().ok().filter(|p: &i32| *p >= 0 && p.to_string() == partition)?;
        let (stem, extension) = file.rsplit_once('.')?;
        let (base, segment) = stem.split_once('-')?;
        let base_offset: i64 = base.parse().ok().filter(|b: &i64| *b >= 0 && base.len() == 20)?;
        let segment_id = Uuid::parse_str(segment).ok().filter(|id| id.to_string() == segment)?;
        let kind = ObjectKind::from_extension(extension)?;
        Some(SegmentKey { prefix: prefix.to_string(), topic_id, partition, base_offset, segment_id, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_offset_and_parse_back() {
        let topic = Uuid::from_u128(0xabc);
        let keys = SegmentKey::all("cluster/a", topic, 3, 4_200, Uuid::from_u128(9));
        for key in &keys {
            let text = key.to_string();
            assert!(text.starts_with(&partition_prefix("cluster/a", topic, 3)), "{text}");
            assert_eq!(SegmentKey::parse(&text).as_ref(), Some(key), "{text}");
        }
        let bare = SegmentKey::all("", topic, 0, 0, Uuid::from_u128(1)).remove(0);
        assert_eq!(SegmentKey::parse(&bare.to_string()), Some(bare.clone()));
        assert_eq!(bare.to_string(), format!("{topic}/0/00000000000000000000-{}.log", Uuid::from_u128(1)));
        let early = SegmentKey { base_offset: 9, ..bare.clone() }.to_string();
        let late = SegmentKey { base_offset: 10, ..bare }.to_string();
        assert!(early < late, "offset order is lexical order");
        for junk in [
            "",
            "x",
            "a/b/c",
            &format!("{topic}/0/12-x.log"),
            &format!("{topic}/-1/00000000000000000000-{}.log", Uuid::nil()),
        ] {
            assert_eq!(SegmentKey::parse(junk), None, "{junk}");
        }
    }
}
