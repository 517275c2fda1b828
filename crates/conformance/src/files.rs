//! The genesis file and party key files.

use custos_client::verify::genesis_validators;
use custos_crypto::{KeyFile, PartyKeys, sha256};
use rand_core::{CryptoRng, RngCore};
use serde_json::{Value, json};

use crate::Vector;
use crate::json::hx;

/// A deterministic byte stream for fixed key files: SHA-256 of a label and a counter, block by
/// block. For vectors only: never for real keys.
struct FixedRng {
    label: &'static str,
    counter: u64,
    buffer: Vec<u8>,
}

impl FixedRng {
    fn new(label: &'static str) -> Self {
        FixedRng {
            label,
            counter: 0,
            buffer: Vec::new(),
        }
    }
}

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.buffer.is_empty() {
                let block = sha256(format!("{}/{}", self.label, self.counter).as_bytes());
                self.counter += 1;
                self.buffer = block.0.to_vec();
            }
            *byte = self.buffer.remove(0);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FixedRng {}

fn key_file_vector(name: &str, file: &KeyFile) -> Vector {
    let value: Value = serde_json::to_value(file).unwrap_or_default();
    Vector::verdict(
        name,
        "key-file",
        "files.md",
        PartyKeys::from_file(file),
        json!({ "file": value }),
        json!({}),
    )
}

pub(crate) fn vectors() -> Vec<Vector> {
    let genesis = crate::bundle::genesis();
    let set = genesis_validators(&genesis);
    let set_hash = set.as_ref().map(|s| hx(s.hash())).unwrap_or_default();
    let keys = PartyKeys::generate(&mut FixedRng::new("custos/conformance/key-file"));
    let file = keys.to_file();
    let mut version_2 = file.clone();
    version_2.version = 2;
    let mut mismatched = file.clone();
    mismatched.encryption_public_key = hex::encode(sha256(b"another key").0);
    vec![
        Vector::verdict(
            "genesis/example",
            "genesis",
            "files.md",
            genesis
                .validate()
                .map_err(|e| e.to_string())
                .and(set.as_ref().map_err(|e| e.to_string())),
            json!({ "file": serde_json::to_value(&genesis).unwrap_or_default() }),
            json!({ "validator_set_hash": set_hash }),
        ),
        key_file_vector("keyfile/example", &file),
        key_file_vector("keyfile/neg-version-2", &version_2),
        key_file_vector("keyfile/neg-mismatched-public-key", &mismatched),
    ]
}
