use custos_storage::sled_backend::SledBackend;
use custos_storage::{KvLedgerStore, LedgerStore};
use tempfile::TempDir;

use crate::fixtures::sample_chain;
use crate::suite::{assert_chain_stored, page_through};

fn open() -> (KvLedgerStore<SledBackend>, TempDir) {
    let dir = TempDir::new().unwrap();
    (KvLedgerStore::open_sled(dir.path()).unwrap(), dir)
}

crate::suite_tests!(open);

#[test]
fn a_reopened_sled_store_keeps_everything_and_accepts_the_next_block() {
    let dir = TempDir::new().unwrap();
    let mut chain = sample_chain(4, 5);
    let next = chain.writes.pop().unwrap();
    {
        let store = KvLedgerStore::open_sled(dir.path()).unwrap();
        for write in &chain.writes {
            store.commit_block(write.clone()).unwrap();
        }
    }
    let store = KvLedgerStore::open_sled(dir.path()).unwrap();
    assert_chain_stored(&store, &chain);
    let all = page_through(&store, &Default::default(), 4);
    assert_eq!(all, chain.decisions());

    store.commit_block(next.clone()).unwrap();
    chain.writes.push(next);
    assert_chain_stored(&store, &chain);
}
