//! What a release hands its recipient, and how the recipient opens it.

use custos_crypto::Hash;
use custos_proto::vault::v1 as pb;
use custos_types::{FieldError, PartyId, RecordId, RequestId, TxId};

use crate::record::RecordMeta;
use crate::stream::{ChunkDecryptor, NONCE_PREFIX_LEN, RecordVersion, StreamParams, StreamSummary};
use crate::vault::{VaultError, release_digest};
use crate::wrap::{EncryptionSecret, WrapContext, WrappedKey, unwrap_key};

/// The first message of a release: how to decrypt the chunks that follow.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReleaseHeader {
    /// The granted request.
    pub request_id: RequestId,
    /// How the record is chunked and bound.
    pub stream: StreamParams,
    /// Plaintext bytes.
    pub size: u64,
    /// Chunks.
    pub chunk_count: u32,
    /// The digest registered on the ledger.
    pub ciphertext_digest: Hash,
    /// The data key, wrapped to the recipient.
    pub wrapped_key: WrappedKey,
    /// What the ledger's release confirmation holds ([`release_digest`]).
    pub release_digest: Hash,
    /// The confirmation transaction.
    pub confirm_tx: TxId,
}

impl ReleaseHeader {
    /// The header of a release of `meta` under `request_id` with `wrapped_key`.
    pub fn new(
        request_id: RequestId,
        meta: &RecordMeta,
        wrapped_key: WrappedKey,
        confirm_tx: TxId,
    ) -> Self {
        let digest = release_digest(
            &request_id,
            &meta.record_id(),
            &wrapped_key,
            &meta.ciphertext_digest,
        );
        ReleaseHeader {
            request_id,
            stream: meta.stream,
            size: meta.size,
            chunk_count: meta.chunk_count,
            ciphertext_digest: meta.ciphertext_digest,
            wrapped_key,
            release_digest: digest,
            confirm_tx,
        }
    }

    /// The record.
    pub fn record_id(&self) -> RecordId {
        self.stream.record_id
    }

    /// Parses the wire form, naming the field it refuses.
    pub fn from_wire(w: &pb::ReleaseHeader) -> Result<Self, FieldError> {
        let hash = |bytes: &[u8], field: &str| {
            Hash::from_slice(bytes).map_err(|e| FieldError::new(field, e.to_string()))
        };
        let nonce_prefix = w.nonce_prefix.as_slice().try_into().map_err(|_| {
            FieldError::new(
                "nonce_prefix",
                format!(
                    "expected {NONCE_PREFIX_LEN} bytes, got {}",
                    w.nonce_prefix.len()
                ),
            )
        })?;
        let chunk_count = u32::try_from(w.chunk_count).map_err(|_| {
            FieldError::new(
                "chunk_count",
                format!("at most {}, got {}", u32::MAX, w.chunk_count),
            )
        })?;
        let wrapped = w
            .wrapped_key
            .as_ref()
            .ok_or_else(|| FieldError::new("wrapped_key", "required field is missing"))?;
        Ok(ReleaseHeader {
            request_id: RequestId::from_field(&w.request_id, "request_id")?,
            stream: StreamParams {
                record_id: RecordId::from_field(&w.record_id, "record_id")?,
                version: RecordVersion(w.version),
                custodian: PartyId::from_field(&w.custodian, "custodian")?,
                chunk_size: w.chunk_size,
                nonce_prefix,
            },
            size: w.size,
            chunk_count,
            ciphertext_digest: hash(&w.ciphertext_digest, "ciphertext_digest")?,
            wrapped_key: WrappedKey::from_wire(wrapped).map_err(|e| e.within("wrapped_key"))?,
            release_digest: hash(&w.release_digest, "release_digest")?,
            confirm_tx: TxId::from_field(&w.confirm_tx_id, "confirm_tx_id")?,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> pb::ReleaseHeader {
        pb::ReleaseHeader {
            request_id: self.request_id.to_vec(),
            record_id: self.stream.record_id.to_vec(),
            version: self.stream.version.0,
            custodian: self.stream.custodian.to_vec(),
            size: self.size,
            chunk_size: self.stream.chunk_size,
            chunk_count: u64::from(self.chunk_count),
            nonce_prefix: self.stream.nonce_prefix.to_vec(),
            ciphertext_digest: self.ciphertext_digest.0.to_vec(),
            wrapped_key: Some(self.wrapped_key.to_wire()),
            release_digest: self.release_digest.0.to_vec(),
            confirm_tx_id: self.confirm_tx.to_vec(),
        }
    }

    /// Checks the release digest, unwraps the data key with the recipient's secret and returns
    /// the decryptor for the chunks that follow.
    pub fn open(
        &self,
        recipient: PartyId,
        secret: &EncryptionSecret,
    ) -> Result<ChunkDecryptor, VaultError> {
        let record = self.record_id();
        let expected = release_digest(
            &self.request_id,
            &record,
            &self.wrapped_key,
            &self.ciphertext_digest,
        );
        if expected != self.release_digest {
            return Err(VaultError::ReleaseDigest { record });
        }
        let ctx = WrapContext {
            record_id: record,
            version: self.stream.version,
            custodian: self.stream.custodian,
            recipient,
        };
        let key = unwrap_key(&self.wrapped_key, secret, &ctx)?;
        Ok(ChunkDecryptor::new(&key, self.stream)?)
    }

    /// Checks that a finished stream is the one this header describes.
    pub fn check(&self, summary: &StreamSummary) -> Result<(), VaultError> {
        if summary.ciphertext_digest != self.ciphertext_digest
            || summary.chunk_count != self.chunk_count
            || summary.size != self.size
        {
            return Err(VaultError::StreamMismatch {
                record: self.record_id(),
                detail: format!(
                    "expected {} chunk(s), {} bytes, ciphertext digest {}; received {}, {} \
                     bytes, {}",
                    self.chunk_count,
                    self.size,
                    self.ciphertext_digest,
                    summary.chunk_count,
                    summary.size,
                    summary.ciphertext_digest
                ),
            });
        }
        Ok(())
    }
}
