//! Who may grant, revoke, delegate and erase.

use custos_consent::TxError;
use custos_types::{AccessMode, DecisionReason, Timestamp, TxKind};

use crate::fixture::*;

const RAW: AccessMode = AccessMode::Raw;

#[test]
fn a_grant_signed_by_someone_other_than_the_patient_is_refused_and_changes_nothing() {
    let (mut l, c) = scene();
    let root = l.sm.root();
    for signer in [&c.insurer, &c.hospital, &c.bob, &c.dave] {
        let grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
        let err = l.refuse(signer, TxKind::GrantConsent(grant));
        assert!(matches!(err, TxError::NotAuthorized(_)), "{err:?}");
    }
    assert_eq!(l.sm.root(), root);
    assert!(l.sm.consents_of(&party(&c.alice)).is_empty());
    assert_eq!(
        l.sm.next_nonce(&party(&c.insurer)),
        0,
        "a refused tx does not use its nonce"
    );
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::NoConsent
    );
}

#[test]
fn a_registered_delegate_can_grant_and_revoke_for_the_patient() {
    let (mut l, c) = scene();
    l.apply(&c.alice, delegate(party(&c.dave), None));
    assert!(l.sm.is_delegate(&party(&c.alice), &party(&c.dave), l.now()));
    let id = l.grant(
        &c.dave,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    let state = l.sm.consent(&id).expect("granted");
    assert_eq!(
        (state.consent.patient, state.granted_by),
        (party(&c.alice), party(&c.dave))
    );
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    // The patient's own consent can be revoked by the delegate, and the other way round.
    let own = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.clinic), &["TREAT"], &[RAW]),
    );
    l.revoke(&c.dave, own);
    l.revoke(&c.alice, id);
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Revoked
    );
    assert_eq!(
        l.ask(&c.clinic, alice_lab(), "TREAT", RAW).reason,
        DecisionReason::Revoked
    );
}

#[test]
fn a_delegate_cannot_grant_consent_to_itself() {
    let (mut l, c) = scene();
    l.apply(&c.alice, delegate(party(&c.insurer), None));
    let root = l.sm.root();
    let grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    let err = l.refuse(&c.insurer, TxKind::GrantConsent(grant));
    assert!(
        matches!(err, TxError::NotAuthorized(ref m) if m.contains("itself")),
        "{err:?}"
    );
    assert_eq!(l.sm.root(), root);
    // The same delegate may still grant to someone else on the patient's behalf.
    l.grant(
        &c.insurer,
        consent(party(&c.alice), party(&c.clinic), &["TREAT"], &[RAW]),
    );
}

#[test]
fn a_delegate_of_one_patient_cannot_act_for_another() {
    let (mut l, c) = scene();
    l.apply(&c.alice, delegate(party(&c.dave), None));
    let bobs = l.grant(
        &c.bob,
        consent(party(&c.bob), party(&c.clinic), &["TREAT"], &[RAW]),
    );
    let grant = consent(party(&c.bob), party(&c.insurer), &["HPAYMT"], &[RAW]);
    assert!(matches!(
        l.refuse(&c.dave, TxKind::GrantConsent(grant)),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(&c.dave, TxKind::RevokeConsent(bobs)),
        TxError::NotAuthorized(_)
    ));
}

#[test]
fn an_expired_delegation_cannot_grant_or_revoke() {
    let (mut l, c) = scene();
    let until = Timestamp(l.now().0 + 5 * BLOCK_MS);
    l.apply(&c.alice, delegate(party(&c.dave), Some(until)));
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.clinic), &["TREAT"], &[RAW]),
    );
    l.next_block_at(Timestamp(until.0 - 1));
    l.grant(
        &c.dave,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    l.next_block_at(until);
    assert!(!l.sm.is_delegate(&party(&c.alice), &party(&c.dave), l.now()));
    let grant = consent(party(&c.alice), party(&c.advertiser), &["HMARKT"], &[RAW]);
    assert!(matches!(
        l.refuse(&c.dave, TxKind::GrantConsent(grant)),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(&c.dave, TxKind::RevokeConsent(id)),
        TxError::NotAuthorized(_)
    ));
}

#[test]
fn a_revoked_delegation_cannot_grant_or_revoke_from_the_revoking_block_on() {
    let (mut l, c) = scene();
    l.apply(&c.alice, delegate(party(&c.dave), None));
    let id = l.grant(
        &c.dave,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    l.next_block();
    l.apply(&c.alice, undelegate(party(&c.dave)));
    let grant = consent(party(&c.alice), party(&c.advertiser), &["HMARKT"], &[RAW]);
    assert!(matches!(
        l.refuse(&c.dave, TxKind::GrantConsent(grant.clone())),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(&c.dave, TxKind::RevokeConsent(id)),
        TxError::NotAuthorized(_)
    ));
    l.next_block();
    assert!(matches!(
        l.refuse(&c.dave, TxKind::GrantConsent(grant)),
        TxError::NotAuthorized(_)
    ));
    // The consent the delegate granted while delegated stands.
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    // Nothing left to revoke.
    assert!(matches!(
        l.refuse(&c.alice, undelegate(party(&c.dave))),
        TxError::Invalid { .. }
    ));
}

#[test]
fn only_a_patient_delegates_and_only_to_another_registered_party_with_a_future_expiry() {
    let (mut l, c) = scene();
    assert!(matches!(
        l.refuse(&c.hospital, delegate(party(&c.dave), None)),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(&c.alice, delegate(party(&c.alice), None)),
        TxError::Invalid { .. }
    ));
    assert!(matches!(
        l.refuse(&c.alice, delegate(party(&c.mallory), None)),
        TxError::UnknownParty { .. }
    ));
    assert!(matches!(
        l.refuse(&c.alice, delegate(party(&c.dave), Some(l.now()))),
        TxError::Invalid { .. }
    ));
}

#[test]
fn the_owner_erases_a_record_without_legal_grounds_and_nobody_else_does() {
    let (mut l, c) = scene();
    for other in [&c.hospital, &c.insurer, &c.bob] {
        assert!(matches!(
            l.refuse(other, erase(alice_lab(), false)),
            TxError::NotAuthorized(_)
        ));
    }
    l.apply(&c.alice, erase(alice_lab(), false));
    let rec = l.sm.record(&alice_lab()).expect("kept as history");
    assert_eq!(rec.erased, Some(l.ctx().height));
    assert_eq!(
        l.refuse(&c.alice, erase(alice_lab(), false)),
        TxError::RecordErased(alice_lab())
    );
}

#[test]
fn the_custodian_erases_a_record_only_on_legal_grounds() {
    let (mut l, c) = scene();
    assert!(matches!(
        l.refuse(&c.hospital, erase(alice_lab(), false)),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(&c.alice, erase(alice_lab(), true)),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(&c.clinic, erase(alice_lab(), true)),
        TxError::NotAuthorized(_)
    ));
    l.apply(&c.hospital, erase(alice_lab(), true));
    assert!(l.sm.record(&alice_lab()).expect("kept").erased.is_some());
    assert_eq!(
        l.refuse(&c.alice, erase(record("nowhere"), false)),
        TxError::UnknownRecord(record("nowhere"))
    );
}

#[test]
fn only_a_custodian_registers_records_for_a_registered_patient_under_a_fresh_id() {
    let (mut l, c) = scene();
    let alice = party(&c.alice);
    assert!(matches!(
        l.refuse(&c.insurer, register_record(record("x"), alice, "lab")),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(&c.alice, register_record(record("x"), alice, "lab")),
        TxError::NotAuthorized(_)
    ));
    assert!(matches!(
        l.refuse(
            &c.hospital,
            register_record(record("x"), party(&c.insurer), "lab")
        ),
        TxError::Invalid { .. }
    ));
    assert!(matches!(
        l.refuse(
            &c.hospital,
            register_record(record("x"), party(&c.mallory), "lab")
        ),
        TxError::UnknownParty { .. }
    ));
    assert_eq!(
        l.refuse(&c.clinic, register_record(alice_lab(), alice, "lab")),
        TxError::RecordExists(alice_lab())
    );
    l.apply(&c.clinic, register_record(record("x"), alice, "lab"));
    let rec = l.sm.record(&record("x")).expect("registered");
    assert_eq!(
        (rec.owner, rec.custodian, rec.erased),
        (alice, party(&c.clinic), None)
    );
}
