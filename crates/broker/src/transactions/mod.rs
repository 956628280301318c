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
//! `coordinator` is the shell (shards of `__transaction_state` on the coordinator runtime
//! shared with the group coordinator, loading with the partitions' leadership), `markers`
//! writes prepared transactions' markers to the partition leaders and runs the timers.

pub mod codec;
pub mod config;
pub mod coordinator;
pub mod decide;
pub mod markers;
pub mod state;
pub mod verify;

pub use coordinator::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};

#[cfg(test)]
mod tests;
