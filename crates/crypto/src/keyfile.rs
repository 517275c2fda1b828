//! A party's key material: an Ed25519 identity and an X25519 encryption key.

use std::fmt;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::keys::{KeyError, PublicKey, SecretKey, SigningKeyPair};

/// Format tag of a key file.
pub const KEY_FILE_KIND: &str = "custos-party-key";
/// Format version of a key file. The key material did not change with the v2 transaction and
/// read formats, so key files stay at version 1; any other version is refused by name.
pub const KEY_FILE_VERSION: u32 = 1;

/// A party's keys: sign with the identity, receive wrapped data keys on the encryption key.
#[derive(Clone)]
pub struct PartyKeys {
    /// The Ed25519 identity.
    pub identity: SigningKeyPair,
    encryption_secret: x25519_dalek::StaticSecret,
}

impl PartyKeys {
    /// Fresh keys from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let identity = SigningKeyPair::generate(rng);
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let encryption_secret = x25519_dalek::StaticSecret::from(seed);
        seed.zeroize();
        PartyKeys {
            identity,
            encryption_secret,
        }
    }

    /// The X25519 public key data keys are wrapped to.
    pub fn encryption_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.encryption_secret).to_bytes()
    }

    /// The identity's public key.
    pub fn public(&self) -> PublicKey {
        self.identity.public()
    }

    /// The serializable file form. Handle with care: it holds secrets.
    pub fn to_file(&self) -> KeyFile {
        KeyFile {
            kind: KEY_FILE_KIND.to_string(),
            version: KEY_FILE_VERSION,
            public_key: self.identity.public().to_hex(),
            encryption_public_key: hex::encode(self.encryption_public()),
            secret_key: hex::encode(self.identity.secret().expose()),
            encryption_secret_key: hex::encode(self.encryption_secret.to_bytes()),
        }
    }

    /// Keys from their file form; checks that the public keys match the secrets.
    pub fn from_file(file: &KeyFile) -> Result<Self, KeyError> {
        if file.kind != KEY_FILE_KIND {
            return Err(KeyError::PublicKey(format!(
                "not a {KEY_FILE_KIND} file (kind `{}`)",
                file.kind
            )));
        }
        if file.version != KEY_FILE_VERSION {
            return Err(KeyError::PublicKey(format!(
                "key file version {} is not supported: this build reads version {KEY_FILE_VERSION} \
                 (docs/spec/files.md)",
                file.version
            )));
        }
        let mut secret = hex::decode(&file.secret_key)
            .map_err(|_| KeyError::SecretKeyLength(file.secret_key.len() / 2))?;
        let identity = SigningKeyPair::from_secret(&SecretKey::from_slice(&secret)?);
        secret.zeroize();
        if identity.public().to_hex() != file.public_key {
            return Err(KeyError::PublicKey(
                "public_key does not match secret_key".into(),
            ));
        }
        let mut enc = hex::decode(&file.encryption_secret_key)
            .map_err(|_| KeyError::SecretKeyLength(file.encryption_secret_key.len() / 2))?;
        let enc_array: [u8; 32] = enc
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::SecretKeyLength(enc.len()))?;
        enc.zeroize();
        let keys = PartyKeys {
            identity,
            encryption_secret: x25519_dalek::StaticSecret::from(enc_array),
        };
        if hex::encode(keys.encryption_public()) != file.encryption_public_key {
            return Err(KeyError::PublicKey(
                "encryption_public_key does not match encryption_secret_key".into(),
            ));
        }
        Ok(keys)
    }
}

impl fmt::Debug for PartyKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyKeys({})", self.identity.public().to_hex())
    }
}

/// The JSON form of [`PartyKeys`] (written 0600 by the CLI). Zeroized on drop.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KeyFile {
    /// Always [`KEY_FILE_KIND`].
    pub kind: String,
    /// Format version; 1.
    pub version: u32,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// X25519 public key, hex.
    pub encryption_public_key: String,
    /// Ed25519 seed, hex.
    pub secret_key: String,
    /// X25519 secret, hex.
    pub encryption_secret_key: String,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFile({}, <secrets redacted>)", self.public_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct CountingRng(u8);
    impl RngCore for CountingRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0u8; 8];
            self.fill_bytes(&mut b);
            u64::from_le_bytes(b)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for CountingRng {}

    #[test]
    fn key_file_round_trips_and_detects_mismatched_public_keys() {
        let keys = PartyKeys::generate(&mut CountingRng(0));
        let file = keys.to_file();
        let back = PartyKeys::from_file(&file).expect("round trip");
        assert_eq!(back.public(), keys.public());
        assert_eq!(back.encryption_public(), keys.encryption_public());
        let mut forged = file.clone();
        forged.public_key = PartyKeys::generate(&mut CountingRng(9)).public().to_hex();
        assert!(PartyKeys::from_file(&forged).is_err());
        assert!(!format!("{file:?}").contains(&file.secret_key));
    }

    #[test]
    fn key_files_of_another_version_or_kind_are_refused_by_name() {
        let file = PartyKeys::generate(&mut CountingRng(0)).to_file();
        for version in [0, 2, 7] {
            let mut other = file.clone();
            other.version = version;
            let error = PartyKeys::from_file(&other).expect_err("unsupported version");
            assert!(
                error
                    .to_string()
                    .contains(&format!("key file version {version} is not supported")),
                "{error}"
            );
        }
        let mut other = file.clone();
        other.kind = "custos-sealed-key".into();
        let error = PartyKeys::from_file(&other).expect_err("another kind");
        assert!(error.to_string().contains("custos-sealed-key"), "{error}");
    }
}
