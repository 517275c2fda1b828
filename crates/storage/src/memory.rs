//! An in-memory [`Backend`] for tests and tools: nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::{Backend, KvLedgerStore, Result, StoreError};

/// A sorted map behind a mutex; `apply` holds the lock for the whole batch, so it is atomic.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>>> {
        self.map
            .lock()
            .map_err(|_| StoreError::Backend("memory backend lock poisoned".into()))
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock()?.get(key).cloned())
    }

    fn apply(&self, ops: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        let mut map = self.lock()?;
        for (key, value) in ops {
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn scan(
        &self,
        from: &[u8],
        to_exclusive: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from >= to_exclusive {
            return Ok(Vec::new());
        }
        let map = self.lock()?;
        let rows = map.range::<[u8], _>((Bound::Included(from), Bound::Excluded(to_exclusive)));
        Ok(rows
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = self.lock()?;
        let rows = map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        Ok(rows.map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

impl KvLedgerStore<MemoryBackend> {
    /// An empty in-memory store.
    pub fn in_memory() -> Self {
        KvLedgerStore::new(MemoryBackend::new())
    }
}
