//! A transactional id's state (Kafka's `TransactionMetadata`) and the one way it changes:
//! applying a [`TxnRecord`]. The coordinator's decisions (`decide.rs`) only return records;
//! replaying `__transaction_state` at load goes through the same [`apply`].
//!
//! Invariants kept by [`apply`]: a state follows only a state Kafka allows before it
//! ([`TxnState::may_follow`]); a producer's epoch never goes back for the same producer id;
//! an `Ongoing` or `Prepare*` transaction has at least one partition, an `Empty` or
//! `Complete*` one none.

use std::collections::{BTreeMap, BTreeSet};

/// Kafka's transaction states, with their codes in `__transaction_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Kafka's name for the state (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Kafka's valid previous states (`TransactionState.validPreviousStates`).
    pub fn may_follow(self, previous: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(previous, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(previous, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => previous == Ongoing,
            PrepareAbort => matches!(previous, Ongoing | PrepareEpochFence),
            CompleteCommit => previous == PrepareCommit,
            CompleteAbort => previous == PrepareAbort,
            Dead => matches!(previous, Empty | CompleteCommit | CompleteAbort),
            PrepareEpochFence => previous == Ongoing,
        }
    }

    /// Whether a transaction in this state holds partitions.
    pub fn holds_partitions(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

/// A topic partition taking part in a transaction.
pub type TxnPartition = (String, i32);

/// What `__transaction_state` stores for a transactional id (Kafka's TransactionLogValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    pub last_update_ms: i64,
    /// When the ongoing transaction began (-1 when none is).
    pub start_ms: i64,
}

/// One record of `__transaction_state`: the id's new metadata, or a tombstone (`None`) once
/// the id has expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnMetadata>,
}

/// Why a record cannot be applied: the log holds a transition Kafka never writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{id}: {to:?} cannot follow {from:?}")]
    Transition { id: String, from: TxnState, to: TxnState },
    #[error("{id}: producer {producer_id} epoch {epoch} is older than its epoch {current}")]
    EpochBack { id: String, producer_id: i64, epoch: i16, current: i16 },
    #[error("{id}: {state:?} with {partitions} partition(s)")]
    Partitions { id: String, state: TxnState, partitions: usize },
}

/// Every transactional id's metadata, as built by applying records.
pub type TxnStates = BTreeMap<String, TxnMetadata>;

/// Applies `record` to `states`, refusing transitions Kafka never makes (the state is left
/// as it was).
pub fn apply(states: &mut TxnStates, record: &TxnRecord) -> Result<(), ApplyError> {
    let id = &record.transactional_id;
    let Some(next) = &record.value else {
        states.remove(id);
        return Ok(());
    };
    if next.state.holds_partitions() == next.partitions.is_empty() {
        return Err(ApplyError::Partitions { id: id.clone(), state: next.state, partitions: next.partitions.len() });
    }
    if let Some(current) = states.get(id) {
        // A new id starts Empty; an existing one follows Kafka's transitions.
        if !next.state.may_follow(current.state) {
            return Err(ApplyError::Transition { id: id.clone(), from: current.state, to: next.state });
        }
        if next.producer_id == current.producer_id && next.producer_epoch < current.producer_epoch {
            return Err(ApplyError::EpochBack {
                id: id.clone(),
                producer_id: next.producer_id,
                epoch: next.producer_epoch,
                current: current.producer_epoch,
            });
        }
    } else if next.state != TxnState::Empty {
        return Err(ApplyError::Transition { id: id.clone(), from: TxnState::Dead, to: next.state });
    }
    states.insert(id.clone(), next.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_transitions_are_kafkas() {
        for state in TxnState::ALL {
            assert_eq!(TxnState::from_code(state.code()), Some(state));
        }
        assert_eq!(TxnState::from_code(8), None);
        assert!(TxnState::PrepareCommit.may_follow(TxnState::Ongoing));
        assert!(!TxnState::PrepareCommit.may_follow(TxnState::Empty));
        assert!(TxnState::PrepareAbort.may_follow(TxnState::PrepareEpochFence));
        assert!(!TxnState::CompleteCommit.may_follow(TxnState::PrepareAbort));
    }
}
