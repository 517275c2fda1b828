use custos_storage::KvLedgerStore;

crate::suite_tests!(|| (KvLedgerStore::in_memory(), ()));
