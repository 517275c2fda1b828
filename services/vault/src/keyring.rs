//! The vault's keyring: the custodian's wrapping secrets and one storage key per record, sealed
//! under the passphrase (Argon2id, then XChaCha20-Poly1305) in a single small file that is
//! rewritten whole, through a temporary file and an atomic rename, on every change.
//!
//! This file is what makes erasure final: a record's storage key lives nowhere else, so
//! rewriting the keyring without it destroys it (see [`crate::sled_store`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use custos_crypto::Hash;
use custos_types::RecordId;
use custos_vault::seal::{PassphraseSealed, SealingKey};
use custos_vault::{EncryptionSecret, KdfParams, Passphrase, StoreError};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const LABEL: &str = "custos/vault/keyring/v1";
const KIND: &str = "custos-vault-keyring";
const MAGIC: &[u8; 4] = b"CKR1";

/// A record's storage key: encrypts what the store keeps about the record besides its
/// ciphertext. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct StorageKey(pub(crate) [u8; 32]);

#[derive(Default)]
struct State {
    custodian: BTreeMap<u32, EncryptionSecret>,
    records: BTreeMap<RecordId, StorageKey>,
}

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    kind: String,
    version: u32,
    sealed: PassphraseSealed,
}

/// The sealed keyring file and its contents in memory.
pub(crate) struct Keyring {
    path: PathBuf,
    key: SealingKey,
    state: Mutex<State>,
}

fn backend(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: "keyring".into(),
        reason: reason.into(),
    }
}

impl Keyring {
    /// Opens the keyring at `path` with `passphrase`, or creates an empty one there.
    pub(crate) fn open_or_create(
        path: &Path,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, StoreError> {
        if path.exists() {
            let text =
                std::fs::read_to_string(path).map_err(|e| backend("cannot read", path, e))?;
            let file: KeyringFile =
                serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
            if file.kind != KIND || file.version != 1 {
                return Err(corrupt(format!(
                    "expected a version 1 {KIND}, got kind `{}` version {}",
                    file.kind, file.version
                )));
            }
            let key = SealingKey::for_sealed(passphrase, &file.sealed)
                .map_err(|e| corrupt(e.to_string()))?;
            let plaintext = key
                .open(LABEL, &file.sealed)
                .map_err(|e| StoreError::Corrupt {
                    what: "keyring".into(),
                    reason: e.to_string(),
                })?;
            let state = decode(&plaintext)?;
            Ok(Keyring {
                path: path.to_path_buf(),
                key,
                state: Mutex::new(state),
            })
        } else {
            let key = SealingKey::derive(passphrase, params, &mut OsRng)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let keyring = Keyring {
                path: path.to_path_buf(),
                key,
                state: Mutex::new(State::default()),
            };
            {
                let state = keyring.lock()?;
                keyring.write(&state)?;
            }
            Ok(keyring)
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("keyring lock poisoned".into()))
    }

    /// Seals `state` and replaces the file atomically: a crash leaves the old file or the new.
    fn write(&self, state: &State) -> Result<(), StoreError> {
        let plaintext = encode(state);
        let sealed = self
            .key
            .seal(LABEL, &plaintext, &mut OsRng)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let text = serde_json::to_vec(&KeyringFile {
            kind: KIND.into(),
            version: 1,
            sealed,
        })
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .map_err(|e| backend("cannot create", &tmp, e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| backend("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| backend("cannot replace", &self.path, e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| backend("cannot sync", dir, e))?;
        }
        Ok(())
    }

    /// The storage key of `record`, if it has one.
    pub(crate) fn record_key(&self, record: &RecordId) -> Result<Option<StorageKey>, StoreError> {
        Ok(self.lock()?.records.get(record).cloned())
    }

    /// The storage key of `record`, created (and the keyring rewritten) if it has none.
    pub(crate) fn ensure_record_key(&self, record: &RecordId) -> Result<StorageKey, StoreError> {
        let mut state = self.lock()?;
        if let Some(key) = state.records.get(record) {
            return Ok(key.clone());
        }
        let mut key = StorageKey([0u8; 32]);
        OsRng.fill_bytes(&mut key.0);
        state.records.insert(*record, key.clone());
        if let Err(e) = self.write(&state) {
            state.records.remove(record);
            return Err(e);
        }
        Ok(key)
    }

    /// Destroys the storage key of `record`: the keyring is rewritten without it.
    pub(crate) fn remove_record_key(&self, record: &RecordId) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.records.remove(record).is_some() {
            self.write(&state)?;
        }
        Ok(())
    }

    /// Records that have a storage key.
    pub(crate) fn records(&self) -> Result<Vec<RecordId>, StoreError> {
        Ok(self.lock()?.records.keys().copied().collect())
    }

    pub(crate) fn custodian_keys(&self) -> Result<BTreeMap<u32, EncryptionSecret>, StoreError> {
        Ok(self.lock()?.custodian.clone())
    }

    pub(crate) fn put_custodian_key(
        &self,
        generation: u32,
        secret: &EncryptionSecret,
    ) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let previous = state.custodian.insert(generation, secret.clone());
        if let Err(e) = self.write(&state) {
            match previous {
                Some(p) => state.custodian.insert(generation, p),
                None => state.custodian.remove(&generation),
            };
            return Err(e);
        }
        Ok(())
    }

    pub(crate) fn remove_custodian_key(&self, generation: u32) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.custodian.remove(&generation).is_some() {
            self.write(&state)?;
        }
        Ok(())
    }
}

/// `"CKR1" ‖ n (u32 BE) ‖ n × (generation u32 BE ‖ secret 32) ‖ m (u32 BE) ‖ m × (record 32 ‖
/// storage key 32)`, in a zeroizing buffer.
fn encode(state: &State) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(
        12 + state.custodian.len() * 36 + state.records.len() * 64,
    ));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(state.custodian.len() as u32).to_be_bytes());
    for (generation, secret) in &state.custodian {
        out.extend_from_slice(&generation.to_be_bytes());
        out.extend_from_slice(secret.expose());
    }
    out.extend_from_slice(&(state.records.len() as u32).to_be_bytes());
    for (record, key) in &state.records {
        out.extend_from_slice(record.0.as_bytes());
        out.extend_from_slice(&key.0);
    }
    out
}

fn decode(bytes: &[u8]) -> Result<State, StoreError> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
            if self.0.len() < n {
                return Err(corrupt("truncated contents"));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn u32(&mut self) -> Result<u32, StoreError> {
            let mut b = [0u8; 4];
            b.copy_from_slice(self.take(4)?);
            Ok(u32::from_be_bytes(b))
        }
    }
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return Err(corrupt("unknown contents version"));
    }
    let mut state = State::default();
    for _ in 0..r.u32()? {
        let generation = r.u32()?;
        let secret =
            EncryptionSecret::from_slice(r.take(32)?).ok_or_else(|| corrupt("custodian secret"))?;
        state.custodian.insert(generation, secret);
    }
    for _ in 0..r.u32()? {
        let record = RecordId(Hash::from_slice(r.take(32)?).map_err(|e| corrupt(e.to_string()))?);
        let mut key = StorageKey([0u8; 32]);
        key.0.copy_from_slice(r.take(32)?);
        state.records.insert(record, key);
    }
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(state)
}
