//! Transactions (KIP-98), the coordinator's core: the transactional id's state machine
//! (`state`: Kafka's states and transitions, changed only by applying `__transaction_state`
//! records) and the coordinator's pure decisions (`decide`: InitProducerId with fencing,
//! AddPartitionsToTxn, EndTxn, marker completion, timeouts and id expiry), built as the
//! group coordinator is: decisions return records and an answer, and state changes only by
//! applying records, so a replay at load rebuilds exactly what the coordinator had.
//!
//! `codec` reads and writes `__transaction_state` records in Kafka's format; the markers the
//! partitions will hold are `runnel_protocol::control`.
//!
//! Not wired to the request path yet: the shell (appends, WriteTxnMarkers, loading with the
//! partition's leadership, on a coordinator runtime shared with the group coordinator), the
//! APIs and the partitions' side (LSO, aborted-transaction index, read_committed) are still
//! to come.

pub mod codec;
pub mod decide;
pub mod state;

#[cfg(test)]
mod tests;
