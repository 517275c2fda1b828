//! Governance of the consortium itself: validators join and leave at a defined height, members
//! come and go, circuits' verifying keys are registered — each by 2/3 of the members.

use custos_consent::TxError;
use custos_crypto::sha256;
use custos_types::tx::Governance;
use custos_types::{Height, TxKind};

use crate::fixture::*;

fn governed(l: &mut Ledger, c: &Cast, g: Governance) -> Result<(), TxError> {
    let mut tx = l.tx(&c.hospital, TxKind::Governance(g));
    tx.cosign(&c.clinic);
    match l.sm.check_tx(&tx, l.ctx()) {
        Ok(()) => {
            l.apply_signed(&tx);
            Ok(())
        }
        Err(e) => Err(l.refuse_signed(&tx)).map_err(|r| {
            assert_eq!(r, e);
            r
        }),
    }
}

fn keys_of(set: &[custos_consent::ValidatorEntry]) -> Vec<custos_crypto::PublicKey> {
    set.iter().map(|v| v.key).collect()
}

#[test]
fn a_validator_added_by_governance_signs_from_its_effective_height_on() {
    let (mut l, c) = scene();
    let newcomer = key(50).public();
    let h = l.ctx().height.0;
    let effective = Height(h + 2);
    governed(
        &mut l,
        &c,
        Governance::AddValidator {
            key: newcomer,
            power: 2,
            address: "/ip4/127.0.0.1/tcp/1".into(),
            effective_height: effective,
        },
    )
    .expect("accepted");
    assert!(
        !keys_of(&l.sm.validators()).contains(&newcomer),
        "not yet in force"
    );
    // The header of the block before the effective height names the new set.
    l.next_block();
    assert!(keys_of(&l.sm.next_validators(Height(h + 1))).contains(&newcomer));
    assert!(!keys_of(&l.sm.validators()).contains(&newcomer));
    l.next_block();
    assert_eq!(l.ctx().height, effective);
    assert!(keys_of(&l.sm.validators()).contains(&newcomer));
    assert!(keys_of(&l.sm.validators_at(effective)).contains(&newcomer));
    assert!(!keys_of(&l.sm.validators_at(Height(effective.0 - 1))).contains(&newcomer));
    assert_eq!(l.sm.validators().len(), 2);
}

#[test]
fn a_validator_removed_by_governance_stops_at_its_effective_height() {
    let (mut l, c) = scene();
    let newcomer = key(50).public();
    let h = l.ctx().height.0;
    governed(
        &mut l,
        &c,
        Governance::AddValidator {
            key: newcomer,
            power: 1,
            address: String::new(),
            effective_height: Height(h + 2),
        },
    )
    .expect("added");
    l.next_block();
    l.next_block();
    let h = l.ctx().height.0;
    governed(
        &mut l,
        &c,
        Governance::RemoveValidator {
            key: c.validator.public(),
            effective_height: Height(h + 3),
        },
    )
    .expect("removed");
    l.next_block();
    l.next_block();
    assert!(keys_of(&l.sm.validators()).contains(&c.validator.public()));
    l.next_block();
    assert_eq!(keys_of(&l.sm.validators()), vec![newcomer]);
    assert!(keys_of(&l.sm.validators_at(Height(h))).contains(&c.validator.public()));
}

#[test]
fn validator_changes_need_notice_governance_and_a_remaining_validator() {
    let (mut l, c) = scene();
    let h = l.ctx().height.0;
    let early = Governance::AddValidator {
        key: key(50).public(),
        power: 1,
        address: String::new(),
        effective_height: Height(h + 1),
    };
    assert!(matches!(
        governed(&mut l, &c, early),
        Err(TxError::Invalid {
            field: "governance.effective_height",
            ..
        })
    ));
    let alone = TxKind::Governance(Governance::AddValidator {
        key: key(50).public(),
        power: 1,
        address: String::new(),
        effective_height: Height(h + 5),
    });
    assert!(matches!(
        l.refuse(&c.hospital, alone),
        TxError::InsufficientGovernance { .. }
    ));
    let last = Governance::RemoveValidator {
        key: c.validator.public(),
        effective_height: Height(h + 5),
    };
    assert!(matches!(
        governed(&mut l, &c, last),
        Err(TxError::Invalid { .. })
    ));
    let stranger = Governance::RemoveValidator {
        key: key(51).public(),
        effective_height: Height(h + 5),
    };
    assert!(matches!(
        governed(&mut l, &c, stranger),
        Err(TxError::Invalid { .. })
    ));
}

#[test]
fn members_are_added_and_removed_by_governance_and_change_the_threshold() {
    let (mut l, c) = scene();
    assert_eq!(l.sm.members().len(), 3);
    governed(
        &mut l,
        &c,
        Governance::SetMember {
            party: party(&c.advertiser),
            member: true,
        },
    )
    .expect("added");
    assert_eq!(l.sm.members().len(), 4);
    // With four members, two signatures are no longer enough (3 of 4 needed).
    let g = Governance::SetMember {
        party: party(&c.advertiser),
        member: false,
    };
    assert!(matches!(
        governed(&mut l, &c, g.clone()),
        Err(TxError::InsufficientGovernance {
            needed: 3,
            members: 4,
            got: 2
        })
    ));
    let mut tx = l.tx(&c.hospital, TxKind::Governance(g));
    tx.cosign(&c.clinic);
    tx.cosign(&c.insurer);
    l.apply_signed(&tx);
    assert_eq!(l.sm.members().len(), 3);
    let patient = Governance::SetMember {
        party: party(&c.alice),
        member: true,
    };
    assert!(matches!(
        governed(&mut l, &c, patient),
        Err(TxError::Invalid { .. })
    ));
}

#[test]
fn verifying_keys_are_registered_and_revoked_by_governance() {
    let (mut l, c) = scene();
    let hash = sha256(b"verifying key artifact");
    assert_eq!(l.sm.verifying_key("predicate-8x8"), None);
    let alone = TxKind::Governance(Governance::RegisterVerifyingKey {
        circuit: "predicate-8x8".into(),
        key_hash: Some(hash),
    });
    assert!(matches!(
        l.refuse(&c.hospital, alone),
        TxError::InsufficientGovernance { .. }
    ));
    governed(
        &mut l,
        &c,
        Governance::RegisterVerifyingKey {
            circuit: "predicate-8x8".into(),
            key_hash: Some(hash),
        },
    )
    .expect("registered");
    assert_eq!(l.sm.verifying_key("predicate-8x8"), Some(hash));
    governed(
        &mut l,
        &c,
        Governance::RegisterVerifyingKey {
            circuit: "predicate-8x8".into(),
            key_hash: None,
        },
    )
    .expect("revoked");
    assert_eq!(l.sm.verifying_key("predicate-8x8"), None);
}
