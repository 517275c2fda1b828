//! Behaviour every backend must show, as functions over a fresh store.

use custos_storage::{AuditFilter, Backend, BlockWrite, KvLedgerStore, LedgerStore, StoreError};
use custos_types::{AccessMode, Decision, Purpose, Timestamp};

use crate::fixtures::{
    Chain, Item, chain_with_times, party, purpose, record, request, sample_chain, tx,
};

/// Every row of the backend, to show that a refused write changed nothing.
fn dump<B: Backend>(store: &KvLedgerStore<B>) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.backend().scan_prefix(&[]).unwrap()
}

fn commit_all(store: &impl LedgerStore, chain: &Chain) {
    for write in &chain.writes {
        store.commit_block(write.clone()).unwrap();
    }
}

/// Checks that `store` holds exactly `chain`.
pub(crate) fn assert_chain_stored(store: &impl LedgerStore, chain: &Chain) {
    let tip = chain.writes.len() as u64;
    let count = chain.next_entry();
    assert_eq!(store.tip().unwrap(), tip);
    assert_eq!(store.entry_count().unwrap(), count);
    let mut leaves = Vec::new();
    for write in &chain.writes {
        let b = &write.block;
        let height = b.header.height;
        assert_eq!(store.block(height).unwrap().as_ref(), Some(b));
        assert_eq!(
            store.header(height).unwrap(),
            Some((b.header.clone(), b.certificate.clone()))
        );
        for (index, entry) in (b.first_entry..).zip(&b.entries) {
            assert_eq!(store.entry(index).unwrap(), Some((entry.clone(), height)));
        }
        leaves.extend(write.leaf_hashes.iter().copied());
        for (id, index) in &write.transactions {
            assert_eq!(store.transaction(id).unwrap(), Some((height, *index)));
        }
        for (index, d) in &write.decisions {
            assert_eq!(store.decision_index(&d.request_id).unwrap(), Some(*index));
        }
        for (request, index) in &write.releases {
            assert!(store.releases(request).unwrap().contains(index));
        }
    }
    assert_eq!(store.leaf_hashes().unwrap(), leaves);
    assert_eq!(
        store.state_items().unwrap(),
        chain.state().into_iter().collect::<Vec<_>>()
    );
    assert_eq!(store.block(tip + 1).unwrap(), None);
    assert_eq!(store.header(tip + 1).unwrap(), None);
    assert_eq!(store.entry(count).unwrap(), None);
}

/// Pages through a query, checking each page, and returns every decision found.
pub(crate) fn page_through(
    store: &impl LedgerStore,
    filter: &AuditFilter,
    limit: usize,
) -> Vec<(u64, Decision)> {
    let mut found: Vec<(u64, Decision)> = Vec::new();
    let mut after = None;
    for _ in 0..100_000 {
        let page = store.query_decisions(filter, after, limit).unwrap();
        assert!(
            page.decisions.len() <= limit,
            "a page holds at most `limit` decisions"
        );
        let indexes: Vec<u64> = page.decisions.iter().map(|(i, _)| *i).collect();
        assert!(
            indexes.windows(2).all(|w| w[0] < w[1]),
            "a page is in log order"
        );
        assert!(
            indexes.iter().all(|i| after.is_none_or(|a| *i > a)),
            "a page starts after the cursor"
        );
        found.extend(page.decisions);
        match page.next {
            None => return found,
            Some(next) => {
                assert!(after.is_none_or(|a| next > a), "the cursor advances");
                if indexes.len() == limit {
                    assert_eq!(
                        Some(&next),
                        indexes.last(),
                        "a full page continues after its last"
                    );
                } else {
                    assert!(indexes.last().is_none_or(|last| next >= *last));
                }
                after = Some(next);
            }
        }
    }
    panic!("paging did not end");
}

/// The decisions of `chain` that `filter` matches, in log order.
pub(crate) fn brute_force(chain: &Chain, filter: &AuditFilter) -> Vec<(u64, Decision)> {
    chain
        .decisions()
        .into_iter()
        .filter(|(_, d)| filter.matches(d))
        .collect()
}

/// Filters exercising every field and each index choice, alone and combined.
fn filters() -> Vec<AuditFilter> {
    let all = AuditFilter::default;
    vec![
        all(),
        AuditFilter {
            patient: Some(party(10)),
            ..all()
        },
        AuditFilter {
            patient: Some(party(12)),
            granted: Some(true),
            ..all()
        },
        AuditFilter {
            requesters: Some([party(1)].into()),
            ..all()
        },
        AuditFilter {
            requesters: Some([party(2), party(4)].into()),
            mode: Some(AccessMode::Raw),
            ..all()
        },
        AuditFilter {
            record: Some(record(3)),
            ..all()
        },
        AuditFilter {
            record: Some(record(5)),
            ..all()
        },
        AuditFilter {
            record: Some(record(5)),
            patient: Some(party(10)),
            ..all()
        },
        AuditFilter {
            purposes: Some([purpose(0)].into()),
            ..all()
        },
        AuditFilter {
            purposes: Some([purpose(1), purpose(3), purpose(4)].into()),
            granted: Some(false),
            ..all()
        },
        AuditFilter {
            mode: Some(AccessMode::Predicate),
            ..all()
        },
        AuditFilter {
            granted: Some(true),
            ..all()
        },
        AuditFilter {
            granted: Some(false),
            ..all()
        },
        AuditFilter {
            break_glass_only: true,
            ..all()
        },
        AuditFilter {
            break_glass_only: true,
            from: Some(Timestamp(4_000)),
            to: Some(Timestamp(9_000)),
            ..all()
        },
        AuditFilter {
            break_glass_only: true,
            purposes: Some(Purpose::parse("TREAT").unwrap().descendants().collect()),
            ..all()
        },
        AuditFilter {
            purposes: Some(Purpose::parse("TREAT").unwrap().descendants().collect()),
            ..all()
        },
        AuditFilter {
            purposes: Some(Purpose::parse("HPAYMT").unwrap().descendants().collect()),
            granted: Some(false),
            ..all()
        },
        AuditFilter {
            from: Some(Timestamp(3_000)),
            ..all()
        },
        AuditFilter {
            to: Some(Timestamp(3_000)),
            ..all()
        },
        AuditFilter {
            from: Some(Timestamp(2_000)),
            to: Some(Timestamp(5_000)),
            ..all()
        },
        AuditFilter {
            from: Some(Timestamp(5_000)),
            to: Some(Timestamp(5_000)),
            ..all()
        },
        AuditFilter {
            from: Some(Timestamp(99_000)),
            ..all()
        },
        AuditFilter {
            patient: Some(party(11)),
            purposes: Some([purpose(2), purpose(4)].into()),
            from: Some(Timestamp(2_000)),
            to: Some(Timestamp(9_000)),
            ..all()
        },
        AuditFilter {
            requesters: Some([party(1), party(3)].into()),
            record: Some(record(0)),
            break_glass_only: true,
            ..all()
        },
        AuditFilter {
            requesters: Some([party(1), party(2), party(3)].into()),
            purposes: Some([purpose(0), purpose(2)].into()),
            to: Some(Timestamp(8_000)),
            ..all()
        },
    ]
}

fn assert_every_filter_pages_like_brute_force(store: &impl LedgerStore, chain: &Chain) {
    let mut matched = 0;
    for filter in filters() {
        let expected = brute_force(chain, &filter);
        matched += usize::from(!expected.is_empty());
        for limit in [1, 3, 10, 1_000] {
            assert_eq!(
                page_through(store, &filter, limit),
                expected,
                "{filter:?}, limit {limit}"
            );
        }
    }
    assert!(
        matched >= filters().len() - 4,
        "the filters should mostly match something"
    );
}

pub(crate) fn an_empty_store_has_no_blocks_entries_or_state<B: Backend>(store: KvLedgerStore<B>) {
    assert_eq!(store.tip().unwrap(), 0);
    assert_eq!(store.entry_count().unwrap(), 0);
    assert_eq!(store.block(1).unwrap(), None);
    assert_eq!(store.header(0).unwrap(), None);
    assert_eq!(store.entry(0).unwrap(), None);
    assert!(store.leaf_hashes().unwrap().is_empty());
    assert!(store.state_items().unwrap().is_empty());
    assert_eq!(store.transaction(&tx(0)).unwrap(), None);
    assert_eq!(store.decision_index(&request(0)).unwrap(), None);
    assert!(store.releases(&request(0)).unwrap().is_empty());
    let page = store
        .query_decisions(&AuditFilter::default(), None, 10)
        .unwrap();
    assert_eq!((page.decisions.len(), page.next), (0, None));
}

pub(crate) fn committed_blocks_read_back_exactly<B: Backend>(store: KvLedgerStore<B>) {
    let chain = sample_chain(6, 5);
    for (n, write) in chain.writes.iter().enumerate() {
        store.commit_block(write.clone()).unwrap();
        assert_eq!(store.tip().unwrap(), n as u64 + 1);
    }
    assert_chain_stored(&store, &chain);
}

pub(crate) fn state_items_reflect_every_change_including_deletes<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let mut chain = Chain::new();
    let set = |k: &str, v: &str| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()));
    let delete = |k: &str| (k.as_bytes().to_vec(), None);
    chain.push(vec![], vec![set("a", "1"), set("b", "2"), set("c", "3")]);
    chain.push(
        vec![],
        vec![
            delete("b"),
            set("a", "4"),
            set("d", "5"),
            delete("never-set"),
        ],
    );
    chain.push(
        vec![],
        vec![set("b", "6"), delete("b"), set("c", "7"), delete("d")],
    );
    commit_all(&store, &chain);
    let expected = vec![
        (b"a".to_vec(), b"4".to_vec()),
        (b"c".to_vec(), b"7".to_vec()),
    ];
    assert_eq!(store.state_items().unwrap(), expected);
    assert_eq!(
        store.entry_count().unwrap(),
        0,
        "blocks without entries add none"
    );
    assert_chain_stored(&store, &chain);
}

pub(crate) fn transactions_decisions_and_releases_are_found<B: Backend>(store: KvLedgerStore<B>) {
    let chain = sample_chain(3, 8);
    commit_all(&store, &chain);
    // Entry 2 is a decision whose release entry 3 confirms; entry 10 likewise with 11.
    assert_eq!(store.transaction(&tx(5)).unwrap(), Some((1, 5)));
    assert_eq!(store.transaction(&tx(17)).unwrap(), Some((3, 17)));
    assert_eq!(store.transaction(&tx(24)).unwrap(), None);
    assert_eq!(store.decision_index(&request(10)).unwrap(), Some(10));
    assert_eq!(
        store.decision_index(&request(3)).unwrap(),
        None,
        "entry 3 is a release"
    );
    assert_eq!(store.releases(&request(2)).unwrap(), vec![3]);
    assert_eq!(store.releases(&request(10)).unwrap(), vec![11]);
    assert!(store.releases(&request(1)).unwrap().is_empty());

    // A request released twice, in different blocks, lists both in log order.
    let mut more = sample_chain(3, 8);
    more.push(vec![Item::Release(request(2))], vec![]);
    store.commit_block(more.writes[3].clone()).unwrap();
    assert_eq!(store.releases(&request(2)).unwrap(), vec![3, 24]);
}

fn refused<B: Backend>(store: &KvLedgerStore<B>, write: BlockWrite) -> StoreError {
    let before = dump(store);
    let err = store.commit_block(write).unwrap_err();
    assert_eq!(dump(store), before, "a refused block changes nothing");
    err
}

pub(crate) fn a_block_at_the_wrong_height_is_refused_and_changes_nothing<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = sample_chain(4, 3);
    for write in &chain.writes[..2] {
        store.commit_block(write.clone()).unwrap();
    }
    let skipped = refused(&store, chain.writes[3].clone());
    assert!(
        matches!(skipped, StoreError::OutOfOrder { tip: 2, got: 4 }),
        "{skipped}"
    );
    let repeated = refused(&store, chain.writes[1].clone());
    assert!(
        matches!(repeated, StoreError::OutOfOrder { tip: 2, got: 2 }),
        "{repeated}"
    );
    store.commit_block(chain.writes[2].clone()).unwrap();
    assert_eq!(store.tip().unwrap(), 3);
}

pub(crate) fn a_block_with_the_wrong_first_entry_is_refused_and_changes_nothing<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = sample_chain(3, 3);
    for write in &chain.writes[..2] {
        store.commit_block(write.clone()).unwrap();
    }
    for first_entry in [5, 7, 0] {
        let mut write = chain.writes[2].clone();
        write.block.first_entry = first_entry;
        let err = refused(&store, write);
        assert!(
            matches!(err, StoreError::OutOfOrder { tip: 2, got: 3 }),
            "{err}"
        );
    }
    store.commit_block(chain.writes[2].clone()).unwrap();
    assert_chain_stored(&store, &chain);
}

pub(crate) fn a_block_with_missing_leaf_hashes_is_refused_and_changes_nothing<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = sample_chain(2, 4);
    store.commit_block(chain.writes[0].clone()).unwrap();
    let mut short = chain.writes[1].clone();
    short.leaf_hashes.pop();
    refused(&store, short);
    let mut stray = chain.writes[1].clone();
    stray.decisions[0].0 = 99;
    refused(&store, stray);
    store.commit_block(chain.writes[1].clone()).unwrap();
    assert_chain_stored(&store, &chain);
}

pub(crate) fn audit_pages_match_a_brute_force_filter_for_every_filter<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = sample_chain(12, 7);
    commit_all(&store, &chain);
    assert_every_filter_pages_like_brute_force(&store, &chain);
}

pub(crate) fn audit_pages_continue_exactly_after_a_small_scan_budget<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let store = store.with_scan_limit(3);
    let chain = sample_chain(12, 7);
    commit_all(&store, &chain);
    assert_every_filter_pages_like_brute_force(&store, &chain);

    // A sparse filter with no index of its own runs out of budget before it fills a page: the
    // page comes back short, with a cursor after the last row read.
    let sparse = AuditFilter {
        mode: Some(AccessMode::Predicate),
        granted: Some(false),
        ..Default::default()
    };
    let page = store.query_decisions(&sparse, None, 5).unwrap();
    assert!(page.decisions.len() < 5);
    assert_eq!(
        page.next,
        Some(2),
        "three decision rows (0, 1, 2) were read"
    );

    // Break-glass accesses have an index of their own: every row read is one, so the same
    // budget fills a page of three where a scan of the decisions would find one.
    let break_glass = AuditFilter {
        break_glass_only: true,
        ..Default::default()
    };
    let page = store.query_decisions(&break_glass, None, 3).unwrap();
    let found: Vec<u64> = page.decisions.iter().map(|(i, _)| *i).collect();
    assert_eq!(found, [0, 6, 12]);
    assert_eq!(page.next, Some(12));
}

pub(crate) fn audit_time_filters_hold_when_decision_times_go_backwards<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = chain_with_times(10, 6, |_, index| (index * 7_919 % 13) as i64 * 1_000);
    commit_all(&store, &chain);
    assert_every_filter_pages_like_brute_force(&store, &chain);
}

pub(crate) fn an_empty_requester_or_purpose_set_matches_nothing<B: Backend>(
    store: KvLedgerStore<B>,
) {
    commit_all(&store, &sample_chain(3, 4));
    for filter in [
        AuditFilter {
            requesters: Some([].into()),
            ..Default::default()
        },
        AuditFilter {
            purposes: Some([].into()),
            ..Default::default()
        },
    ] {
        let page = store.query_decisions(&filter, None, 10).unwrap();
        assert_eq!((page.decisions.len(), page.next), (0, None), "{filter:?}");
    }
}

pub(crate) fn a_cursor_at_or_past_the_end_returns_an_empty_last_page<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = sample_chain(3, 4);
    commit_all(&store, &chain);
    let last = chain.decisions().last().unwrap().0;
    for after in [last, last + 1, 1_000, u64::MAX] {
        let page = store
            .query_decisions(&AuditFilter::default(), Some(after), 10)
            .unwrap();
        assert_eq!(
            (page.decisions.len(), page.next),
            (0, None),
            "after {after}"
        );
    }
    // A zero limit still makes progress: it reads as one.
    let page = store
        .query_decisions(&AuditFilter::default(), None, 0)
        .unwrap();
    assert_eq!(page.decisions.len(), 1);
    assert_eq!(page.next, Some(0));
}

pub(crate) fn an_old_store_gets_its_missing_indexes_when_opened<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = sample_chain(12, 7);
    commit_all(&store, &chain);
    let current = dump(&store);
    // What a store written before the break-glass index looks like.
    let old: Vec<_> = current
        .iter()
        .filter(|(k, _)| k.starts_with(b"ib") || k.as_slice() == b"mindexes")
        .map(|(k, _)| (k.clone(), None))
        .collect();
    assert!(old.len() > 2, "the chain has break-glass decisions");
    store.backend().apply(old).unwrap();
    assert_ne!(dump(&store), current);

    let store = KvLedgerStore::open(store.into_backend()).unwrap();
    assert_eq!(
        dump(&store),
        current,
        "the rebuilt store is what a new one holds"
    );
    assert_every_filter_pages_like_brute_force(&store, &chain);
}

pub(crate) fn index_rows_without_summaries_page_as_before<B: Backend>(store: KvLedgerStore<B>) {
    let chain = chain_with_times(12, 7, |_, index| (index * 7_919 % 13) as i64 * 1_000);
    commit_all(&store, &chain);
    // Every index row carries its decision's summary…
    let rows: Vec<_> = dump(&store)
        .into_iter()
        .filter(|(k, _)| k.first() == Some(&b'i'))
        .collect();
    assert!(rows.len() > 5 * 60, "every decision is indexed");
    assert!(rows.iter().all(|(_, v)| v.len() == 10 && v[0] == 1));
    assert_every_filter_pages_like_brute_force(&store, &chain);
    // …and a store written before summaries (empty index values) answers the same.
    strip_summaries(&store);
    assert_every_filter_pages_like_brute_force(&store, &chain);
}

/// Empties every audit index row's value, as a store written before summaries has them.
pub(crate) fn strip_summaries<B: Backend>(store: &KvLedgerStore<B>) {
    let emptied = dump(store)
        .into_iter()
        .filter(|(k, _)| k.first() == Some(&b'i'))
        .map(|(k, _)| (k, Some(Vec::new())))
        .collect();
    store.backend().apply(emptied).unwrap();
}

pub(crate) fn blocks_committed_in_one_batch_are_stored_as_if_committed_one_by_one<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = chain_with_times(12, 7, |_, index| (index * 7_919 % 13) as i64 * 1_000);
    let one_by_one = KvLedgerStore::in_memory();
    commit_all(&one_by_one, &chain);

    // A batch that skips a block is refused whole.
    let gap = [chain.writes[0].clone(), chain.writes[2].clone()];
    let before = dump(&store);
    assert!(matches!(
        store.commit_blocks(&gap).unwrap_err(),
        StoreError::OutOfOrder { tip: 1, got: 3 }
    ));
    assert_eq!(dump(&store), before);

    for batch in chain.writes.chunks(5) {
        store.commit_blocks(batch).unwrap();
    }
    assert_eq!(dump(&store), dump(&one_by_one));
    assert_chain_stored(&store, &chain);
    assert_every_filter_pages_like_brute_force(&store, &chain);
}

pub(crate) fn blocks_loaded_offline_are_stored_as_if_committed_one_by_one<B: Backend>(
    store: KvLedgerStore<B>,
) {
    let chain = sample_chain(12, 7);
    let one_by_one = KvLedgerStore::in_memory();
    commit_all(&one_by_one, &chain);

    let gap = [chain.writes[1].clone()];
    assert!(matches!(
        store.load_blocks(&gap).unwrap_err(),
        StoreError::OutOfOrder { tip: 0, got: 2 }
    ));
    assert!(dump(&store).is_empty());

    for batch in chain.writes.chunks(4) {
        store.load_blocks(batch).unwrap();
    }
    assert_eq!(dump(&store), dump(&one_by_one));
    assert_chain_stored(&store, &chain);
}
