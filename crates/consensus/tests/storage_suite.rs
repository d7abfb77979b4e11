//! openraft's storage conformance suite against the redb log store and the ledger state
//! machine (RELIABILITY.md, "Storage conformance").

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use paddock_consensus::log_store::LogAdapter;
use paddock_consensus::state_machine::StateMachine;
use paddock_consensus::types::TypeConfig;
use paddock_storage::LogStore;

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogAdapter, StateMachine, tempfile::TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogAdapter, StateMachine), StorageError<TypeConfig>> {
        let to_storage_error = |e: std::io::Error| StorageError::read(TypeConfig::err_from_error(&e));
        let dir = tempfile::tempdir().map_err(to_storage_error)?;
        let log = LogStore::open(&dir.path().join("raft-log.redb")).map_err(to_storage_error)?;
        let sm = StateMachine::open(&dir.path().join("snapshots")).map_err(to_storage_error)?;
        Ok((dir, LogAdapter::new(log, paddock_consensus::IoMode::Threads), sm))
    }
}

#[test]
fn the_redb_log_store_and_ledger_state_machine_pass_openraft_s_storage_suite() {
    TypeConfig::run(async {
        Suite::test_all(RedbStoreBuilder).await.expect("storage suite");
    });
}
