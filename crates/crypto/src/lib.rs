//! Hashes, signs and verifies: SHA-256 digests, Ed25519 identities and constant-time comparisons.
//!
//! Every identity in Custos is an Ed25519 key. Signatures are checked with `verify_strict`
//! (canonical encodings, no small-order keys), so one signature has one meaning.

pub mod context;
mod hash;
mod keyfile;
mod keys;

pub use hash::{Hash, HashParseError, sha256, sha256_parts};
pub use keyfile::{KEY_FILE_KIND, KEY_FILE_VERSION, KeyFile, PartyKeys};
pub use keys::{KeyError, PublicKey, SecretKey, Signature, SigningKeyPair};

/// Compares two byte strings in constant time (for secrets, MACs and digests of secrets).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
