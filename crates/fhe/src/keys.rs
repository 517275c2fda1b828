//! Custodian and partner keys.
//!
//! The custodian's [`ClientKey`] is a tfhe shortint key (parameters
//! `PARAM_MESSAGE_2_CARRY_2_KS_PBS`: GLWE k=1, N=2048, TUniform 2^17, small LWE n=918). Its GLWE
//! secret key doubles as the key of the packed additive columns, so a row sample-extracted from a
//! packed chunk is directly a shortint ciphertext under the bootstrapped path's big key.

use std::time::Instant;

use rand::RngCore;
use sha2::{Digest, Sha256};
use tfhe::core_crypto::prelude::{
    GlweSecretKeyOwned, LweCiphertextOwned, LweSecretKeyOwned, decrypt_lwe_ciphertext,
};
use tfhe::integer::ClientKey as IntegerClientKey;
use tfhe::shortint::client_key::atomic_pattern::{
    AtomicPatternClientKey, StandardAtomicPatternClientKey,
};
use tfhe::shortint::parameters::PARAM_MESSAGE_2_CARRY_2_KS_PBS;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::math::{self, Fourier};
use crate::params::{LOG_DELTA, PLAINTEXT_BITS};

const CLIENT_KEY_MAGIC: &[u8; 8] = b"CFHE-CK1";
const SERVER_KEY_MAGIC: &[u8; 8] = b"CFHE-SK1";
const PUBLIC_KEY_MAGIC: &[u8; 8] = b"CFHE-PK1";

/// Public identifier of a key set, recorded in tables and results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeyId(pub [u8; 16]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The custodian's secret key: packed GLWE key plus the shortint small LWE key. Zeroized on drop.
pub struct ClientKey {
    id: KeyId,
    glwe: GlweSecretKeyOwned<u64>,
    lwe: LweSecretKeyOwned<u64>,
    glwe_fourier: Fourier,
}

impl Drop for ClientKey {
    fn drop(&mut self) {
        self.glwe.as_mut().zeroize();
        self.lwe.as_mut().zeroize();
        for c in self.glwe_fourier.iter_mut() {
            c.re = 0.0;
            c.im = 0.0;
        }
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey({})", self.id)
    }
}

impl ClientKey {
    /// Generates a fresh key with tfhe's secret generator.
    pub fn generate() -> Self {
        let shortint = tfhe::shortint::ClientKey::new(PARAM_MESSAGE_2_CARRY_2_KS_PBS);
        let AtomicPatternClientKey::Standard(std_key) = shortint.atomic_pattern else {
            unreachable!("classic KS-PBS parameters give a standard atomic pattern key")
        };
        let (glwe, lwe, _, _) = std_key.into_raw_parts();
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self::from_parts(KeyId(id), glwe, lwe)
    }

    fn from_parts(id: KeyId, glwe: GlweSecretKeyOwned<u64>, lwe: LweSecretKeyOwned<u64>) -> Self {
        let mut glwe_fourier = math::zero_fourier();
        let s = glwe.as_ref();
        math::forward_with(&mut glwe_fourier, |j| s[j] as f64);
        Self {
            id,
            glwe,
            lwe,
            glwe_fourier,
        }
    }

    /// The key set's public identifier.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Serializes the key for sealing at rest: magic, id, then the binary secrets as bits.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(8 + 16 + 8 + 512));
        out.extend_from_slice(CLIENT_KEY_MAGIC);
        out.extend_from_slice(&self.id.0);
        for key in [self.glwe.as_ref(), self.lwe.as_ref()] {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            let mut bits = Zeroizing::new(vec![0u8; key.len().div_ceil(8)]);
            for (i, b) in key.iter().enumerate() {
                bits[i / 8] |= ((*b & 1) as u8) << (i % 8);
            }
            out.extend_from_slice(&bits);
        }
        out
    }

    /// Loads a key written by [`ClientKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::Decode {
            what: "client key",
            reason,
        };
        if bytes.len() < 24 || &bytes[..8] != CLIENT_KEY_MAGIC {
            return Err(bad(format!(
                "expected magic {:?}, got {} bytes",
                String::from_utf8_lossy(CLIENT_KEY_MAGIC),
                bytes.len()
            )));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[8..24]);
        let params = PARAM_MESSAGE_2_CARRY_2_KS_PBS;
        let mut rest = &bytes[24..];
        let mut read = |expected: usize| -> Result<Zeroizing<Vec<u64>>> {
            if rest.len() < 4 {
                return Err(bad("truncated length".into()));
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len != expected {
                return Err(bad(format!(
                    "expected a {expected}-coefficient key, got {len}"
                )));
            }
            let n = len.div_ceil(8);
            if rest.len() < 4 + n {
                return Err(bad("truncated key bits".into()));
            }
            let bits = &rest[4..4 + n];
            let key = (0..len)
                .map(|i| u64::from((bits[i / 8] >> (i % 8)) & 1))
                .collect();
            rest = &rest[4 + n..];
            Ok(Zeroizing::new(key))
        };
        let glwe_bits = read(params.polynomial_size.0 * params.glwe_dimension.0)?;
        let lwe_bits = read(params.lwe_dimension.0)?;
        if !rest.is_empty() {
            return Err(bad(format!("{} trailing bytes", rest.len())));
        }
        let glwe = GlweSecretKeyOwned::from_container(glwe_bits.to_vec(), params.polynomial_size);
        let lwe = LweSecretKeyOwned::from_container(lwe_bits.to_vec());
        Ok(Self::from_parts(KeyId(id), glwe, lwe))
    }

    pub(crate) fn glwe_fourier(&self) -> &Fourier {
        &self.glwe_fourier
    }

    /// Decrypts an LWE ciphertext under the flattened GLWE key to its plaintext mod 2^30.
    pub(crate) fn decrypt_lwe(&self, ct: &LweCiphertextOwned<u64>) -> u64 {
        let plain = decrypt_lwe_ciphertext(&self.glwe.as_lwe_secret_key(), ct).0;
        decode(plain)
    }

    /// Noise of an LWE ciphertext whose plaintext is known (tests).
    #[cfg(test)]
    pub(crate) fn lwe_noise(&self, ct: &LweCiphertextOwned<u64>, expected: u64) -> i64 {
        let plain = decrypt_lwe_ciphertext(&self.glwe.as_lwe_secret_key(), ct).0;
        plain.wrapping_sub(expected << LOG_DELTA) as i64
    }

    /// A tfhe integer client key over the same secrets (for the bootstrapped path).
    pub(crate) fn integer_key(&self) -> IntegerKey {
        let std_key = StandardAtomicPatternClientKey::from_raw_parts(
            self.glwe.clone(),
            self.lwe.clone(),
            PARAM_MESSAGE_2_CARRY_2_KS_PBS.into(),
            None,
        );
        let shortint = tfhe::shortint::ClientKey {
            atomic_pattern: AtomicPatternClientKey::Standard(std_key),
        };
        IntegerKey(Some(IntegerClientKey::from_raw_parts(shortint)))
    }

    /// Generates the compressed server key handed to compute workers (slow: bootstrapping and
    /// key-switching keys).
    pub fn compressed_server_key(&self) -> CompressedServerKey {
        let cks = self.integer_key();
        CompressedServerKey {
            id: self.id,
            inner: tfhe::integer::CompressedServerKey::new_radix_compressed_server_key(cks.get()),
        }
    }

    /// Generates a compact public key under the same secret, so partners can encrypt inputs for
    /// the bootstrapped path.
    pub fn compact_public_key(&self) -> Result<PublicKey> {
        let cks = self.integer_key();
        let shortint: &tfhe::shortint::ClientKey = cks.get().as_ref();
        let inner =
            tfhe::shortint::CompactPublicKey::try_new::<_, tfhe::Error>(shortint).map_err(|e| {
                Error::KeyMismatch(format!("compact public key generation failed: {e}"))
            })?;
        Ok(PublicKey { id: self.id, inner })
    }

    /// Packed GLWE secret key coefficients (tests).
    #[cfg(test)]
    pub(crate) fn glwe_coeffs(&self) -> &[u64] {
        self.glwe.as_ref()
    }
}

/// Decodes a phase to the plaintext mod 2^30 by rounding to the nearest multiple of Δ.
pub(crate) fn decode(phase: u64) -> u64 {
    (phase.wrapping_add(1 << (LOG_DELTA - 1)) >> LOG_DELTA) & ((1 << PLAINTEXT_BITS) - 1)
}

/// A transient integer client key whose secrets are zeroized when it is dropped.
pub(crate) struct IntegerKey(Option<IntegerClientKey>);

impl IntegerKey {
    pub(crate) fn get(&self) -> &IntegerClientKey {
        match &self.0 {
            Some(k) => k,
            None => unreachable!("present until drop"),
        }
    }
}

impl Drop for IntegerKey {
    fn drop(&mut self) {
        if let Some(k) = self.0.take() {
            let shortint = k.into_raw_parts();
            if let AtomicPatternClientKey::Standard(s) = shortint.atomic_pattern {
                let (mut glwe, mut lwe, _, _) = s.into_raw_parts();
                glwe.as_mut().zeroize();
                lwe.as_mut().zeroize();
            }
        }
    }
}

/// The compressed server key (bootstrapping + key-switching keys) handed to compute workers.
#[derive(Clone)]
pub struct CompressedServerKey {
    id: KeyId,
    inner: tfhe::integer::CompressedServerKey,
}

impl CompressedServerKey {
    /// Serializes the key (magic, id, postcard of tfhe's serde form).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = SERVER_KEY_MAGIC.to_vec();
        out.extend_from_slice(&self.id.0);
        postcard::to_extend(&self.inner, out).map_err(|e| Error::Decode {
            what: "server key",
            reason: e.to_string(),
        })
    }

    /// Loads a key written by [`CompressedServerKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (id, body) = split_magic(bytes, SERVER_KEY_MAGIC, "server key")?;
        let inner = postcard::from_bytes(body).map_err(|e| Error::Decode {
            what: "server key",
            reason: e.to_string(),
        })?;
        Ok(Self { id, inner })
    }

    /// Decompresses for evaluation (the worker does this once at startup).
    pub fn decompress(&self) -> ServerKey {
        ServerKey {
            id: self.id,
            inner: self.inner.decompress(),
        }
    }

    /// The key set's identifier.
    pub fn id(&self) -> KeyId {
        self.id
    }

    #[cfg(feature = "gpu")]
    pub(crate) fn inner(&self) -> &tfhe::integer::CompressedServerKey {
        &self.inner
    }
}

/// A decompressed server key, used by [`crate::evaluate`] for bootstrapped plans.
pub struct ServerKey {
    id: KeyId,
    pub(crate) inner: tfhe::integer::ServerKey,
}

impl ServerKey {
    /// The key set's identifier.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

/// A compact public key under the custodian's secret (partners encrypt with it).
pub struct PublicKey {
    id: KeyId,
    inner: tfhe::shortint::CompactPublicKey,
}

impl PublicKey {
    /// Serializes the key.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = PUBLIC_KEY_MAGIC.to_vec();
        out.extend_from_slice(&self.id.0);
        postcard::to_extend(&self.inner, out).map_err(|e| Error::Decode {
            what: "public key",
            reason: e.to_string(),
        })
    }

    /// Loads a key written by [`PublicKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (id, body) = split_magic(bytes, PUBLIC_KEY_MAGIC, "public key")?;
        let inner = postcard::from_bytes(body).map_err(|e| Error::Decode {
            what: "public key",
            reason: e.to_string(),
        })?;
        Ok(Self { id, inner })
    }

    /// The key set's identifier.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Encrypts a small message (mod 4) as a shortint ciphertext under the custodian's key.
    pub fn encrypt_small(&self, message: u64) -> tfhe::shortint::ciphertext::CompactCiphertextList {
        self.inner.encrypt_slice(&[message])
    }
}

fn split_magic<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    what: &'static str,
) -> Result<(KeyId, &'a [u8])> {
    if bytes.len() < 24 || &bytes[..8] != magic {
        return Err(Error::Decode {
            what,
            reason: format!(
                "expected magic {:?}, got {} bytes",
                String::from_utf8_lossy(magic),
                bytes.len()
            ),
        });
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[8..24]);
    Ok((KeyId(id), &bytes[24..]))
}

/// Sizes and timings of a key set (printed by the bench).
#[derive(Clone, Debug)]
pub struct KeyReport {
    /// Client key bytes.
    pub client_key_bytes: usize,
    /// Compressed server key bytes.
    pub compressed_server_key_bytes: usize,
    /// Compact public key bytes.
    pub public_key_bytes: usize,
    /// Seconds to generate the client key.
    pub client_key_gen_s: f64,
    /// Seconds to generate the compressed server key.
    pub server_key_gen_s: f64,
    /// Seconds to generate the public key.
    pub public_key_gen_s: f64,
    /// Seconds to load the client key from bytes.
    pub client_key_load_s: f64,
    /// Seconds to load and decompress the server key.
    pub server_key_load_s: f64,
}

/// Generates a full key set and measures it.
pub fn measure_keys() -> Result<KeyReport> {
    let t = Instant::now();
    let ck = ClientKey::generate();
    let client_key_gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let sk = ck.compressed_server_key();
    let server_key_gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let pk = ck.compact_public_key()?;
    let public_key_gen_s = t.elapsed().as_secs_f64();
    let ck_bytes = ck.to_bytes();
    let sk_bytes = sk.to_bytes()?;
    let pk_bytes = pk.to_bytes()?;
    let t = Instant::now();
    let _ck2 = ClientKey::from_bytes(&ck_bytes)?;
    let client_key_load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let _sk2 = CompressedServerKey::from_bytes(&sk_bytes)?.decompress();
    let server_key_load_s = t.elapsed().as_secs_f64();
    Ok(KeyReport {
        client_key_bytes: ck_bytes.len(),
        compressed_server_key_bytes: sk_bytes.len(),
        public_key_bytes: pk_bytes.len(),
        client_key_gen_s,
        server_key_gen_s,
        public_key_gen_s,
        client_key_load_s,
        server_key_load_s,
    })
}

/// A short digest helper shared by results and plans.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_key_survives_a_bytes_round_trip() {
        let k = ClientKey::generate();
        let bytes = k.to_bytes();
        let k2 = ClientKey::from_bytes(&bytes).expect("valid bytes");
        assert_eq!(k.id(), k2.id());
        assert_eq!(k.glwe_coeffs(), k2.glwe_coeffs());
        assert_eq!(k.lwe.as_ref(), k2.lwe.as_ref());
        assert_eq!(k.glwe_coeffs().len(), crate::params::CHUNK_ROWS);
        assert!(ClientKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    }
}
