//! The vault's keyring: the custodian's wrapping secrets and one storage key per record, sealed
//! under the passphrase (Argon2id once, then XChaCha20-Poly1305 per file).
//!
//! Layout: `keyring.json` holds the custodian's wrapping secrets; `keyring/XX.sealed` holds the
//! storage keys of the records whose id starts with byte `XX` (256 shards, a shard with no key
//! has no file). Every file is sealed under the same passphrase-derived key, with its own label
//! (the shard's number is in it, so a shard cannot pass for another), and rewritten whole
//! through a temporary file and an atomic rename. A new record or an erasure rewrites one shard
//! — 1/256 of the keys — instead of every key the vault holds: a single file made each put cost
//! O(records) bytes sealed and synced, O(records²) to fill a vault.
//!
//! This is what makes erasure final: a record's storage key lives nowhere but its shard, so
//! rewriting that shard without it destroys it (see [`crate::sled_store`]).
//!
//! A version 1 keyring (one file with every key) is split into shards when opened: the shards
//! are written first, then `keyring.json` is rewritten without the record keys; a crash in
//! between leaves the version 1 file, which is split again on the next open.

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

const LABEL_V1: &str = "custos/vault/keyring/v1";
const LABEL: &str = "custos/vault/keyring/v2";
const SHARD_LABEL: &str = "custos/vault/keyring/v2/shard";
const KIND: &str = "custos-vault-keyring";
const SHARD_KIND: &str = "custos-vault-keyring-shard";
const MAGIC_V1: &[u8; 4] = b"CKR1";
const MAGIC: &[u8; 4] = b"CKR2";
const SHARD_MAGIC: &[u8; 4] = b"CKS2";
/// Shards of the record keys: by the first byte of the record id.
pub(crate) const SHARDS: usize = 256;

/// A record's storage key: encrypts what the store keeps about the record besides its
/// ciphertext. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct StorageKey(pub(crate) [u8; 32]);

type Shard = BTreeMap<RecordId, StorageKey>;

struct State {
    custodian: BTreeMap<u32, EncryptionSecret>,
    /// `SHARDS` maps; record `r` is in `shards[shard_of(r)]`.
    shards: Vec<Shard>,
}

impl Default for State {
    fn default() -> Self {
        State {
            custodian: BTreeMap::new(),
            shards: vec![Shard::new(); SHARDS],
        }
    }
}

fn shard_of(record: &RecordId) -> usize {
    usize::from(record.0.0[0])
}

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    kind: String,
    version: u32,
    sealed: PassphraseSealed,
}

#[derive(Serialize, Deserialize)]
struct ShardFile {
    kind: String,
    version: u32,
    shard: u8,
    sealed: PassphraseSealed,
}

/// The sealed keyring files and their contents in memory.
pub(crate) struct Keyring {
    path: PathBuf,
    shard_dir: PathBuf,
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

fn shard_label(shard: usize) -> String {
    format!("{SHARD_LABEL}/{shard:02x}")
}

/// Replaces `path` with `bytes` atomically (a crash leaves the old file or the new), readable
/// by the owner only, synced with its directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
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
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| backend("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| backend("cannot replace", path, e))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| backend("cannot sync", dir, e))?;
    }
    Ok(())
}

impl Keyring {
    /// Opens the keyring at `path` (shards in `keyring/` beside it) with `passphrase`, or
    /// creates an empty one there; splits a version 1 keyring into shards.
    pub(crate) fn open_or_create(
        path: &Path,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, StoreError> {
        let shard_dir = path.with_file_name("keyring");
        std::fs::create_dir_all(&shard_dir).map_err(|e| backend("cannot create", &shard_dir, e))?;
        if path.exists() {
            let text =
                std::fs::read_to_string(path).map_err(|e| backend("cannot read", path, e))?;
            let file: KeyringFile =
                serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
            if file.kind != KIND || !(file.version == 1 || file.version == 2) {
                return Err(corrupt(format!(
                    "expected a version 1 or 2 {KIND}, got kind `{}` version {}",
                    file.kind, file.version
                )));
            }
            let key = SealingKey::for_sealed(passphrase, &file.sealed)
                .map_err(|e| corrupt(e.to_string()))?;
            let label = if file.version == 1 { LABEL_V1 } else { LABEL };
            let plaintext = key
                .open(label, &file.sealed)
                .map_err(|e| corrupt(e.to_string()))?;
            let keyring = Keyring {
                path: path.to_path_buf(),
                shard_dir,
                key,
                state: Mutex::new(State::default()),
            };
            {
                let mut state = keyring.lock()?;
                if file.version == 1 {
                    *state = decode_v1(&plaintext)?;
                    for shard in 0..SHARDS {
                        keyring.write_shard(&state, shard)?;
                    }
                    keyring.write_main(&state)?;
                } else {
                    state.custodian = decode_custodian(&plaintext)?;
                    keyring.read_shards(&mut state)?;
                }
            }
            Ok(keyring)
        } else {
            let key = SealingKey::derive(passphrase, params, &mut OsRng)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let keyring = Keyring {
                path: path.to_path_buf(),
                shard_dir,
                key,
                state: Mutex::new(State::default()),
            };
            // Shards without their keyring.json: refuse rather than start over on top of them
            // (every record they hold a key for would be erased as incomplete).
            let left = std::fs::read_dir(&keyring.shard_dir)
                .map_err(|e| backend("cannot list", &keyring.shard_dir, e))?
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".sealed"))
                .count();
            if left > 0 {
                return Err(corrupt(format!(
                    "{} is missing but {} holds {left} shards of record keys: restore the file \
                     (or move the folder away to start an empty vault)",
                    path.display(),
                    keyring.shard_dir.display()
                )));
            }
            keyring.write_main(&*keyring.lock()?)?;
            Ok(keyring)
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("keyring lock poisoned".into()))
    }

    fn shard_path(&self, shard: usize) -> PathBuf {
        self.shard_dir.join(format!("{shard:02x}.sealed"))
    }

    /// Reads every shard file (removing a temporary file a crash left behind).
    fn read_shards(&self, state: &mut State) -> Result<(), StoreError> {
        let entries = std::fs::read_dir(&self.shard_dir)
            .map_err(|e| backend("cannot list", &self.shard_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| backend("cannot list", &self.shard_dir, e))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(|e| backend("cannot remove", &path, e))?;
                continue;
            }
            let shard = name
                .strip_suffix(".sealed")
                .filter(|n| n.len() == 2)
                .and_then(|n| u8::from_str_radix(n, 16).ok())
                .ok_or_else(|| {
                    corrupt(format!(
                        "unexpected file {} among the shards",
                        path.display()
                    ))
                })?;
            let text =
                std::fs::read_to_string(&path).map_err(|e| backend("cannot read", &path, e))?;
            let file: ShardFile = serde_json::from_str(&text)
                .map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
            if file.kind != SHARD_KIND || file.version != 2 || file.shard != shard {
                return Err(corrupt(format!(
                    "{}: expected version 2 {SHARD_KIND} {shard:02x}, got kind `{}` version {} shard {:02x}",
                    path.display(),
                    file.kind,
                    file.version,
                    file.shard
                )));
            }
            let shard = usize::from(shard);
            let plaintext = self
                .key
                .open(&shard_label(shard), &file.sealed)
                .map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
            state.shards[shard] = decode_shard(&plaintext, shard)?;
        }
        Ok(())
    }

    /// Seals `plaintext` under `label` and writes it to `path` as the JSON file `file` makes
    /// of the sealed box.
    fn write_sealed<F: Serialize>(
        &self,
        path: &Path,
        label: &str,
        plaintext: &[u8],
        file: impl FnOnce(PassphraseSealed) -> F,
    ) -> Result<(), StoreError> {
        let sealed = self
            .key
            .seal(label, plaintext, &mut OsRng)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let text =
            serde_json::to_vec(&file(sealed)).map_err(|e| StoreError::Backend(e.to_string()))?;
        write_atomic(path, &text)
    }

    /// Seals the custodian's secrets into `keyring.json`.
    fn write_main(&self, state: &State) -> Result<(), StoreError> {
        self.write_sealed(&self.path, LABEL, &encode_custodian(state), |sealed| {
            KeyringFile {
                kind: KIND.into(),
                version: 2,
                sealed,
            }
        })
    }

    /// Seals shard `shard` into its file, or removes the file when the shard holds no key.
    fn write_shard(&self, state: &State, shard: usize) -> Result<(), StoreError> {
        let path = self.shard_path(shard);
        let keys = &state.shards[shard];
        if keys.is_empty() {
            return match std::fs::remove_file(&path) {
                Ok(()) => sync_parent(&path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(backend("cannot remove", &path, e)),
            };
        }
        self.write_sealed(&path, &shard_label(shard), &encode_shard(keys), |sealed| {
            ShardFile {
                kind: SHARD_KIND.into(),
                version: 2,
                shard: shard as u8,
                sealed,
            }
        })
    }

    /// The shard file that holds (or would hold) the storage key of `record`.
    pub(crate) fn shard_file(&self, record: &RecordId) -> PathBuf {
        self.shard_path(shard_of(record))
    }

    /// The storage key of `record`, if it has one.
    pub(crate) fn record_key(&self, record: &RecordId) -> Result<Option<StorageKey>, StoreError> {
        Ok(self.lock()?.shards[shard_of(record)].get(record).cloned())
    }

    /// The storage key of `record`, created (and its shard rewritten) if it has none.
    pub(crate) fn ensure_record_key(&self, record: &RecordId) -> Result<StorageKey, StoreError> {
        let mut state = self.lock()?;
        let shard = shard_of(record);
        if let Some(key) = state.shards[shard].get(record) {
            return Ok(key.clone());
        }
        let mut key = StorageKey([0u8; 32]);
        OsRng.fill_bytes(&mut key.0);
        state.shards[shard].insert(*record, key.clone());
        if let Err(e) = self.write_shard(&state, shard) {
            state.shards[shard].remove(record);
            return Err(e);
        }
        Ok(key)
    }

    /// Destroys the storage key of `record`: its shard is rewritten without it.
    pub(crate) fn remove_record_key(&self, record: &RecordId) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let shard = shard_of(record);
        if state.shards[shard].remove(record).is_some() {
            self.write_shard(&state, shard)?;
        }
        Ok(())
    }

    /// Records that have a storage key.
    pub(crate) fn records(&self) -> Result<Vec<RecordId>, StoreError> {
        Ok(self
            .lock()?
            .shards
            .iter()
            .flat_map(|shard| shard.keys().copied())
            .collect())
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
        if let Err(e) = self.write_main(&state) {
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
            self.write_main(&state)?;
        }
        Ok(())
    }
}

/// Reads a length-prefixed sequence of fixed-size items.
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

    fn magic(&mut self, magic: &[u8; 4]) -> Result<(), StoreError> {
        if self.take(4)? != magic {
            return Err(corrupt("unknown contents version"));
        }
        Ok(())
    }

    fn custodian(&mut self) -> Result<BTreeMap<u32, EncryptionSecret>, StoreError> {
        let mut out = BTreeMap::new();
        for _ in 0..self.u32()? {
            let generation = self.u32()?;
            let secret = EncryptionSecret::from_slice(self.take(32)?)
                .ok_or_else(|| corrupt("custodian secret"))?;
            out.insert(generation, secret);
        }
        Ok(out)
    }

    fn records(
        &mut self,
        mut place: impl FnMut(RecordId, StorageKey) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for _ in 0..self.u32()? {
            let record =
                RecordId(Hash::from_slice(self.take(32)?).map_err(|e| corrupt(e.to_string()))?);
            let mut key = StorageKey([0u8; 32]);
            key.0.copy_from_slice(self.take(32)?);
            place(record, key)?;
        }
        Ok(())
    }

    fn end(&self) -> Result<(), StoreError> {
        if !self.0.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(())
    }
}

/// `"CKR2" ‖ n (u32 BE) ‖ n × (generation u32 BE ‖ secret 32)`, in a zeroizing buffer.
fn encode_custodian(state: &State) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(8 + state.custodian.len() * 36));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(state.custodian.len() as u32).to_be_bytes());
    for (generation, secret) in &state.custodian {
        out.extend_from_slice(&generation.to_be_bytes());
        out.extend_from_slice(secret.expose());
    }
    out
}

fn decode_custodian(bytes: &[u8]) -> Result<BTreeMap<u32, EncryptionSecret>, StoreError> {
    let mut r = Reader(bytes);
    r.magic(MAGIC)?;
    let custodian = r.custodian()?;
    r.end()?;
    Ok(custodian)
}

/// `"CKS2" ‖ m (u32 BE) ‖ m × (record 32 ‖ storage key 32)`, in a zeroizing buffer.
fn encode_shard(keys: &Shard) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(8 + keys.len() * 64));
    out.extend_from_slice(SHARD_MAGIC);
    out.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    for (record, key) in keys {
        out.extend_from_slice(record.0.as_bytes());
        out.extend_from_slice(&key.0);
    }
    out
}

fn decode_shard(bytes: &[u8], shard: usize) -> Result<Shard, StoreError> {
    let mut r = Reader(bytes);
    r.magic(SHARD_MAGIC)?;
    let mut keys = Shard::new();
    r.records(|record, key| {
        if shard_of(&record) != shard {
            return Err(corrupt(format!(
                "shard {shard:02x} holds the key of record {}, which belongs to another shard",
                record.0.short()
            )));
        }
        keys.insert(record, key);
        Ok(())
    })?;
    r.end()?;
    Ok(keys)
}

/// A version 1 keyring: `"CKR1" ‖ custodian secrets (as in version 2) ‖ m (u32 BE) ‖
/// m × (record 32 ‖ storage key 32)`.
fn decode_v1(bytes: &[u8]) -> Result<State, StoreError> {
    let mut r = Reader(bytes);
    r.magic(MAGIC_V1)?;
    let mut state = State {
        custodian: r.custodian()?,
        ..State::default()
    };
    r.records(|record, key| {
        state.shards[shard_of(&record)].insert(record, key);
        Ok(())
    })?;
    r.end()?;
    Ok(state)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn passphrase() -> Passphrase {
        Passphrase::new("a passphrase for keyring tests".into()).unwrap()
    }

    fn open(path: &Path) -> Result<Keyring, StoreError> {
        Keyring::open_or_create(path, &passphrase(), KdfParams::INSECURE_FOR_TESTS)
    }

    fn record(first: u8, n: u8) -> RecordId {
        let mut b = [n; 32];
        b[0] = first;
        RecordId(Hash(b))
    }

    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().to_string(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_new_record_key_rewrites_its_shard_only_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let shards = dir.path().join("keyring");
        let keyring = open(&path).unwrap();
        let a = keyring.ensure_record_key(&record(0x05, 1)).unwrap();
        let b = keyring.ensure_record_key(&record(0xa0, 2)).unwrap();
        let main = std::fs::read(&path).unwrap();
        let before = files(&shards);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            ["05.sealed", "a0.sealed"]
        );
        // Another key in shard 05: that file changes, shard a0 and keyring.json do not.
        let c = keyring.ensure_record_key(&record(0x05, 3)).unwrap();
        let after = files(&shards);
        assert_ne!(after["05.sealed"], before["05.sealed"]);
        assert_eq!(after["a0.sealed"], before["a0.sealed"]);
        assert_eq!(std::fs::read(&path).unwrap(), main);
        // Asking again returns the same key and writes nothing.
        assert_eq!(keyring.ensure_record_key(&record(0x05, 3)).unwrap().0, c.0);
        assert_eq!(files(&shards), after);
        drop(keyring);

        let keyring = open(&path).unwrap();
        for (r, k) in [
            (record(0x05, 1), &a),
            (record(0xa0, 2), &b),
            (record(0x05, 3), &c),
        ] {
            assert_eq!(keyring.record_key(&r).unwrap().unwrap().0, k.0);
        }
        assert_eq!(keyring.records().unwrap().len(), 3);
        // Erasing the last key of a shard removes its file; the key is gone after a reopen.
        keyring.remove_record_key(&record(0xa0, 2)).unwrap();
        assert_eq!(files(&shards).keys().collect::<Vec<_>>(), ["05.sealed"]);
        keyring.remove_record_key(&record(0x05, 1)).unwrap();
        drop(keyring);
        let keyring = open(&path).unwrap();
        assert!(keyring.record_key(&record(0x05, 1)).unwrap().is_none());
        assert!(keyring.record_key(&record(0xa0, 2)).unwrap().is_none());
        assert_eq!(keyring.records().unwrap(), [record(0x05, 3)]);
        // No key is stored in the clear anywhere.
        for bytes in files(&shards)
            .values()
            .chain([&std::fs::read(&path).unwrap()])
        {
            assert!(!bytes.windows(32).any(|w| w == c.0));
            assert!(!bytes.windows(64).any(|w| w == hex::encode(c.0).as_bytes()));
        }
    }

    #[test]
    fn a_shard_under_another_name_a_wrong_passphrase_or_lost_main_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let shards = dir.path().join("keyring");
        let keyring = open(&path).unwrap();
        keyring.ensure_record_key(&record(0x05, 1)).unwrap();
        drop(keyring);
        let wrong = Keyring::open_or_create(
            &path,
            &Passphrase::new("another passphrase entirely".into()).unwrap(),
            KdfParams::INSECURE_FOR_TESTS,
        );
        assert!(matches!(wrong, Err(StoreError::Corrupt { .. })));

        std::fs::rename(shards.join("05.sealed"), shards.join("06.sealed")).unwrap();
        match open(&path) {
            Err(StoreError::Corrupt { reason, .. }) => {
                assert!(reason.contains("06.sealed"), "{reason}")
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        std::fs::rename(shards.join("06.sealed"), shards.join("05.sealed")).unwrap();
        assert!(open(&path).is_ok());

        std::fs::remove_file(&path).unwrap();
        match open(&path) {
            Err(StoreError::Corrupt { reason, .. }) => {
                assert!(reason.contains("1 shards of record keys"), "{reason}")
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        // Nothing was written over the shard.
        assert!(shards.join("05.sealed").exists());
        assert!(!path.exists());
    }

    #[test]
    fn a_version_1_keyring_is_split_into_shards_with_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let secret = EncryptionSecret::generate(&mut OsRng);
        let records: Vec<(RecordId, [u8; 32])> = (0..40u8)
            .map(|i| {
                let mut k = [0u8; 32];
                OsRng.fill_bytes(&mut k);
                (record(i.wrapping_mul(37), i), k)
            })
            .collect();
        // A keyring as the previous release wrote it.
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC_V1);
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&7u32.to_be_bytes());
        v1.extend_from_slice(secret.expose());
        v1.extend_from_slice(&(records.len() as u32).to_be_bytes());
        for (r, k) in &records {
            v1.extend_from_slice(r.0.as_bytes());
            v1.extend_from_slice(k);
        }
        let key =
            SealingKey::derive(&passphrase(), KdfParams::INSECURE_FOR_TESTS, &mut OsRng).unwrap();
        let sealed = key.seal(LABEL_V1, &v1, &mut OsRng).unwrap();
        std::fs::write(
            &path,
            serde_json::to_vec(&KeyringFile {
                kind: KIND.into(),
                version: 1,
                sealed,
            })
            .unwrap(),
        )
        .unwrap();

        for _ in 0..2 {
            let keyring = open(&path).unwrap();
            for (r, k) in &records {
                assert_eq!(&keyring.record_key(r).unwrap().unwrap().0, k);
            }
            assert_eq!(keyring.records().unwrap().len(), records.len());
            assert_eq!(
                keyring.custodian_keys().unwrap()[&7].expose(),
                secret.expose()
            );
            let file: KeyringFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(file.version, 2);
        }
        let distinct: std::collections::BTreeSet<u8> =
            records.iter().map(|(r, _)| r.0.0[0]).collect();
        assert_eq!(files(&dir.path().join("keyring")).len(), distinct.len());
    }
}
