//! The durable [`VaultStore`]: ciphertext chunks in one append-only file per record, sled for
//! the chunk index, metadata and wrapped keys, and the sealed [`Keyring`] for the custodian's
//! wrapping secrets and one storage key per record.
//!
//! Layout under the vault's folder: `keyring.json` and `keyring/` (sealed under the
//! passphrase, see [`crate::keyring`]), `chunks/` (a file per record, named by its id, holding
//! its chunks as [`custos_vault::stream`] sealed them) and `sled/`. In sled, tree `chunks` maps `record ‖ index (u32 BE)` to the chunk's
//! offset and length in the record's file; trees `meta` (by record) and `wrapped` (by
//! `record ‖ recipient`) hold values encrypted under the record's storage key
//! (XChaCha20-Poly1305, random nonce, AAD = tree name and sled key). Chunks stay out of sled
//! because sled 0.34 keeps every value it holds resident in memory: a 1 GiB record would cost
//! 1 GiB of RAM.
//!
//! **Why erasure is final.** sled is log-structured: a removed value stays in old segments of
//! `sled/` until they are compacted, so deleting is not destroying. What can remain after
//! [`VaultStore::erase`]:
//!
//! - in stale sled pages: chunk offsets, and metadata and wrapped keys sealed under the
//!   record's storage key;
//! - nothing in `chunks/`: the record's file is unlinked (its freed blocks are the file
//!   system's, see below), and what it held was sealed under the record's data key anyway.
//!
//! The data key exists only inside the wrapped keys (to the custodian and to the patient), so
//! any stale copy of a wrapped key needs the storage key to open. That key existed only in its
//! shard of the keyring, which erasure rewrites without it *before* touching anything else,
//! through a new file renamed over the old one. So even with the passphrase (which opens the
//! keyring), the custodian's wrapping secret and every party's private key, nothing in the
//! vault's folder yields the record's plaintext, its attributes or its data key. Outside the folder's files —
//! blocks the file system freed, snapshots, backups — are beyond this argument: run vaults on
//! encrypted disks and keep backups under the same erasure discipline.
//!
//! Crash safety: a record becomes visible when its metadata is written, after its chunk file
//! is synced and its wrapped keys stored, and flushed. On open, anything of a record without
//! metadata, and any record whose storage key is gone, is erased.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use custos_crypto::Hash;
use custos_types::{PartyId, RecordId};
use custos_vault::{
    EncryptionSecret, KdfParams, Passphrase, RecordMeta, StoreError, VaultStore, WrappedKey,
};
use rand_core::{OsRng, RngCore};

use crate::keyring::{Keyring, StorageKey};

/// Default sled page cache: the vault streams, it does not cache.
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

const META: &str = "meta";
const WRAPPED: &str = "wrapped";

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(what: &str, record: &RecordId, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what} of record {}", record.short()),
        reason: reason.to_string(),
    }
}

/// A [`VaultStore`] on sled and a sealed keyring; see the module docs.
pub struct SledVaultStore {
    dir: PathBuf,
    chunk_dir: PathBuf,
    // Appends to chunk files one at a time, so an offset is the end of the file it is read at.
    appending: Mutex<()>,
    db: sled::Db,
    chunks: sled::Tree,
    meta: sled::Tree,
    wrapped: sled::Tree,
    keyring: Keyring,
}

fn chunk_key(record: &RecordId, index: u32) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(record.0.as_bytes());
    key[32..].copy_from_slice(&index.to_be_bytes());
    key
}

fn wrapped_key_of(record: &RecordId, recipient: &PartyId) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(record.0.as_bytes());
    key[32..].copy_from_slice(recipient.0.as_bytes());
    key
}

fn aad(tree: &str, key: &[u8]) -> Vec<u8> {
    [b"custos/vault/store/v1\0", tree.as_bytes(), b"\0", key].concat()
}

fn seal(storage: &StorageKey, tree: &str, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new((&storage.0).into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: value,
                aad: &aad(tree, key),
            },
        )
        .map_err(|_| StoreError::Backend(format!("cannot seal a {tree} value")))?;
    Ok([&nonce[..], &sealed].concat())
}

fn open(
    storage: &StorageKey,
    tree: &str,
    key: &[u8],
    stored: &[u8],
    record: &RecordId,
) -> Result<Vec<u8>, StoreError> {
    if stored.len() < 24 {
        return Err(corrupt(tree, record, "shorter than a nonce"));
    }
    let (nonce, sealed) = stored.split_at(24);
    let cipher = XChaCha20Poly1305::new((&storage.0).into());
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad(tree, key),
            },
        )
        .map_err(|_| corrupt(tree, record, "does not authenticate under its storage key"))
}

fn record_of(key: &[u8]) -> Result<RecordId, StoreError> {
    key.get(..32)
        .and_then(|b| Hash::from_slice(b).ok())
        .map(RecordId)
        .ok_or_else(|| StoreError::Corrupt {
            what: "sled key".into(),
            reason: format!("{} bytes, expected at least 32", key.len()),
        })
}

impl SledVaultStore {
    /// Opens (or creates) the store in `dir`, unsealing the keyring with `passphrase`; a new
    /// keyring is sealed with `params`. Cleans up after an interrupted put or erasure.
    pub fn open(
        dir: &Path,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, passphrase, params, DEFAULT_CACHE_BYTES)
    }

    /// [`SledVaultStore::open`] with a sled page cache of `cache_bytes`.
    pub fn open_with_cache(
        dir: &Path,
        passphrase: &Passphrase,
        params: KdfParams,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                StoreError::Backend(format!("cannot restrict {}: {e}", dir.display()))
            })?;
        }
        let keyring = Keyring::open_or_create(&dir.join("keyring.json"), passphrase, params)?;
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(cache_bytes)
            .open()
            .map_err(backend)?;
        let chunk_dir = dir.join("chunks");
        std::fs::create_dir_all(&chunk_dir).map_err(|e| {
            StoreError::Backend(format!("cannot create {}: {e}", chunk_dir.display()))
        })?;
        let store = SledVaultStore {
            dir: dir.to_path_buf(),
            chunk_dir,
            appending: Mutex::new(()),
            chunks: db.open_tree("chunks").map_err(backend)?,
            meta: db.open_tree(META).map_err(backend)?,
            wrapped: db.open_tree(WRAPPED).map_err(backend)?,
            db,
            keyring,
        };
        store.clean_up()?;
        Ok(store)
    }

    /// The vault's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Erases whatever a crash left incomplete: records without metadata (an interrupted put)
    /// and records without a storage key (an interrupted erasure).
    fn clean_up(&self) -> Result<(), StoreError> {
        let mut doomed = std::collections::BTreeSet::new();
        let keyed: std::collections::BTreeSet<RecordId> =
            self.keyring.records()?.into_iter().collect();
        let mut complete = std::collections::BTreeSet::new();
        for item in self.meta.iter() {
            let (key, _) = item.map_err(backend)?;
            let record = record_of(&key)?;
            if keyed.contains(&record) {
                complete.insert(record);
            } else {
                doomed.insert(record);
            }
        }
        for tree in [&self.chunks, &self.wrapped] {
            for item in tree.iter() {
                let (key, _) = item.map_err(backend)?;
                let record = record_of(&key)?;
                if !complete.contains(&record) {
                    doomed.insert(record);
                }
            }
        }
        for entry in std::fs::read_dir(&self.chunk_dir).map_err(backend)? {
            let path = entry.map_err(backend)?.path();
            let record = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| Hash::from_hex(n).ok())
                .map(RecordId);
            match record {
                Some(record) if complete.contains(&record) => {}
                Some(record) => {
                    doomed.insert(record);
                }
                None => std::fs::remove_file(&path).map_err(backend)?,
            }
        }
        doomed.extend(keyed.difference(&complete).copied());
        for record in doomed {
            self.erase(&record)?;
        }
        Ok(())
    }

    fn chunk_path(&self, record: &RecordId) -> PathBuf {
        self.chunk_dir.join(record.to_hex())
    }

    fn remove_prefix(tree: &sled::Tree, prefix: &[u8]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for item in tree.scan_prefix(prefix).keys() {
            batch.remove(item.map_err(backend)?);
        }
        tree.apply_batch(batch).map_err(backend)
    }
}

impl VaultStore for SledVaultStore {
    fn put_chunk(
        &self,
        record: &RecordId,
        index: u32,
        ciphertext: &[u8],
    ) -> Result<(), StoreError> {
        let path = self.chunk_path(record);
        let _turn = self
            .appending
            .lock()
            .map_err(|_| StoreError::Backend("chunk lock poisoned".into()))?;
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(backend)?;
        let offset = file.metadata().map_err(backend)?.len();
        file.write_all(ciphertext).map_err(backend)?;
        let len = u32::try_from(ciphertext.len()).map_err(backend)?;
        let mut location = [0u8; 12];
        location[..8].copy_from_slice(&offset.to_be_bytes());
        location[8..].copy_from_slice(&len.to_be_bytes());
        self.chunks
            .insert(chunk_key(record, index), &location[..])
            .map_err(backend)?;
        Ok(())
    }

    fn chunk(&self, record: &RecordId, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(location) = self.chunks.get(chunk_key(record, index)).map_err(backend)? else {
            return Ok(None);
        };
        let (offset, len) = match <[u8; 12]>::try_from(location.as_ref()) {
            Ok(l) => {
                let mut offset = [0u8; 8];
                offset.copy_from_slice(&l[..8]);
                let mut len = [0u8; 4];
                len.copy_from_slice(&l[8..]);
                (u64::from_be_bytes(offset), u32::from_be_bytes(len))
            }
            Err(_) => return Err(corrupt("chunk index", record, "not 12 bytes")),
        };
        let mut file = match std::fs::File::open(self.chunk_path(record)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        file.seek(SeekFrom::Start(offset)).map_err(backend)?;
        let mut chunk = vec![0u8; len as usize];
        file.read_exact(&mut chunk)
            .map_err(|e| corrupt("chunk", record, format!("chunk {index}: {e}")))?;
        Ok(Some(chunk))
    }

    fn put_wrapped_key(&self, record: &RecordId, wrapped: &WrappedKey) -> Result<(), StoreError> {
        let storage = self.keyring.ensure_record_key(record)?;
        let key = wrapped_key_of(record, &wrapped.recipient);
        let value = postcard::to_stdvec(wrapped).map_err(backend)?;
        let sealed = seal(&storage, WRAPPED, &key, &value)?;
        self.wrapped.insert(key, sealed).map_err(backend)?;
        Ok(())
    }

    fn wrapped_key(
        &self,
        record: &RecordId,
        recipient: &PartyId,
    ) -> Result<Option<WrappedKey>, StoreError> {
        let Some(storage) = self.keyring.record_key(record)? else {
            return Ok(None);
        };
        let key = wrapped_key_of(record, recipient);
        let Some(stored) = self.wrapped.get(key).map_err(backend)? else {
            return Ok(None);
        };
        let value = open(&storage, WRAPPED, &key, &stored, record)?;
        postcard::from_bytes(&value)
            .map(Some)
            .map_err(|e| corrupt(WRAPPED, record, e))
    }

    fn put_meta(&self, meta: &RecordMeta) -> Result<(), StoreError> {
        let record = meta.record_id();
        match std::fs::File::open(self.chunk_path(&record)) {
            Ok(file) => file.sync_all().map_err(backend)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend(e)),
        }
        let storage = self.keyring.ensure_record_key(&record)?;
        let value = meta.to_bytes().map_err(backend)?;
        let sealed = seal(&storage, META, record.0.as_bytes(), &value)?;
        self.meta
            .insert(record.0.as_bytes(), sealed)
            .map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn meta(&self, record: &RecordId) -> Result<Option<RecordMeta>, StoreError> {
        let Some(storage) = self.keyring.record_key(record)? else {
            return Ok(None);
        };
        let Some(stored) = self.meta.get(record.0.as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        let value = open(&storage, META, record.0.as_bytes(), &stored, record)?;
        RecordMeta::from_bytes(&value)
            .map(Some)
            .map_err(|e| corrupt(META, record, e))
    }

    fn records(&self) -> Result<Vec<RecordId>, StoreError> {
        let mut out = Vec::new();
        for key in self.meta.iter().keys() {
            let record = record_of(&key.map_err(backend)?)?;
            if self.keyring.record_key(&record)?.is_some() {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Destroys the storage key first (keyring rewritten and synced), then removes the
    /// record's entries from every tree and its chunk file, and flushes. See the module docs for why stale sled
    /// pages then hold nothing recoverable.
    fn erase(&self, record: &RecordId) -> Result<(), StoreError> {
        self.keyring.remove_record_key(record)?;
        self.meta.remove(record.0.as_bytes()).map_err(backend)?;
        Self::remove_prefix(&self.wrapped, record.0.as_bytes())?;
        Self::remove_prefix(&self.chunks, record.0.as_bytes())?;
        match std::fs::remove_file(self.chunk_path(record)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend(e)),
        }
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn custodian_keys(&self) -> Result<BTreeMap<u32, EncryptionSecret>, StoreError> {
        self.keyring.custodian_keys()
    }

    fn put_custodian_key(
        &self,
        generation: u32,
        secret: &EncryptionSecret,
    ) -> Result<(), StoreError> {
        self.keyring.put_custodian_key(generation, secret)
    }

    fn remove_custodian_key(&self, generation: u32) -> Result<(), StoreError> {
        self.keyring.remove_custodian_key(generation)
    }
}
