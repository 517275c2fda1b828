//! Break-glass access and the governance that switches it on.

use custos_consent::TxError;
use custos_types::tx::RequestAccess;
use custos_types::{AccessMode, DecisionReason, Parameters};

use crate::fixture::*;

const RAW: AccessMode = AccessMode::Raw;

fn emergency(code: &str, justified: bool) -> RequestAccess {
    RequestAccess {
        justification_digest: justified.then(|| digest("patient unconscious in the ER")),
        ..access(alice_lab(), code, RAW)
    }
}

/// The scene with break-glass switched on by two of the three members.
fn enabled() -> (Ledger, Cast) {
    let (mut l, c) = scene();
    let mut tx = l.tx(&c.hospital, set_parameters(break_glass(true)));
    tx.cosign(&c.clinic);
    l.apply_signed(&tx);
    l.next_block();
    (l, c)
}

#[test]
fn break_glass_by_a_custodian_with_a_justification_is_granted_and_flagged() {
    let (mut l, c) = enabled();
    for code in ["ETREAT", "BTG", "ERTREAT"] {
        let d = l.request(&c.clinic, emergency(code, true));
        assert_eq!(
            (d.reason, d.consent_id, d.break_glass),
            (DecisionReason::BreakGlass, None, true),
            "{code}"
        );
        assert!(d.granted());
        assert!(l.sm.request(&d.request_id).expect("stored").granted);
    }
}

#[test]
fn break_glass_is_denied_while_the_consortium_has_it_disabled() {
    let (mut l, c) = scene();
    assert!(!l.sm.parameters().break_glass_enabled);
    let d = l.request(&c.clinic, emergency("ETREAT", true));
    assert_eq!(
        (d.reason, d.break_glass),
        (DecisionReason::BreakGlassDisabled, false)
    );
    assert!(!d.granted());
}

#[test]
fn break_glass_without_a_justification_is_denied() {
    let (mut l, c) = enabled();
    let d = l.request(&c.clinic, emergency("ETREAT", false));
    assert_eq!(
        (d.reason, d.break_glass),
        (DecisionReason::JustificationRequired, false)
    );
}

#[test]
fn break_glass_by_a_partner_or_an_auditor_is_denied_not_authorized() {
    let (mut l, c) = enabled();
    for who in [&c.insurer, &c.auditor, &c.bob] {
        let d = l.request(who, emergency("ETREAT", true));
        assert_eq!(
            (d.reason, d.break_glass),
            (DecisionReason::NotAuthorized, false)
        );
    }
}

#[test]
fn break_glass_applies_to_raw_emergency_access_only() {
    let (mut l, c) = enabled();
    let d = l.request(
        &c.clinic,
        RequestAccess {
            mode: AccessMode::Predicate,
            ..emergency("ETREAT", true)
        },
    );
    assert_eq!(d.reason, DecisionReason::NoConsent);
    let d = l.request(&c.clinic, emergency("TREAT", true));
    assert_eq!(d.reason, DecisionReason::NoConsent);
}

#[test]
fn a_consent_that_covers_an_emergency_request_is_used_instead_of_break_glass() {
    let (mut l, c) = enabled();
    let id = l.grant(
        &c.alice,
        consent(party(&c.alice), party(&c.clinic), &["TREAT"], &[RAW]),
    );
    let d = l.request(&c.clinic, emergency("ETREAT", true));
    assert_eq!(
        (d.reason, d.consent_id, d.break_glass),
        (DecisionReason::Consent, Some(id), false)
    );
    // A revoked consent does not stop break-glass.
    l.revoke(&c.alice, id);
    let d = l.request(&c.clinic, emergency("ETREAT", true));
    assert_eq!(
        (d.reason, d.consent_id, d.break_glass),
        (DecisionReason::BreakGlass, None, true)
    );
}

#[test]
fn enabling_break_glass_needs_cosignatures_of_two_thirds_of_the_members() {
    let (mut l, c) = scene();
    let kind = set_parameters(break_glass(true));
    assert_eq!(
        l.refuse(&c.hospital, kind.clone()),
        TxError::InsufficientGovernance {
            needed: 2,
            members: 3,
            got: 1
        }
    );
    // Non-members' signatures do not count, whether they author or co-sign.
    let mut tx = l.tx(&c.auditor, kind.clone());
    tx.cosign(&c.advertiser);
    tx.cosign(&c.alice);
    tx.cosign(&c.insurer);
    assert_eq!(
        l.refuse_signed(&tx),
        TxError::InsufficientGovernance {
            needed: 2,
            members: 3,
            got: 1
        }
    );
    assert!(!l.sm.parameters().break_glass_enabled);

    let mut tx = l.tx(&c.auditor, kind);
    tx.cosign(&c.insurer);
    tx.cosign(&c.clinic);
    l.apply_signed(&tx);
    assert_eq!(
        l.sm.parameters(),
        Parameters {
            break_glass_enabled: true,
            ..Parameters::default()
        }
    );
    assert_eq!(
        l.request(&c.hospital, emergency("ETREAT", true)).reason,
        DecisionReason::BreakGlass
    );

    // And switching it off again takes the same.
    let off = set_parameters(break_glass(false));
    assert!(matches!(
        l.refuse(&c.insurer, off.clone()),
        TxError::InsufficientGovernance { .. }
    ));
    let mut tx = l.tx(&c.insurer, off);
    tx.cosign(&c.clinic);
    tx.cosign(&c.hospital);
    l.apply_signed(&tx);
    assert_eq!(
        l.request(&c.hospital, emergency("ETREAT", true)).reason,
        DecisionReason::BreakGlassDisabled
    );
}
