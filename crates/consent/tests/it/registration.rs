//! Registering parties, and the nonce, chain and author checks every transaction passes first.

use custos_consent::TxError;
use custos_types::tx::RegisterParty;
use custos_types::{AccessMode, Role, TxKind};

use crate::fixture::*;

fn register(key: &custos_crypto::SigningKeyPair, role: Role, org: &str) -> TxKind {
    TxKind::RegisterParty(RegisterParty {
        party: party(key),
        role,
        encryption_key: encryption_key(key),
        organisation: organisation(org),
    })
}

#[test]
fn a_patient_registers_itself_without_governance() {
    let mut l = Ledger::at_genesis();
    let c = Cast::new();
    l.next_block();
    let newcomer = key(30);
    l.apply(&newcomer, register_patient(&newcomer));
    let p = l.sm.party(&party(&newcomer)).expect("registered");
    assert_eq!(
        (p.role, p.member, p.registered),
        (Role::Patient, false, l.ctx().height)
    );
    assert_eq!(l.sm.next_nonce(&party(&newcomer)), 1);
    assert_eq!(
        l.refuse(&newcomer, register_patient(&newcomer)),
        TxError::PartyExists(party(&newcomer))
    );
    // Genesis parties are registered at height 0 and exist already.
    assert_eq!(
        l.sm.party(&party(&c.hospital))
            .expect("genesis")
            .registered
            .0,
        0
    );
    assert_eq!(
        l.refuse(&c.hospital, register(&c.hospital, Role::Custodian, "x")),
        TxError::PartyExists(party(&c.hospital))
    );
}

#[test]
fn a_patient_belongs_to_no_organisation() {
    let mut l = Ledger::new();
    let newcomer = key(30);
    assert!(matches!(
        l.refuse(&newcomer, register(&newcomer, Role::Patient, "acme")),
        TxError::Invalid { .. }
    ));
}

#[test]
fn a_party_must_register_itself() {
    let (mut l, c) = scene();
    let newcomer = key(30);
    // Alice (registered) tries to register someone else, as a patient and with governance.
    let err = l.refuse(&c.alice, register_patient(&newcomer));
    assert!(matches!(err, TxError::NotAuthorized(_)), "{err:?}");
    let mut tx = l.tx(&c.hospital, register(&newcomer, Role::Partner, "newco"));
    tx.cosign(&c.clinic);
    tx.cosign(&c.insurer);
    assert!(matches!(l.refuse_signed(&tx), TxError::NotAuthorized(_)));
    assert!(l.sm.party(&party(&newcomer)).is_none());
}

#[test]
fn a_non_patient_party_needs_cosignatures_of_two_thirds_of_the_members() {
    let (mut l, c) = scene();
    let newcomer = key(31);
    let kind = register(&newcomer, Role::Partner, "research-lab");
    assert_eq!(
        l.refuse(&newcomer, kind.clone()),
        TxError::InsufficientGovernance {
            needed: 2,
            members: 3,
            got: 0
        }
    );
    let mut tx = l.tx(&newcomer, kind.clone());
    tx.cosign(&c.hospital);
    tx.cosign(&c.auditor); // not a member: does not count
    tx.cosign(&c.alice);
    assert_eq!(
        l.refuse_signed(&tx),
        TxError::InsufficientGovernance {
            needed: 2,
            members: 3,
            got: 1
        }
    );
    let mut tx = l.tx(&newcomer, kind);
    tx.cosign(&c.hospital);
    tx.cosign(&c.insurer);
    l.apply_signed(&tx);
    let p = l.sm.party(&party(&newcomer)).expect("registered");
    assert_eq!(
        (p.role, p.member),
        (Role::Partner, false),
        "registration never makes a member"
    );
    assert_eq!(l.sm.members().len(), 3);
    // A registered partner may now ask for access.
    let d = l.ask(&newcomer, alice_lab(), "HRESCH", AccessMode::Predicate);
    assert_eq!(d.reason, custos_types::DecisionReason::NoConsent);
}

#[test]
fn a_replayed_nonce_is_refused() {
    let (mut l, c) = scene();
    let alice = party(&c.alice).short();
    // Alice used nonce 0 to register herself; nonce 1 goes to the delegation.
    let first = l.tx(&c.alice, delegate(party(&c.dave), None));
    assert_eq!(first.body().nonce.0, 1);
    l.apply_signed(&first);
    assert_eq!(
        l.refuse_signed(&first),
        TxError::ReplayedNonce {
            author: alice.clone(),
            expected: 2,
            got: 1
        }
    );
    let other = sign(&chain(), 0, undelegate(party(&c.dave)), &c.alice);
    assert_eq!(
        l.refuse_signed(&other),
        TxError::ReplayedNonce {
            author: alice,
            expected: 2,
            got: 0
        }
    );
}

#[test]
fn a_future_nonce_is_refused() {
    let (mut l, c) = scene();
    let tx = sign(&chain(), 2, delegate(party(&c.dave), None), &c.alice);
    assert_eq!(
        l.refuse_signed(&tx),
        TxError::FutureNonce {
            author: party(&c.alice).short(),
            expected: 1,
            got: 2
        }
    );
    assert_eq!(l.sm.next_nonce(&party(&c.alice)), 1);
    // An unregistered author's first transaction must use nonce 0 too.
    let tx = sign(&chain(), 1, register_patient(&c.mallory), &c.mallory);
    assert!(matches!(
        l.refuse_signed(&tx),
        TxError::FutureNonce {
            expected: 0,
            got: 1,
            ..
        }
    ));
}

#[test]
fn a_transaction_for_another_chain_is_refused() {
    let (mut l, c) = scene();
    let other = custos_types::ChainId::parse("other-chain").expect("valid");
    let tx = sign(&other, 0, delegate(party(&c.dave), None), &c.alice);
    assert_eq!(
        l.refuse_signed(&tx),
        TxError::WrongChain {
            expected: CHAIN.into(),
            got: "other-chain".into()
        }
    );
}

#[test]
fn an_unregistered_author_is_refused() {
    let (mut l, c) = scene();
    let grant = consent(
        party(&c.alice),
        party(&c.insurer),
        &["HPAYMT"],
        &[AccessMode::Raw],
    );
    for kind in [
        TxKind::GrantConsent(grant),
        TxKind::RequestAccess(access(alice_lab(), "TREAT", AccessMode::Raw)),
        erase(alice_lab(), true),
        set_parameters(break_glass(true)),
    ] {
        assert_eq!(
            l.refuse(&c.mallory, kind),
            TxError::UnknownAuthor(party(&c.mallory))
        );
    }
}

#[test]
fn nonces_count_per_author_and_only_accepted_transactions_use_them() {
    let (mut l, c) = scene();
    assert_eq!(
        l.sm.next_nonce(&party(&c.hospital)),
        3,
        "three records registered in the scene"
    );
    assert_eq!(l.sm.next_nonce(&party(&c.alice)), 1);
    l.ask(&c.insurer, alice_lab(), "HPAYMT", AccessMode::Raw);
    assert_eq!(
        l.sm.next_nonce(&party(&c.insurer)),
        1,
        "a denied request is still accepted"
    );
    l.refuse(&c.insurer, erase(alice_lab(), true));
    assert_eq!(l.sm.next_nonce(&party(&c.insurer)), 1);
}
