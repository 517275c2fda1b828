//! The predicate statement: "the attributes behind this commitment satisfy this predicate",
//! bound to one request and one partner.
//!
//! Public inputs, in the circuit's input-assignment order ([`NUM_PUBLIC_INPUTS`] = 37):
//!
//! | position | value |
//! |---|---|
//! | 0 | the commitment |
//! | 1 + 4j .. 4 + 4j | clause slot `j` (0..8): `head, c1, c2, c3` (see [`crate::predicate`]) |
//! | 33, 34 | request id: big-endian integers of bytes 0..16 and 16..32 |
//! | 35, 36 | partner key: big-endian integers of bytes 0..16 and 16..32 |
//!
//! Witness: the eight attributes and the salt.

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{Field, PrimeField, Zero};
use ark_groth16::{Groth16, Proof};
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_snark::SNARK;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::attributes::{Attributes, N_ATTRS, Salt};
use crate::commitment::{AttributeCommitment, Commitment, commit_gadget};
use crate::field::halves;
use crate::keys::{ProvingKeyArtifact, VerifyingKeyArtifact};
use crate::predicate::{
    FIELDS_PER_CLAUSE, MAX_CLAUSES, Predicate, VALUE_BITS, clause_gadget, to_bits_le,
};
use crate::{Error, Result};

/// Number of public inputs (field elements) of the predicate circuit.
pub const NUM_PUBLIC_INPUTS: usize = 1 + MAX_CLAUSES * FIELDS_PER_CLAUSE + 4;
/// Size of a compressed proof: A (32) + B (64) + C (32).
pub const PROOF_BYTES: usize = 128;

/// What a proof is bound to besides the statement: the request it answers and the partner who
/// asked, so that it cannot be replayed elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestBinding {
    /// The request's 32-byte identifier.
    pub request_id: [u8; 32],
    /// The requesting partner's 32-byte Ed25519 public key.
    pub partner_key: [u8; 32],
}

impl RequestBinding {
    /// `[request_hi, request_lo, partner_hi, partner_lo]`: each the big-endian integer of 16 bytes.
    pub fn to_field_elements(&self) -> [Fr; 4] {
        let [r_hi, r_lo] = halves(&self.request_id);
        let [p_hi, p_lo] = halves(&self.partner_key);
        [r_hi, r_lo, p_hi, p_lo]
    }
}

/// The statement's public part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PredicatePublic {
    /// The record's commitment, as stored on the ledger.
    pub commitment: Commitment,
    /// The predicate the partner asked for.
    pub predicate: Predicate,
    /// The request and partner the proof answers.
    pub binding: RequestBinding,
}

impl PredicatePublic {
    /// The circuit's public inputs, in input-assignment order (see the module documentation).
    pub fn to_field_elements(&self) -> Vec<Fr> {
        let mut out = Vec::with_capacity(NUM_PUBLIC_INPUTS);
        out.push(self.commitment.to_field());
        out.extend(self.predicate.to_field_elements());
        out.extend(self.binding.to_field_elements());
        out
    }
}

/// The statement's private part (the witness).
#[derive(Clone, Debug)]
pub struct PredicatePrivate {
    /// The record's attributes.
    pub attributes: Attributes,
    /// The commitment's salt.
    pub salt: Salt,
}

/// The predicate circuit: one fixed shape for every predicate, so one setup serves them all.
#[derive(Clone, Debug)]
pub struct PredicateCircuit {
    /// Public inputs.
    pub public: PredicatePublic,
    /// Witness.
    pub private: PredicatePrivate,
}

impl PredicateCircuit {
    /// A circuit with placeholder values, for key generation (only the shape matters).
    pub(crate) fn blank() -> Self {
        Self {
            public: PredicatePublic {
                commitment: Commitment(Fr::zero()),
                predicate: Predicate::always(),
                binding: RequestBinding {
                    request_id: [0; 32],
                    partner_key: [0; 32],
                },
            },
            private: PredicatePrivate {
                attributes: Attributes::default(),
                salt: Salt(Fr::zero()),
            },
        }
    }
}

impl ConstraintSynthesizer<Fr> for PredicateCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let attrs = self.private.attributes.values().map(Fr::from);
        synthesize(
            &cs,
            &self.public.to_field_elements(),
            &attrs,
            &self.private.salt.0,
        )
    }
}

/// The circuit over raw field elements, so tests can feed witnesses no honest type can hold.
pub(crate) fn synthesize(
    cs: &ConstraintSystemRef<Fr>,
    public_inputs: &[Fr],
    attr_values: &[Fr; N_ATTRS],
    salt_value: &Fr,
) -> Result<(), SynthesisError> {
    if public_inputs.len() != NUM_PUBLIC_INPUTS {
        return Err(SynthesisError::Unsatisfiable);
    }
    let inputs = public_inputs
        .iter()
        .map(|x| FpVar::new_input(cs.clone(), || Ok(*x)))
        .collect::<Result<Vec<_>, _>>()?;
    let (commitment, rest) = inputs.split_at(1);
    let (slots, binding) = rest.split_at(MAX_CLAUSES * FIELDS_PER_CLAUSE);

    let mut attrs = Vec::with_capacity(N_ATTRS);
    for value in attr_values {
        let var = FpVar::new_witness(cs.clone(), || Ok(*value))?;
        // Range check: every comparison relies on attributes being < 2^32.
        to_bits_le(cs, &var, VALUE_BITS)?;
        attrs.push(var);
    }
    let attrs: [FpVar<Fr>; N_ATTRS] = attrs
        .try_into()
        .map_err(|_| SynthesisError::Unsatisfiable)?;
    let salt = FpVar::new_witness(cs.clone(), || Ok(*salt_value))?;

    commit_gadget(cs.clone(), &attrs, &salt)?.enforce_equal(&commitment[0])?;

    for slot in slots.chunks_exact(FIELDS_PER_CLAUSE) {
        let slot: &[FpVar<Fr>; FIELDS_PER_CLAUSE] =
            slot.try_into().map_err(|_| SynthesisError::Unsatisfiable)?;
        clause_gadget(cs, &attrs, slot)?;
    }

    // The binding inputs take part in no other constraint; squaring each ties it to the proof
    // in a constraint of its own.
    for var in binding {
        let _squared = var.square()?;
    }
    Ok(())
}

/// A Groth16 proof of the predicate statement.
///
/// Groth16 proofs are malleable: anyone can re-randomize a valid proof into different valid
/// bytes. Never use a proof's bytes (or [`Self::digest`]) as an identifier; identify what was
/// proven by its public inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct PredicateProof(pub(crate) Proof<Bn254>);

impl PredicateProof {
    /// Proves that `private` opens `public.commitment` and satisfies `public.predicate`, bound to
    /// `public.binding`. Checks the witness natively first, so a bad witness is an error rather
    /// than an invalid proof.
    pub fn prove<R: RngCore + CryptoRng>(
        pk: &ProvingKeyArtifact,
        public: &PredicatePublic,
        private: &PredicatePrivate,
        rng: &mut R,
    ) -> Result<Self> {
        let opened = AttributeCommitment::commit(&private.attributes, &private.salt);
        if opened != public.commitment {
            return Err(Error::CommitmentMismatch {
                expected: public.commitment.to_hex(),
                got: opened.to_hex(),
            });
        }
        if !public.predicate.evaluate(&private.attributes) {
            return Err(Error::PredicateNotSatisfied {
                predicate: public.predicate.to_string(),
            });
        }
        let circuit = PredicateCircuit {
            public: public.clone(),
            private: private.clone(),
        };
        Ok(Self(Groth16::<Bn254>::prove(pk.key(), circuit, rng)?))
    }

    /// Verifies the proof for `public` under `vk` (whose prepared form is cached in the artifact).
    pub fn verify(&self, vk: &VerifyingKeyArtifact, public: &PredicatePublic) -> Result<()> {
        let inputs = public.to_field_elements();
        match Groth16::<Bn254>::verify_with_processed_vk(vk.prepared(), &inputs, &self.0)? {
            true => Ok(()),
            false => Err(Error::ProofRejected),
        }
    }

    /// Verifies many proofs under one key with one multi-pairing.
    ///
    /// Each proof's Groth16 equation `e(A,B) = e(α,β)·e(L,γ)·e(C,δ)` is raised to an independent
    /// random 128-bit scalar `r_i` from `rng` and the equations are multiplied: one Miller loop
    /// over `n + 2` pairs, one final exponentiation. A batch containing an invalid proof passes
    /// with probability at most about 2^-128. An empty batch is accepted.
    pub fn batch_verify<'a, R: RngCore + CryptoRng>(
        vk: &VerifyingKeyArtifact,
        items: impl IntoIterator<Item = (&'a PredicateProof, &'a PredicatePublic)>,
        rng: &mut R,
    ) -> Result<()> {
        let pvk = vk.prepared();
        let mut input_scalars = vec![Fr::zero(); NUM_PUBLIC_INPUTS + 1];
        let mut a_points = Vec::new();
        let mut b_points = Vec::new();
        let mut c_points = Vec::new();
        let mut rs = Vec::new();
        let mut r_sum = Fr::zero();
        for (proof, public) in items {
            let mut wide = [0u8; 16];
            rng.fill_bytes(&mut wide);
            let r = Fr::from(u128::from_le_bytes(wide));
            input_scalars[0] += r;
            for (acc, x) in input_scalars[1..]
                .iter_mut()
                .zip(public.to_field_elements())
            {
                *acc += r * x;
            }
            a_points.push(proof.0.a * r);
            b_points.push(proof.0.b);
            c_points.push(proof.0.c);
            rs.push(r);
            r_sum += r;
        }
        let count = rs.len();
        if count == 0 {
            return Ok(());
        }
        let msm = |bases: &[G1Affine], scalars: &[Fr]| {
            G1Projective::msm(bases, scalars).map_err(|n| {
                Error::KeyBody(format!("expected {} input bases, got {n}", scalars.len()))
            })
        };
        let inputs = msm(&pvk.vk.gamma_abc_g1, &input_scalars)?;
        let c_sum = msm(&c_points, &rs)?;

        let mut g1 = G1Projective::normalize_batch(&a_points);
        g1.push(inputs.into_affine());
        g1.push(c_sum.into_affine());
        let mut g2: Vec<<Bn254 as Pairing>::G2Prepared> =
            b_points.into_iter().map(Into::into).collect();
        g2.push(pvk.gamma_g2_neg_pc.clone());
        g2.push(pvk.delta_g2_neg_pc.clone());
        let g1: Vec<<Bn254 as Pairing>::G1Prepared> = g1.into_iter().map(Into::into).collect();

        let lhs = Bn254::final_exponentiation(Bn254::multi_miller_loop(g1, g2))
            .ok_or(Error::BatchRejected { count })?;
        if lhs.0 == pvk.alpha_g1_beta_g2.pow(r_sum.into_bigint()) {
            Ok(())
        } else {
            Err(Error::BatchRejected { count })
        }
    }

    /// The compressed encoding: A (32 bytes), B (64), C (32).
    pub fn to_bytes(&self) -> [u8; PROOF_BYTES] {
        let mut out = [0u8; PROOF_BYTES];
        // Writing a valid proof into a buffer of exactly its compressed size cannot fail.
        let _ = self.0.serialize_compressed(&mut out[..]);
        out
    }

    /// Decodes [`Self::to_bytes`]'s output, checking that each point is on its curve, in the
    /// prime-order subgroup and not the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != PROOF_BYTES {
            return Err(Error::ProofLength {
                expected: PROOF_BYTES,
                got: bytes.len(),
            });
        }
        let proof = Proof::<Bn254>::deserialize_compressed(bytes)
            .map_err(|e| Error::ProofEncoding(e.to_string()))?;
        if proof.a.is_zero() || proof.b.is_zero() || proof.c.is_zero() {
            return Err(Error::ProofEncoding("a point at infinity".into()));
        }
        Ok(Self(proof))
    }

    /// SHA-256 of [`Self::to_bytes`]. For logs and transport checksums only: it is not an
    /// identifier (see the type's documentation).
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commitment::commit_fields;
    use crate::predicate::{Clause, Condition, ConstSet, MAX_SET};
    use ark_relations::gr1cs::{ConstraintSystem, OptimizationGoal};
    use proptest::prelude::*;

    /// The pinned number of constraints of the predicate circuit.
    const CONSTRAINTS: usize = 1446;

    /// Builds the circuit over raw values and reports whether every constraint holds.
    fn satisfied(inputs: &[Fr], attrs: &[Fr; N_ATTRS], salt: &Fr) -> bool {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        synthesize(&cs, inputs, attrs, salt).unwrap();
        cs.finalize();
        cs.is_satisfied().unwrap()
    }

    fn binding() -> RequestBinding {
        RequestBinding {
            request_id: [0xab; 32],
            partner_key: [0xcd; 32],
        }
    }

    /// Public inputs for an honest commitment to raw `attrs` under `salt`.
    fn inputs_for(predicate: &Predicate, attrs: &[Fr; N_ATTRS], salt: &Fr) -> Vec<Fr> {
        PredicatePublic {
            commitment: Commitment(commit_fields(attrs, salt)),
            predicate: predicate.clone(),
            binding: binding(),
        }
        .to_field_elements()
    }

    /// Whether the circuit accepts honest `attrs` (committed under a fixed salt) for `predicate`.
    fn accepts(predicate: &Predicate, attrs: [u32; N_ATTRS]) -> bool {
        let attrs = attrs.map(Fr::from);
        let salt = Fr::from(99u64);
        satisfied(&inputs_for(predicate, &attrs, &salt), &attrs, &salt)
    }

    fn single(attr: usize, condition: Condition) -> Predicate {
        Predicate::new(vec![Clause::new(attr, condition).unwrap()]).unwrap()
    }

    #[test]
    fn the_circuit_has_a_pinned_number_of_constraints_whatever_the_predicate() {
        // Per clause: 38-bit head (39) + selection (7) + 33-bit difference (34) + equality (2)
        // + set product and zero test (5) + outcome selection and check (8) = 95.
        // Plus Poseidon (417), its check (1), 8 range-checked attributes (264), binding (4).
        let full: Predicate = "age>=18 && smoker=0 && bmi_x10<300 && sex in {1,2} \
            && postcode_region not in {3,4} && cholesterol!=0 && hba1c_x10<65 && systolic_bp<140"
            .parse()
            .unwrap();
        for predicate in [Predicate::always(), full] {
            let attrs = [40, 0, 250, 120, 50, 180, 2, 7].map(Fr::from);
            let salt = Fr::from(11u64);
            let cs = ConstraintSystem::<Fr>::new_ref();
            cs.set_optimization_goal(OptimizationGoal::Constraints);
            synthesize(&cs, &inputs_for(&predicate, &attrs, &salt), &attrs, &salt).unwrap();
            cs.finalize();
            assert_eq!(cs.num_instance_variables(), NUM_PUBLIC_INPUTS + 1);
            assert_eq!(cs.num_constraints(), CONSTRAINTS);
            assert_eq!(CONSTRAINTS, 417 + 1 + 8 * 33 + 4 + MAX_CLAUSES * 95);
            assert!(cs.is_satisfied().unwrap());
        }
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        PredicateCircuit::blank()
            .generate_constraints(cs.clone())
            .unwrap();
        assert_eq!(cs.num_constraints(), CONSTRAINTS);
    }

    #[test]
    fn request_binding_maps_to_big_endian_halves() {
        let mut request_id = [0u8; 32];
        request_id[15] = 1;
        request_id[31] = 2;
        let b = RequestBinding {
            request_id,
            partner_key: [0xff; 32],
        };
        let f = b.to_field_elements();
        assert_eq!(f[0], Fr::from(1u64));
        assert_eq!(f[1], Fr::from(2u64));
        assert_eq!(f[2], Fr::from(u128::MAX));
        assert_eq!(f[3], Fr::from(u128::MAX));
    }

    /// A value and a condition on it that holds.
    fn satisfied_condition() -> impl Strategy<Value = (u32, Condition)> {
        let value = prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>(), 0u32..200];
        (
            value,
            0..6u8,
            any::<u32>(),
            prop::collection::vec(any::<u32>(), 0..MAX_SET),
        )
            .prop_map(|(x, op, c, others)| {
                let condition = match op {
                    0 => Condition::Ge((u64::from(c) % (u64::from(x) + 1)) as u32),
                    1 if x < u32::MAX => Condition::Lt(x + 1 + c % (u32::MAX - x)),
                    1 => Condition::Ge(x),
                    2 => Condition::Eq(x),
                    3 => Condition::Ne(if c == x { c.wrapping_add(1) } else { c }),
                    4 => Condition::In(ConstSet::new(others.into_iter().chain([x])).unwrap()),
                    _ => {
                        let set: Vec<u32> = others.into_iter().filter(|&o| o != x).collect();
                        if set.is_empty() {
                            Condition::NotIn(ConstSet::new([x.wrapping_add(1)]).unwrap())
                        } else {
                            Condition::NotIn(ConstSet::new(set).unwrap())
                        }
                    }
                };
                (x, condition)
            })
    }

    /// Honest attributes and a predicate of up to `MAX_CLAUSES` clauses they satisfy.
    fn honest_statement() -> impl Strategy<Value = ([u32; N_ATTRS], Predicate)> {
        (
            any::<[u32; N_ATTRS]>(),
            prop::collection::vec((0..N_ATTRS, satisfied_condition()), 0..=MAX_CLAUSES),
        )
            .prop_map(|(mut attrs, clauses)| {
                let clauses = clauses
                    .into_iter()
                    .map(|(i, (x, condition))| {
                        attrs[i] = x;
                        (i, condition)
                    })
                    .collect::<Vec<_>>();
                // Later clauses may overwrite an attribute an earlier one constrained: keep only
                // clauses that still hold.
                let clauses = clauses
                    .into_iter()
                    .filter(|(i, c)| c.holds(attrs[*i]))
                    .map(|(i, c)| Clause::new(i, c).unwrap())
                    .collect();
                (attrs, Predicate::new(clauses).unwrap())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn honest_witnesses_always_satisfy_the_circuit((attrs, predicate) in honest_statement()) {
            prop_assert!(predicate.evaluate(&Attributes::new(attrs)));
            prop_assert!(accepts(&predicate, attrs));
        }

        #[test]
        fn a_violated_ge_clause_is_unsatisfiable(x in any::<u32>(), gap in 1u32..) {
            let c = x.saturating_add(gap);
            prop_assume!(c > x);
            prop_assert!(!accepts(&single(0, Condition::Ge(c)), [x; N_ATTRS]));
        }

        #[test]
        fn a_violated_lt_clause_is_unsatisfiable(x in any::<u32>(), c in any::<u32>()) {
            let c = c.min(x);
            prop_assert!(!accepts(&single(2, Condition::Lt(c)), [x; N_ATTRS]));
        }

        #[test]
        fn a_violated_eq_clause_is_unsatisfiable(x in any::<u32>(), c in any::<u32>()) {
            prop_assume!(x != c);
            prop_assert!(!accepts(&single(3, Condition::Eq(c)), [x; N_ATTRS]));
        }

        #[test]
        fn a_violated_ne_clause_is_unsatisfiable(x in any::<u32>()) {
            prop_assert!(!accepts(&single(4, Condition::Ne(x)), [x; N_ATTRS]));
        }

        #[test]
        fn a_violated_in_clause_is_unsatisfiable(x in any::<u32>(), set in prop::collection::vec(any::<u32>(), 1..=MAX_SET)) {
            prop_assume!(!set.contains(&x));
            let predicate = single(5, Condition::In(ConstSet::new(set).unwrap()));
            prop_assert!(!accepts(&predicate, [x; N_ATTRS]));
        }

        #[test]
        fn a_violated_not_in_clause_is_unsatisfiable(x in any::<u32>(), set in prop::collection::vec(any::<u32>(), 0..MAX_SET)) {
            let predicate = single(6, Condition::NotIn(ConstSet::new(set.into_iter().chain([x])).unwrap()));
            prop_assert!(!accepts(&predicate, [x; N_ATTRS]));
        }

        #[test]
        fn a_clause_reads_only_the_attribute_it_names(i in 0..N_ATTRS, j in 0..N_ATTRS, x in 1u32..) {
            // Attribute i is below x, every other attribute equals x: `attr_j >= x` holds iff j != i.
            prop_assume!(i != j);
            let mut attrs = [x; N_ATTRS];
            attrs[i] = x - 1;
            prop_assert!(accepts(&single(j, Condition::Ge(x)), attrs));
            prop_assert!(!accepts(&single(i, Condition::Ge(x)), attrs));
        }

        #[test]
        fn a_violated_clause_in_any_slot_is_unsatisfiable(slot in 0..MAX_CLAUSES) {
            let mut clauses = vec![Clause::new(0, Condition::Ge(18)).unwrap(); MAX_CLAUSES];
            clauses[slot] = Clause::new(1, Condition::Eq(0)).unwrap();
            let predicate = Predicate::new(clauses).unwrap();
            prop_assert!(accepts(&predicate, [30, 0, 0, 0, 0, 0, 0, 0]));
            prop_assert!(!accepts(&predicate, [30, 1, 0, 0, 0, 0, 0, 0]));
        }

        #[test]
        fn an_attribute_beyond_32_bits_is_unsatisfiable(k in 1u64..1000, wrap_low in any::<bool>()) {
            // x = p - k would pass `x < 18` if it wrapped; x = 2^32 + k would pass `x >= 2^32 - 1`
            // and `x != k`. The 32-bit range check refuses both.
            let (x, predicate) = if wrap_low {
                (-Fr::from(k), single(0, Condition::Lt(18)))
            } else {
                (Fr::from((1u64 << 32) + k), single(0, Condition::Ne(k as u32)))
            };
            let mut attrs = [Fr::from(0u64); N_ATTRS];
            attrs[0] = x;
            let salt = Fr::from(5u64);
            prop_assert!(!satisfied(&inputs_for(&predicate, &attrs, &salt), &attrs, &salt));
        }

        #[test]
        fn a_wrong_salt_is_unsatisfiable(attrs in any::<[u32; N_ATTRS]>(), salt in any::<u64>(), delta in 1u64..) {
            let attrs = attrs.map(Fr::from);
            let inputs = inputs_for(&Predicate::always(), &attrs, &Fr::from(salt));
            prop_assert!(satisfied(&inputs, &attrs, &Fr::from(salt)));
            prop_assert!(!satisfied(&inputs, &attrs, &(Fr::from(salt) + Fr::from(delta))));
        }

        #[test]
        fn an_attribute_other_than_the_committed_one_is_unsatisfiable(attrs in any::<[u32; N_ATTRS]>(), i in 0..N_ATTRS) {
            // The cheater changes attribute i so that `attr_i = new` would hold.
            let new = attrs[i].wrapping_add(1);
            let salt = Fr::from(7u64);
            let committed = attrs.map(Fr::from);
            let predicate = single(i, Condition::Eq(new));
            let inputs = inputs_for(&predicate, &committed, &salt);
            let mut claimed = committed;
            claimed[i] = Fr::from(new);
            prop_assert!(!satisfied(&inputs, &claimed, &salt));
        }
    }

    #[test]
    fn an_unknown_op_code_is_unsatisfiable() {
        let attrs = [Fr::from(1u64); N_ATTRS];
        let salt = Fr::from(3u64);
        let mut inputs = inputs_for(&Predicate::always(), &attrs, &salt);
        assert!(satisfied(&inputs, &attrs, &salt));
        // Slot 0's head with op code 7.
        inputs[1] = Fr::from(7u64 << 3);
        assert!(!satisfied(&inputs, &attrs, &salt));
    }

    #[test]
    fn a_head_with_a_constant_beyond_32_bits_is_unsatisfiable() {
        // `attr_0 >= c0` with c0 = p - 2^38·k would wrap; the 38-bit head decomposition refuses it.
        let attrs = [Fr::from(1u64); N_ATTRS];
        let salt = Fr::from(3u64);
        let mut inputs = inputs_for(&Predicate::always(), &attrs, &salt);
        inputs[1] = Fr::from(1u64 << 3) - Fr::from(1u64 << 38);
        assert!(!satisfied(&inputs, &attrs, &salt));
        inputs[1] = Fr::from((1u64 << 3) + (1u64 << 38));
        assert!(!satisfied(&inputs, &attrs, &salt));
    }

    #[test]
    fn a_public_commitment_of_other_attributes_is_unsatisfiable() {
        let attrs = [Fr::from(1u64); N_ATTRS];
        let salt = Fr::from(3u64);
        let mut inputs = inputs_for(&Predicate::always(), &attrs, &salt);
        inputs[0] += Fr::from(1u64);
        assert!(!satisfied(&inputs, &attrs, &salt));
    }
}
