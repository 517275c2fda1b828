//! Random logs, filters, page sizes and scan budgets: paging always finds exactly what a
//! brute-force filter finds.

use custos_storage::{AuditFilter, KvLedgerStore, LedgerStore};
use custos_types::{DecisionReason, Timestamp};
use proptest::collection::{btree_set, vec};
use proptest::option;
use proptest::prelude::*;

use crate::fixtures::{Chain, Item, MODES, decision, party, purpose, record};
use crate::suite::page_through;

/// One decision's varied fields: requester, record, purpose, mode, reason, time.
type Spec = (u8, u8, usize, usize, usize, i64);

fn spec() -> impl Strategy<Value = Spec> {
    (0..4u8, 0..5u8, 0..5usize, 0..3usize, 0..3usize, 0..20i64)
}

fn filter() -> impl Strategy<Value = AuditFilter> {
    (
        option::of(0..4u8),
        option::of(btree_set(0..4u8, 0..3)),
        option::of(0..5u8),
        option::of(btree_set(0..5usize, 0..3)),
        option::of(0..3usize),
        option::of(any::<bool>()),
        any::<bool>(),
        option::of(0..20i64),
        option::of(0..20i64),
    )
        .prop_map(
            |(patient, requesters, rec, purposes, mode, granted, bg, from, to)| AuditFilter {
                patient: patient.map(|p| party(10 + p)),
                requesters: requesters.map(|r| r.into_iter().map(|n| party(1 + n)).collect()),
                record: rec.map(record),
                purposes: purposes.map(|p| p.into_iter().map(purpose).collect()),
                mode: mode.map(|m| MODES[m]),
                granted,
                break_glass_only: bg,
                from: from.map(Timestamp),
                to: to.map(Timestamp),
            },
        )
}

fn chain(mut specs: Vec<Spec>, cuts: &[usize], sorted: bool) -> Chain {
    if sorted {
        specs.sort_by_key(|s| s.5);
    }
    let mut chain = Chain::new();
    let mut specs = specs.into_iter().enumerate().peekable();
    for cut in cuts.iter().cycle() {
        if specs.peek().is_none() {
            break;
        }
        let items =
            specs
                .by_ref()
                .take(*cut)
                .map(|(n, (requester, rec, p, mode, reason, time))| {
                    let mut d = decision(n as u64, time);
                    d.requester = party(1 + requester);
                    d.record_id = record(rec);
                    d.patient = (rec != 4).then(|| party(10 + rec % 3));
                    d.purpose = purpose(p);
                    d.mode = MODES[mode];
                    d.reason = [
                        DecisionReason::Consent,
                        DecisionReason::NoConsent,
                        DecisionReason::BreakGlass,
                    ][reason];
                    d.break_glass = d.reason == DecisionReason::BreakGlass;
                    Item::Decision(d)
                });
        chain.push(items.collect(), vec![]);
    }
    chain
}

proptest! {
    #[test]
    fn paging_finds_exactly_what_a_brute_force_filter_finds(
        specs in vec(spec(), 0..60),
        cuts in vec(1..8usize, 1..10),
        sorted in any::<bool>(),
        filter in filter(),
        limit in 1..8usize,
        scan_limit in 1..12usize,
    ) {
        let chain = chain(specs, &cuts, sorted);
        let store = KvLedgerStore::in_memory().with_scan_limit(scan_limit);
        for write in &chain.writes {
            store.commit_block(write.clone()).unwrap();
        }
        let expected: Vec<_> =
            chain.decisions().into_iter().filter(|(_, d)| filter.matches(d)).collect();
        prop_assert_eq!(page_through(&store, &filter, limit), expected);
    }
}
