//! Wraps data keys to X25519 keys with HPKE (RFC 9180, base mode) in the suite
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, using the `hpke` crate.
//!
//! The HPKE `info` binds `"custos/vault/wrap/v1\0" ‖ record id ‖ version (u32 BE) ‖ custodian ‖
//! recipient party ‖ recipient X25519 key`, so a wrapped key opens only for the record version,
//! custodian and recipient it was made for. A party's X25519 key is the one it registered on the
//! ledger (`RegisterParty.encryption_key`, the public half of [`custos_crypto::PartyKeys`]); the
//! custodian's own wrapping key is a vault key that rotates (see [`crate::Vault`]).

use std::fmt;

use custos_crypto::PartyKeys;
use custos_proto::vault::v1 as pb;
use custos_types::{FieldError, PartyId, RecordId};
use hpke::aead::ChaCha20Poly1305 as HpkeChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::stream::{DataKey, RecordVersion};

type Kem = X25519HkdfSha256;

const INFO_TAG: &[u8] = b"custos/vault/wrap/v1\0";
const AAD: &[u8] = b"custos/vault/data-key/v1";
/// Bytes of a sealed data key: 32 bytes of key and a 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 48;

/// Why a data key could not be wrapped or unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// The recipient's key cannot be used (HPKE refused it, e.g. a small-order point).
    #[error("record {record}: cannot wrap to X25519 key {key}: {reason}")]
    RecipientKey {
        /// The record.
        record: RecordId,
        /// The refused key.
        key: EncryptionKey,
        /// HPKE's reason.
        reason: String,
    },
    /// The wrapped key is for another party.
    #[error("record {record}: the data key is wrapped to party {got}, expected {expected}")]
    WrongRecipient {
        /// The record.
        record: RecordId,
        /// Who should open it.
        expected: PartyId,
        /// Whom it is wrapped to.
        got: PartyId,
    },
    /// The wrapped key is for another X25519 key than the secret's.
    #[error(
        "record {record}: the data key is wrapped to X25519 key {wrapped_to}, this secret's \
         key is {secret}"
    )]
    WrongSecret {
        /// The record.
        record: RecordId,
        /// The key it is wrapped to.
        wrapped_to: EncryptionKey,
        /// The secret's public key.
        secret: EncryptionKey,
    },
    /// HPKE could not open the wrapped key.
    #[error(
        "record {record}: the wrapped data key does not open (altered, or bound to another \
         record, version, custodian or recipient)"
    )]
    Open {
        /// The record.
        record: RecordId,
    },
    /// A key file could not be read.
    #[error("key file: {0}")]
    KeyFile(String),
}

/// An X25519 public key data keys are wrapped to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EncryptionKey(pub [u8; 32]);

impl EncryptionKey {
    /// Parses 32 bytes from the wire field `field`.
    pub fn from_field(bytes: &[u8], field: &str) -> Result<Self, FieldError> {
        bytes.try_into().map(EncryptionKey).map_err(|_| {
            FieldError::new(
                field,
                format!("expected a 32-byte X25519 key, got {} bytes", bytes.len()),
            )
        })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The encryption key a party's key file holds.
    pub fn of_party(keys: &PartyKeys) -> Self {
        EncryptionKey(keys.encryption_public())
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({})", self.to_hex())
    }
}

impl fmt::Display for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An X25519 secret that opens wrapped data keys. Zeroized on drop, never logged.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptionSecret([u8; 32]);

impl EncryptionSecret {
    /// A fresh secret from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut secret = EncryptionSecret([0u8; 32]);
        rng.fill_bytes(&mut secret.0);
        secret
    }

    /// The secret with these bytes, if there are exactly 32 (the caller zeroizes its copy).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(EncryptionSecret(array))
    }

    /// The X25519 secret of a party's keys (the one its registered encryption key belongs to).
    pub fn of_party(keys: &PartyKeys) -> Result<Self, WrapError> {
        let file = keys.to_file();
        let bytes = Zeroizing::new(
            hex::decode(&file.encryption_secret_key)
                .map_err(|e| WrapError::KeyFile(format!("encryption_secret_key: {e}")))?,
        );
        Self::from_slice(&bytes).ok_or_else(|| {
            WrapError::KeyFile(format!(
                "encryption_secret_key: expected 32 bytes, got {}",
                bytes.len()
            ))
        })
    }

    /// The public key data keys are wrapped to.
    pub fn public(&self) -> EncryptionKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        EncryptionKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// The secret's bytes, for sealing at rest. Never log.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for EncryptionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionSecret(public {})", self.public())
    }
}

/// What a wrapped data key is bound to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WrapContext {
    /// The record.
    pub record_id: RecordId,
    /// Its version.
    pub version: RecordVersion,
    /// The custodian holding it.
    pub custodian: PartyId,
    /// The party that may open the key.
    pub recipient: PartyId,
}

impl WrapContext {
    fn info(&self, recipient_key: &EncryptionKey) -> Vec<u8> {
        let mut info = Vec::with_capacity(INFO_TAG.len() + 32 * 4 + 4);
        info.extend_from_slice(INFO_TAG);
        info.extend_from_slice(self.record_id.0.as_bytes());
        info.extend_from_slice(&self.version.0.to_be_bytes());
        info.extend_from_slice(self.custodian.0.as_bytes());
        info.extend_from_slice(self.recipient.0.as_bytes());
        info.extend_from_slice(recipient_key.as_bytes());
        info
    }
}

/// A data key wrapped with HPKE to one recipient.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The party that may open it.
    pub recipient: PartyId,
    /// The X25519 key it is wrapped to.
    pub recipient_key: EncryptionKey,
    /// HPKE's encapsulated key.
    pub encapsulated: [u8; 32],
    /// The sealed data key ([`WRAPPED_KEY_LEN`] bytes).
    pub ciphertext: Vec<u8>,
}

impl WrappedKey {
    /// Parses the wire form, naming the field it refuses.
    pub fn from_wire(wire: &pb::WrappedKey) -> Result<Self, FieldError> {
        let encapsulated = wire.encapsulated_key.as_slice().try_into().map_err(|_| {
            FieldError::new(
                "encapsulated_key",
                format!("expected 32 bytes, got {}", wire.encapsulated_key.len()),
            )
        })?;
        if wire.ciphertext.len() != WRAPPED_KEY_LEN {
            return Err(FieldError::new(
                "ciphertext",
                format!(
                    "expected {WRAPPED_KEY_LEN} bytes, got {}",
                    wire.ciphertext.len()
                ),
            ));
        }
        Ok(WrappedKey {
            recipient: PartyId::from_field(&wire.recipient, "recipient")?,
            recipient_key: EncryptionKey::from_field(&wire.recipient_key, "recipient_key")?,
            encapsulated,
            ciphertext: wire.ciphertext.clone(),
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> pb::WrappedKey {
        pb::WrappedKey {
            recipient: self.recipient.to_vec(),
            recipient_key: self.recipient_key.0.to_vec(),
            encapsulated_key: self.encapsulated.to_vec(),
            ciphertext: self.ciphertext.clone(),
        }
    }
}

/// `hpke` takes `rand_core` 0.9 generators; this lends it ours (`rand_core` 0.6).
struct HpkeRng<'a, R>(&'a mut R);

impl<R: RngCore> hpke::rand_core::RngCore for HpkeRng<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
}

impl<R: RngCore + CryptoRng> hpke::rand_core::CryptoRng for HpkeRng<'_, R> {}

/// Wraps `key` to `recipient_key` for `ctx.recipient`.
pub fn wrap_key<R: RngCore + CryptoRng>(
    key: &DataKey,
    recipient_key: &EncryptionKey,
    ctx: &WrapContext,
    rng: &mut R,
) -> Result<WrappedKey, WrapError> {
    let refuse = |reason: String| WrapError::RecipientKey {
        record: ctx.record_id,
        key: *recipient_key,
        reason,
    };
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient_key.as_bytes())
        .map_err(|e| refuse(e.to_string()))?;
    let (encapsulated, ciphertext) =
        hpke::single_shot_seal::<HpkeChaCha20Poly1305, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &public,
            &ctx.info(recipient_key),
            key.expose(),
            AAD,
            &mut HpkeRng(rng),
        )
        .map_err(|e| refuse(e.to_string()))?;
    let mut enc = [0u8; 32];
    enc.copy_from_slice(&encapsulated.to_bytes());
    Ok(WrappedKey {
        recipient: ctx.recipient,
        recipient_key: *recipient_key,
        encapsulated: enc,
        ciphertext,
    })
}

/// Opens a wrapped key with `secret`; checks first that it is wrapped to `ctx.recipient` and to
/// `secret`'s public key.
pub fn unwrap_key(
    wrapped: &WrappedKey,
    secret: &EncryptionSecret,
    ctx: &WrapContext,
) -> Result<DataKey, WrapError> {
    let record = ctx.record_id;
    if wrapped.recipient != ctx.recipient {
        return Err(WrapError::WrongRecipient {
            record,
            expected: ctx.recipient,
            got: wrapped.recipient,
        });
    }
    let public = secret.public();
    if !custos_crypto::ct_eq(public.as_bytes(), wrapped.recipient_key.as_bytes()) {
        return Err(WrapError::WrongSecret {
            record,
            wrapped_to: wrapped.recipient_key,
            secret: public,
        });
    }
    let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.expose())
        .map_err(|_| WrapError::Open { record })?;
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.encapsulated)
        .map_err(|_| WrapError::Open { record })?;
    let opened = Zeroizing::new(
        hpke::single_shot_open::<HpkeChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &private,
            &encapsulated,
            &ctx.info(&public),
            &wrapped.ciphertext,
            AAD,
        )
        .map_err(|_| WrapError::Open { record })?,
    );
    DataKey::from_slice(&opened).ok_or(WrapError::Open { record })
}

#[cfg(test)]
mod tests {
    use custos_crypto::sha256;
    use rand_core::OsRng;

    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    /// RFC 9180 appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305,
    /// base mode, first encryption. Pins the suite and the interoperation of X25519 key bytes.
    #[test]
    fn the_hpke_suite_opens_the_rfc_9180_a_2_1_vector() {
        let sk_rm = unhex("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb");
        let pk_rm = unhex("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a");
        let enc = unhex("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a");
        let info = unhex("4f6465206f6e2061204772656369616e2055726e");
        let aad = unhex("436f756e742d30");
        let ct = unhex(
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d\
             2dd1b51a28",
        );
        let pt = unhex("4265617574792069732074727574682c20747275746820626561757479");
        let secret = EncryptionSecret::from_slice(&sk_rm).unwrap();
        assert_eq!(secret.public().0.to_vec(), pk_rm);
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(&sk_rm).unwrap();
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
        let opened = hpke::single_shot_open::<HpkeChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &private,
            &encapped,
            &info,
            &ct,
            &aad,
        )
        .unwrap();
        assert_eq!(opened, pt);
    }

    fn context(recipient: &PartyKeys) -> WrapContext {
        WrapContext {
            record_id: RecordId(sha256(b"r")),
            version: RecordVersion::FIRST,
            custodian: PartyId(PartyKeys::generate(&mut OsRng).public()),
            recipient: PartyId(recipient.public()),
        }
    }

    #[test]
    fn a_key_wrapped_to_a_party_opens_with_its_key_file_secret_only() {
        let alice = PartyKeys::generate(&mut OsRng);
        let bob = PartyKeys::generate(&mut OsRng);
        let ctx = context(&alice);
        let key = DataKey::generate(&mut OsRng);
        let wrapped = wrap_key(&key, &EncryptionKey::of_party(&alice), &ctx, &mut OsRng).unwrap();
        let opened = unwrap_key(&wrapped, &EncryptionSecret::of_party(&alice).unwrap(), &ctx);
        assert_eq!(opened.unwrap().expose(), key.expose());
        assert!(matches!(
            unwrap_key(&wrapped, &EncryptionSecret::of_party(&bob).unwrap(), &ctx),
            Err(WrapError::WrongSecret { .. })
        ));
    }

    #[test]
    fn a_wrapped_key_does_not_open_under_another_record_version_or_custodian() {
        let alice = PartyKeys::generate(&mut OsRng);
        let secret = EncryptionSecret::of_party(&alice).unwrap();
        let ctx = context(&alice);
        let key = DataKey::generate(&mut OsRng);
        let wrapped = wrap_key(&key, &secret.public(), &ctx, &mut OsRng).unwrap();
        for other in [
            WrapContext {
                record_id: RecordId(sha256(b"other")),
                ..ctx
            },
            WrapContext {
                version: RecordVersion(2),
                ..ctx
            },
            WrapContext {
                custodian: PartyId(alice.public()),
                ..ctx
            },
        ] {
            assert_eq!(
                unwrap_key(&wrapped, &secret, &other).map(|_| ()),
                Err(WrapError::Open {
                    record: other.record_id
                })
            );
        }
        let mut flipped = wrapped.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(
            unwrap_key(&flipped, &secret, &ctx),
            Err(WrapError::Open { .. })
        ));
    }

    #[test]
    fn wrapping_to_a_small_order_point_is_refused() {
        let alice = PartyKeys::generate(&mut OsRng);
        let result = wrap_key(
            &DataKey::generate(&mut OsRng),
            &EncryptionKey([0u8; 32]),
            &context(&alice),
            &mut OsRng,
        );
        assert!(matches!(result, Err(WrapError::RecipientKey { .. })));
    }
}
