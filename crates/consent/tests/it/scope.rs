//! Which records a consent covers, and which scopes a grant may name.

use std::collections::BTreeSet;

use custos_consent::TxError;
use custos_types::{AccessMode, DecisionReason, Scope, TxKind};

use crate::fixture::*;

const RAW: AccessMode = AccessMode::Raw;

#[test]
fn a_record_scope_covers_the_listed_records_only() {
    let (mut l, c) = scene();
    let mut grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    grant.scope = records_scope(&[alice_lab()]);
    let id = l.grant(&c.alice, grant);
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::Consent, Some(id))
    );
    let d = l.ask(&c.insurer, alice_imaging(), "HPAYMT", RAW);
    assert_eq!((d.reason, d.consent_id), (DecisionReason::NoConsent, None));
    // Another record of the same category is not listed either.
    l.apply(
        &c.hospital,
        register_record(record("alice-lab-2"), party(&c.alice), "lab"),
    );
    assert_eq!(
        l.ask(&c.insurer, record("alice-lab-2"), "HPAYMT", RAW)
            .reason,
        DecisionReason::NoConsent
    );
}

#[test]
fn a_category_scope_covers_every_record_of_that_category_including_later_ones() {
    let (mut l, c) = scene();
    let mut grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    grant.scope = categories_scope(&["lab"]);
    let id = l.grant(&c.alice, grant);
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    assert_eq!(
        l.ask(&c.insurer, alice_imaging(), "HPAYMT", RAW).reason,
        DecisionReason::NoConsent
    );
    l.next_block();
    l.apply(
        &c.clinic,
        register_record(record("alice-lab-2"), party(&c.alice), "lab"),
    );
    let d = l.ask(&c.insurer, record("alice-lab-2"), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::Consent, Some(id))
    );
    // The category is the patient's, not everyone's: bob's lab record is not covered.
    assert_eq!(
        l.ask(&c.insurer, bob_lab(), "HPAYMT", RAW).reason,
        DecisionReason::NoConsent
    );
}

#[test]
fn a_scope_of_records_and_categories_covers_their_union() {
    let (mut l, c) = scene();
    l.apply(
        &c.hospital,
        register_record(record("alice-notes"), party(&c.alice), "notes"),
    );
    let mut grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    grant.scope = Scope::Some {
        records: BTreeSet::from([alice_imaging()]),
        categories: BTreeSet::from([category("lab")]),
    };
    l.grant(&c.alice, grant);
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    assert_eq!(
        l.ask(&c.insurer, alice_imaging(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    assert_eq!(
        l.ask(&c.insurer, record("alice-notes"), "HPAYMT", RAW)
            .reason,
        DecisionReason::NoConsent
    );
}

#[test]
fn an_all_records_scope_covers_every_record_of_the_patient_including_later_ones() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    l.next_block();
    l.apply(
        &c.clinic,
        register_record(record("alice-genome"), party(&c.alice), "genomics"),
    );
    for r in [alice_lab(), alice_imaging(), record("alice-genome")] {
        let d = l.ask(&c.insurer, r, "HPAYMT", RAW);
        assert_eq!(
            (d.reason, d.consent_id),
            (DecisionReason::Consent, Some(id))
        );
    }
}

#[test]
fn a_consent_of_one_patient_never_covers_another_patients_records() {
    let (mut l, c) = scene();
    l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    let d = l.ask(&c.insurer, bob_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id, d.patient),
        (DecisionReason::NoConsent, None, Some(party(&c.bob)))
    );
}

#[test]
fn a_consent_naming_another_patients_record_is_refused_at_grant() {
    let (mut l, c) = scene();
    let mut grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    grant.scope = records_scope(&[alice_lab(), bob_lab()]);
    let err = l.refuse(&c.alice, TxKind::GrantConsent(grant));
    assert!(matches!(err, TxError::NotAuthorized(_)), "{err:?}");
    assert!(l.sm.consents_of(&party(&c.alice)).is_empty());
}

#[test]
fn a_consent_naming_an_unknown_record_is_refused_at_grant() {
    let (mut l, c) = scene();
    let mut grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    grant.scope = records_scope(&[record("nowhere")]);
    assert_eq!(
        l.refuse(&c.alice, TxKind::GrantConsent(grant)),
        TxError::UnknownRecord(record("nowhere"))
    );
}

#[test]
fn a_consent_to_an_unregistered_grantee_or_for_a_non_patient_is_refused() {
    let (mut l, c) = scene();
    let grant = consent(party(&c.alice), party(&c.mallory), &["HPAYMT"], &[RAW]);
    assert!(matches!(
        l.refuse(&c.alice, TxKind::GrantConsent(grant)),
        TxError::UnknownParty { party: p, .. } if p == party(&c.mallory)
    ));
    let grant = consent(party(&c.hospital), party(&c.insurer), &["HPAYMT"], &[RAW]);
    assert!(matches!(
        l.refuse(&c.hospital, TxKind::GrantConsent(grant)),
        TxError::Invalid { .. }
    ));
}
