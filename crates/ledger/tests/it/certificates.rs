//! Header hashing (pinned) and commit certificates: more than 2/3 of the voting power, known
//! validators, one signature each, over exactly this header.

use custos_crypto::{Hash, SecretKey, SigningKeyPair, sha256};
use custos_ledger::verify::{verify_entry_inclusion, verify_header_chain};
use custos_ledger::{
    BlockHeader, CommitCertificate, LedgerError, MerkleTree, Validator, ValidatorSet, merkle,
};

fn key(seed: u8) -> SigningKeyPair {
    SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("32 bytes"))
}

fn set(keys: &[&SigningKeyPair]) -> ValidatorSet {
    ValidatorSet::new(
        keys.iter()
            .map(|k| Validator {
                key: k.public(),
                power: 1,
            })
            .collect(),
    )
    .expect("set")
}

fn header(height: u64, prev: Hash, set: &ValidatorSet) -> BlockHeader {
    BlockHeader {
        chain_id: "custos-fixture".into(),
        height,
        time_ms: 1_700_000_000_000 + height as i64,
        prev_hash: prev,
        log_size: height * 2,
        log_root: sha256(&height.to_be_bytes()),
        state_root: sha256(b"state"),
        tx_count: 1,
        proposer: key(1).public(),
        next_validators_hash: set.hash(),
    }
}

#[test]
fn the_header_hash_is_pinned() {
    let s = set(&[&key(1), &key(2), &key(3), &key(4)]);
    let h = header(1, Hash::ZERO, &s);
    assert_eq!(
        h.hash().to_hex(),
        "e9310067eba0452735e5361e3178e6c7ac96d1f08fcc880b2430bc54738f2c8b",
        "the canonical header encoding changed: bump its version and update this pin on purpose"
    );
}

#[test]
fn a_certificate_needs_more_than_two_thirds_of_the_voting_power() {
    let keys = [key(1), key(2), key(3), key(4)];
    let s = set(&[&keys[0], &keys[1], &keys[2], &keys[3]]);
    let h = header(1, Hash::ZERO, &s);
    assert!(
        CommitCertificate::sign(&h, 0, &[&keys[0], &keys[1], &keys[2]])
            .verify(&h, &s)
            .is_ok()
    );
    let two = CommitCertificate::sign(&h, 0, &[&keys[0], &keys[1]]);
    assert!(matches!(two.verify(&h, &s), Err(LedgerError::Certificate(m)) if m.contains("2 of 4")));
}

#[test]
fn a_certificate_with_an_outsider_a_duplicate_or_a_forged_signature_is_refused() {
    let keys = [key(1), key(2), key(3), key(4)];
    let s = set(&[&keys[0], &keys[1], &keys[2], &keys[3]]);
    let h = header(1, Hash::ZERO, &s);
    let outsider = CommitCertificate::sign(&h, 0, &[&keys[0], &keys[1], &key(9)]);
    assert!(outsider.verify(&h, &s).is_err());
    let mut duplicate = CommitCertificate::sign(&h, 0, &[&keys[0], &keys[1]]);
    duplicate.signatures.push(duplicate.signatures[0]);
    assert!(duplicate.verify(&h, &s).is_err());
    let mut forged = CommitCertificate::sign(&h, 0, &[&keys[0], &keys[1], &keys[2]]);
    forged.signatures[2].1 = keys[2].sign(b"something else");
    assert!(forged.verify(&h, &s).is_err());
    let other_round = CommitCertificate {
        round: 1,
        ..CommitCertificate::sign(&h, 0, &[&keys[0], &keys[1], &keys[2]])
    };
    assert!(
        other_round.verify(&h, &s).is_err(),
        "the round is part of what is signed"
    );
}

#[test]
fn a_certificate_for_another_header_is_refused() {
    let keys = [key(1), key(2), key(3), key(4)];
    let s = set(&[&keys[0], &keys[1], &keys[2], &keys[3]]);
    let h = header(1, Hash::ZERO, &s);
    let cert = CommitCertificate::sign(&h, 0, &[&keys[0], &keys[1], &keys[2]]);
    let mut changed = h.clone();
    changed.state_root = sha256(b"another state");
    assert!(cert.verify(&changed, &s).is_err());
}

#[test]
fn a_header_chain_verifies_and_a_broken_link_or_stripped_certificate_is_named() {
    let keys = [key(1), key(2), key(3), key(4)];
    let refs = [&keys[0], &keys[1], &keys[2], &keys[3]];
    let s = set(&refs);
    let mut chain = Vec::new();
    let mut prev = Hash::ZERO;
    for height in 1..=5 {
        let h = header(height, prev, &s);
        prev = h.hash();
        chain.push((
            h.clone(),
            CommitCertificate::sign(&h, 0, &refs[..3]),
            s.clone(),
        ));
    }
    verify_header_chain("custos-fixture", &s, &chain).expect("valid chain");
    let mut broken = chain.clone();
    broken[2].0.prev_hash = sha256(b"fork");
    broken[2].1 = CommitCertificate::sign(&broken[2].0, 0, &refs[..3]);
    let err = verify_header_chain("custos-fixture", &s, &broken).unwrap_err();
    assert!(err.to_string().contains("does not link"), "{err}");
    let mut stripped = chain.clone();
    stripped[3].1.signatures.clear();
    let err = verify_header_chain("custos-fixture", &s, &stripped).unwrap_err();
    assert!(err.to_string().contains("0 of 4"), "{err}");
    assert!(verify_header_chain("another-chain", &s, &chain).is_err());
    let mut foreign = chain.clone();
    foreign[1].2 = set(&[&key(7), &key(8)]);
    foreign[1].1 = CommitCertificate::sign(&foreign[1].0, 0, &[&key(7), &key(8)]);
    let err = verify_header_chain("custos-fixture", &s, &foreign).unwrap_err();
    assert!(err.to_string().contains("did not name"), "{err}");
}

#[test]
fn a_header_chain_follows_a_validator_set_change_the_previous_header_named() {
    let old = [key(1), key(2), key(3), key(4)];
    let old_refs = [&old[0], &old[1], &old[2], &old[3]];
    let new = [key(5), key(6), key(7)];
    let new_refs = [&new[0], &new[1], &new[2]];
    let (s_old, s_new) = (set(&old_refs), set(&new_refs));
    let mut chain = Vec::new();
    let mut prev = Hash::ZERO;
    for height in 1..=4 {
        // Header 2 announces the new set; from height 3 on the new set signs.
        let signers = if height <= 2 { &s_old } else { &s_new };
        let mut h = header(height, prev, signers);
        h.next_validators_hash = if height >= 2 {
            s_new.hash()
        } else {
            s_old.hash()
        };
        prev = h.hash();
        let cert = if height <= 2 {
            CommitCertificate::sign(&h, 0, &old_refs[..3])
        } else {
            CommitCertificate::sign(&h, 0, &new_refs)
        };
        chain.push((h, cert, signers.clone()));
    }
    verify_header_chain("custos-fixture", &s_old, &chain).expect("follows the change");
    // The old validators cannot keep signing after the change.
    let mut stale = chain.clone();
    stale[2].1 = CommitCertificate::sign(&stale[2].0, 0, &old_refs[..3]);
    stale[2].2 = s_old.clone();
    assert!(verify_header_chain("custos-fixture", &s_old, &stale).is_err());
}

#[test]
fn an_entry_verifies_under_its_header_and_a_changed_entry_does_not() {
    let mut tree = MerkleTree::new();
    let entries: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 40]).collect();
    for e in &entries {
        tree.push(merkle::leaf_hash(e));
    }
    let s = set(&[&key(1)]);
    let mut h = header(1, Hash::ZERO, &s);
    h.log_size = tree.len();
    h.log_root = tree.root();
    let proof = tree.inclusion_proof(4, tree.len()).expect("proof");
    verify_entry_inclusion(&entries[4], 4, &proof, &h).expect("included");
    let mut changed = entries[4].clone();
    changed[0] ^= 1;
    assert!(verify_entry_inclusion(&changed, 4, &proof, &h).is_err());
    assert!(verify_entry_inclusion(&entries[4], 5, &proof, &h).is_err());
}
