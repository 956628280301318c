//! openraft's storage conformance suite against the on-disk log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use runnel_quorum::types::StorageError;
use runnel_quorum::{LogStore, StateMachine, TypeConfig};
use tempfile::TempDir;

struct DiskStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for DiskStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        // Small segments, so the suite's appends, truncations and purges cross segment files.
        let log = LogStore::open(dir.path(), 256).expect("open log");
        let sm = StateMachine::open(dir.path()).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(DiskStoreBuilder).expect("suite");
}
