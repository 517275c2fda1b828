use custos_circuits::{
    AttributeCommitment, Attributes, Error, PROOF_BYTES, Predicate, PredicatePrivate,
    PredicateProof, PredicatePublic, RequestBinding, Salt, setup,
};
use proptest::prelude::*;

use crate::{keys, proven, rng, statement};

#[test]
fn an_honest_proof_verifies_and_is_128_bytes() {
    let (public, proof) = proven(1);
    proof.verify(&keys().1, &public).unwrap();
    let bytes = proof.to_bytes();
    assert_eq!(bytes.len(), PROOF_BYTES);
    let decoded = PredicateProof::from_bytes(&bytes).unwrap();
    assert_eq!(decoded, proof);
    decoded.verify(&keys().1, &public).unwrap();
    assert_eq!(decoded.digest(), proof.digest());
}

#[test]
fn a_proof_for_one_request_fails_for_another_request() {
    let (mut public, proof) = proven(2);
    public.binding.request_id[31] ^= 1;
    assert!(matches!(
        proof.verify(&keys().1, &public),
        Err(Error::ProofRejected)
    ));
}

#[test]
fn a_proof_for_one_partner_fails_for_another_partner() {
    let (mut public, proof) = proven(3);
    public.binding.partner_key[0] ^= 0x80;
    assert!(matches!(
        proof.verify(&keys().1, &public),
        Err(Error::ProofRejected)
    ));
}

#[test]
fn a_proof_fails_against_another_commitment() {
    let (mut public, proof) = proven(4);
    let other = AttributeCommitment::commit(
        &Attributes::new([42, 0, 245, 128, 55, 190, 2, 75]),
        &Salt::random(&mut rng(99)),
    );
    public.commitment = other;
    assert!(proof.verify(&keys().1, &public).is_err());
}

#[test]
fn a_proof_fails_against_another_predicate() {
    let (public, proof) = proven(5);
    for text in [
        "age>=19 && smoker=0 && bmi_x10<300 && sex in {1,2} && postcode_region not in {1,2,3}",
        "age>=18 && smoker=0 && bmi_x10<300 && sex in {1,2}",
        "age>=18",
        "true",
    ] {
        let other = PredicatePublic {
            predicate: text.parse().unwrap(),
            ..public.clone()
        };
        assert!(proof.verify(&keys().1, &other).is_err(), "{text}");
    }
}

#[test]
fn a_proof_fails_under_an_unregistered_verifying_key() {
    let (public, proof) = proven(6);
    let (_, other_vk) = setup(&mut rng(7)).unwrap();
    assert_ne!(other_vk.id(), keys().1.id());
    assert!(matches!(
        proof.verify(&other_vk, &public),
        Err(Error::ProofRejected)
    ));
}

#[test]
fn the_prover_refuses_a_witness_that_does_not_open_the_commitment() {
    let (public, mut private) = statement(8);
    private.salt = Salt::random(&mut rng(1000));
    assert!(matches!(
        PredicateProof::prove(&keys().0, &public, &private, &mut rng(1)),
        Err(Error::CommitmentMismatch { .. })
    ));
}

#[test]
fn the_prover_refuses_attributes_that_do_not_satisfy_the_predicate() {
    let (mut public, private) = statement(9);
    public.predicate = "age<18".parse().unwrap();
    let err = PredicateProof::prove(&keys().0, &public, &private, &mut rng(1)).unwrap_err();
    assert!(matches!(err, Error::PredicateNotSatisfied { .. }));
    assert!(err.to_string().contains("age<18"));
}

#[test]
fn malformed_proof_bytes_are_rejected_without_panicking() {
    let (_, proof) = proven(10);
    let bytes = proof.to_bytes();
    assert!(matches!(
        PredicateProof::from_bytes(&bytes[..127]),
        Err(Error::ProofLength {
            expected: 128,
            got: 127
        })
    ));
    assert!(matches!(
        PredicateProof::from_bytes(&[bytes.as_slice(), &[0]].concat()),
        Err(Error::ProofLength { .. })
    ));
    assert!(matches!(
        PredicateProof::from_bytes(&[0xff; 128]),
        Err(Error::ProofEncoding(_))
    ));
    // The compressed identity (all zero but the infinity flag) is refused too.
    let mut identity = [0u8; 128];
    identity[31] = 0x40;
    identity[95] = 0x40;
    identity[127] = 0x40;
    assert!(PredicateProof::from_bytes(&identity).is_err());
    // Flipping bits of any coordinate gives an off-curve point, a different valid point, or a
    // non-canonical encoding; none panics, and none verifies.
    let (public, _) = proven(10);
    for i in 0..PROOF_BYTES {
        let mut tampered = bytes;
        tampered[i] ^= 0x01;
        if let Ok(p) = PredicateProof::from_bytes(&tampered) {
            assert!(p.verify(&keys().1, &public).is_err(), "byte {i}");
        }
    }
}

#[test]
fn a_batch_of_valid_proofs_verifies_and_one_bad_proof_fails_it() {
    let items: Vec<(PredicatePublic, PredicateProof)> = (20..28).map(proven).collect();
    let refs = || items.iter().map(|(public, proof)| (proof, public));
    PredicateProof::batch_verify(&keys().1, refs(), &mut rng(1)).unwrap();
    PredicateProof::batch_verify(&keys().1, std::iter::empty(), &mut rng(1)).unwrap();

    // One proof presented for another request.
    let mut bad = items.clone();
    bad[5].0.binding.request_id[0] ^= 1;
    let result = PredicateProof::batch_verify(
        &keys().1,
        bad.iter().map(|(public, proof)| (proof, public)),
        &mut rng(2),
    );
    assert!(matches!(result, Err(Error::BatchRejected { count: 8 })));

    // Two proofs swapped between statements.
    let mut swapped = items.clone();
    let p3 = swapped[3].1.clone();
    swapped[3].1 = swapped[4].1.clone();
    swapped[4].1 = p3;
    assert!(
        PredicateProof::batch_verify(
            &keys().1,
            swapped.iter().map(|(public, proof)| (proof, public)),
            &mut rng(3),
        )
        .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn honest_proofs_of_random_records_verify(values in any::<[u32; 8]>(), seed in any::<u64>(), request in any::<[u8; 32]>()) {
        let attributes = Attributes::new(values);
        let salt = Salt::random(&mut rng(seed));
        let predicate: Predicate = format!(
            "age>={} && smoker<{} && sex={} && postcode_region in {{{},7}}",
            values[0] / 2,
            u64::from(values[1]) + 1,
            values[6],
            values[7]
        )
        .parse()
        .unwrap_or_else(|_| Predicate::always());
        let public = PredicatePublic {
            commitment: AttributeCommitment::commit(&attributes, &salt),
            predicate,
            binding: RequestBinding { request_id: request, partner_key: [seed as u8; 32] },
        };
        let private = PredicatePrivate { attributes, salt };
        let proof = PredicateProof::prove(&keys().0, &public, &private, &mut rng(seed ^ 1)).unwrap();
        prop_assert!(proof.verify(&keys().1, &public).is_ok());
    }
}
