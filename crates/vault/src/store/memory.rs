//! An in-memory [`VaultStore`] for tests: nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use custos_types::{PartyId, RecordId};

use super::{StoreError, VaultStore};
use crate::record::RecordMeta;
use crate::wrap::{EncryptionSecret, WrappedKey};

#[derive(Default)]
struct State {
    chunks: BTreeMap<(RecordId, u32), Vec<u8>>,
    wrapped: BTreeMap<(RecordId, PartyId), WrappedKey>,
    meta: BTreeMap<RecordId, RecordMeta>,
    custodian: BTreeMap<u32, EncryptionSecret>,
}

/// A [`VaultStore`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl VaultStore for MemoryStore {
    fn put_chunk(
        &self,
        record: &RecordId,
        index: u32,
        ciphertext: &[u8],
    ) -> Result<(), StoreError> {
        self.state()?
            .chunks
            .insert((*record, index), ciphertext.to_vec());
        Ok(())
    }

    fn chunk(&self, record: &RecordId, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state()?.chunks.get(&(*record, index)).cloned())
    }

    fn put_wrapped_key(&self, record: &RecordId, wrapped: &WrappedKey) -> Result<(), StoreError> {
        self.state()?
            .wrapped
            .insert((*record, wrapped.recipient), wrapped.clone());
        Ok(())
    }

    fn wrapped_key(
        &self,
        record: &RecordId,
        recipient: &PartyId,
    ) -> Result<Option<WrappedKey>, StoreError> {
        Ok(self.state()?.wrapped.get(&(*record, *recipient)).cloned())
    }

    fn put_meta(&self, meta: &RecordMeta) -> Result<(), StoreError> {
        self.state()?.meta.insert(meta.record_id(), meta.clone());
        Ok(())
    }

    fn meta(&self, record: &RecordId) -> Result<Option<RecordMeta>, StoreError> {
        Ok(self.state()?.meta.get(record).cloned())
    }

    fn records(&self) -> Result<Vec<RecordId>, StoreError> {
        Ok(self.state()?.meta.keys().copied().collect())
    }

    /// Nothing is kept anywhere but in these maps, and the removed entries are dropped.
    fn erase(&self, record: &RecordId) -> Result<(), StoreError> {
        let mut state = self.state()?;
        state.chunks.retain(|(r, _), _| r != record);
        state.wrapped.retain(|(r, _), _| r != record);
        state.meta.remove(record);
        Ok(())
    }

    fn custodian_keys(&self) -> Result<BTreeMap<u32, EncryptionSecret>, StoreError> {
        Ok(self.state()?.custodian.clone())
    }

    fn put_custodian_key(
        &self,
        generation: u32,
        secret: &EncryptionSecret,
    ) -> Result<(), StoreError> {
        self.state()?.custodian.insert(generation, secret.clone());
        Ok(())
    }

    fn remove_custodian_key(&self, generation: u32) -> Result<(), StoreError> {
        self.state()?.custodian.remove(&generation);
        Ok(())
    }
}
