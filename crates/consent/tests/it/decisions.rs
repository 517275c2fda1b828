//! The decision rule: one scenario per reason a request is granted or denied.

use custos_types::tx::RegisterParty;
use custos_types::{AccessMode, ConsentId, DecisionReason, Height, Role, Timestamp, TxKind};

use crate::fixture::*;

const RAW: AccessMode = AccessMode::Raw;

#[test]
fn a_consent_granted_by_the_patient_covers_the_grantees_request_for_that_purpose() {
    let (mut l, c) = scene();
    let grant = l.tx(
        &c.alice,
        TxKind::GrantConsent(consent(
            party(&c.alice),
            party(&c.insurer),
            &["HPAYMT"],
            &[RAW],
        )),
    );
    l.apply_signed(&grant);
    let consent_id = ConsentId(grant.id().0);
    assert_eq!(l.sm.consents_of(&party(&c.alice)).len(), 1);
    let state =
        l.sm.consent(&consent_id)
            .expect("the consent is stored under the grant's tx id");
    assert_eq!(
        (state.granted_by, state.granted, state.revoked),
        (party(&c.alice), Height(3), None)
    );
    l.next_block();

    // `request` checks that the entries are exactly [the transaction, its decision].
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(d.reason, DecisionReason::Consent);
    assert!(d.granted());
    assert_eq!(d.consent_id, Some(consent_id));
    assert_eq!(d.requester, party(&c.insurer));
    assert_eq!(d.patient, Some(party(&c.alice)));
    assert_eq!(d.record_id, alice_lab());
    assert_eq!((d.purpose, d.mode), (purpose("HPAYMT"), RAW));
    assert!(!d.break_glass);
    assert_eq!((d.height, d.time), (l.ctx().height, l.ctx().time));
    let stored =
        l.sm.request(&d.request_id)
            .expect("the decided request is stored");
    assert!(stored.granted);
    assert_eq!(
        (stored.requester, stored.record_id, stored.released),
        (party(&c.insurer), alice_lab(), None)
    );
}

#[test]
fn a_consent_for_a_parent_purpose_covers_a_child_purpose() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.clinic), &["TREAT"], &[RAW]),
    );
    for child in ["TREAT", "ETREAT", "BTG", "ERTREAT"] {
        let d = l.ask(&c.clinic, alice_lab(), child, RAW);
        assert_eq!(
            (d.reason, d.consent_id),
            (DecisionReason::Consent, Some(id)),
            "{child}"
        );
        assert!(
            !d.break_glass,
            "a request covered by consent is not break-glass"
        );
    }
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    let d = l.ask(&c.insurer, alice_lab(), "COVAUTH", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::Consent, Some(id))
    );
}

#[test]
fn a_consent_for_a_child_purpose_does_not_cover_its_parent() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["COVAUTH"], &[RAW]),
    );
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::PurposeNotCovered, Some(id))
    );
    assert!(!d.granted());
    assert!(!l.sm.request(&d.request_id).expect("stored").granted);
}

#[test]
fn a_consent_never_covers_a_sibling_purpose() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    let d = l.ask(&c.insurer, alice_lab(), "HMARKT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::PurposeNotCovered, Some(id))
    );
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.advertiser), &["COVAUTH"], &[RAW]),
    );
    let d = l.ask(&c.advertiser, alice_lab(), "CLMATTCH", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::PurposeNotCovered, Some(id))
    );
    let id = l.grant(
        &c.bob,
        consent(party(&c.bob), party(&c.clinic), &["HRESCH"], &[RAW]),
    );
    assert_eq!(
        l.ask(&c.clinic, bob_lab(), "CLINTRCH", RAW).reason,
        DecisionReason::Consent
    );
    let d = l.ask(&c.clinic, bob_lab(), "TREAT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::PurposeNotCovered, Some(id))
    );
}

#[test]
fn a_consent_without_the_requested_mode_denies_with_mode_not_covered() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(
            party(&c.alice),
            party(&c.insurer),
            &["HRESCH"],
            &[AccessMode::Aggregate, AccessMode::Predicate],
        ),
    );
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HRESCH", AccessMode::Predicate)
            .reason,
        DecisionReason::Consent
    );
    // In mode aggregate the record enters the cohort of its custodian's lab records.
    let scope = custos_types::AggregateScope {
        custodian: party(&c.hospital),
        category: category("lab"),
        text: "COUNT".into(),
    };
    let d = l.request(
        &c.insurer,
        custos_types::tx::RequestAccess::aggregate(&scope, purpose("HRESCH")),
    );
    assert_eq!(
        l.sm.cohort(&d.request_id).map(|c| c.records.clone()),
        Some(vec![alice_lab()])
    );
    let d = l.ask(&c.insurer, alice_lab(), "HRESCH", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::ModeNotCovered, Some(id))
    );
}

#[test]
fn a_consent_is_not_yet_valid_before_its_start_and_valid_from_exactly_its_start() {
    let (mut l, c) = scene();
    let start = Timestamp(l.now().0 + 10 * BLOCK_MS);
    let mut grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    grant.period.not_before = Some(start);
    let id = l.grant(&c.alice, grant);
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::NotYetValid, Some(id))
    );
    l.next_block_at(Timestamp(start.0 - 1));
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::NotYetValid
    );
    l.next_block_at(start);
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::Consent, Some(id))
    );
}

#[test]
fn a_consent_is_expired_at_exactly_its_expiry_time() {
    let (mut l, c) = scene();
    let end = Timestamp(l.now().0 + 10 * BLOCK_MS);
    let mut grant = consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]);
    grant.period.expires = Some(end);
    let id = l.grant(&c.alice, grant);
    l.next_block_at(Timestamp(end.0 - 1));
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    l.next_block_at(end);
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::Expired, Some(id))
    );
    l.next_block();
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Expired
    );
}

#[test]
fn a_revoked_consent_denies_from_the_block_it_is_revoked_in() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    l.next_block();
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    l.next_block();
    // In the revoking block, a request ordered before the revocation is still decided on the
    // state it sees; every request after it is denied.
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
    l.revoke(&c.alice, id);
    assert_eq!(
        l.sm.consent(&id).expect("kept as history").revoked,
        Some(l.ctx().height)
    );
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::Revoked, Some(id))
    );
    l.next_block();
    assert_eq!(
        l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW).reason,
        DecisionReason::Revoked
    );
}

#[test]
fn a_consent_cannot_be_revoked_twice_or_by_the_grantee() {
    let (mut l, c) = scene();
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    assert!(matches!(
        l.refuse(&c.insurer, TxKind::RevokeConsent(id)),
        custos_consent::TxError::NotAuthorized(_)
    ));
    l.revoke(&c.alice, id);
    assert_eq!(
        l.refuse(&c.alice, TxKind::RevokeConsent(id)),
        custos_consent::TxError::AlreadyRevoked(id)
    );
    let unknown = ConsentId(digest("no such consent"));
    assert_eq!(
        l.refuse(&c.alice, TxKind::RevokeConsent(unknown)),
        custos_consent::TxError::UnknownConsent(unknown)
    );
}

#[test]
fn a_request_without_any_consent_is_denied_with_no_consent() {
    let (mut l, c) = scene();
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id, d.patient),
        (DecisionReason::NoConsent, None, Some(party(&c.alice)))
    );
    assert!(
        !l.sm
            .request(&d.request_id)
            .expect("denied requests are stored too")
            .granted
    );
}

#[test]
fn a_consent_to_another_grantee_does_not_cover_the_requester() {
    let (mut l, c) = scene();
    l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    let d = l.ask(&c.advertiser, alice_lab(), "HPAYMT", RAW);
    assert_eq!((d.reason, d.consent_id), (DecisionReason::NoConsent, None));
}

#[test]
fn a_request_for_an_unknown_record_is_denied_with_unknown_record() {
    let (mut l, c) = scene();
    l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    let d = l.ask(&c.insurer, record("nowhere"), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id, d.patient),
        (DecisionReason::UnknownRecord, None, None)
    );
}

#[test]
fn a_request_for_an_erased_record_is_denied_with_erased_despite_a_consent() {
    let (mut l, c) = scene();
    l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    l.apply(&c.alice, erase(alice_lab(), false));
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id, d.patient),
        (DecisionReason::Erased, None, Some(party(&c.alice)))
    );
    assert_eq!(
        l.ask(&c.alice, alice_lab(), "PATRQT", RAW).reason,
        DecisionReason::Erased
    );
    assert_eq!(
        l.ask(&c.insurer, alice_imaging(), "HPAYMT", RAW).reason,
        DecisionReason::Consent
    );
}

#[test]
fn an_auditor_request_is_denied_with_not_authorized_even_with_a_consent() {
    let (mut l, c) = scene();
    l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.auditor), &["HOPERAT"], &[RAW]),
    );
    let d = l.ask(&c.auditor, alice_lab(), "HOPERAT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::NotAuthorized, None)
    );
}

#[test]
fn a_validator_operator_request_is_denied_with_not_authorized_even_with_a_consent() {
    let (mut l, c) = scene();
    let operator = key(40);
    let mut register = l.tx(
        &operator,
        TxKind::RegisterParty(RegisterParty {
            party: party(&operator),
            role: Role::ValidatorOperator,
            encryption_key: encryption_key(&operator),
            organisation: organisation("node-ops"),
        }),
    );
    register.cosign(&c.hospital);
    register.cosign(&c.clinic);
    l.apply_signed(&register);
    l.grant(
        &c.alice,
        consent(party(&c.alice), party(&operator), &["HOPERAT"], &[RAW]),
    );
    let d = l.ask(&operator, alice_lab(), "HOPERAT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::NotAuthorized, None)
    );
}

#[test]
fn the_owners_own_request_is_granted_as_owner_without_consent() {
    let (mut l, c) = scene();
    let d = l.ask(&c.alice, alice_lab(), "PATRQT", RAW);
    assert_eq!(
        (d.reason, d.consent_id, d.break_glass),
        (DecisionReason::Owner, None, false)
    );
    assert!(d.granted());
    assert_eq!(
        l.ask(&c.alice, bob_lab(), "PATRQT", RAW).reason,
        DecisionReason::NoConsent
    );
}

#[test]
fn among_failing_consents_the_one_that_came_closest_names_the_reason() {
    let (mut l, c) = scene();
    let (alice, insurer) = (party(&c.alice), party(&c.insurer));
    let revoked = l.grant(&c.alice, consent(alice, insurer, &["HPAYMT"], &[RAW]));
    l.revoke(&c.alice, revoked);
    let wrong_mode = l.grant(
        &c.alice,
        consent(alice, insurer, &["HPAYMT"], &[AccessMode::Aggregate]),
    );
    let wrong_purpose = l.grant(&c.alice, consent(alice, insurer, &["HMARKT"], &[RAW]));
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::ModeNotCovered, Some(wrong_mode))
    );
    let d = l.ask(&c.insurer, alice_lab(), "HOPERAT", RAW);
    assert_eq!(d.reason, DecisionReason::PurposeNotCovered);
    assert!(d.consent_id == Some(wrong_mode) || d.consent_id == Some(wrong_purpose));
    // One consent that covers the request wins over every failing one.
    let good = l.grant(&c.alice, consent(alice, insurer, &["HPAYMT"], &[RAW]));
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert_eq!(
        (d.reason, d.consent_id),
        (DecisionReason::Consent, Some(good))
    );
}
