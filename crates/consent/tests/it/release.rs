//! Confirming a release: by the record's custodian, for a granted request, once.

use custos_consent::TxError;
use custos_types::tx::{ConfirmRelease, ReportRefusal};
use custos_types::{AccessMode, Decision, DecisionReason, EntryKind, RequestId, TxKind};

use crate::fixture::*;

const RAW: AccessMode = AccessMode::Raw;

fn confirm(request_id: RequestId, what: &str) -> TxKind {
    TxKind::ConfirmRelease(ConfirmRelease {
        request_id,
        release_digest: digest(what),
    })
}

/// A granted request of the insurer for alice's lab record (held by the hospital).
fn granted() -> (Ledger, Cast, Decision) {
    let (mut l, c) = scene();
    l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.insurer), &["HPAYMT"], &[RAW]),
    );
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert!(d.granted());
    (l, c, d)
}

#[test]
fn the_records_custodian_confirms_the_release_of_a_granted_request_once() {
    let (mut l, c, d) = granted();
    l.apply(&c.hospital, confirm(d.request_id, "release"));
    assert_eq!(
        l.sm.request(&d.request_id).expect("stored").released,
        Some(digest("release"))
    );
    l.next_block();
    assert_eq!(
        l.refuse(&c.hospital, confirm(d.request_id, "release")),
        TxError::AlreadyReleased(d.request_id)
    );
    assert_eq!(
        l.refuse(&c.hospital, confirm(d.request_id, "other")),
        TxError::AlreadyReleased(d.request_id)
    );
}

#[test]
fn a_release_confirmed_by_anyone_but_the_records_custodian_is_refused() {
    let (mut l, c, d) = granted();
    for who in [&c.clinic, &c.insurer, &c.alice, &c.auditor] {
        assert!(matches!(
            l.refuse(who, confirm(d.request_id, "release")),
            TxError::NotAuthorized(_)
        ));
    }
    assert_eq!(l.sm.request(&d.request_id).expect("stored").released, None);
}

#[test]
fn a_release_of_a_denied_request_is_refused() {
    let (mut l, c) = scene();
    let d = l.ask(&c.insurer, alice_lab(), "HPAYMT", RAW);
    assert!(!d.granted());
    assert!(matches!(
        l.refuse(&c.hospital, confirm(d.request_id, "release")),
        TxError::NotAuthorized(_)
    ));
    let d = l.ask(&c.insurer, record("nowhere"), "HPAYMT", RAW);
    assert!(matches!(
        l.refuse(&c.hospital, confirm(d.request_id, "release")),
        TxError::NotAuthorized(_)
    ));
}

#[test]
fn a_release_of_an_unknown_request_is_refused() {
    let (mut l, c) = scene();
    let unknown = RequestId(digest("no such request"));
    assert_eq!(
        l.refuse(&c.hospital, confirm(unknown, "release")),
        TxError::UnknownRequest(unknown)
    );
}

#[test]
fn a_release_of_a_record_erased_after_the_grant_is_refused() {
    let (mut l, c, d) = granted();
    l.apply(&c.alice, erase(alice_lab(), false));
    assert_eq!(
        l.refuse(&c.hospital, confirm(d.request_id, "release")),
        TxError::RecordErased(alice_lab())
    );
}

#[test]
fn the_owners_own_request_is_released_by_the_custodian() {
    let (mut l, c) = scene();
    let d = l.ask(&c.alice, alice_imaging(), "PATRQT", RAW);
    l.apply(&c.hospital, confirm(d.request_id, "copy for alice"));
    assert_eq!(
        l.sm.request(&d.request_id).expect("stored").released,
        Some(digest("copy for alice"))
    );
}

fn refusal(request_id: RequestId, requester: &custos_crypto::SigningKeyPair) -> TxKind {
    TxKind::ReportRefusal(ReportRefusal {
        request_id,
        requester: party(requester),
        reason: DecisionReason::VaultNotRequester,
        evidence_digest: digest("the refused fetch"),
    })
}

#[test]
fn a_vault_refusal_reported_by_the_custodian_becomes_a_denied_decision_of_the_original_request() {
    let (mut l, c, d) = granted();
    let tx = l.tx(&c.hospital, refusal(d.request_id, &c.advertiser));
    let entries = l.apply_signed(&tx);
    let denial = entries
        .iter()
        .find_map(|e| match e {
            EntryKind::Decision(decision) => Some(decision.clone()),
            _ => None,
        })
        .expect("the report yields a decision entry");
    assert!(!denial.granted());
    assert_eq!(denial.reason, DecisionReason::VaultNotRequester);
    assert_eq!(denial.requester, party(&c.advertiser));
    assert_eq!(denial.record_id, d.record_id);
    assert_eq!(denial.patient, d.patient);
    assert_eq!(denial.purpose, d.purpose);
    assert_eq!(denial.mode, d.mode);
    assert_ne!(denial.request_id, d.request_id);
    // The original grant is untouched and can still be released.
    assert!(l.sm.request(&d.request_id).expect("stored").granted);
    l.apply(&c.hospital, confirm(d.request_id, "release"));
}

#[test]
fn a_vault_refusal_reported_by_anyone_but_the_records_custodian_is_refused() {
    let (mut l, c, d) = granted();
    for who in [&c.clinic, &c.insurer, &c.alice, &c.auditor] {
        assert!(matches!(
            l.refuse(who, refusal(d.request_id, &c.advertiser)),
            TxError::NotAuthorized(_)
        ));
    }
    let unknown = RequestId(digest("no such request"));
    assert_eq!(
        l.refuse(&c.hospital, refusal(unknown, &c.advertiser)),
        TxError::UnknownRequest(unknown)
    );
}

#[test]
fn a_refusal_report_with_a_consent_reason_is_refused() {
    let (mut l, c, d) = granted();
    let TxKind::ReportRefusal(mut report) = refusal(d.request_id, &c.advertiser) else {
        unreachable!()
    };
    report.reason = DecisionReason::NoConsent;
    assert!(matches!(
        l.refuse(&c.hospital, TxKind::ReportRefusal(report)),
        TxError::Invalid { .. }
    ));
}
