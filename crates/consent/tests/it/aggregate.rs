//! Aggregate requests: the decision fixes the cohort — the custodian's records of the category
//! whose owners consented to the requester for the purpose in mode aggregate — by RFC 6962 root
//! and size, and grants only a cohort of at least the consortium's minimum.

use custos_consent::TxError;
use custos_crypto::{Hash, SigningKeyPair, sha256, sha256_parts};
use custos_ledger::merkle::{MerkleTree, leaf_hash};
use custos_types::tx::{ConfirmRelease, RequestAccess};
use custos_types::{
    AccessMode, AggregateScope, ConsentPeriod, Decision, DecisionReason, Parameters, RecordId,
    SignedTransaction, Timestamp, TxKind,
};

use crate::fixture::*;

/// The hospital's `lab` records, for a count.
fn hospital_lab(c: &Cast) -> AggregateScope {
    AggregateScope {
        custodian: party(&c.hospital),
        category: category("lab"),
        text: "COUNT WHERE age >= 40".into(),
    }
}

/// A research request (CLINTRCH, under HRESCH) over `scope`.
fn research(scope: &AggregateScope) -> RequestAccess {
    RequestAccess::aggregate(scope, purpose("CLINTRCH"))
}

/// A consent of `patient` to `grantee` for research (HRESCH) in mode aggregate over all records.
fn research_consent(patient: &SigningKeyPair, grantee: &SigningKeyPair) -> custos_types::Consent {
    consent(
        party(patient),
        party(grantee),
        &["HRESCH"],
        &[AccessMode::Aggregate],
    )
}

/// Registers `n` patients (keys `first`, `first + 1`, …) in one block and, in the next, a record
/// of `category_name` for each held by `custodian`; returns them with their records.
fn patients(
    l: &mut Ledger,
    custodian: &SigningKeyPair,
    category_name: &str,
    first: u8,
    n: u8,
) -> Vec<(SigningKeyPair, RecordId)> {
    let keys: Vec<SigningKeyPair> = (0..n).map(|i| key(first + i)).collect();
    for k in &keys {
        l.apply(k, register_patient(k));
    }
    l.next_block();
    let out: Vec<(SigningKeyPair, RecordId)> = keys
        .into_iter()
        .map(|k| {
            let id = record(&format!("patient-{}-{category_name}", party(&k).short()));
            l.apply(custodian, register_record(id, party(&k), category_name));
            (k, id)
        })
        .collect();
    l.next_block();
    out
}

/// `n` patients with a hospital `lab` record each, all consenting to the insurer for research.
fn consenting(l: &mut Ledger, c: &Cast, first: u8, n: u8) -> Vec<RecordId> {
    let members = patients(l, &c.hospital, "lab", first, n);
    for (k, _) in &members {
        l.grant(k, research_consent(k, &c.insurer));
    }
    l.next_block();
    members.into_iter().map(|(_, id)| id).collect()
}

fn sorted(mut ids: Vec<RecordId>) -> Vec<RecordId> {
    ids.sort();
    ids
}

/// RFC 6962's MTH over the ids as leaf data, written out here independently of the ledger crate.
fn mth(ids: &[RecordId]) -> Hash {
    match ids {
        [] => sha256(b""),
        [id] => sha256_parts(&[&[0u8], id.0.as_bytes()]),
        _ => {
            // The largest power of two below the size.
            let split = 1usize << (ids.len() - 1).ilog2();
            let (left, right) = ids.split_at(split);
            sha256_parts(&[&[1u8], mth(left).as_bytes(), mth(right).as_bytes()])
        }
    }
}

/// The cohort ids the state kept for a decision.
fn kept(l: &Ledger, d: &Decision) -> Vec<RecordId> {
    l.sm.cohort(&d.request_id)
        .map(|c| c.records.clone())
        .expect("the state keeps the cohort of an aggregate decision")
}

#[test]
fn only_consenting_patients_records_enter_the_cohort() {
    let (mut l, c) = scene();
    let mut expected = consenting(&mut l, &c, 150, 6);
    // Narrower scopes that still cover a lab record, and a consent with more purposes and modes.
    let narrow = patients(&mut l, &c.hospital, "lab", 160, 3);
    let (k, id) = &narrow[0];
    l.grant(
        k,
        custos_types::Consent {
            scope: records_scope(&[*id]),
            ..research_consent(k, &c.insurer)
        },
    );
    let (k, _) = &narrow[1];
    l.grant(
        k,
        custos_types::Consent {
            scope: categories_scope(&["lab"]),
            ..research_consent(k, &c.insurer)
        },
    );
    let (k, _) = &narrow[2];
    l.grant(
        k,
        consent(
            party(k),
            party(&c.insurer),
            &["HPAYMT", "HRESCH"],
            &[AccessMode::Raw, AccessMode::Aggregate],
        ),
    );
    expected.extend(narrow.iter().map(|(_, id)| *id));
    // Alice consents over all her records: her lab record is in, her imaging record is not.
    l.grant(&c.alice, research_consent(&c.alice, &c.insurer));
    expected.push(alice_lab());

    // Everyone below has a hospital lab record that must stay out.
    let out = patients(&mut l, &c.hospital, "lab", 170, 8);
    let [
        revoked,
        expired,
        not_yet,
        other_grantee,
        other_purpose,
        raw_only,
        other_scope,
        erased,
    ] = &out[..]
    else {
        unreachable!("eight patients");
    };
    let id = l.grant(&revoked.0, research_consent(&revoked.0, &c.insurer));
    l.revoke(&revoked.0, id);
    l.grant(
        &expired.0,
        custos_types::Consent {
            period: ConsentPeriod {
                not_before: None,
                expires: Some(Timestamp(l.now().0 + BLOCK_MS / 2)),
            },
            ..research_consent(&expired.0, &c.insurer)
        },
    );
    l.grant(
        &not_yet.0,
        custos_types::Consent {
            period: ConsentPeriod {
                not_before: Some(Timestamp(l.now().0 + 3_600_000)),
                expires: None,
            },
            ..research_consent(&not_yet.0, &c.insurer)
        },
    );
    l.grant(
        &other_grantee.0,
        research_consent(&other_grantee.0, &c.advertiser),
    );
    l.grant(
        &other_purpose.0,
        consent(
            party(&other_purpose.0),
            party(&c.insurer),
            &["HPAYMT"],
            &[AccessMode::Aggregate],
        ),
    );
    l.grant(
        &raw_only.0,
        consent(
            party(&raw_only.0),
            party(&c.insurer),
            &["HRESCH"],
            &[AccessMode::Raw],
        ),
    );
    l.grant(
        &other_scope.0,
        custos_types::Consent {
            scope: categories_scope(&["imaging"]),
            ..research_consent(&other_scope.0, &c.insurer)
        },
    );
    l.grant(&erased.0, research_consent(&erased.0, &c.insurer));
    l.apply(&erased.0, erase(erased.1, false));
    // A consenting patient whose lab record is held by the clinic, not the hospital.
    let at_clinic = patients(&mut l, &c.clinic, "lab", 190, 1);
    l.grant(
        &at_clinic[0].0,
        research_consent(&at_clinic[0].0, &c.insurer),
    );
    l.next_block();

    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    let expected = sorted(expected);
    assert_eq!(expected.len(), 10);
    assert_eq!(kept(&l, &d), expected, "exactly the consenting records");
    let cohort = d.cohort.expect("an aggregate decision fixes its cohort");
    assert_eq!(cohort.size, 10);
    assert_eq!(cohort.root, mth(&expected));
    assert_eq!(d.reason, DecisionReason::Consent);
    assert!(d.granted());
    assert_eq!(d.record_id, hospital_lab(&c).cohort_id());
    assert_eq!(d.patient, None, "an aggregate names no single patient");
    assert_eq!(d.consent_id, None);
    assert_eq!(d.mode, AccessMode::Aggregate);
    for left_out in out.iter().map(|(_, id)| id).chain([&at_clinic[0].1]) {
        assert!(!expected.contains(left_out));
    }
    assert!(!expected.contains(&alice_imaging()));
    assert!(!expected.contains(&bob_lab()));
}

#[test]
fn a_cohort_below_the_minimum_is_denied_as_cohort_too_small() {
    let (mut l, c) = scene();
    let k = Parameters::default().min_cohort_size;
    let ids = consenting(&mut l, &c, 150, (k - 1) as u8);
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    assert_eq!(d.reason, DecisionReason::CohortTooSmall);
    assert_eq!(d.reason.code(), "cohort_too_small");
    assert!(!d.granted());
    let cohort = d.cohort.expect("a too-small cohort is still fixed");
    assert_eq!(cohort.size, u64::from(k - 1));
    assert_eq!(kept(&l, &d), sorted(ids));
    let request = l.sm.request(&d.request_id).expect("the request is kept");
    assert!(!request.granted);
}

#[test]
fn a_cohort_of_exactly_the_minimum_is_granted() {
    let (mut l, c) = scene();
    let k = Parameters::default().min_cohort_size;
    let ids = consenting(&mut l, &c, 150, k as u8);
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    assert_eq!(d.reason, DecisionReason::Consent);
    assert!(d.granted());
    assert_eq!(d.cohort.map(|c| c.size), Some(u64::from(k)));
    assert_eq!(kept(&l, &d), sorted(ids));
    assert!(l.sm.request(&d.request_id).is_some_and(|r| r.granted));
}

#[test]
fn an_empty_cohort_is_denied_as_cohort_too_small() {
    let (mut l, c) = scene();
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    assert_eq!(d.reason, DecisionReason::CohortTooSmall);
    let cohort = d.cohort.expect("an empty cohort is still fixed");
    assert_eq!(cohort.size, 0);
    assert_eq!(cohort.root, sha256(b""), "RFC 6962's empty root");
    assert!(kept(&l, &d).is_empty());
}

#[test]
fn the_minimum_is_the_consortiums_current_parameter() {
    let (mut l, c) = scene();
    consenting(&mut l, &c, 150, 3);
    let mut tx = l.tx(
        &c.hospital,
        set_parameters(Parameters {
            min_cohort_size: 3,
            ..Parameters::default()
        }),
    );
    tx.cosign(&c.clinic);
    tx.cosign(&c.insurer);
    l.apply_signed(&tx);
    l.next_block();
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    assert_eq!(d.reason, DecisionReason::Consent);
    assert_eq!(d.cohort.map(|c| c.size), Some(3));
}

#[test]
fn the_cohort_root_is_the_rfc6962_root_of_the_sorted_ids() {
    let (mut l, c) = scene();
    let ids = sorted(consenting(&mut l, &c, 150, 13));
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    let cohort = d.cohort.expect("fixed");
    assert_eq!(cohort.root, mth(&ids), "the independent MTH");
    let mut tree = MerkleTree::new();
    for id in &ids {
        tree.push(leaf_hash(id.0.as_bytes()));
    }
    assert_eq!(cohort.root, tree.root(), "the ledger's append-only tree");
    assert_eq!(cohort, custos_consent::cohort_of(&ids));
    let mut shuffled = ids.clone();
    shuffled.reverse();
    assert_ne!(cohort.root, mth(&shuffled), "the order is part of the root");
}

/// The same consents granted in two orders over two ledgers.
fn decided(reverse: bool) -> (Decision, Vec<RecordId>, Hash) {
    let (mut l, c) = scene();
    let mut members = patients(&mut l, &c.hospital, "lab", 150, 12);
    if reverse {
        members.reverse();
    }
    for (k, _) in &members {
        l.grant(k, research_consent(k, &c.insurer));
    }
    l.next_block();
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    let ids = kept(&l, &d);
    l.next_block();
    (d, ids, l.sm.root())
}

#[test]
fn aggregate_decisions_are_deterministic() {
    let (d1, ids1, root1) = decided(false);
    let (d2, ids2, root2) = decided(false);
    assert_eq!(d1, d2);
    assert_eq!(ids1, ids2);
    assert_eq!(root1, root2);
    let (d3, ids3, _) = decided(true);
    assert_eq!(
        d1.cohort, d3.cohort,
        "the grant order does not reach the cohort"
    );
    assert_eq!(ids1, ids3);
}

#[test]
fn auditors_are_not_authorized_for_aggregates() {
    let (mut l, c) = scene();
    consenting(&mut l, &c, 150, 10);
    let d = l.request(&c.auditor, research(&hospital_lab(&c)));
    assert_eq!(d.reason, DecisionReason::NotAuthorized);
    assert_eq!(
        d.cohort, None,
        "no cohort is computed for an unauthorized requester"
    );
    assert!(l.sm.cohort(&d.request_id).is_none());
}

#[test]
fn an_aggregate_request_naming_an_unknown_custodian_is_refused_naming_the_field() {
    let (mut l, c) = scene();
    let scope = AggregateScope {
        custodian: party(&c.mallory),
        ..hospital_lab(&c)
    };
    let err = l.refuse(&c.insurer, TxKind::RequestAccess(research(&scope)));
    assert!(
        matches!(
            err,
            TxError::UnknownParty {
                field: "request_access.query.custodian",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_aggregate_request_naming_a_non_custodian_is_refused_naming_the_field() {
    let (mut l, c) = scene();
    let scope = AggregateScope {
        custodian: party(&c.advertiser),
        ..hospital_lab(&c)
    };
    let err = l.refuse(&c.insurer, TxKind::RequestAccess(research(&scope)));
    assert!(
        matches!(
            err,
            TxError::Invalid {
                field: "request_access.query.custodian",
                ..
            }
        ),
        "{err}"
    );
}

/// The field path a refused aggregate request names, from the state machine and from the wire.
fn refused_field(request: RequestAccess) -> (String, String) {
    let (mut l, c) = scene();
    let tx = l.tx(&c.insurer, TxKind::RequestAccess(request));
    let machine = match l.refuse_signed(&tx) {
        TxError::Field(e) => e.field,
        other => panic!("expected a field error, got {other}"),
    };
    let wire = match SignedTransaction::from_wire(tx.to_wire()) {
        Err(e) => e.field,
        Ok(_) => panic!("the wire conversion accepted it"),
    };
    (machine, wire)
}

#[test]
fn a_record_id_other_than_the_cohort_id_is_refused_naming_the_field() {
    let c = Cast::new();
    let request = RequestAccess {
        record_id: alice_lab(),
        ..research(&hospital_lab(&c))
    };
    let (machine, wire) = refused_field(request);
    assert_eq!(machine, "request_access.record_id");
    assert_eq!(wire, "body.request_access.record_id");
}

#[test]
fn an_oversized_query_text_is_refused_naming_the_field() {
    let c = Cast::new();
    let scope = AggregateScope {
        text: "x".repeat(4097),
        ..hospital_lab(&c)
    };
    let (machine, wire) = refused_field(research(&scope));
    assert_eq!(machine, "request_access.query.text");
    assert_eq!(wire, "body.request_access.query.text");
    let at_most = AggregateScope {
        text: "x".repeat(4096),
        ..hospital_lab(&c)
    };
    let (mut l, c) = scene();
    let d = l.request(&c.insurer, research(&at_most));
    assert_eq!(d.reason, DecisionReason::CohortTooSmall);
}

#[test]
fn an_empty_query_text_or_a_malformed_scope_is_refused_naming_the_field() {
    let c = Cast::new();
    let scope = AggregateScope {
        text: String::new(),
        ..hospital_lab(&c)
    };
    assert_eq!(
        refused_field(research(&scope)),
        (
            "request_access.query.text".to_string(),
            "body.request_access.query.text".to_string()
        )
    );
    let garbage = RequestAccess {
        query: vec![0xff; 16],
        ..research(&hospital_lab(&c))
    };
    assert_eq!(
        refused_field(garbage),
        (
            "request_access.query".to_string(),
            "body.request_access.query".to_string()
        )
    );
}

#[test]
fn the_scope_custodian_confirms_an_aggregate_release_and_nobody_else() {
    let (mut l, c) = scene();
    consenting(&mut l, &c, 150, 10);
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    assert!(d.granted());
    l.next_block();
    let confirm = || {
        TxKind::ConfirmRelease(ConfirmRelease {
            request_id: d.request_id,
            release_digest: digest("encrypted count"),
        })
    };
    let err = l.refuse(&c.clinic, confirm());
    assert!(matches!(err, TxError::NotAuthorized(_)), "{err}");
    l.apply(&c.hospital, confirm());
    assert_eq!(
        l.sm.request(&d.request_id).and_then(|r| r.released),
        Some(digest("encrypted count"))
    );
}

#[test]
fn a_denied_aggregate_release_cannot_be_confirmed() {
    let (mut l, c) = scene();
    consenting(&mut l, &c, 150, 2);
    let d = l.request(&c.insurer, research(&hospital_lab(&c)));
    assert_eq!(d.reason, DecisionReason::CohortTooSmall);
    let err = l.refuse(
        &c.hospital,
        TxKind::ConfirmRelease(ConfirmRelease {
            request_id: d.request_id,
            release_digest: digest("encrypted count"),
        }),
    );
    assert!(matches!(err, TxError::NotAuthorized(_)), "{err}");
}

#[test]
fn a_revocation_after_the_decision_leaves_the_fixed_cohort_unchanged() {
    let (mut l, c) = scene();
    let members = patients(&mut l, &c.hospital, "lab", 150, 10);
    let ids: Vec<_> = members
        .iter()
        .map(|(k, _)| l.grant(k, research_consent(k, &c.insurer)))
        .collect();
    l.next_block();
    let first = l.request(&c.insurer, research(&hospital_lab(&c)));
    l.next_block();
    l.revoke(&members[0].0, ids[0]);
    l.next_block();
    let second = l.request(&c.insurer, research(&hospital_lab(&c)));
    assert_eq!(
        kept(&l, &first).len(),
        10,
        "the first decision's cohort is kept"
    );
    assert_eq!(second.reason, DecisionReason::CohortTooSmall);
    assert_eq!(second.cohort.map(|c| c.size), Some(9));
    assert_ne!(first.request_id, second.request_id);
}
