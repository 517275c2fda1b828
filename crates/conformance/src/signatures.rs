//! Ed25519 over `context ‖ payload`: signatures per context and the ones the strict rule refuses.

use custos_crypto::context::{COMMIT, SIGNED_READ, TRANSACTION};
use custos_crypto::{Hash, PublicKey, Signature, sha256};
use custos_ledger::commit_message;
use serde_json::{Value, json};

use crate::json::hx;
use crate::{CHAIN_ID, Vector, party, seed};

const SPEC: &str = "signatures.md";

/// Flips bit `bit` of `bytes` (bit 0 is the lowest bit of the first byte).
pub(crate) fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(b) = out.get_mut(bit / 8) {
        *b ^= 1 << (bit % 8);
    }
    out
}

fn text(context: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(context).into_owned())
}

/// A `signature` vector: the product's verdict on `signature` by `key` over `context ‖ payload`.
fn check(
    name: &str,
    context: &[u8],
    payload: &[u8],
    key: &[u8],
    signature: &[u8],
    signer_seed: Option<[u8; 32]>,
) -> Vector {
    let verdict = PublicKey::from_slice(key)
        .map_err(|e| format!("public key: {e}"))
        .and_then(|k| {
            let sig = Signature::from_slice(signature).map_err(|e| e.to_string())?;
            k.verify_in(context, payload, &sig)
                .map_err(|e| format!("{e} over `{}` ‖ payload", String::from_utf8_lossy(context)))
        });
    let mut inputs = json!({
        "context": text(context),
        "payload": hx(payload),
        "public_key": hx(key),
        "signature": hx(signature),
    });
    if let (Some(s), Some(map)) = (signer_seed, inputs.as_object_mut()) {
        map.insert("seed".into(), hx(s));
    }
    let message = custos_crypto::context::message(context, payload);
    Vector::verdict(
        name,
        "signature",
        SPEC,
        verdict,
        inputs,
        json!({ "message": hx(message) }),
    )
}

/// `s + ℓ` for a little-endian scalar `s < ℓ`: the same signature with a non-canonical `S`.
fn add_group_order(s: &[u8]) -> Vec<u8> {
    // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = Vec::with_capacity(32);
    let mut carry = 0u16;
    for (a, b) in s.iter().zip(ELL) {
        let sum = u16::from(*a) + u16::from(b) + carry;
        out.push(sum as u8);
        carry = sum >> 8;
    }
    out
}

pub(crate) fn vectors() -> Vec<Vector> {
    let alice = party("alice");
    let validator = party("validator-1");
    let pk = alice.public().as_bytes().to_vec();
    let payload = b"conformance payload: the body bytes an author signs".to_vec();
    let tx_sig = alice.sign_in(TRANSACTION, &payload).to_bytes();
    let read_sig = alice.sign_in(SIGNED_READ, &payload).to_bytes();
    let header_hash: Hash = sha256(b"conformance header");
    let commit = commit_message(CHAIN_ID, 7, 0, &header_hash);
    let commit_sig = validator.sign(&commit).to_bytes();
    let commit_payload = commit[COMMIT.len()..].to_vec();
    let bare_sig = alice.sign(&payload).to_bytes();
    let mut small_order_key = [0u8; 32];
    small_order_key[0] = 1;
    let mut identity_signature = [0u8; 64];
    identity_signature[0] = 1;
    let non_canonical = [&tx_sig[..32], &add_group_order(&tx_sig[32..])].concat();
    vec![
        check(
            "sig/transaction-context",
            TRANSACTION,
            &payload,
            &pk,
            &tx_sig,
            Some(seed("alice")),
        ),
        check(
            "sig/signed-read-context",
            SIGNED_READ,
            &payload,
            &pk,
            &read_sig,
            Some(seed("alice")),
        ),
        check(
            "sig/commit",
            COMMIT,
            &commit_payload,
            validator.public().as_bytes(),
            &commit_sig,
            Some(seed("validator-1")),
        ),
        check(
            "sig/neg-bit-flipped-payload",
            TRANSACTION,
            &flip(&payload, 3),
            &pk,
            &tx_sig,
            None,
        ),
        check(
            "sig/neg-bit-flipped-signature",
            TRANSACTION,
            &payload,
            &pk,
            &flip(&tx_sig, 100),
            None,
        ),
        check(
            "sig/neg-read-signature-as-transaction",
            TRANSACTION,
            &payload,
            &pk,
            &read_sig,
            None,
        ),
        check(
            "sig/neg-transaction-signature-as-read",
            SIGNED_READ,
            &payload,
            &pk,
            &tx_sig,
            None,
        ),
        check(
            "sig/neg-commit-vote-as-transaction",
            TRANSACTION,
            &commit,
            validator.public().as_bytes(),
            &commit_sig,
            None,
        ),
        check(
            "sig/neg-without-context",
            TRANSACTION,
            &payload,
            &pk,
            &bare_sig,
            None,
        ),
        // The identity key with R = identity and S = 0 satisfies the verification equation for
        // every message; only the small-order check refuses it.
        check(
            "sig/neg-small-order-key",
            TRANSACTION,
            &payload,
            &small_order_key,
            &identity_signature,
            None,
        ),
        check(
            "sig/neg-non-canonical-s",
            TRANSACTION,
            &payload,
            &pk,
            &non_canonical,
            None,
        ),
    ]
}
