//! The governance threshold: co-signatures of at least two thirds of the member organisations.

use custos_consent::{BlockContext, StateMachine, TxError};
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::{Genesis, Height, Parameters, Role, Timestamp};

use crate::fixture::*;

/// A chain with `n` member custodians (keys 100, 101, …) and one non-member partner (key 99).
fn consortium(n: u8) -> StateMachine {
    let mut parties: Vec<GenesisParty> = (0..n)
        .map(|i| GenesisParty {
            public_key: party(&key(100 + i)),
            role: Role::Custodian,
            encryption_key: encryption_key(&key(100 + i)),
            organisation: organisation(&format!("hospital-{i}")),
            member: true,
        })
        .collect();
    parties.push(GenesisParty {
        public_key: party(&key(99)),
        role: Role::Partner,
        encryption_key: encryption_key(&key(99)),
        organisation: organisation("partner"),
        member: false,
    });
    let genesis = Genesis {
        chain_id: chain(),
        genesis_time_ms: T0,
        parameters: Parameters::default(),
        validators: vec![GenesisValidator {
            public_key: party(&key(90)),
            power: 1,
            address: String::new(),
        }],
        parties,
    };
    StateMachine::genesis(&genesis).expect("valid genesis")
}

const CTX: BlockContext = BlockContext {
    height: Height(1),
    time: Timestamp(T0 + BLOCK_MS),
};

/// Break-glass switched on by the partner, co-signed by the first `k` members.
fn outcome(sm: &mut StateMachine, k: u8) -> Result<(), TxError> {
    let author = key(99);
    let mut tx = sign(
        &chain(),
        sm.next_nonce(&party(&author)),
        set_parameters(break_glass(true)),
        &author,
    );
    for i in 0..k {
        tx.cosign(&key(100 + i));
    }
    let root = sm.root();
    let result = sm.apply_tx(&tx, CTX).map(|_| ());
    if result.is_err() {
        assert_eq!(sm.root(), root);
    }
    result
}

#[test]
fn the_governance_threshold_is_two_thirds_of_the_members_rounded_up() {
    // n members: the smallest k with 3k ≥ 2n.
    for (n, needed) in [
        (1u8, 1u8),
        (2, 2),
        (3, 2),
        (4, 3),
        (5, 4),
        (6, 4),
        (7, 5),
        (9, 6),
        (10, 7),
    ] {
        let mut sm = consortium(n);
        assert_eq!(sm.members().len(), usize::from(n));
        assert_eq!(
            outcome(&mut sm, needed - 1),
            Err(TxError::InsufficientGovernance {
                needed: usize::from(needed),
                members: usize::from(n),
                got: usize::from(needed - 1),
            }),
            "{n} members, {} signatures",
            needed - 1
        );
        assert_eq!(
            outcome(&mut sm, needed),
            Ok(()),
            "{n} members, {needed} signatures"
        );
        assert!(sm.parameters().break_glass_enabled);
    }
}

#[test]
fn a_consortium_without_members_cannot_govern() {
    let mut sm = consortium(0);
    assert_eq!(
        outcome(&mut sm, 0),
        Err(TxError::InsufficientGovernance {
            needed: 1,
            members: 0,
            got: 0
        })
    );
}

#[test]
fn a_member_signing_twice_counts_once() {
    let mut sm = consortium(3);
    let author = key(100);
    let mut tx = sign(&chain(), 0, set_parameters(break_glass(true)), &author);
    tx.cosign(&author);
    tx.cosign(&key(100));
    assert_eq!(tx.signers().len(), 1);
    assert_eq!(
        sm.apply_tx(&tx, CTX).map(|_| ()),
        Err(TxError::InsufficientGovernance {
            needed: 2,
            members: 3,
            got: 1
        })
    );
}
