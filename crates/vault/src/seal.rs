//! Seals secrets at rest under a key derived from a passphrase with Argon2id (RFC 9106).
//!
//! A [`PassphraseSealed`] box stores everything needed to open it except the passphrase: the
//! Argon2id parameters, a 16-byte random salt, a 24-byte random nonce and the XChaCha20-Poly1305
//! ciphertext. Its AAD binds a label (what the box holds), the KDF name, the parameters and the
//! salt, so one box cannot be passed off as another kind or with weakened parameters. Derived
//! keys and opened plaintexts live in zeroizing buffers.
//!
//! [`SealedKeyFile`] is a party's key file sealed this way: what the vault and the CLI read when
//! a custodian's private keys must not sit in the clear on disk.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use custos_crypto::{KeyFile, PartyKeys};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Bytes of an Argon2id salt.
pub const SALT_LEN: usize = 16;
/// The KDF every box names.
pub const KDF_NAME: &str = "argon2id-v19";
/// Format tag of a sealed key file.
pub const SEALED_KEY_FILE_KIND: &str = "custos-sealed-party-key";
const KEY_FILE_LABEL: &str = "custos/vault/sealed-party-key/v1";
const AAD_TAG: &[u8] = b"custos/vault/sealed/v1\0";
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 16;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// An environment variable holding the passphrase is missing.
    #[error("environment variable {0} is not set (it holds the passphrase that seals the keys)")]
    Env(String),
    /// The Argon2id parameters are out of range.
    #[error("argon2id parameters refused: {0}")]
    Params(String),
    /// The box cannot be opened.
    #[error("cannot open the sealed {label}: wrong passphrase, or the file was altered")]
    Open {
        /// What the box holds.
        label: String,
    },
    /// The box or key file is malformed.
    #[error("sealed data is malformed: {0}")]
    Format(String),
    /// The box was sealed under another salt or parameters than this key's.
    #[error("the box was sealed with another salt or parameters than this key")]
    KeyMismatch,
}

/// A passphrase, zeroized on drop and never printed.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps `text`; refuses an empty passphrase.
    pub fn new(text: String) -> Result<Self, SealError> {
        let text = Zeroizing::new(text);
        if text.is_empty() {
            return Err(SealError::EmptyPassphrase);
        }
        Ok(Passphrase(text))
    }

    /// Reads the passphrase from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, SealError> {
        let text = std::env::var(var).map_err(|_| SealError::Env(var.to_string()))?;
        Self::new(text)
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106 §4, second recommended option: 64 MiB, 3 passes, 4 lanes.
    pub const RECOMMENDED: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };

    /// The cheapest parameters Argon2id accepts. For tests only: they protect nothing.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    /// Checks the parameters are within what Argon2id accepts and what a vault will spend.
    pub fn check(&self) -> Result<(), SealError> {
        if self.parallelism == 0 || self.parallelism > MAX_PARALLELISM {
            return Err(SealError::Params(format!(
                "parallelism must be 1 to {MAX_PARALLELISM}, got {}",
                self.parallelism
            )));
        }
        if self.iterations == 0 || self.iterations > MAX_ITERATIONS {
            return Err(SealError::Params(format!(
                "iterations must be 1 to {MAX_ITERATIONS}, got {}",
                self.iterations
            )));
        }
        let min = 8 * self.parallelism;
        if self.memory_kib < min || self.memory_kib > MAX_MEMORY_KIB {
            return Err(SealError::Params(format!(
                "memory must be {min} to {MAX_MEMORY_KIB} KiB, got {}",
                self.memory_kib
            )));
        }
        Ok(())
    }
}

/// A 256-bit key derived from a passphrase, with the salt and parameters it was derived with.
pub struct SealingKey {
    key: Zeroizing<[u8; 32]>,
    salt: [u8; SALT_LEN],
    params: KdfParams,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealingKey(salt {}, {:?})",
            hex::encode(self.salt),
            self.params
        )
    }
}

impl SealingKey {
    /// Derives a key with a fresh salt from `rng`.
    pub fn derive<R: RngCore + CryptoRng>(
        passphrase: &Passphrase,
        params: KdfParams,
        rng: &mut R,
    ) -> Result<Self, SealError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        Self::derive_with(passphrase, salt, params)
    }

    /// Derives the key for `salt` and `params`.
    pub fn derive_with(
        passphrase: &Passphrase,
        salt: [u8; SALT_LEN],
        params: KdfParams,
    ) -> Result<Self, SealError> {
        params.check()?;
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(|e| SealError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.bytes(), &salt, key.as_mut())
            .map_err(|e| SealError::Params(e.to_string()))?;
        Ok(SealingKey { key, salt, params })
    }

    /// Derives the key `sealed` was sealed under.
    pub fn for_sealed(
        passphrase: &Passphrase,
        sealed: &PassphraseSealed,
    ) -> Result<Self, SealError> {
        let (salt, _, _) = sealed.decode()?;
        Self::derive_with(passphrase, salt, sealed.params)
    }

    /// The salt.
    pub fn salt(&self) -> [u8; SALT_LEN] {
        self.salt
    }

    /// The parameters.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.key).into())
    }

    fn aad(&self, label: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_TAG.len() + label.len() + 64);
        aad.extend_from_slice(AAD_TAG);
        aad.extend_from_slice(label.as_bytes());
        aad.push(0);
        aad.extend_from_slice(KDF_NAME.as_bytes());
        aad.push(0);
        aad.extend_from_slice(&self.params.memory_kib.to_be_bytes());
        aad.extend_from_slice(&self.params.iterations.to_be_bytes());
        aad.extend_from_slice(&self.params.parallelism.to_be_bytes());
        aad.extend_from_slice(&self.salt);
        aad
    }

    /// Seals `plaintext` labelled `label` under a fresh random nonce.
    pub fn seal<R: RngCore + CryptoRng>(
        &self,
        label: &str,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<PassphraseSealed, SealError> {
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let aad = self.aad(label);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Format("plaintext too large to seal".into()))?;
        Ok(PassphraseSealed {
            kdf: KDF_NAME.to_string(),
            params: self.params,
            salt: hex::encode(self.salt),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    /// Opens a box this key sealed under `label`.
    pub fn open(
        &self,
        label: &str,
        sealed: &PassphraseSealed,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (salt, nonce, ciphertext) = sealed.decode()?;
        if salt != self.salt || sealed.params != self.params {
            return Err(SealError::KeyMismatch);
        }
        let aad = self.aad(label);
        self.cipher()
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open {
                label: label.to_string(),
            })
    }
}

/// A box's salt, nonce and ciphertext as bytes.
type Decoded = ([u8; SALT_LEN], [u8; 24], Vec<u8>);

/// A secret sealed under a passphrase-derived key (JSON, hex fields).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PassphraseSealed {
    /// Always [`KDF_NAME`].
    pub kdf: String,
    /// Argon2id parameters.
    pub params: KdfParams,
    /// 16-byte salt, hex.
    pub salt: String,
    /// 24-byte XChaCha20-Poly1305 nonce, hex.
    pub nonce: String,
    /// Ciphertext with its tag, hex.
    pub ciphertext: String,
}

impl PassphraseSealed {
    /// Derives a key with a fresh salt and seals `plaintext` labelled `label`.
    pub fn seal<R: RngCore + CryptoRng>(
        passphrase: &Passphrase,
        label: &str,
        plaintext: &[u8],
        params: KdfParams,
        rng: &mut R,
    ) -> Result<Self, SealError> {
        SealingKey::derive(passphrase, params, rng)?.seal(label, plaintext, rng)
    }

    /// Derives the key from `passphrase` and opens the box.
    pub fn open(
        &self,
        passphrase: &Passphrase,
        label: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        SealingKey::for_sealed(passphrase, self)?.open(label, self)
    }

    fn decode(&self) -> Result<Decoded, SealError> {
        if self.kdf != KDF_NAME {
            return Err(SealError::Format(format!(
                "kdf: expected `{KDF_NAME}`, got `{}`",
                self.kdf
            )));
        }
        self.params.check()?;
        let fixed = |field: &str, text: &str, len: usize| -> Result<Vec<u8>, SealError> {
            let bytes =
                hex::decode(text).map_err(|e| SealError::Format(format!("{field}: {e}")))?;
            if bytes.len() != len {
                return Err(SealError::Format(format!(
                    "{field}: expected {len} bytes, got {}",
                    bytes.len()
                )));
            }
            Ok(bytes)
        };
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&fixed("salt", &self.salt, SALT_LEN)?);
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&fixed("nonce", &self.nonce, 24)?);
        let ciphertext = hex::decode(&self.ciphertext)
            .map_err(|e| SealError::Format(format!("ciphertext: {e}")))?;
        Ok((salt, nonce, ciphertext))
    }
}

/// A party's key file sealed under a passphrase; the public keys stay readable.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SealedKeyFile {
    /// Always [`SEALED_KEY_FILE_KIND`].
    pub kind: String,
    /// Format version; 1.
    pub version: u32,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// X25519 public key, hex.
    pub encryption_public_key: String,
    /// The sealed [`KeyFile`] (JSON).
    pub sealed: PassphraseSealed,
}

impl SealedKeyFile {
    /// Seals `keys` under `passphrase`.
    pub fn seal<R: RngCore + CryptoRng>(
        keys: &PartyKeys,
        passphrase: &Passphrase,
        params: KdfParams,
        rng: &mut R,
    ) -> Result<Self, SealError> {
        let file = keys.to_file();
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&file).map_err(|e| SealError::Format(e.to_string()))?,
        );
        Ok(SealedKeyFile {
            kind: SEALED_KEY_FILE_KIND.to_string(),
            version: 1,
            public_key: file.public_key.clone(),
            encryption_public_key: file.encryption_public_key.clone(),
            sealed: PassphraseSealed::seal(passphrase, KEY_FILE_LABEL, &plaintext, params, rng)?,
        })
    }

    /// Opens the file and checks that the keys inside match the public keys outside.
    pub fn open(&self, passphrase: &Passphrase) -> Result<PartyKeys, SealError> {
        if self.kind != SEALED_KEY_FILE_KIND || self.version != 1 {
            return Err(SealError::Format(format!(
                "expected a version 1 {SEALED_KEY_FILE_KIND} file, got kind `{}` version {}",
                self.kind, self.version
            )));
        }
        let plaintext = self.sealed.open(passphrase, KEY_FILE_LABEL)?;
        let file: KeyFile = serde_json::from_slice(&plaintext)
            .map_err(|e| SealError::Format(format!("sealed key file: {e}")))?;
        let keys = PartyKeys::from_file(&file)
            .map_err(|e| SealError::Format(format!("sealed key file: {e}")))?;
        if keys.public().to_hex() != self.public_key
            || hex::encode(keys.encryption_public()) != self.encryption_public_key
        {
            return Err(SealError::Format(
                "the public keys outside do not match the sealed keys".into(),
            ));
        }
        Ok(keys)
    }

    /// Whether JSON `text` is a sealed key file (rather than a plain one).
    pub fn is_sealed(text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .is_some_and(|kind| kind == SEALED_KEY_FILE_KIND)
    }
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    fn passphrase(text: &str) -> Passphrase {
        Passphrase::new(text.to_string()).unwrap()
    }

    #[test]
    fn a_sealed_key_file_opens_with_its_passphrase_only() {
        let keys = PartyKeys::generate(&mut OsRng);
        let sealed = SealedKeyFile::seal(
            &keys,
            &passphrase("correct horse"),
            KdfParams::INSECURE_FOR_TESTS,
            &mut OsRng,
        )
        .unwrap();
        let text = serde_json::to_string(&sealed).unwrap();
        assert!(SealedKeyFile::is_sealed(&text));
        assert!(!text.contains(&keys.to_file().secret_key));
        let back: SealedKeyFile = serde_json::from_str(&text).unwrap();
        let opened = back.open(&passphrase("correct horse")).unwrap();
        assert_eq!(opened.public(), keys.public());
        assert_eq!(opened.encryption_public(), keys.encryption_public());
        assert!(matches!(
            back.open(&passphrase("wrong horse")),
            Err(SealError::Open { .. })
        ));
    }

    #[test]
    fn weakened_parameters_or_another_label_do_not_open_a_box() {
        let p = passphrase("pw");
        let key = SealingKey::derive(&p, KdfParams::INSECURE_FOR_TESTS, &mut OsRng).unwrap();
        let sealed = key.seal("a", b"secret", &mut OsRng).unwrap();
        assert_eq!(&*key.open("a", &sealed).unwrap(), b"secret");
        assert!(matches!(
            key.open("b", &sealed),
            Err(SealError::Open { .. })
        ));
        let mut other = sealed.clone();
        other.params.iterations = 2;
        assert!(matches!(other.open(&p, "a"), Err(SealError::Open { .. })));
    }

    #[test]
    fn out_of_range_parameters_and_empty_passphrases_are_refused() {
        let bad = KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 4,
        };
        assert!(matches!(bad.check(), Err(SealError::Params(_))));
        assert_eq!(KdfParams::RECOMMENDED.check(), Ok(()));
        assert!(matches!(
            Passphrase::new(String::new()),
            Err(SealError::EmptyPassphrase)
        ));
        assert_eq!(format!("{:?}", passphrase("x")), "Passphrase(<redacted>)");
    }
}
