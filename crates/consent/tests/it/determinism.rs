//! Replaying the same blocks yields the same state: roots, items, entries, journal and rollback.

use std::collections::BTreeMap;

use custos_consent::{BlockContext, StateMachine, TxError};
use custos_crypto::SigningKeyPair;
use custos_types::tx::{ConfirmRelease, RegisterDelegate, RequestAccess};
use custos_types::{
    AccessMode, AggregateScope, ConsentId, EntryKind, Height, PartyId, RecordId, RequestId, Scope,
    SignedTransaction, Timestamp, TxKind,
};
use proptest::prelude::*;

use crate::fixture::*;

type Items = BTreeMap<Vec<u8>, Vec<u8>>;

/// An aggregate request asks about its record's custodian and category (the hospital's lab
/// records for an unknown record), so that random blocks hold well-formed aggregate requests.
fn as_aggregate(sm: &StateMachine, request: RequestAccess, hospital: PartyId) -> RequestAccess {
    if request.mode != AccessMode::Aggregate {
        return request;
    }
    let (custodian, category) = sm
        .record(&request.record_id)
        .map_or((hospital, category("lab")), |r| {
            (r.custodian, r.category.clone())
        });
    let scope = AggregateScope {
        custodian,
        category,
        text: "COUNT".into(),
    };
    RequestAccess {
        justification_digest: request.justification_digest,
        ..RequestAccess::aggregate(&scope, request.purpose)
    }
}

fn items_of(sm: &StateMachine) -> Items {
    sm.items().into_iter().collect()
}

fn rebuild(sm: &StateMachine) -> StateMachine {
    let items = sm.items();
    StateMachine::from_items(
        chain(),
        items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
    )
    .expect("items read back")
}

/// Applies storage changes (`None`: delete) to a copy of the previous items.
fn apply_changes(mut items: Items, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Items {
    for (k, v) in changes {
        match v {
            Some(v) => items.insert(k, v),
            None => items.remove(&k),
        };
    }
    items
}

#[test]
fn genesis_items_are_the_initial_state_not_a_change() {
    let mut l = Ledger::at_genesis();
    assert!(l.sm.take_changes().is_empty());
    let other = Ledger::at_genesis();
    assert_eq!(l.sm.root(), other.sm.root());
    assert_eq!(rebuild(&l.sm).root(), l.sm.root());
    l.sm.rollback();
    assert_eq!(l.sm.root(), other.sm.root(), "rollback cannot undo genesis");
    assert_eq!(l.sm.members().len(), 3);
    assert_eq!(l.sm.parties().len(), 5);
}

#[test]
fn rollback_after_a_block_restores_the_previous_root_and_items_exactly() {
    let (mut l, c) = scene();
    let root = l.sm.root();
    let items = items_of(&l.sm);
    // Keys written twice in the block (the consent, alice's nonce) and keys created in it.
    let id = l.grant(
        &c.alice,
        consent(
            party(&c.alice),
            party(&c.insurer),
            &["HPAYMT"],
            &[AccessMode::Raw],
        ),
    );
    l.ask(&c.insurer, alice_lab(), "HPAYMT", AccessMode::Raw);
    l.revoke(&c.alice, id);
    l.apply(&c.alice, erase(alice_imaging(), false));
    l.apply(
        &c.hospital,
        register_record(record("new"), party(&c.bob), "lab"),
    );
    let applied = l.sm.root();
    assert_ne!(applied, root);
    let mut undone = l.sm.clone();
    undone.rollback();
    assert_eq!(undone.root(), root);
    assert_eq!(items_of(&undone), items);
    assert!(undone.consent(&id).is_none());
    assert!(
        undone
            .record(&alice_imaging())
            .expect("registered earlier")
            .erased
            .is_none()
    );
    assert_eq!(undone.next_nonce(&party(&c.alice)), 1);
    assert!(
        undone.clone().take_changes().is_empty(),
        "rollback clears the journal"
    );

    // Once taken, the changes are committed: rollback undoes nothing further.
    let changes = l.sm.take_changes();
    assert_eq!(apply_changes(items, changes), items_of(&l.sm));
    l.sm.rollback();
    assert_eq!(l.sm.root(), applied);
}

#[test]
fn take_changes_reports_each_changed_key_once_with_its_final_value() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(
            party(&c.alice),
            party(&c.insurer),
            &["HPAYMT"],
            &[AccessMode::Raw],
        ),
    );
    l.revoke(&c.alice, id);
    let changes = l.sm.take_changes();
    // Alice's nonce, the consent, and the patient's consent index.
    assert_eq!(changes.len(), 3, "{changes:?}");
    let now = items_of(&l.sm);
    for (k, v) in &changes {
        assert_eq!(
            v.as_ref(),
            now.get(k),
            "a change carries the key's final value"
        );
    }
    assert!(l.sm.take_changes().is_empty());
}

#[test]
fn from_items_refuses_corrupt_items() {
    let l = Ledger::new();
    let mut items = l.sm.items();
    items[0].1[0] = 2; // unknown encoding version
    let read = StateMachine::from_items(
        chain(),
        items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
    );
    assert!(read.is_err());
    let empty: Vec<u8> = vec![];
    let read = StateMachine::from_items(chain(), [(empty.as_slice(), empty.as_slice())]);
    assert!(read.is_err());
    let mut items = l.sm.items();
    items[1].1.truncate(3);
    let read = StateMachine::from_items(
        chain(),
        items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
    );
    assert!(read.is_err());
}

#[test]
fn the_same_items_in_any_order_rebuild_the_same_root() {
    let (mut l, c) = scene();
    l.grant(
        &c.alice,
        consent(
            party(&c.alice),
            party(&c.insurer),
            &["HPAYMT"],
            &[AccessMode::Raw],
        ),
    );
    let mut items = l.sm.items();
    items.reverse();
    let read = StateMachine::from_items(
        chain(),
        items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
    )
    .expect("read back");
    assert_eq!(read.root(), l.sm.root());
    assert_eq!(read.items(), l.sm.items());
}

// ---- random blocks ----

const PURPOSES: [&str; 10] = [
    "TREAT", "ETREAT", "BTG", "HPAYMT", "COVAUTH", "CLMATTCH", "HMARKT", "HRESCH", "CLINTRCH",
    "PATRQT",
];
const MODES: [AccessMode; 3] = [
    AccessMode::Raw,
    AccessMode::Predicate,
    AccessMode::Aggregate,
];
const CATEGORIES: [&str; 2] = ["lab", "imaging"];

/// Everyone who signs: 0–2 members, 3 auditor, 4 advertiser, 5–7 patients, 8 unregistered.
fn actors(c: &Cast) -> [&SigningKeyPair; 9] {
    [
        &c.hospital,
        &c.clinic,
        &c.insurer,
        &c.auditor,
        &c.advertiser,
        &c.alice,
        &c.bob,
        &c.dave,
        &c.mallory,
    ]
}

fn patients(c: &Cast) -> [&SigningKeyPair; 3] {
    [&c.alice, &c.bob, &c.dave]
}

/// Records the ops pick from: three registered in the scene, two that may be registered later.
fn pool() -> [RecordId; 5] {
    [
        alice_lab(),
        alice_imaging(),
        bob_lab(),
        record("pool-3"),
        record("pool-4"),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Grant {
        by: usize,
        patient: usize,
        grantee: usize,
        scope: (u8, usize),
        purposes: (usize, usize),
        modes: u8,
        start: Option<i64>,
        end: Option<i64>,
    },
    /// `by: None`: the consent's patient.
    Revoke {
        by: Option<usize>,
        pick: usize,
    },
    Delegate {
        patient: usize,
        delegate: usize,
        revoke: bool,
        ttl: Option<i64>,
    },
    Request {
        by: usize,
        record: usize,
        purpose: usize,
        mode: usize,
        justified: bool,
    },
    /// A request by the grantee of a consent seen so far (`exact`: for its first purpose and
    /// mode), for one of the pool's records.
    Use {
        pick: usize,
        record: usize,
        purpose: usize,
        mode: usize,
        exact: bool,
    },
    /// `by: None`: the custodian of the request's record.
    Release {
        by: Option<usize>,
        pick: usize,
    },
    Erase {
        by: usize,
        record: usize,
        legal: bool,
    },
    Register {
        by: usize,
        record: usize,
        owner: usize,
        category: usize,
    },
    BreakGlass {
        author: usize,
        cosigners: u16,
        on: bool,
    },
    BadNonce {
        by: usize,
        ahead: bool,
    },
    WrongChain {
        by: usize,
    },
}

/// `Some` in about one case out of `one_in`.
fn sometimes<S: Strategy>(one_in: u32, s: S) -> impl Strategy<Value = Option<S::Value>> {
    proptest::option::weighted(1.0 / f64::from(one_in), s)
}

fn op() -> impl Strategy<Value = Op> {
    let grant = (
        (0..36usize, 0..3usize, 0..9usize),
        (0..6u8, 0..5usize),
        (0..10usize, 0..10usize, 1..8u8),
        (
            sometimes(4, -4_000i64..6_000),
            sometimes(3, -2_000i64..8_000),
        ),
    )
        .prop_map(
            |((by, patient, grantee), (scope, record), (p1, p2, modes), (start, end))| {
                Op::Grant {
                    // Three times in four the patient; else anyone (a delegate, or refused).
                    by: if by >= 9 { 5 + patient } else { by },
                    patient,
                    grantee,
                    scope: (scope, record),
                    purposes: (p1, p2),
                    modes,
                    start,
                    end,
                }
            },
        );
    let request = (0..9usize, 0..5usize, 0..10usize, 0..3usize, any::<bool>()).prop_map(
        |(by, record, purpose, mode, justified)| Op::Request {
            by,
            record,
            purpose,
            mode,
            justified,
        },
    );
    let use_consent = (
        any::<usize>(),
        0..5usize,
        0..10usize,
        0..3usize,
        any::<bool>(),
    )
        .prop_map(|(pick, record, purpose, mode, exact)| Op::Use {
            pick,
            record,
            purpose,
            mode,
            exact,
        });
    prop_oneof![
        5 => grant,
        2 => (sometimes(3, 0..9usize), any::<usize>()).prop_map(|(by, pick)| Op::Revoke { by, pick }),
        1 => (0..3usize, 0..9usize, proptest::bool::weighted(0.25), sometimes(2, 1i64..6_000))
            .prop_map(|(patient, delegate, revoke, ttl)| Op::Delegate { patient, delegate, revoke, ttl }),
        2 => request,
        5 => use_consent,
        2 => (sometimes(3, 0..9usize), any::<usize>()).prop_map(|(by, pick)| Op::Release { by, pick }),
        1 => (0..9usize, 0..5usize, any::<bool>()).prop_map(|(by, record, legal)| Op::Erase { by, record, legal }),
        1 => (0..9usize, 0..5usize, 0..3usize, 0..2usize)
            .prop_map(|(by, record, owner, category)| Op::Register { by, record, owner, category }),
        1 => (0..9usize, any::<u16>(), any::<bool>())
            .prop_map(|(author, cosigners, on)| Op::BreakGlass { author, cosigners, on }),
        1 => (0..9usize, any::<bool>()).prop_map(|(by, ahead)| Op::BadNonce { by, ahead }),
        1 => (0..9usize).prop_map(|by| Op::WrongChain { by }),
    ]
}

/// Blocks: each a time step in milliseconds and its ops.
fn blocks() -> impl Strategy<Value = Vec<(i64, Vec<Op>)>> {
    proptest::collection::vec((0i64..3_000, proptest::collection::vec(op(), 0..12)), 1..8)
}

/// The key of `who` among `keys`.
fn find<'a>(keys: &[&'a SigningKeyPair], who: Option<PartyId>) -> Option<&'a SigningKeyPair> {
    keys.iter().find(|k| Some(party(k)) == who).copied()
}

fn purpose_of(i: usize) -> custos_types::Purpose {
    purpose(PURPOSES[i])
}

/// What the ops refer to by index: the ids seen so far.
#[derive(Default)]
struct Seen {
    consents: Vec<ConsentId>,
    granted: Vec<ConsentId>,
    requests: Vec<RequestId>,
}

fn pick<T: Copy>(from: &[T], i: usize, otherwise: T) -> T {
    if from.is_empty() {
        otherwise
    } else {
        from[i % from.len()]
    }
}

/// Turns an op into a signed transaction against the current state (for nonces and ids).
fn materialize(
    op: &Op,
    sm: &StateMachine,
    c: &Cast,
    now: Timestamp,
    seen: &Seen,
) -> SignedTransaction {
    let actors = actors(c);
    let patients = patients(c);
    let pool = pool();
    let signed =
        |key: &SigningKeyPair, kind: TxKind| sign(&chain(), sm.next_nonce(&party(key)), kind, key);
    match *op {
        Op::Grant {
            by,
            patient,
            grantee,
            scope,
            purposes,
            modes,
            start,
            end,
        } => {
            let mut consent = consent(
                party(patients[patient]),
                party(actors[grantee]),
                &[PURPOSES[purposes.0], PURPOSES[purposes.1]],
                &[],
            );
            consent.modes = MODES
                .iter()
                .enumerate()
                .filter(|(i, _)| modes & (1 << i) != 0)
                .map(|(_, m)| *m)
                .collect();
            consent.scope = match scope.0 {
                0 | 1 => Scope::AllRecords,
                2 => records_scope(&[pool[scope.1]]),
                3 | 4 => categories_scope(&[CATEGORIES[scope.1 % 2]]),
                _ => Scope::Some {
                    records: [pool[scope.1]].into(),
                    categories: [category(CATEGORIES[scope.1 % 2])].into(),
                },
            };
            consent.period.not_before = start.map(|s| Timestamp(now.0 + s));
            consent.period.expires =
                end.map(|e| Timestamp(now.0 + start.map_or(e, |s| s + e.abs() + 1)));
            signed(actors[by], TxKind::GrantConsent(consent))
        }
        Op::Revoke { by, pick: i } => {
            let id = pick(&seen.consents, i, ConsentId(digest("unknown consent")));
            let patient = sm.consent(&id).map(|s| s.consent.patient);
            let by = by
                .map(|b| actors[b])
                .or_else(|| find(&actors, patient))
                .unwrap_or(actors[5]);
            signed(by, TxKind::RevokeConsent(id))
        }
        Op::Delegate {
            patient,
            delegate,
            revoke,
            ttl,
        } => signed(
            patients[patient],
            TxKind::RegisterDelegate(RegisterDelegate {
                delegate: party(actors[delegate]),
                expires: ttl.map(|t| Timestamp(now.0 + t)),
                revoke,
            }),
        ),
        Op::Request {
            by,
            record,
            purpose,
            mode,
            justified,
        } => {
            let mut request = access(pool[record], PURPOSES[purpose], MODES[mode]);
            request.justification_digest = justified.then(|| digest("emergency"));
            let request = as_aggregate(sm, request, party(actors[0]));
            signed(actors[by], TxKind::RequestAccess(request))
        }
        Op::Use {
            pick: i,
            record,
            purpose,
            mode,
            exact,
        } => {
            let grant = pick(&seen.granted, i, ConsentId(digest("unknown consent")));
            let (requester, purpose, mode, record_id) = match sm.consent(&grant) {
                Some(state) => {
                    let c = &state.consent;
                    let requester = find(&actors, Some(c.grantee));
                    let (p, m) = match (exact, c.purposes.first(), c.modes.first()) {
                        (true, Some(p), Some(m)) => (*p, *m),
                        _ => (purpose_of(purpose), MODES[mode]),
                    };
                    // One of the patient's records, if the pool holds any.
                    let owned: Vec<RecordId> = pool
                        .into_iter()
                        .filter(|r| sm.record(r).is_some_and(|r| r.owner == c.patient))
                        .collect();
                    (
                        requester.unwrap_or(actors[0]),
                        p,
                        m,
                        pick(&owned, record, pool[record]),
                    )
                }
                None => (
                    actors[i % actors.len()],
                    purpose_of(purpose),
                    MODES[mode],
                    pool[record],
                ),
            };
            let request = RequestAccess {
                purpose,
                mode,
                ..access(record_id, "TREAT", AccessMode::Raw)
            };
            let request = as_aggregate(sm, request, party(actors[0]));
            signed(requester, TxKind::RequestAccess(request))
        }
        Op::Release { by, pick: i } => {
            let request_id = pick(&seen.requests, i, RequestId(digest("unknown request")));
            let record = sm
                .request(&request_id)
                .and_then(|r| sm.record(&r.record_id));
            let custodian = record.map(|r| r.custodian);
            let by = by
                .map(|b| actors[b])
                .or_else(|| find(&actors, custodian))
                .unwrap_or(actors[0]);
            signed(
                by,
                TxKind::ConfirmRelease(ConfirmRelease {
                    request_id,
                    release_digest: digest("released"),
                }),
            )
        }
        Op::Erase { by, record, legal } => signed(actors[by], erase(pool[record], legal)),
        Op::Register {
            by,
            record,
            owner,
            category,
        } => signed(
            actors[by],
            register_record(pool[record], party(patients[owner]), CATEGORIES[category]),
        ),
        Op::BreakGlass {
            author,
            cosigners,
            on,
        } => {
            let mut tx = signed(actors[author], set_parameters(break_glass(on)));
            for (i, k) in actors.iter().enumerate() {
                if cosigners & (1 << i) != 0 {
                    tx.cosign(k);
                }
            }
            tx
        }
        Op::BadNonce { by, ahead } => {
            let next = sm.next_nonce(&party(actors[by]));
            let nonce = if ahead || next == 0 {
                next + 1
            } else {
                next - 1
            };
            sign(&chain(), nonce, undelegate(party(&c.dave)), actors[by])
        }
        Op::WrongChain { by } => {
            let other = custos_types::ChainId::parse("another-chain").expect("valid");
            sign(
                &other,
                sm.next_nonce(&party(actors[by])),
                undelegate(party(&c.dave)),
                actors[by],
            )
        }
    }
}

type Outcome = Result<Vec<EntryKind>, TxError>;

/// A recorded block: its context, its transactions and what applying each gave.
struct Block {
    ctx: BlockContext,
    txs: Vec<SignedTransaction>,
    outcomes: Vec<Outcome>,
    root: custos_crypto::Hash,
}

/// Runs the blocks on a fresh scene, checking at every step that a machine rebuilt from the
/// previous block's items behaves alike, that refusals change nothing, and that the block's
/// changes and rollback agree with the items. Returns the recorded blocks.
fn run_and_check(plan: &[(i64, Vec<Op>)]) -> Result<Vec<Block>, TestCaseError> {
    let c = Cast::new();
    let scene = Ledger::new();
    let mut sm = scene.sm.clone();
    let mut ctx = scene.ctx();
    let mut seen = Seen::default();
    let mut recorded = vec![];
    for (step, ops) in plan {
        ctx = BlockContext {
            height: Height(ctx.height.0 + 1),
            time: Timestamp(ctx.time.0 + step),
        };
        let prev_root = sm.root();
        let prev_items = items_of(&sm);
        let mut rebuilt = rebuild(&sm);
        prop_assert_eq!(rebuilt.root(), prev_root);
        let mut block = Block {
            ctx,
            txs: vec![],
            outcomes: vec![],
            root: prev_root,
        };
        for op in ops {
            let tx = materialize(op, &sm, &c, ctx.time, &seen);
            let before = sm.root();
            let checked = sm.check_tx(&tx, ctx);
            let outcome = sm.apply_tx(&tx, ctx);
            prop_assert_eq!(
                &rebuilt.apply_tx(&tx, ctx),
                &outcome,
                "a rebuilt machine decides alike"
            );
            prop_assert_eq!(checked, outcome.as_ref().map(|_| ()).map_err(Clone::clone));
            match &outcome {
                Err(_) => prop_assert_eq!(sm.root(), before, "a refused tx changes nothing"),
                Ok(entries) => {
                    prop_assert_eq!(&entries[0], &EntryKind::Transaction(tx.clone()));
                    let is_request = matches!(tx.body().kind, TxKind::RequestAccess(_));
                    prop_assert_eq!(entries.len(), if is_request { 2 } else { 1 });
                    if let Some(EntryKind::Decision(d)) = entries.get(1) {
                        prop_assert_eq!(d.request_id, RequestId(tx.id().0));
                        prop_assert_eq!(
                            sm.request(&d.request_id).map(|r| r.granted),
                            Some(d.granted())
                        );
                    }
                }
            }
            match tx.body().kind {
                TxKind::GrantConsent(_) => {
                    seen.consents.push(ConsentId(tx.id().0));
                    if outcome.is_ok() {
                        seen.granted.push(ConsentId(tx.id().0));
                    }
                }
                TxKind::RequestAccess(_) => seen.requests.push(RequestId(tx.id().0)),
                _ => {}
            }
            prop_assert_eq!(rebuilt.root(), sm.root());
            block.txs.push(tx);
            block.outcomes.push(outcome);
        }
        // Rollback restores the previous block's state exactly.
        let mut undone = sm.clone();
        undone.rollback();
        prop_assert_eq!(undone.root(), prev_root);
        prop_assert_eq!(items_of(&undone), prev_items.clone());
        // The changes, applied to the previous items, give the new items.
        let changes = sm.take_changes();
        prop_assert_eq!(apply_changes(prev_items, changes), items_of(&sm));
        prop_assert!(sm.take_changes().is_empty());
        prop_assert_eq!(rebuild(&sm).root(), sm.root());
        prop_assert_eq!(rebuilt.items(), sm.items());
        block.root = sm.root();
        recorded.push(block);
    }
    Ok(recorded)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_same_blocks_applied_to_two_fresh_machines_give_the_same_roots_and_entries(plan in blocks()) {
        let recorded = run_and_check(&plan)?;
        // Replay the recorded transactions on a second fresh machine.
        let mut other = Ledger::new().sm;
        for block in &recorded {
            for (tx, outcome) in block.txs.iter().zip(&block.outcomes) {
                prop_assert_eq!(&other.apply_tx(tx, block.ctx), outcome);
            }
            let _ = other.take_changes();
            prop_assert_eq!(other.root(), block.root, "same root after block {}", block.ctx.height);
        }
    }
}
