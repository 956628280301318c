//! Runnel's own tagged fields in Kafka responses: what Runnel knows beyond Kafka's schemas,
//! carried where Kafka's clients skip it (an unknown tag is ignored by every client, as
//! the flexible-version format requires) and Runnel's CLI reads it. Tags are numbered from
//! [`TAG_BASE`], far above any tag Kafka's schemas use.
//!
//! - [`CLEANER_STATE`] on a DescribeLogDirs partition (v2+): the log cleaner's view of a
//!   compacted replica ([`CleanerState`]).
//! - [`TIERED_STATE`] on a DescribeLogDirs partition (v2+): a tiered replica's local and
//!   remote parts ([`TieredState`]).

/// Runnel's tags start here.
pub const TAG_BASE: i32 = 0x5255_0000;
/// A DescribeLogDirs partition's [`CleanerState`].
pub const CLEANER_STATE: i32 = TAG_BASE + 1;

/// A DescribeLogDirs partition's [`TieredState`].
pub const TIERED_STATE: i32 = TAG_BASE + 2;

/// One replica of a topic with `remote.storage.enable`: what is local, what is remote, and
/// what waits to be uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TieredState {
    pub local_log_start: i64,
    /// The remote log start, -1 when remote storage holds nothing.
    pub remote_log_start: i64,
    /// The highest offset remote storage holds, -1 when none.
    pub highest_remote_offset: i64,
    pub remote_segments: u64,
    pub remote_bytes: u64,
    /// Closed local segments not uploaded yet.
    pub upload_lag_segments: u64,
    pub upload_lag_bytes: u64,
}

const TIERED_BYTES: usize = 7 * 8;

impl TieredState {
    pub fn encode(&self) -> Vec<u8> {
        let words = [
            self.local_log_start as u64,
            self.remote_log_start as u64,
            self.highest_remote_offset as u64,
            self.remote_segments,
            self.remote_bytes,
            self.upload_lag_segments,
            self.upload_lag_bytes,
        ];
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// `None` when `bytes` are not an encoded state.
    pub fn decode(bytes: &[u8]) -> Option<TieredState> {
        if bytes.len() != TIERED_BYTES {
            return None;
        }
        let word = |i: usize| u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Some(TieredState {
            local_log_start: word(0) as i64,
            remote_log_start: word(1) as i64,
            highest_remote_offset: word(2) as i64,
            remote_segments: word(3),
            remote_bytes: word(4),
            upload_lag_segments: word(5),
            upload_lag_bytes: word(6),
        })
    }
}

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
        let tiered = TieredState {
            local_log_start: 900,
            remote_log_start: -1,
            highest_remote_offset: 899,
            remote_segments: 3,
            remote_bytes: 3_000,
            upload_lag_segments: 1,
            upload_lag_bytes: 500,
        };
        assert_eq!(TieredState::decode(&tiered.encode()), Some(tiered));
        assert_eq!(TieredState::decode(&[0; 8]), None);
    }
}
