//! Proving and verifying keys as identified artifacts.
//!
//! An artifact's bytes are a 16-byte header followed by the arkworks compressed serialization of
//! the key:
//!
//! | bytes | value |
//! |---|---|
//! | 0..8 | magic: `CUSTOSPK` (proving key) or `CUSTOSVK` (verifying key) |
//! | 8..10 | artifact format version, big-endian ([`KEY_FORMAT_VERSION`]) |
//! | 10..12 | circuit version, big-endian ([`CIRCUIT_VERSION`]) |
//! | 12..14 | number of public inputs, big-endian ([`NUM_PUBLIC_INPUTS`]) |
//! | 14..16 | reserved, zero |
//!
//! The artifact's id ([`KeyId`]) is the SHA-256 of all these bytes. The verifying key's id is
//! what governance registers on the ledger; loading checks the id before anything else.

use std::fmt;
use std::path::Path;

use ark_bn254::Bn254;
use ark_groth16::{Groth16, PreparedVerifyingKey, ProvingKey, VerifyingKey, prepare_verifying_key};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_snark::SNARK;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::predicate_proof::{NUM_PUBLIC_INPUTS, PredicateCircuit};
use crate::{Error, Result};

/// Version of the artifact layout.
pub const KEY_FORMAT_VERSION: u16 = 1;
/// Version of the predicate circuit; bumped whenever its constraints change.
pub const CIRCUIT_VERSION: u16 = 1;
/// Header length.
pub const KEY_HEADER_BYTES: usize = 16;
const PK_MAGIC: [u8; 8] = *b"CUSTOSPK";
const VK_MAGIC: [u8; 8] = *b"CUSTOSVK";

/// The SHA-256 of a key artifact's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The id of `bytes` (an artifact's serialization).
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Decodes 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        hex::decode(text)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Self)
            .ok_or_else(|| Error::KeyIdMismatch {
                expected: "64 hex digits".into(),
                got: format!("`{text}`"),
            })
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Runs the circuit-specific Groth16 setup for the predicate circuit.
///
/// The randomness (toxic waste) comes from `rng` and must be discarded; whoever knows it can
/// forge proofs. A production deployment replaces this with a ceremony and registers the
/// resulting verifying key's id.
pub fn setup<R: RngCore + CryptoRng>(
    rng: &mut R,
) -> Result<(ProvingKeyArtifact, VerifyingKeyArtifact)> {
    let (pk, _vk) = Groth16::<Bn254>::circuit_specific_setup(PredicateCircuit::blank(), rng)?;
    let pk = ProvingKeyArtifact::new(pk)?;
    let vk = pk.verifying_key().clone();
    Ok((pk, vk))
}

fn header(magic: [u8; 8]) -> [u8; KEY_HEADER_BYTES] {
    let mut out = [0u8; KEY_HEADER_BYTES];
    out[..8].copy_from_slice(&magic);
    out[8..10].copy_from_slice(&KEY_FORMAT_VERSION.to_be_bytes());
    out[10..12].copy_from_slice(&CIRCUIT_VERSION.to_be_bytes());
    // NUM_PUBLIC_INPUTS = 37 fits in a u16.
    out[12..14].copy_from_slice(&(NUM_PUBLIC_INPUTS as u16).to_be_bytes());
    out
}

fn encode<T: CanonicalSerialize>(magic: [u8; 8], key: &T) -> Result<Vec<u8>> {
    let mut out = header(magic).to_vec();
    key.serialize_compressed(&mut out)
        .map_err(|e| Error::KeyBody(format!("cannot serialize: {e}")))?;
    Ok(out)
}

/// Checks the id, then the header, then decodes the body with full point validation.
fn decode<T: CanonicalDeserialize>(magic: [u8; 8], bytes: &[u8], expected_id: &KeyId) -> Result<T> {
    let got = KeyId::of(bytes);
    if got != *expected_id {
        return Err(Error::KeyIdMismatch {
            expected: expected_id.to_hex(),
            got: got.to_hex(),
        });
    }
    let expected_header = header(magic);
    match bytes.get(..KEY_HEADER_BYTES) {
        Some(h) if h == expected_header => {}
        other => {
            return Err(Error::KeyHeader {
                expected: hex::encode(expected_header),
                got: other.map_or_else(|| format!("{} bytes", bytes.len()), hex::encode),
            });
        }
    }
    let mut body = &bytes[KEY_HEADER_BYTES..];
    let key = T::deserialize_with_mode(&mut body, Compress::Yes, Validate::Yes)
        .map_err(|e| Error::KeyBody(format!("cannot decode the key: {e}")))?;
    if !body.is_empty() {
        return Err(Error::KeyBody(format!(
            "expected no bytes after the key, got {}",
            body.len()
        )));
    }
    Ok(key)
}

fn check_shape(vk: &VerifyingKey<Bn254>) -> Result<()> {
    if vk.gamma_abc_g1.len() != NUM_PUBLIC_INPUTS + 1 {
        return Err(Error::KeyBody(format!(
            "expected {} input bases, got {}",
            NUM_PUBLIC_INPUTS + 1,
            vk.gamma_abc_g1.len()
        )));
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The verifying key, its id, and its prepared form (cached for verification).
#[derive(Clone, Debug)]
pub struct VerifyingKeyArtifact {
    prepared: PreparedVerifyingKey<Bn254>,
    id: KeyId,
}

impl VerifyingKeyArtifact {
    fn new(vk: VerifyingKey<Bn254>) -> Result<Self> {
        check_shape(&vk)?;
        let id = KeyId::of(&encode(VK_MAGIC, &vk)?);
        Ok(Self {
            prepared: prepare_verifying_key(&vk),
            id,
        })
    }

    /// SHA-256 of [`Self::to_bytes`]: the id governance registers on the ledger.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The prepared key used by [`crate::PredicateProof::verify`].
    pub fn prepared(&self) -> &PreparedVerifyingKey<Bn254> {
        &self.prepared
    }

    /// The arkworks key.
    pub fn key(&self) -> &VerifyingKey<Bn254> {
        &self.prepared.vk
    }

    /// Header + compressed key.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode(VK_MAGIC, &self.prepared.vk)
    }

    /// Loads an artifact, refusing it unless its SHA-256 is `expected_id` and it is a valid
    /// verifying key for this circuit.
    pub fn load(bytes: &[u8], expected_id: &KeyId) -> Result<Self> {
        Self::new(decode(VK_MAGIC, bytes, expected_id)?)
    }

    /// Writes [`Self::to_bytes`] to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads and [`Self::load`]s `path`.
    pub fn load_file(path: impl AsRef<Path>, expected_id: &KeyId) -> Result<Self> {
        Self::load(&read_file(path.as_ref())?, expected_id)
    }
}

/// The proving key and its id; it contains its verifying key.
#[derive(Clone, Debug)]
pub struct ProvingKeyArtifact {
    key: ProvingKey<Bn254>,
    vk: VerifyingKeyArtifact,
    id: KeyId,
}

impl ProvingKeyArtifact {
    fn new(key: ProvingKey<Bn254>) -> Result<Self> {
        let id = KeyId::of(&encode(PK_MAGIC, &key)?);
        let vk = VerifyingKeyArtifact::new(key.vk.clone())?;
        Ok(Self { key, vk, id })
    }

    /// SHA-256 of [`Self::to_bytes`].
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> &VerifyingKeyArtifact {
        &self.vk
    }

    /// The arkworks key.
    pub fn key(&self) -> &ProvingKey<Bn254> {
        &self.key
    }

    /// Header + compressed key.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode(PK_MAGIC, &self.key)
    }

    /// Loads an artifact, refusing it unless its SHA-256 is `expected_id` and it is a valid
    /// proving key for this circuit.
    pub fn load(bytes: &[u8], expected_id: &KeyId) -> Result<Self> {
        let key: ProvingKey<Bn254> = decode(PK_MAGIC, bytes, expected_id)?;
        Self::new(key)
    }

    /// Writes [`Self::to_bytes`] to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads and [`Self::load`]s `path`.
    pub fn load_file(path: impl AsRef<Path>, expected_id: &KeyId) -> Result<Self> {
        Self::load(&read_file(path.as_ref())?, expected_id)
    }
}
