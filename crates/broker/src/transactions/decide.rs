//! The transaction coordinator's decisions (Kafka's `TransactionCoordinator`), pure: from a
//! transactional id's metadata, a request and the time to an [`Outcome`]: the records to
//! append to `__transaction_state`, the answer, and the markers to write once the records
//! are durable. Nothing here changes state; the shell appends the records and applies them
//! (`state::apply`), exactly as a replay at load does.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use super::state::{TxnMetadata, TxnPartition, TxnRecord, TxnState};

/// Commit or abort markers the coordinator owes the partitions of a transaction, written by
/// WriteTxnMarkers after the `Prepare*` record is durable; when every partition has its
/// marker, [`markers_written`] completes the transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markers {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<TxnPartition>,
}

/// What a decision asks of the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<T> {
    pub records: Vec<TxnRecord>,
    pub answer: Result<T, ResponseError>,
    pub markers: Option<Markers>,
}

impl<T> Outcome<T> {
    fn refuse(error: ResponseError) -> Self {
        Outcome { records: Vec::new(), answer: Err(error), markers: None }
    }
}

/// The producer id and epoch InitProducerId hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

fn record(id: &str, metadata: TxnMetadata) -> TxnRecord {
    TxnRecord { transactional_id: id.to_string(), value: Some(metadata) }
}

/// InitProducerId with a transactional id. `current` is the id's metadata (`None`: new or
/// expired), `expected` the producer id and epoch the client already has (KIP-360, -1/-1 for
/// none), `new_producer_id` allocates an id when one is needed (a new transactional id, or
/// an epoch that would overflow).
pub fn init_producer_id(
    id: &str,
    current: Option<&TxnMetadata>,
    timeout_ms: i32,
    max_timeout_ms: i32,
    expected: ProducerIdAndEpoch,
    new_producer_id: &mut dyn FnMut() -> i64,
    now_ms: i64,
) -> Outcome<ProducerIdAndEpoch> {
    if timeout_ms <= 0 || timeout_ms > max_timeout_ms {
        return Outcome::refuse(ResponseError::InvalidTransactionTimeout);
    }
    let Some(current) = current.filter(|m| m.state != TxnState::Dead) else {
        let metadata = TxnMetadata {
            producer_id: new_producer_id(),
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            start_ms: -1,
        };
        let answer = ProducerIdAndEpoch { producer_id: metadata.producer_id, producer_epoch: 0 };
        return Outcome { records: vec![record(id, metadata)], answer: Ok(answer), markers: None };
    };
    // KIP-360: a client that names its producer must name the current one.
    if expected.producer_id >= 0
        && (expected.producer_id != current.producer_id || expected.producer_epoch != current.producer_epoch)
    {
        return Outcome::refuse(ResponseError::ProducerFenced);
    }
    match current.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            Outcome::refuse(ResponseError::ConcurrentTransactions)
        }
        // A new producer fences the old one: its open transaction is aborted with a bumped
        // epoch; the client retries on CONCURRENT_TRANSACTIONS until the abort completes.
        TxnState::Ongoing => fence_and_abort(id, current, now_ms),
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
            let (producer_id, producer_epoch) = match current.producer_epoch.checked_add(1) {
                Some(epoch) if epoch < i16::MAX => (current.producer_id, epoch),
                _ => (new_producer_id(), 0),
            };
            let metadata = TxnMetadata {
                producer_id,
                producer_epoch,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now_ms,
                start_ms: -1,
            };
            Outcome {
                records: vec![record(id, metadata)],
                answer: Ok(ProducerIdAndEpoch { producer_id, producer_epoch }),
                markers: None,
            }
        }
    }
}

/// Bumps the epoch of an ongoing transaction and prepares its abort (Kafka's
/// `prepareFenceProducerEpoch` then `endTransaction(ABORT)`): the old producer is fenced.
fn fence_and_abort<T>(id: &str, current: &TxnMetadata, now_ms: i64) -> Outcome<T> {
    let epoch = current.producer_epoch.saturating_add(1);
    let aborting =
        TxnMetadata { producer_epoch: epoch, state: TxnState::PrepareAbort, last_update_ms: now_ms, ..current.clone() };
    let markers = Markers {
        producer_id: current.producer_id,
        producer_epoch: epoch,
        commit: false,
        partitions: current.partitions.clone(),
    };
    Outcome {
        records: vec![record(id, aborting)],
        answer: Err(ResponseError::ConcurrentTransactions),
        markers: Some(markers),
    }
}

/// The checks every transactional request of a producer passes first: the id is known (not
/// expired), the producer is its current one, in its current epoch.
fn current_producer(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<&TxnMetadata, ResponseError> {
    let current = current.filter(|m| m.state != TxnState::Dead).ok_or(ResponseError::InvalidProducerIdMapping)?;
    if producer_id != current.producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if producer_epoch != current.producer_epoch {
        return Err(ResponseError::ProducerFenced);
    }
    Ok(current)
}

/// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
/// partition): the partitions join the transaction, which becomes Ongoing.
pub fn add_partitions(
    id: &str,
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &BTreeSet<TxnPartition>,
    now_ms: i64,
) -> Outcome<()> {
    let current = match current_producer(current, producer_id, producer_epoch) {
        Ok(current) => current,
        Err(error) => return Outcome::refuse(error),
    };
    match current.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
            return Outcome::refuse(ResponseError::ConcurrentTransactions)
        }
        TxnState::Ongoing if partitions.is_subset(&current.partitions) => {
            return Outcome { records: Vec::new(), answer: Ok(()), markers: None }
        }
        _ => {}
    }
    if partitions.is_empty() {
        return Outcome { records: Vec::new(), answer: Ok(()), markers: None };
    }
    let starting = current.state != TxnState::Ongoing;
    let ongoing = TxnMetadata {
        state: TxnState::Ongoing,
        partitions: current.partitions.union(partitions).cloned().collect(),
        last_update_ms: now_ms,
        start_ms: if starting { now_ms } else { current.start_ms },
        ..current.clone()
    };
    Outcome { records: vec![record(id, ongoing)], answer: Ok(()), markers: None }
}

/// EndTxn: prepares the commit or abort of the ongoing transaction; a retry of an end that
/// already completed the same way succeeds.
pub fn end_transaction(
    id: &str,
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Outcome<()> {
    let current = match current_producer(current, producer_id, producer_epoch) {
        Ok(current) => current,
        Err(error) => return Outcome::refuse(error),
    };
    match (current.state, commit) {
        (TxnState::Ongoing, _) => {
            let state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
            let preparing = TxnMetadata { state, last_update_ms: now_ms, ..current.clone() };
            let markers = Markers { producer_id, producer_epoch, commit, partitions: current.partitions.clone() };
            Outcome { records: vec![record(id, preparing)], answer: Ok(()), markers: Some(markers) }
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Outcome { records: Vec::new(), answer: Ok(()), markers: None }
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Outcome::refuse(ResponseError::ConcurrentTransactions)
        }
        _ => Outcome::refuse(ResponseError::InvalidTxnState),
    }
}

/// Every marker of the prepared transaction is written: it completes, holding no partitions.
pub fn markers_written(id: &str, current: &TxnMetadata, now_ms: i64) -> Option<TxnRecord> {
    let state = match current.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    let complete =
        TxnMetadata { state, partitions: BTreeSet::new(), last_update_ms: now_ms, start_ms: -1, ..current.clone() };
    Some(record(id, complete))
}

/// The coordinator's timer: an ongoing transaction older than its timeout is aborted with a
/// bumped epoch (the producer is fenced, as Kafka does).
pub fn expire_transaction(id: &str, current: &TxnMetadata, now_ms: i64) -> Option<Outcome<()>> {
    let timed_out = current.state == TxnState::Ongoing && now_ms - current.start_ms > i64::from(current.timeout_ms);
    timed_out.then(|| {
        let outcome: Outcome<()> = fence_and_abort(id, current, now_ms);
        Outcome { answer: Ok(()), ..outcome }
    })
}

/// `transactional.id.expiration.ms`: an id idle that long with no transaction open is
/// removed (a tombstone), as Kafka's `removeExpiredTransactionalIds`.
pub fn expire_id(id: &str, current: &TxnMetadata, now_ms: i64, expiration_ms: i64) -> Option<TxnRecord> {
    let idle = matches!(current.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort);
    (idle && now_ms - current.last_update_ms >= expiration_ms)
        .then(|| TxnRecord { transactional_id: id.to_string(), value: None })
}
