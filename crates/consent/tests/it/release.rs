//! Confirming a release: by the record's custodian, for a granted request, once.

use custos_consent::TxError;
use custos_types::tx::ConfirmRelease;
use custos_types::{AccessMode, Decision, RequestId, TxKind};

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
