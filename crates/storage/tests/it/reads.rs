//! What an audit query reads: with index summaries, a query filtered on more than the index it
//! scans reads the decisions that match and no others (each a random read on a large store).

use std::sync::atomic::{AtomicUsize, Ordering};

use custos_storage::memory::MemoryBackend;
use custos_storage::{AuditFilter, Backend, KvLedgerStore, LedgerStore};
use custos_types::{AccessMode, Decision, Timestamp};

use crate::fixtures::{chain_with_times, party, purpose};
use crate::suite::{brute_force, page_through, strip_summaries};

/// The in-memory backend, counting point reads of decision rows (`d` ‖ index).
#[derive(Default)]
struct Counting {
    inner: MemoryBackend,
    decision_reads: AtomicUsize,
}

impl Backend for Counting {
    fn get(&self, key: &[u8]) -> custos_storage::Result<Option<Vec<u8>>> {
        if key.len() == 9 && key[0] == b'd' {
            self.decision_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.get(key)
    }
    fn apply(&self, ops: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> custos_storage::Result<()> {
        self.inner.apply(ops)
    }
    fn scan(
        &self,
        from: &[u8],
        to_exclusive: &[u8],
        limit: usize,
    ) -> custos_storage::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(from, to_exclusive, limit)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> custos_storage::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan_prefix(prefix)
    }
}

/// Decision rows read while paging through `filter` with pages of `limit`, and what was found.
fn reads(
    store: &KvLedgerStore<Counting>,
    filter: &AuditFilter,
    limit: usize,
) -> (usize, Vec<(u64, Decision)>) {
    let before = store.backend().decision_reads.load(Ordering::Relaxed);
    let found = page_through(store, filter, limit);
    (
        store.backend().decision_reads.load(Ordering::Relaxed) - before,
        found,
    )
}

#[test]
fn a_filter_beyond_the_scanned_index_reads_only_the_matching_decisions() {
    let chain = chain_with_times(30, 10, |_, index| index as i64 * 1_000);
    let store = KvLedgerStore::open(Counting::default()).unwrap();
    for write in &chain.writes {
        store.commit_block(write.clone()).unwrap();
    }
    let all = AuditFilter::default;
    // Each scans one index (requesters, patient, purposes) and settles the rest —
    // outcome, mode, break-glass, time window — on the index rows' summaries.
    let filters = [
        AuditFilter {
            requesters: Some([party(1)].into()),
            granted: Some(false),
            ..all()
        },
        AuditFilter {
            patient: Some(party(10)),
            break_glass_only: true,
            ..all()
        },
        AuditFilter {
            requesters: Some([party(2), party(3)].into()),
            mode: Some(AccessMode::Predicate),
            ..all()
        },
        AuditFilter {
            purposes: Some([purpose(1), purpose(2)].into()),
            granted: Some(true),
            from: Some(Timestamp(40_000)),
            to: Some(Timestamp(160_000)),
            ..all()
        },
    ];
    for filter in &filters {
        let want = brute_force(&chain, filter);
        assert!(!want.is_empty(), "{filter:?} matches something");
        for limit in [1, 7, 1_000] {
            let (n, found) = reads(&store, filter, limit);
            assert_eq!(found, want, "{filter:?}, limit {limit}");
            assert_eq!(
                n,
                want.len(),
                "{filter:?}, limit {limit}: decision rows read"
            );
        }
    }

    // The same queries over index rows without summaries (a store written before them) read a
    // decision for every row of the scanned index.
    strip_summaries(&store);
    let requester_rows = chain
        .decisions()
        .iter()
        .filter(|(_, d)| d.requester == party(1))
        .count();
    let (n, found) = reads(&store, &filters[0], 1_000);
    assert_eq!(found, brute_force(&chain, &filters[0]));
    assert_eq!(n, requester_rows);
    assert!(n > found.len(), "{n} reads for {} matches", found.len());
}
