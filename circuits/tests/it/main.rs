//! Integration tests of `custos-circuits`: full prove/verify roundtrips, key artifacts, batch
//! verification and snarkjs interoperability.

// Fixtures and helpers of a test binary may panic on failure.
#![allow(clippy::unwrap_used)]

mod artifacts;
mod proofs;
mod snarkjs;

use std::sync::OnceLock;

use custos_circuits::{
    AttributeCommitment, Attributes, Predicate, PredicatePrivate, PredicateProof, PredicatePublic,
    ProvingKeyArtifact, RequestBinding, Salt, VerifyingKeyArtifact, setup,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// One setup shared by every test of this binary (seeded, so runs are reproducible).
pub(crate) fn keys() -> &'static (ProvingKeyArtifact, VerifyingKeyArtifact) {
    static KEYS: OnceLock<(ProvingKeyArtifact, VerifyingKeyArtifact)> = OnceLock::new();
    KEYS.get_or_init(|| setup(&mut StdRng::seed_from_u64(1)).unwrap())
}

pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A record, a predicate it satisfies, and a request binding.
pub(crate) fn statement(seed: u64) -> (PredicatePublic, PredicatePrivate) {
    let attributes = Attributes::new([42, 0, 245, 128, 55, 190, 2, 75]);
    let salt = Salt::random(&mut rng(seed));
    let predicate: Predicate =
        "age>=18 && smoker=0 && bmi_x10<300 && sex in {1,2} && postcode_region not in {1,2,3}"
            .parse()
            .unwrap();
    let public = PredicatePublic {
        commitment: AttributeCommitment::commit(&attributes, &salt),
        predicate,
        binding: RequestBinding {
            request_id: [seed as u8; 32],
            partner_key: [0x5a; 32],
        },
    };
    (public, PredicatePrivate { attributes, salt })
}

/// A valid proof of [`statement`].
pub(crate) fn proven(seed: u64) -> (PredicatePublic, PredicateProof) {
    let (public, private) = statement(seed);
    let proof = PredicateProof::prove(&keys().0, &public, &private, &mut rng(seed + 100)).unwrap();
    (public, proof)
}
