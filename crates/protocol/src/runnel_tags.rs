//! Runnel's own tagged fields in Kafka responses: what Runnel knows beyond Kafka's schemas,
//! carried where Kafka's clients skip it (an unknown tag is ignored by every client, as
//! the flexible-version format requires) and Runnel's CLI reads it. Tags are numbered from
//! [`TAG_BASE`], far above any tag Kafka's schemas use.
//!
//! - [`CLEANER_STATE`] on a DescribeLogDirs partition (v2+): the log cleaner's view of a
//!   compacted replica ([`CleanerState`]).

/// Runnel's tags start here.
pub const TAG_BASE: i32 = 0x5255_0000;
/// A DescribeLogDirs partition's [`CleanerState`].
pub const CLEANER_STATE: i32 = TAG_BASE + 1;

/// The log cleaner's view of one compacted replica.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CleanerState {
    /// Everything below this offset is clean.
    pub first_dirty: i64,
    /// Cleanable bytes over the bytes up to the first uncleanable offset.
    pub dirty_ratio: f64,
    /// When a pass last completed (ms since the epoch), -1 if none since the node started.
    pub last_cleaned_ms: i64,
    /// A pass failed and the log is left alone until restart.
    pub uncleanable: bool,
}

const ENCODED_BYTES: usize = 8 + 8 + 8 + 1;

impl CleanerState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_BYTES);
        out.extend_from_slice(&self.first_dirty.to_be_bytes());
        out.extend_from_slice(&self.dirty_ratio.to_bits().to_be_bytes());
        out.extend_from_slice(&self.last_cleaned_ms.to_be_bytes());
        out.push(u8::from(self.uncleanable));
        out
    }

    /// `None` when `bytes` are not an encoded state (a newer or foreign writer).
    pub fn decode(bytes: &[u8]) -> Option<CleanerState> {
        if bytes.len() != ENCODED_BYTES {
            return None;
        }
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Some(CleanerState {
            first_dirty: word(0) as i64,
            dirty_ratio: f64::from_bits(word(8)),
            last_cleaned_ms: word(16) as i64,
            uncleanable: bytes[24] != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_lengths() {
        let state = CleanerState { first_dirty: 1234, dirty_ratio: 0.25, last_cleaned_ms: -1, uncleanable: true };
        assert_eq!(CleanerState::decode(&state.encode()), Some(state));
        assert_eq!(CleanerState::decode(&[0; 3]), None);
    }
}
