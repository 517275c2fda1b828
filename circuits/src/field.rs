//! Encodings of BN254 scalars shared by the public types.

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField};

use crate::{Error, Result};

/// The canonical 32-byte little-endian encoding of a scalar (the arkworks serialization).
pub(crate) fn fr_to_bytes(x: &Fr) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&x.into_bigint().to_bytes_le());
    out
}

/// Decodes a canonical 32-byte little-endian scalar, refusing values at or above the modulus.
pub(crate) fn fr_from_bytes(bytes: &[u8; 32], what: &'static str) -> Result<Fr> {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *limb = u64::from_le_bytes(word);
    }
    Fr::from_bigint(ark_ff::BigInt::new(limbs)).ok_or_else(|| Error::NonCanonicalScalar {
        what,
        got: hex::encode(bytes),
    })
}

/// Splits 32 bytes into two field elements: the big-endian integers of bytes `0..16` (high half)
/// and `16..32` (low half). Each is below 2^128, so the map is injective.
pub(crate) fn halves(bytes: &[u8; 32]) -> [Fr; 2] {
    let mut hi = [0u8; 16];
    let mut lo = [0u8; 16];
    hi.copy_from_slice(&bytes[..16]);
    lo.copy_from_slice(&bytes[16..]);
    [
        Fr::from(u128::from_be_bytes(hi)),
        Fr::from(u128::from_be_bytes(lo)),
    ]
}

/// The decimal form of a scalar, as snarkjs writes it.
pub(crate) fn fr_decimal<F: PrimeField>(x: &F) -> String {
    x.into_bigint().to_string()
}
