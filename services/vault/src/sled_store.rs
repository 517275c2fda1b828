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
//! is synced and its wrapped keys stored, and flushed. An erasure is journaled (tree
//! `erasing`, flushed) before the storage key is destroyed. On open, a journaled erasure is
//! finished, and anything of a record without metadata (an interrupted put: the record never
//! became visible, and without its metadata — the stream's nonce prefix — its chunks cannot be
//! opened anyway) is erased, each logged.
//!
//! **Nothing else is ever deleted.** A record with metadata is never erased because something
//! of it is missing: on open every such record is checked ([`SledVaultStore::damage`]) — its
//! storage key is in the keyring, its metadata opens under it, its data key is wrapped to the
//! custodian and to the owner, and every chunk `0..chunk_count` is in the chunk index with the
//! length the stream fixes and lies within its chunk file (presence and lengths only; the
//! chunks' contents are checked by a release before it is confirmed, and by
//! [`custos_vault::scrub()`]). What fails is reported, by record and part, and left exactly as it
//! is: the vault refuses to start on it ([`crate::server`]) until the files are restored.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use custos_crypto::Hash;
use custos_types::{PartyId, RecordId};
use custos_vault::stream::TAG_LEN;
use custos_vault::{
    Damage, EncryptionSecret, KdfParams, Part, Passphrase, RecordMeta, StoreError, VaultStore,
    WrappedKey,
};
use rand_core::{OsRng, RngCore};

use crate::keyring::{Keyring, StorageKey};

/// Default sled page cache: the vault streams, it does not cache.
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

const META: &str = "meta";
const WRAPPED: &str = "wrapped";
const ERASING: &str = "erasing";

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
    // Records whose erasure has begun (journal, see the module docs).
    erasing: sled::Tree,
    keyring: Keyring,
    // What the check on open found.
    damage: Vec<Damage>,
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

fn missing_key(record: &RecordId) -> StoreError {
    StoreError::Corrupt {
        what: format!("storage key of record {}", record.short()),
        reason: "the record has metadata but its key is not in the keyring (a shard file is \
                 missing or was replaced)"
            .into(),
    }
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

/// A chunk's `offset (u64 BE) ‖ length (u32 BE)` in its record's file.
fn location_of(stored: &[u8]) -> Option<(u64, u32)> {
    let l = <[u8; 12]>::try_from(stored).ok()?;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&l[..8]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&l[8..]);
    Some((u64::from_be_bytes(offset), u32::from_be_bytes(len)))
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
    /// keyring is sealed with `params`. Finishes an interrupted erasure and removes what an
    /// interrupted put left, then checks every record ([`SledVaultStore::damage`]); a damaged
    /// record is reported there and kept as it is.
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
        let mut store = SledVaultStore {
            dir: dir.to_path_buf(),
            chunk_dir,
            appending: Mutex::new(()),
            chunks: db.open_tree("chunks").map_err(backend)?,
            meta: db.open_tree(META).map_err(backend)?,
            wrapped: db.open_tree(WRAPPED).map_err(backend)?,
            erasing: db.open_tree(ERASING).map_err(backend)?,
            db,
            keyring,
            damage: Vec::new(),
        };
        store.recover()?;
        store.damage = store.inspect()?;
        Ok(store)
    }

    /// What the check on open found damaged, by record and part, in record order: a record with
    /// metadata whose storage key is missing from the keyring, whose metadata does not open,
    /// whose data key is not wrapped to the custodian or the owner, or one of whose chunks is
    /// missing from the index, has another length than its stream fixes, or lies beyond the end
    /// of the chunk file. Empty for a sound store. The records are kept as they are.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Re-verifies every record ([`custos_vault::scrub()`]): each chunk read, authenticated and
    /// hashed against the registered digest; the records [`SledVaultStore::damage`] named are
    /// reported as found there. Changes nothing.
    pub fn scrub(
        &self,
        progress: impl FnMut(custos_vault::ScrubProgress),
    ) -> Result<custos_vault::ScrubReport, StoreError> {
        custos_vault::scrub(self, &self.damage, progress)
    }

    /// The vault's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finishes the erasures the journal holds, then erases what an interrupted put left: the
    /// key, chunks, wrapped keys and chunk file of a record without metadata. A record with
    /// metadata is never touched here, whatever it lacks.
    fn recover(&self) -> Result<(), StoreError> {
        for key in self.erasing.iter().keys() {
            let record = record_of(&key.map_err(backend)?)?;
            tracing::warn!(target: "custos::vault", record = %record.short(), "finishing an interrupted erasure");
            self.erase(&record)?;
        }
        let mut visible = BTreeSet::new();
        for key in self.meta.iter().keys() {
            visible.insert(record_of(&key.map_err(backend)?)?);
        }
        let mut incomplete: BTreeSet<RecordId> = self
            .keyring
            .records()?
            .into_iter()
            .filter(|r| !visible.contains(r))
            .collect();
        for tree in [&self.chunks, &self.wrapped] {
            for key in tree.iter().keys() {
                let record = record_of(&key.map_err(backend)?)?;
                if !visible.contains(&record) {
                    incomplete.insert(record);
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
                Some(record) if !visible.contains(&record) => {
                    incomplete.insert(record);
                }
                Some(_) => {}
                None => {
                    tracing::warn!(target: "custos::vault", file = %path.display(), "a file that is no record's chunk file; left in place");
                }
            }
        }
        for record in incomplete {
            tracing::warn!(target: "custos::vault", record = %record.short(), "erasing what an interrupted put left (the record has no metadata and was never visible)");
            self.erase(&record)?;
        }
        Ok(())
    }

    /// The check of every record with metadata; see [`SledVaultStore::damage`].
    fn inspect(&self) -> Result<Vec<Damage>, StoreError> {
        let mut found = Vec::new();
        for item in self.meta.iter() {
            let (key, stored) = item.map_err(backend)?;
            let record = record_of(&key)?;
            let damage = |part, reason: String| Damage {
                record,
                part,
                reason,
            };
            let Some(storage) = self.keyring.record_key(&record)? else {
                let shard = self.keyring.shard_file(&record);
                let why = if shard.exists() {
                    "does not hold it"
                } else {
                    "is missing"
                };
                found.push(damage(
                    Part::StorageKey,
                    format!("not in the keyring: shard file {} {why}", shard.display()),
                ));
                continue;
            };
            let meta = match open(&storage, META, record.0.as_bytes(), &stored, &record)
                .and_then(|v| RecordMeta::from_bytes(&v).map_err(|e| corrupt(META, &record, e)))
            {
                Ok(meta) => meta,
                Err(e) => {
                    found.push(damage(Part::Metadata, e.to_string()));
                    continue;
                }
            };
            let unwrapped = [("custodian", meta.stream.custodian), ("owner", meta.owner)]
                .into_iter()
                .map(|(who, party)| {
                    self.wrapped
                        .contains_key(wrapped_key_of(&record, &party))
                        .map(|present| {
                            (!present).then(|| {
                                format!("no data key wrapped to the {who} {}", party.short())
                            })
                        })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            if let Some(reason) = unwrapped.into_iter().flatten().next() {
                found.push(damage(Part::WrappedKey, reason));
                continue;
            }
            if let Some(d) = self.inspect_chunks(&meta)? {
                found.push(d);
            }
        }
        Ok(found)
    }

    /// The first chunk of `meta`'s record that is missing from the index, has another length
    /// than the stream fixes, or lies beyond the end of the chunk file.
    fn inspect_chunks(&self, meta: &RecordMeta) -> Result<Option<Damage>, StoreError> {
        let record = meta.record_id();
        let count = meta.chunk_count;
        let damage = |part, reason: String| {
            Ok(Some(Damage {
                record,
                part,
                reason,
            }))
        };
        if meta.stream.chunk_count(meta.size).ok() != Some(count) {
            return damage(
                Part::Metadata,
                format!(
                    "declares {count} chunk(s) of {} bytes for {} bytes",
                    meta.stream.chunk_size, meta.size
                ),
            );
        }
        let path = self.chunk_path(&record);
        let file_len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return damage(
                    Part::Stream,
                    format!("the chunk file {} is missing", path.display()),
                );
            }
            Err(e) => return Err(backend(e)),
        };
        let chunk_size = u64::from(meta.stream.chunk_size);
        let tag = TAG_LEN as u64;
        let last_len = meta.size - u64::from(count - 1) * chunk_size + tag;
        let mut next = 0u32;
        for item in self.chunks.scan_prefix(record.0.as_bytes()) {
            let (key, location) = item.map_err(backend)?;
            let index = match key.get(32..).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                Some(b) => u32::from_be_bytes(b),
                None => {
                    return damage(
                        Part::Stream,
                        format!("a chunk index key of {} bytes", key.len()),
                    );
                }
            };
            if index >= count {
                // Beyond the stream: never read.
                break;
            }
            if index != next {
                break;
            }
            let Some((offset, len)) = location_of(&location) else {
                return damage(Part::Chunk(index), "its index entry is not 12 bytes".into());
            };
            let expected = if index + 1 == count {
                last_len
            } else {
                chunk_size + tag
            };
            if u64::from(len) != expected {
                return damage(
                    Part::Chunk(index),
                    format!("{len} bytes in the index, the stream fixes {expected}"),
                );
            }
            let end = offset.saturating_add(u64::from(len));
            if end > file_len {
                return damage(
                    Part::Chunk(index),
                    format!(
                        "bytes {offset}..{end} lie beyond the end of {} ({file_len} bytes): the \
                         file is truncated",
                        path.display()
                    ),
                );
            }
            next += 1;
        }
        if next < count {
            return damage(
                Part::Chunk(next),
                format!("missing from the chunk index (the record has {count} chunks)"),
            );
        }
        Ok(None)
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
        let Some((offset, len)) = location_of(&location) else {
            return Err(corrupt("chunk index", record, "not 12 bytes"));
        };
        let mut file = match std::fs::File::open(self.chunk_path(record)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        file.seek(SeekFrom::Start(offset)).map_err(backend)?;
        let mut chunk = vec![0u8; len as usize];
        file.read_exact(&mut chunk).map_err(|e| {
            corrupt(
                &format!("chunk {index}"),
                record,
                format!(
                    "bytes {offset}..{} cannot be read ({e}): the chunk file is truncated",
                    offset + u64::from(len)
                ),
            )
        })?;
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
        let key = wrapped_key_of(record, recipient);
        let Some(stored) = self.wrapped.get(key).map_err(backend)? else {
            return Ok(None);
        };
        let Some(storage) = self.keyring.record_key(record)? else {
            return Err(missing_key(record));
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
        let Some(stored) = self.meta.get(record.0.as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        let Some(storage) = self.keyring.record_key(record)? else {
            return Err(missing_key(record));
        };
        let value = open(&storage, META, record.0.as_bytes(), &stored, record)?;
        RecordMeta::from_bytes(&value)
            .map(Some)
            .map_err(|e| corrupt(META, record, e))
    }

    /// Every record with metadata, damaged ones included (their metadata reads fail), so that
    /// whatever goes through every record (rotation, listing, a scrub) meets the damage
    /// instead of skipping it.
    fn records(&self) -> Result<Vec<RecordId>, StoreError> {
        let mut out = Vec::new();
        for key in self.meta.iter().keys() {
            out.push(record_of(&key.map_err(backend)?)?);
        }
        Ok(out)
    }

    /// Journals the erasure (flushed), destroys the storage key (keyring rewritten and
    /// synced), then removes the record's entries from every tree and its chunk file, clears
    /// the journal and flushes. See the module docs for why stale sled pages then hold nothing
    /// recoverable.
    fn erase(&self, record: &RecordId) -> Result<(), StoreError> {
        self.erasing
            .insert(record.0.as_bytes(), &[][..])
            .map_err(backend)?;
        self.db.flush().map_err(backend)?;
        self.keyring.remove_record_key(record)?;
        self.meta.remove(record.0.as_bytes()).map_err(backend)?;
        Self::remove_prefix(&self.wrapped, record.0.as_bytes())?;
        Self::remove_prefix(&self.chunks, record.0.as_bytes())?;
        match std::fs::remove_file(self.chunk_path(record)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend(e)),
        }
        self.erasing.remove(record.0.as_bytes()).map_err(backend)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use custos_crypto::PartyKeys;
    use custos_types::{Category, Height, TxId};
    use custos_vault::record::Attributes;
    use custos_vault::{EncryptionKey, NewRecord, Registration, Vault};

    use super::*;

    fn open_vault(dir: &Path, custodian: &PartyKeys) -> Arc<Vault<SledVaultStore>> {
        let passphrase = Passphrase::new("a passphrase for store tests".into()).unwrap();
        let store = SledVaultStore::open(dir, &passphrase, KdfParams::INSECURE_FOR_TESTS).unwrap();
        Vault::open(store, PartyId(custodian.public()), &mut OsRng).unwrap()
    }

    fn new_record(record_id: RecordId, owner: &PartyKeys, size: u64) -> NewRecord {
        NewRecord {
            record_id,
            owner: PartyId(owner.public()),
            category: Category::parse("lab", "category").unwrap(),
            attributes: Attributes::new(),
            size,
            commitment_salt: None,
        }
    }

    /// Puts and commits a record of `size` random bytes (chunks of the default size).
    fn put(vault: &Arc<Vault<SledVaultStore>>, owner: &PartyKeys, size: usize) -> RecordMeta {
        let mut id = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        let mut plaintext = vec![0u8; size];
        OsRng.fill_bytes(&mut plaintext);
        let mut session = vault
            .begin_put(
                new_record(RecordId(Hash(id)), owner, size as u64),
                EncryptionKey::of_party(owner),
                &mut OsRng,
            )
            .unwrap();
        session.write(&plaintext).unwrap();
        let registration = Registration {
            tx_id: TxId(Hash([1; 32])),
            height: Height(1),
        };
        session
            .finish(&mut OsRng)
            .unwrap()
            .commit(registration, &mut OsRng)
            .unwrap()
    }

    fn parts(store: &SledVaultStore) -> Vec<(RecordId, Part)> {
        store.damage().iter().map(|d| (d.record, d.part)).collect()
    }

    #[test]
    fn sound_records_pass_the_check_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (custodian, owner) = (
            PartyKeys::generate(&mut OsRng),
            PartyKeys::generate(&mut OsRng),
        );
        let vault = open_vault(dir.path(), &custodian);
        for size in [0, 1, 3 * 64 * 1024, 3 * 64 * 1024 + 5] {
            put(&vault, &owner, size);
        }
        drop(vault);
        let vault = open_vault(dir.path(), &custodian);
        assert!(
            vault.store().damage().is_empty(),
            "{:?}",
            vault.store().damage()
        );
        assert_eq!(vault.list(None).unwrap().len(), 4);
    }

    #[test]
    fn an_erasure_interrupted_after_its_key_was_destroyed_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (custodian, owner) = (
            PartyKeys::generate(&mut OsRng),
            PartyKeys::generate(&mut OsRng),
        );
        let vault = open_vault(dir.path(), &custodian);
        let record = put(&vault, &owner, 100_000).record_id();
        let store = vault.store();
        // The crash: journaled, key destroyed, nothing else removed yet.
        store.erasing.insert(record.0.as_bytes(), &[][..]).unwrap();
        store.db.flush().unwrap();
        store.keyring.remove_record_key(&record).unwrap();
        let chunk_file = store.chunk_path(&record);
        drop(vault);

        let vault = open_vault(dir.path(), &custodian);
        let store = vault.store();
        assert!(store.damage().is_empty());
        assert_eq!(store.meta(&record).unwrap(), None);
        assert!(store.records().unwrap().is_empty());
        assert!(!chunk_file.exists());
        assert!(store.erasing.is_empty());
    }

    #[test]
    fn a_record_whose_key_is_gone_without_an_erasure_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (custodian, owner) = (
            PartyKeys::generate(&mut OsRng),
            PartyKeys::generate(&mut OsRng),
        );
        let vault = open_vault(dir.path(), &custodian);
        let meta = put(&vault, &owner, 100_000);
        let record = meta.record_id();
        let store = vault.store();
        // The key lost by other means than an erasure (a shard restored from an old copy).
        store.keyring.remove_record_key(&record).unwrap();
        let chunk_file = store.chunk_path(&record);
        let ciphertext = std::fs::read(&chunk_file).unwrap();
        drop(vault);

        // Opened twice: the first open changed nothing.
        for round in 0..2 {
            let vault = open_vault(dir.path(), &custodian);
            let store = vault.store();
            assert_eq!(parts(store), [(record, Part::StorageKey)]);
            assert_eq!(store.records().unwrap(), [record]);
            assert!(matches!(
                store.meta(&record),
                Err(StoreError::Corrupt { what, .. }) if what.starts_with("storage key")
            ));
            // Nothing that goes through every record skips it: listing fails, and a rotation
            // stops before it destroys the custodian key the record's data key is wrapped to.
            assert!(vault.list(None).is_err());
            if round == 1 {
                let before = store.custodian_keys().unwrap().len();
                assert!(vault.rotate(&mut OsRng).is_err());
                assert_eq!(store.custodian_keys().unwrap().len(), before + 1);
            }
            // A put under the same id is refused instead of erasing what is there.
            assert!(
                vault
                    .begin_put(
                        new_record(record, &owner, 1),
                        EncryptionKey::of_party(&owner),
                        &mut OsRng
                    )
                    .is_err()
            );
            assert_eq!(std::fs::read(&chunk_file).unwrap(), ciphertext);
            assert_eq!(store.chunks.scan_prefix(record.0.as_bytes()).count(), 2);
            assert_eq!(store.wrapped.scan_prefix(record.0.as_bytes()).count(), 2);
        }
    }

    #[test]
    fn a_chunk_of_the_wrong_length_or_beyond_the_file_end_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (custodian, owner) = (
            PartyKeys::generate(&mut OsRng),
            PartyKeys::generate(&mut OsRng),
        );
        let vault = open_vault(dir.path(), &custodian);
        let short = put(&vault, &owner, 3 * 64 * 1024 + 5).record_id();
        let cut = put(&vault, &owner, 3 * 64 * 1024 + 5).record_id();
        let unwrapped = put(&vault, &owner, 10).record_id();
        let store = vault.store();
        // Chunk 1 replaced by a shorter one (appended; the index points there).
        let chunk = store.chunk(&short, 1).unwrap().unwrap();
        store.put_chunk(&short, 1, &chunk[..100]).unwrap();
        // The last 3 bytes of the file gone.
        let file = store.chunk_path(&cut);
        let len = std::fs::metadata(&file).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        // The owner's wrapped key removed.
        store
            .wrapped
            .remove(wrapped_key_of(&unwrapped, &PartyId(owner.public())))
            .unwrap();
        drop(vault);

        let vault = open_vault(dir.path(), &custodian);
        let mut expected = vec![
            (short, Part::Chunk(1)),
            (cut, Part::Chunk(3)),
            (unwrapped, Part::WrappedKey),
        ];
        expected.sort();
        assert_eq!(
            parts(vault.store()),
            expected,
            "{:?}",
            vault.store().damage()
        );
        for d in vault.store().damage() {
            match d.part {
                Part::Chunk(1) => assert!(d.reason.contains("100 bytes in the index"), "{d}"),
                Part::Chunk(3) => assert!(d.reason.contains("truncated"), "{d}"),
                _ => assert!(d.reason.contains("owner"), "{d}"),
            }
        }
        assert!(std::fs::metadata(&file).unwrap().len() == len - 3);
    }
}
