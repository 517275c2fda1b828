//! The vault's storage contract: ciphertext chunks by (record, index), metadata by record,
//! wrapped data keys by (record, recipient) and the custodian's wrapping keys by generation.
//!
//! [`memory::MemoryStore`] implements it for tests; `custos-vault-service` implements it on
//! sled. Every implementation passes the shared suite in `suite` (feature `test-suite`).
//!
//! A store never sees a plaintext record or a data key in the clear: chunks are sealed by
//! [`crate::stream`], data keys wrapped by [`crate::wrap`]. The custodian's wrapping secrets are
//! the only secrets it holds; a durable implementation must keep them sealed at rest.

use std::collections::BTreeMap;

use custos_types::{PartyId, RecordId};

use crate::record::RecordMeta;
use crate::wrap::{EncryptionSecret, WrappedKey};

pub mod memory;
#[cfg(feature = "test-suite")]
pub mod suite;

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a poisoned lock, a full disk).
    #[error("vault storage failed: {0}")]
    Backend(String),
    /// A stored item could not be decoded or authenticated.
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt {
        /// Which item.
        what: String,
        /// Why.
        reason: String,
    },
}

/// A custodian's record store. Methods are synchronous and short; callers on an async runtime
/// call them between awaits.
pub trait VaultStore: Send + Sync + 'static {
    /// Stores ciphertext chunk `index` of `record`, replacing any earlier one.
    fn put_chunk(&self, record: &RecordId, index: u32, ciphertext: &[u8])
    -> Result<(), StoreError>;

    /// Chunk `index` of `record`.
    fn chunk(&self, record: &RecordId, index: u32) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `wrapped` for `wrapped.recipient`, replacing any earlier key of that recipient.
    fn put_wrapped_key(&self, record: &RecordId, wrapped: &WrappedKey) -> Result<(), StoreError>;

    /// The key of `record` wrapped to `recipient`.
    fn wrapped_key(
        &self,
        record: &RecordId,
        recipient: &PartyId,
    ) -> Result<Option<WrappedKey>, StoreError>;

    /// Stores metadata, which makes the record complete and visible; durable once it returns.
    fn put_meta(&self, meta: &RecordMeta) -> Result<(), StoreError>;

    /// A complete record's metadata.
    fn meta(&self, record: &RecordId) -> Result<Option<RecordMeta>, StoreError>;

    /// The ids of complete records, in id order.
    fn records(&self) -> Result<Vec<RecordId>, StoreError>;

    /// Destroys every chunk, wrapped key and the metadata of `record` (complete or not);
    /// durable once it returns. Each implementation documents why nothing of the record can be
    /// recovered from what it keeps afterwards.
    fn erase(&self, record: &RecordId) -> Result<(), StoreError>;

    /// The custodian's wrapping secrets by generation (more than one only mid-rotation).
    fn custodian_keys(&self) -> Result<BTreeMap<u32, EncryptionSecret>, StoreError>;

    /// Adds the custodian's wrapping secret of `generation`; durable once it returns.
    fn put_custodian_key(
        &self,
        generation: u32,
        secret: &EncryptionSecret,
    ) -> Result<(), StoreError>;

    /// Destroys the custodian's wrapping secret of `generation`; durable once it returns.
    fn remove_custodian_key(&self, generation: u32) -> Result<(), StoreError>;
}

impl<S: VaultStore> VaultStore for std::sync::Arc<S> {
    fn put_chunk(
        &self,
        record: &RecordId,
        index: u32,
        ciphertext: &[u8],
    ) -> Result<(), StoreError> {
        (**self).put_chunk(record, index, ciphertext)
    }
    fn chunk(&self, record: &RecordId, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).chunk(record, index)
    }
    fn put_wrapped_key(&self, record: &RecordId, wrapped: &WrappedKey) -> Result<(), StoreError> {
        (**self).put_wrapped_key(record, wrapped)
    }
    fn wrapped_key(
        &self,
        record: &RecordId,
        recipient: &PartyId,
    ) -> Result<Option<WrappedKey>, StoreError> {
        (**self).wrapped_key(record, recipient)
    }
    fn put_meta(&self, meta: &RecordMeta) -> Result<(), StoreError> {
        (**self).put_meta(meta)
    }
    fn meta(&self, record: &RecordId) -> Result<Option<RecordMeta>, StoreError> {
        (**self).meta(record)
    }
    fn records(&self) -> Result<Vec<RecordId>, StoreError> {
        (**self).records()
    }
    fn erase(&self, record: &RecordId) -> Result<(), StoreError> {
        (**self).erase(record)
    }
    fn custodian_keys(&self) -> Result<BTreeMap<u32, EncryptionSecret>, StoreError> {
        (**self).custodian_keys()
    }
    fn put_custodian_key(
        &self,
        generation: u32,
        secret: &EncryptionSecret,
    ) -> Result<(), StoreError> {
        (**self).put_custodian_key(generation, secret)
    }
    fn remove_custodian_key(&self, generation: u32) -> Result<(), StoreError> {
        (**self).remove_custodian_key(generation)
    }
}
