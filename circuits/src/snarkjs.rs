//! Export of a verifying key, a proof and its public inputs in snarkjs' Groth16 JSON format
//! (`verification_key.json`, `proof.json`, `public.json`), so that
//! `snarkjs groth16 verify verification_key.json public.json proof.json` checks our proofs.
//!
//! Coordinates are affine, as decimal strings; G1 points are `[x, y, "1"]` and G2 points
//! `[[x.c0, x.c1], [y.c0, y.c1], ["1", "0"]]` (the point at infinity is `["0", "1", "0"]` and
//! `[["0","0"],["1","0"],["0","0"]]`).

use std::path::Path;

use ark_bn254::{G1Affine, G2Affine};
use ark_ec::AffineRepr;
use serde_json::{Value, json};

use crate::field::fr_decimal;
use crate::keys::VerifyingKeyArtifact;
use crate::predicate_proof::{PredicateProof, PredicatePublic};
use crate::{Error, Result};

/// The verifying key's file name in snarkjs' layout.
pub const VERIFICATION_KEY_FILE: &str = "verification_key.json";
/// The proof's file name in snarkjs' layout.
pub const PROOF_FILE: &str = "proof.json";
/// The public inputs' file name in snarkjs' layout.
pub const PUBLIC_FILE: &str = "public.json";

fn g1(p: &G1Affine) -> Value {
    match p.xy() {
        Some((x, y)) => json!([fr_decimal(&x), fr_decimal(&y), "1"]),
        None => json!(["0", "1", "0"]),
    }
}

fn g2(p: &G2Affine) -> Value {
    match p.xy() {
        Some((x, y)) => json!([
            [fr_decimal(&x.c0), fr_decimal(&x.c1)],
            [fr_decimal(&y.c0), fr_decimal(&y.c1)],
            ["1", "0"]
        ]),
        None => json!([["0", "0"], ["1", "0"], ["0", "0"]]),
    }
}

/// `verification_key.json`.
pub fn verification_key_json(vk: &VerifyingKeyArtifact) -> Value {
    let key = vk.key();
    json!({
        "protocol": "groth16",
        "curve": "bn128",
        "nPublic": key.gamma_abc_g1.len() - 1,
        "vk_alpha_1": g1(&key.alpha_g1),
        "vk_beta_2": g2(&key.beta_g2),
        "vk_gamma_2": g2(&key.gamma_g2),
        "vk_delta_2": g2(&key.delta_g2),
        "IC": key.gamma_abc_g1.iter().map(g1).collect::<Vec<_>>(),
    })
}

/// `proof.json`.
pub fn proof_json(proof: &PredicateProof) -> Value {
    json!({
        "pi_a": g1(&proof.0.a),
        "pi_b": g2(&proof.0.b),
        "pi_c": g1(&proof.0.c),
        "protocol": "groth16",
        "curve": "bn128",
    })
}

/// `public.json`: the public inputs in the circuit's input-assignment order.
pub fn public_json(public: &PredicatePublic) -> Value {
    Value::Array(
        public
            .to_field_elements()
            .iter()
            .map(|x| Value::String(fr_decimal(x)))
            .collect(),
    )
}

/// Writes `verification_key.json`, `proof.json` and `public.json` into `dir`.
pub fn write_files(
    dir: impl AsRef<Path>,
    vk: &VerifyingKeyArtifact,
    proof: &PredicateProof,
    public: &PredicatePublic,
) -> Result<()> {
    let dir = dir.as_ref();
    for (name, value) in [
        (VERIFICATION_KEY_FILE, verification_key_json(vk)),
        (PROOF_FILE, proof_json(proof)),
        (PUBLIC_FILE, public_json(public)),
    ] {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&value)?;
        std::fs::write(&path, text).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}
