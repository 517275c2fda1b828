//! Pins the formats: conformance vectors for every signed or hashed encoding of docs/spec, built
//! with the product's own code.
//!
//! [`document`] builds `docs/spec/vectors.json`: for each item of the specification, fixed inputs
//! (seeds, fields), the exact bytes the product produces from them, and the hash or signature
//! over those bytes, plus negative vectors the product refuses (one bit flipped, a signature made
//! for another context, a body naming another author …). Every byte comes from the domain crates'
//! own APIs (`SignedTransaction::sign`, `BlockHeader::hash`, `commit_message`, the bundle
//! verifier …), and every verdict is the product's verdict, so the vectors are what the product
//! does. A second implementation (`examples/python/check_vectors.py`) recomputes them from the
//! specification alone.

mod blocks;
mod bundle;
mod files;
mod ids;
mod json;
mod log;
mod queries;
mod signatures;
mod transactions;

use custos_crypto::{SecretKey, SigningKeyPair, sha256};
use serde_json::{Value, json};

/// Version of the vector file's layout and of the formats it pins.
pub const VECTORS_VERSION: u32 = 2;

/// The chain every vector is for.
pub const CHAIN_ID: &str = "custos-conformance";

/// Block time of the vectors' blocks and decisions: 2026-01-01T00:00:00Z.
pub const TIME_MS: i64 = 1_767_225_600_000;

/// Where the checked-in vectors live, relative to the workspace root.
pub const VECTORS_PATH: &str = "docs/spec/vectors.json";

/// The named parties whose keys sign the vectors, with the role each plays.
pub const PARTIES: [(&str, &str); 10] = [
    ("alice", "patient"),
    ("bob", "patient"),
    ("hospital", "custodian, member organisation"),
    ("clinic", "custodian, member organisation"),
    ("acme", "partner (insurer)"),
    ("adco", "partner (advertiser)"),
    ("auditor", "auditor"),
    ("validator-1", "validator"),
    ("validator-2", "validator"),
    ("validator-3", "validator"),
];

/// The fourth validator, which signs no certificate (3 of 4 is more than 2/3).
pub const SILENT_VALIDATOR: &str = "validator-4";

/// The 32-byte Ed25519 seed of a named party: `SHA-256("custos/conformance/" ‖ name)`.
pub fn seed(name: &str) -> [u8; 32] {
    sha256(format!("custos/conformance/{name}").as_bytes()).0
}

/// The key pair of a named party.
pub fn party(name: &str) -> SigningKeyPair {
    // A 32-byte array always parses as a seed.
    match SecretKey::from_slice(&seed(name)) {
        Ok(secret) => SigningKeyPair::from_secret(&secret),
        Err(e) => unreachable!("a 32-byte seed: {e}"),
    }
}

/// One vector: what it checks, its inputs, what the product made of them, and whether the
/// product accepts it.
#[derive(Clone, Debug)]
pub struct Vector {
    /// Unique name, `area/case`, referenced from docs/spec.
    pub name: String,
    /// How to check it (docs/spec/vectors.md lists the kinds).
    pub kind: &'static str,
    /// The specification section it pins.
    pub spec: &'static str,
    /// Whether the product accepts it.
    pub valid: bool,
    /// For a negative vector, why the product refuses it.
    pub why: Option<String>,
    /// Fixed inputs.
    pub inputs: Value,
    /// What the product produced from them.
    pub outputs: Value,
}

impl Vector {
    /// A vector the product accepts.
    pub fn valid(
        name: &str,
        kind: &'static str,
        spec: &'static str,
        inputs: Value,
        outputs: Value,
    ) -> Self {
        Vector {
            name: name.to_string(),
            kind,
            spec,
            valid: true,
            why: None,
            inputs,
            outputs,
        }
    }

    /// A vector the product refuses, with the product's reason.
    pub fn invalid(
        name: &str,
        kind: &'static str,
        spec: &'static str,
        why: impl Into<String>,
        inputs: Value,
    ) -> Self {
        Vector {
            name: name.to_string(),
            kind,
            spec,
            valid: false,
            why: Some(why.into()),
            inputs,
            outputs: json!({}),
        }
    }

    /// A vector whose verdict is the product's: valid when `result` is `Ok`, otherwise invalid
    /// with the product's error as the reason.
    pub fn verdict<T, E: std::fmt::Display>(
        name: &str,
        kind: &'static str,
        spec: &'static str,
        result: Result<T, E>,
        inputs: Value,
        outputs: Value,
    ) -> Self {
        match result {
            Ok(_) => Vector::valid(name, kind, spec, inputs, outputs),
            Err(e) => {
                let mut v = Vector::invalid(name, kind, spec, e.to_string(), inputs);
                v.outputs = outputs;
                v
            }
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "kind": self.kind,
            "spec": self.spec,
            "expect": if self.valid { "valid" } else { "invalid" },
            "inputs": self.inputs,
            "outputs": self.outputs,
        });
        if let (Some(why), Some(map)) = (&self.why, v.as_object_mut()) {
            map.insert("why".into(), Value::String(why.clone()));
        }
        v
    }
}

/// Every vector, in the order of the specification's pages.
pub fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    out.extend(signatures::vectors());
    out.extend(transactions::vectors());
    out.extend(transactions::read_vectors());
    out.extend(ids::vectors());
    out.extend(log::vectors());
    out.extend(blocks::vectors());
    out.extend(bundle::vectors());
    out.extend(files::vectors());
    out.extend(queries::vectors());
    out
}

/// The whole vector document.
pub fn document() -> Value {
    let parties: Vec<Value> = PARTIES
        .iter()
        .map(|(name, _)| *name)
        .chain([SILENT_VALIDATOR])
        .map(|name| {
            let role = PARTIES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("validator (signs no certificate)", |(_, r)| r);
            json!({
                "name": name,
                "role": role,
                "seed": hex::encode(seed(name)),
                "public_key": party(name).public().to_hex(),
            })
        })
        .collect();
    let vectors: Vec<Value> = vectors().iter().map(Vector::to_json).collect();
    json!({
        "format": "custos-conformance-vectors",
        "version": VECTORS_VERSION,
        "spec": "docs/spec/README.md",
        "regenerate": "CUSTOS_REGENERATE_VECTORS=1 cargo test -p custos-conformance",
        "chain_id": CHAIN_ID,
        "parties": parties,
        "count": vectors.len(),
        "vectors": vectors,
    })
}

/// The vector document as the checked-in file holds it: pretty JSON and a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}
