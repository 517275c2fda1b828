//! Ed25519 identities.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A public key of the wrong length or not a valid curve point.
    #[error("invalid public key: {0}")]
    PublicKey(String),
    /// A signature of the wrong length.
    #[error("invalid signature: expected 64 bytes, got {0}")]
    SignatureLength(usize),
    /// A secret key of the wrong length.
    #[error("invalid secret key: expected 32 bytes, got {0}")]
    SecretKeyLength(usize),
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
}

/// An Ed25519 public key: a party's identity on the ledger.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parses a 32-byte compressed Edwards point and checks that it is a valid key.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::PublicKey(format!("expected 32 bytes, got {}", bytes.len())))?;
        let key = VerifyingKey::from_bytes(&array)
            .map_err(|_| KeyError::PublicKey("not a point on Ed25519".into()))?;
        if key.is_weak() {
            return Err(KeyError::PublicKey("small-order point".into()));
        }
        Ok(PublicKey(array))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|e| KeyError::PublicKey(e.to_string()))?;
        Self::from_slice(&bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, for human output.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Verifies `signature` over `context ‖ payload` (see [`crate::context`]).
    pub fn verify_in(
        &self,
        context: &[u8],
        payload: &[u8],
        signature: &Signature,
    ) -> Result<(), KeyError> {
        self.verify(&crate::context::message(context, payload), signature)
    }

    /// Verifies `signature` over exactly `message` (strict: canonical `R` and `s`).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
        let key = VerifyingKey::from_bytes(&self.0)
            .map_err(|_| KeyError::PublicKey("not a point on Ed25519".into()))?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Parses 64 bytes (validity is checked by [`PublicKey::verify`]).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; 64] = bytes
            .try_into()
            .map_err(|_| KeyError::SignatureLength(bytes.len()))?;
        Ok(Signature(array))
    }

    /// The signature's bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

/// A 32-byte Ed25519 secret seed, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Parses a 32-byte seed.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::SecretKeyLength(bytes.len()))?;
        Ok(SecretKey(array))
    }

    /// The seed's bytes. Handle with care: never log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// An Ed25519 signing key with its public key.
#[derive(Clone)]
pub struct SigningKeyPair {
    signing: SigningKey,
    public: PublicKey,
}

impl SigningKeyPair {
    /// A fresh key from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let pair = Self::from_secret(&SecretKey(seed));
        seed.zeroize();
        pair
    }

    /// The key whose seed is `secret`.
    pub fn from_secret(secret: &SecretKey) -> Self {
        let signing = SigningKey::from_bytes(&secret.0);
        let public = PublicKey(signing.verifying_key().to_bytes());
        Self { signing, public }
    }

    /// The secret seed.
    pub fn secret(&self) -> SecretKey {
        SecretKey(self.signing.to_bytes())
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Signs `context ‖ payload` (see [`crate::context`]).
    pub fn sign_in(&self, context: &[u8], payload: &[u8]) -> Signature {
        self.sign(&crate::context::message(context, payload))
    }

    /// Signs exactly `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeyPair({})", self.public.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(seed: u8) -> SigningKeyPair {
        SigningKeyPair::from_secret(&SecretKey([seed; 32]))
    }

    #[test]
    fn signature_verifies_only_for_its_key_and_message() {
        let (a, b) = (pair(1), pair(2));
        let sig = a.sign(b"body");
        assert_eq!(a.public().verify(b"body", &sig), Ok(()));
        assert_eq!(
            a.public().verify(b"bodY", &sig),
            Err(KeyError::BadSignature)
        );
        assert_eq!(
            b.public().verify(b"body", &sig),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn public_keys_of_wrong_length_or_small_order_are_refused() {
        assert!(PublicKey::from_slice(&[1u8; 31]).is_err());
        // The identity point (encoded as 1 followed by zeros) has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::from_slice(&identity).is_err());
        assert!(PublicKey::from_slice(pair(3).public().as_bytes()).is_ok());
    }

    #[test]
    fn secret_keys_do_not_print() {
        assert_eq!(format!("{:?}", pair(4).secret()), "SecretKey(<redacted>)");
    }
}
