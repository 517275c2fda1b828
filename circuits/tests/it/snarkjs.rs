//! The exported JSON verifies with a pinned snarkjs from npm; tampered exports do not.

use std::path::Path;

use custos_circuits::NUM_PUBLIC_INPUTS;
use custos_circuits::snarkjs::{proof_json, public_json, verification_key_json, write_files};
use serde_json::Value;

use crate::{keys, proven};

#[path = "../support/snarkjs_cli.rs"]
mod snarkjs_cli;
use snarkjs_cli::snarkjs_verify;

fn write_json(dir: &Path, name: &str, value: &Value) {
    std::fs::write(dir.join(name), serde_json::to_string(value).unwrap()).unwrap();
}

#[test]
fn the_exported_json_has_snarkjs_shape() {
    let (public, proof) = proven(50);
    let vk = verification_key_json(&keys().1);
    assert_eq!(vk["protocol"], "groth16");
    assert_eq!(vk["curve"], "bn128");
    assert_eq!(vk["nPublic"], NUM_PUBLIC_INPUTS);
    assert_eq!(vk["IC"].as_array().unwrap().len(), NUM_PUBLIC_INPUTS + 1);
    assert_eq!(vk["vk_beta_2"][2], serde_json::json!(["1", "0"]));
    assert_eq!(vk["vk_alpha_1"][2], "1");
    let p = proof_json(&proof);
    assert_eq!(p["pi_b"].as_array().unwrap().len(), 3);
    let inputs = public_json(&public);
    assert_eq!(inputs.as_array().unwrap().len(), NUM_PUBLIC_INPUTS);
    // Decimal strings, in input order: the commitment first.
    let commitment = num_from_le_bytes(&public.commitment.to_bytes());
    assert_eq!(inputs[0], commitment);
}

/// The decimal string of a 32-byte little-endian integer (by repeated division).
fn num_from_le_bytes(bytes: &[u8; 32]) -> String {
    let mut digits = Vec::new();
    let mut n: Vec<u8> = bytes.iter().rev().copied().collect();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(char::from(b'0' + rem as u8));
    }
    if digits.is_empty() {
        digits.push('0');
    }
    digits.iter().rev().collect()
}

#[test]
fn snarkjs_accepts_the_exported_proof_and_rejects_tampered_ones() {
    let (public, proof) = proven(51);
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &keys().1, &proof, &public).unwrap();
    let (ok, output) = snarkjs_verify(dir.path());
    assert!(ok, "snarkjs refused an honest proof:\n{output}");

    // A changed public input (the request id's low half).
    let mut inputs = public_json(&public);
    inputs[NUM_PUBLIC_INPUTS - 3] = Value::String("12345".into());
    write_json(dir.path(), "public.json", &inputs);
    let (ok, output) = snarkjs_verify(dir.path());
    assert!(!ok, "snarkjs accepted a changed public input:\n{output}");
    write_json(dir.path(), "public.json", &public_json(&public));

    // A changed proof point: A taken from another valid proof.
    let (_, other) = proven(52);
    let mut tampered = proof_json(&proof);
    tampered["pi_a"] = proof_json(&other)["pi_a"].clone();
    write_json(dir.path(), "proof.json", &tampered);
    let (ok, output) = snarkjs_verify(dir.path());
    assert!(!ok, "snarkjs accepted a changed proof point:\n{output}");

    // The untouched files still verify.
    write_json(dir.path(), "proof.json", &proof_json(&proof));
    assert!(snarkjs_verify(dir.path()).0);
}
