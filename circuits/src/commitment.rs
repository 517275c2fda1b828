//! The Poseidon commitment to a record's attributes, natively and as a gadget.
//!
//! `commit(attrs, salt)` is one Poseidon permutation over BN254's scalar field with width
//! `t = 10` (rate 9, capacity 1): the capacity element starts at [`domain_tag`], the rate absorbs
//! `salt, attr_0, …, attr_7` and the first rate element after the permutation is the commitment.
//! It is hiding because the salt is a uniform scalar, and binding because Poseidon is collision
//! resistant and each attribute (< 2^32) is one field element.
//!
//! Parameters are generated deterministically by the Poseidon reference Grain LFSR
//! (`find_poseidon_ark_and_mds`), seeded by (field = GF(p), S-box = x^alpha, prime bits = 254,
//! t = 10, R_F = 8, R_P = 60), no MDS matrices skipped; alpha = 5. R_F = 8, R_P = 60 are the
//! Poseidon paper's 128-bit-security round numbers for t = 10 over a 254-bit field (the same as
//! circomlib's t = 10 instance, whose constants differ). The test
//! `poseidon_parameters_are_pinned` hashes them; changing them changes every commitment.

use std::fmt;
use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_crypto_primitives::sponge::CryptographicSponge;
use ark_crypto_primitives::sponge::poseidon::{
    PoseidonConfig, PoseidonSponge, find_poseidon_ark_and_mds,
};
use ark_ff::{Field, One, PrimeField, Zero};
use ark_r1cs_std::GR1CSVar;
use ark_r1cs_std::fields::fp::{AllocatedFp, FpVar};
use ark_relations::gr1cs::{ConstraintSystemRef, LinearCombination, SynthesisError, Variable};
use sha2::{Digest, Sha256};

use crate::Result;
use crate::attributes::{Attributes, N_ATTRS, Salt};
use crate::field::{fr_from_bytes, fr_to_bytes};

/// Poseidon rate (field elements absorbed per permutation): the salt and the eight attributes.
pub const POSEIDON_RATE: usize = 1 + N_ATTRS;
/// Poseidon capacity.
pub const POSEIDON_CAPACITY: usize = 1;
/// Full rounds.
pub const POSEIDON_FULL_ROUNDS: usize = 8;
/// Partial rounds.
pub const POSEIDON_PARTIAL_ROUNDS: usize = 60;
/// S-box exponent.
pub const POSEIDON_ALPHA: u64 = 5;
/// The text whose SHA-256 (reduced mod p) is the capacity element's initial value.
pub const DOMAIN_TAG_TEXT: &str = "custos/attribute-commitment/v1";

/// The pinned Poseidon parameters (generated once per process).
pub fn poseidon_config() -> &'static PoseidonConfig<Fr> {
    static CONFIG: OnceLock<PoseidonConfig<Fr>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let (ark, mds) = find_poseidon_ark_and_mds::<Fr>(
            u64::from(Fr::MODULUS_BIT_SIZE),
            POSEIDON_RATE,
            POSEIDON_FULL_ROUNDS as u64,
            POSEIDON_PARTIAL_ROUNDS as u64,
            0,
        );
        PoseidonConfig {
            full_rounds: POSEIDON_FULL_ROUNDS,
            partial_rounds: POSEIDON_PARTIAL_ROUNDS,
            alpha: POSEIDON_ALPHA,
            ark,
            mds,
            rate: POSEIDON_RATE,
            capacity: POSEIDON_CAPACITY,
        }
    })
}

/// The capacity element's initial value: SHA-256 of [`DOMAIN_TAG_TEXT`], little-endian, mod p.
pub fn domain_tag() -> Fr {
    Fr::from_le_bytes_mod_order(&Sha256::digest(DOMAIN_TAG_TEXT.as_bytes()))
}

/// A commitment to a record's attributes: a BN254 scalar, stored on the ledger as 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commitment(pub(crate) Fr);

impl Commitment {
    /// The canonical 32-byte little-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        fr_to_bytes(&self.0)
    }

    /// Decodes a canonical 32-byte little-endian scalar, refusing values at or above the modulus.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        fr_from_bytes(bytes, "commitment").map(Self)
    }

    /// Lower-case hex of [`Self::to_bytes`].
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Decodes [`Self::to_hex`]'s output.
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        match bytes {
            Some(bytes) => Self::from_bytes(&bytes),
            None => Err(crate::Error::NonCanonicalScalar {
                what: "commitment",
                got: format!("`{text}` (not 64 hex digits)"),
            }),
        }
    }

    /// The commitment as a field element (the circuit's first public input).
    pub fn to_field(&self) -> Fr {
        self.0
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({})", self.to_hex())
    }
}

impl fmt::Display for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The attribute commitment scheme.
pub struct AttributeCommitment;

impl AttributeCommitment {
    /// Commits to `attrs` under `salt`.
    pub fn commit(attrs: &Attributes, salt: &Salt) -> Commitment {
        Commitment(commit_fields(&attrs.values().map(Fr::from), &salt.0))
    }
}

/// The commitment over raw field elements (attributes need not be `u32`; tests use this to
/// build cheating witnesses).
pub(crate) fn commit_fields(attrs: &[Fr; N_ATTRS], salt: &Fr) -> Fr {
    let mut sponge = PoseidonSponge::new(poseidon_config());
    sponge.state[0] = domain_tag();
    let mut input = Vec::with_capacity(POSEIDON_RATE);
    input.push(*salt);
    input.extend_from_slice(attrs);
    sponge.absorb(&input);
    sponge
        .squeeze_field_elements::<Fr>(1)
        .pop()
        .unwrap_or_default()
}

/// The in-circuit twin of [`AttributeCommitment::commit`] over already-allocated variables.
///
/// Costs one permutation: 3 constraints per S-box (x², x⁴, x⁵), 8 × 10 + 60 = 140 S-boxes,
/// less the first round's capacity S-box, whose input is a constant (417 constraints).
/// The state is kept as explicit linear combinations over the S-box outputs since the last full
/// round (the ARK and MDS layers are linear and cost nothing). This builds the same constraints
/// as arkworks' `PoseidonSpongeVar` but with one flat linear combination per state element
/// instead of a chain of nested ones, which the constraint system would otherwise spend
/// hundreds of milliseconds inlining at every proof.
pub(crate) fn commit_gadget(
    cs: ConstraintSystemRef<Fr>,
    attrs: &[FpVar<Fr>; N_ATTRS],
    salt: &FpVar<Fr>,
) -> Result<FpVar<Fr>, SynthesisError> {
    let config = poseidon_config();
    let width = POSEIDON_RATE + POSEIDON_CAPACITY;
    let mut inputs = Vec::with_capacity(POSEIDON_RATE);
    inputs.push(salt);
    inputs.extend(attrs.iter());

    // The state: constants[i] + Σ_k rows[i][k] · vars[base + k], with native values alongside
    // (none in setup mode).
    let mut vars: Vec<Variable> = Vec::new();
    let mut constants = vec![Fr::zero(); width];
    let mut positions = vec![None; width];
    constants[0] = domain_tag();
    for (i, input) in inputs.iter().enumerate() {
        let slot = POSEIDON_CAPACITY + i;
        match input {
            FpVar::Constant(c) => constants[slot] = *c,
            FpVar::Var(var) => {
                positions[slot] = Some(vars.len());
                vars.push(var.variable);
            }
        }
    }
    let mut rows: Vec<Vec<Fr>> = positions
        .iter()
        .map(|position| {
            let mut row = vec![Fr::zero(); vars.len()];
            if let Some(k) = position {
                row[*k] = Fr::one();
            }
            row
        })
        .collect();
    let mut values: Option<Vec<Fr>> = std::iter::once(Ok(domain_tag()))
        .chain(inputs.iter().map(|v| v.value()))
        .collect::<Result<Vec<_>, _>>()
        .ok();
    let mut base = 0usize;

    let half_full = config.full_rounds / 2;
    let rounds = config.full_rounds + config.partial_rounds;
    for round in 0..rounds {
        let full = round < half_full || round >= half_full + config.partial_rounds;
        for (i, c) in constants.iter_mut().enumerate() {
            *c += config.ark[round][i];
        }
        if let Some(v) = values.as_mut() {
            for (i, x) in v.iter_mut().enumerate() {
                *x += config.ark[round][i];
            }
        }

        let boxed = if full { width } else { 1 };
        let mut outputs = Vec::with_capacity(boxed);
        for i in 0..boxed {
            if rows[i].iter().all(Zero::is_zero) {
                // A constant (the capacity element in the first round) costs no constraint.
                outputs.push((None, Some(constants[i].pow([POSEIDON_ALPHA]))));
            } else {
                let input = linear_combination(constants[i], &rows[i], &vars[base..]);
                let (var, value) = sbox(&cs, input, values.as_ref().map(|v| v[i]))?;
                outputs.push((Some(var), value));
            }
        }
        if full {
            base = vars.len();
        }
        let fresh = outputs.iter().filter(|(var, _)| var.is_some()).count();
        let len = vars.len() + fresh - base;
        for row in rows.iter_mut() {
            row.resize(len, Fr::zero());
        }
        for (i, (var, value)) in outputs.into_iter().enumerate() {
            rows[i].iter_mut().for_each(|c| *c = Fr::zero());
            match var {
                Some(var) => {
                    rows[i][vars.len() - base] = Fr::one();
                    constants[i] = Fr::zero();
                    vars.push(var);
                }
                None => constants[i] = value.unwrap_or_default(),
            }
            if let (Some(v), Some(x)) = (values.as_mut(), value) {
                v[i] = x;
            }
        }

        // MDS layer.
        let len = vars.len() - base;
        let mut new_rows = vec![vec![Fr::zero(); len]; width];
        let mut new_constants = vec![Fr::zero(); width];
        for (i, new_row) in new_rows.iter_mut().enumerate() {
            for (j, row) in rows.iter().enumerate() {
                let m = config.mds[i][j];
                new_constants[i] += m * constants[j];
                for (acc, c) in new_row.iter_mut().zip(row) {
                    if !c.is_zero() {
                        *acc += m * c;
                    }
                }
            }
        }
        rows = new_rows;
        constants = new_constants;
        values = values.map(|v| {
            (0..width)
                .map(|i| (0..width).map(|j| config.mds[i][j] * v[j]).sum())
                .collect()
        });
    }

    // Squeeze: the first rate element.
    let out = POSEIDON_CAPACITY;
    let lc = linear_combination(constants[out], &rows[out], &vars[base..]);
    let variable = cs.new_lc(|| lc)?;
    let value = values.map(|v| v[out]);
    Ok(FpVar::Var(AllocatedFp::new(value, variable, cs)))
}

fn linear_combination(constant: Fr, row: &[Fr], vars: &[Variable]) -> LinearCombination<Fr> {
    let mut terms: Vec<(Fr, Variable)> = row
        .iter()
        .zip(vars)
        .filter(|(c, _)| !c.is_zero())
        .map(|(c, v)| (*c, *v))
        .collect();
    if !constant.is_zero() {
        terms.push((constant, Variable::One));
    }
    LinearCombination(terms)
}

/// `x⁵` for the linear combination `x`: witnesses x², x⁴, x⁵ and three constraints.
fn sbox(
    cs: &ConstraintSystemRef<Fr>,
    x: LinearCombination<Fr>,
    value: Option<Fr>,
) -> Result<(Variable, Option<Fr>), SynthesisError> {
    let v2 = value.map(|x| x.square());
    let v4 = v2.map(|x| x.square());
    let v5 = v4.zip(value).map(|(a, b)| a * b);
    let x2 = cs.new_witness_variable(|| v2.ok_or(SynthesisError::AssignmentMissing))?;
    let x4 = cs.new_witness_variable(|| v4.ok_or(SynthesisError::AssignmentMissing))?;
    let x5 = cs.new_witness_variable(|| v5.ok_or(SynthesisError::AssignmentMissing))?;
    cs.enforce_r1cs_constraint(|| x.clone(), || x.clone(), || LinearCombination::from(x2))?;
    cs.enforce_r1cs_constraint(
        || LinearCombination::from(x2),
        || LinearCombination::from(x2),
        || LinearCombination::from(x4),
    )?;
    cs.enforce_r1cs_constraint(
        || LinearCombination::from(x4),
        || x,
        || LinearCombination::from(x5),
    )?;
    Ok((x5, v5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_r1cs_std::GR1CSVar;
    use ark_r1cs_std::alloc::AllocVar;
    use ark_relations::gr1cs::ConstraintSystem;
    use ark_serialize::CanonicalSerialize;
    use proptest::prelude::*;

    #[test]
    fn poseidon_parameters_are_pinned() {
        let config = poseidon_config();
        assert_eq!(
            config.ark.len(),
            POSEIDON_FULL_ROUNDS + POSEIDON_PARTIAL_ROUNDS
        );
        assert_eq!(config.mds.len(), POSEIDON_RATE + POSEIDON_CAPACITY);
        let mut bytes = Vec::new();
        config.serialize_compressed(&mut bytes).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            "6bf0f83bfb9d089142e964d74e48aa0c6f7b359bc2494981601ae869ed28d1d9"
        );
    }

    #[test]
    fn known_answer_commitment_is_pinned() {
        let attrs = Attributes::new([42, 0, 245, 120, 57, 190, 2, 75001]);
        let salt = Salt(Fr::from(7u64));
        assert_eq!(
            AttributeCommitment::commit(&attrs, &salt).to_hex(),
            "e65fd4196a94a4d5ac9546bbd4281391c6fc7507e81801db90cff935f0d13c00"
        );
    }

    #[test]
    fn commitment_bytes_and_hex_roundtrip() {
        let c = AttributeCommitment::commit(&Attributes::default(), &Salt(Fr::from(1u64)));
        assert_eq!(Commitment::from_bytes(&c.to_bytes()).unwrap(), c);
        assert_eq!(Commitment::from_hex(&c.to_hex()).unwrap(), c);
        assert!(Commitment::from_bytes(&[0xff; 32]).is_err());
        assert!(Commitment::from_hex("zz").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn gadget_computes_the_native_commitment(values in any::<[u32; N_ATTRS]>(), salt in any::<u64>()) {
            let attrs = Attributes::new(values);
            let salt = Salt(Fr::from(salt));
            let cs = ConstraintSystem::<Fr>::new_ref();
            let vars = values.map(|v| FpVar::new_witness(cs.clone(), || Ok(Fr::from(v))).unwrap());
            let salt_var = FpVar::new_witness(cs.clone(), || Ok(salt.0)).unwrap();
            let out = commit_gadget(cs.clone(), &vars, &salt_var).unwrap();
            prop_assert_eq!(out.value().unwrap(), AttributeCommitment::commit(&attrs, &salt).0);
            prop_assert!(cs.is_satisfied().unwrap());
        }

        #[test]
        fn distinct_salts_or_attributes_give_distinct_commitments(values in any::<[u32; N_ATTRS]>(), i in 0..N_ATTRS) {
            let attrs = Attributes::new(values);
            let base = AttributeCommitment::commit(&attrs, &Salt(Fr::from(3u64)));
            prop_assert_ne!(base, AttributeCommitment::commit(&attrs, &Salt(Fr::from(4u64))));
            let mut other = values;
            other[i] = other[i].wrapping_add(1);
            prop_assert_ne!(base, AttributeCommitment::commit(&Attributes::new(other), &Salt(Fr::from(3u64))));
        }
    }
}
