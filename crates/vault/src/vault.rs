//! The custodian's operations over a [`VaultStore`]: put, release, the patient's own key,
//! rotation and erasure.
//!
//! Key hierarchy. Each record version has a fresh [`DataKey`]; its chunks are sealed under it
//! ([`crate::stream`]). The data key is stored only wrapped ([`crate::wrap`]): to the custodian's
//! current wrapping key (an X25519 key of the vault, numbered by generation) and to the patient's
//! registered encryption key. A release wraps it once more, to the requester, and that wrap
//! leaves the vault. Rotation re-wraps every data key to a fresh custodian key and destroys the
//! old one; no record is re-encrypted.
//!
//! Commits (which wrap to the current custodian key) and rotations are serialized, so a record
//! put during a rotation is never left wrapped to a destroyed key.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use custos_crypto::{Hash, sha256_parts};
use custos_types::{PartyId, RecordId, RequestId};
use rand_core::{CryptoRng, RngCore};

use crate::record::{NewRecord, RecordMeta, Registration};
use crate::store::{StoreError, VaultStore};
use crate::stream::{
    ChunkDecryptor, DataKey, RecordVersion, StreamEncryptor, StreamError, StreamParams,
    StreamSummary,
};
use crate::wrap::{
    EncryptionKey, EncryptionSecret, WrapContext, WrapError, WrappedKey, unwrap_key, wrap_key,
};

const RELEASE_TAG: &[u8] = b"custos/vault/release/v1\0";

/// Why a vault operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encryption or decryption failed (integrity errors name the record).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// Wrapping or unwrapping a data key failed.
    #[error(transparent)]
    Wrap(#[from] WrapError),
    /// No complete record with this id.
    #[error("record {0} is not in this vault")]
    UnknownRecord(RecordId),
    /// The record is already stored, or being put.
    #[error("record {0} is already in this vault or being put")]
    RecordExists(RecordId),
    /// The plaintext is longer or shorter than declared.
    #[error("record {record}: declared {declared} bytes, received {received}")]
    SizeMismatch {
        /// The record.
        record: RecordId,
        /// The declared size.
        declared: u64,
        /// What arrived (so far, if too many).
        received: u64,
    },
    /// No key of the record is wrapped to this party.
    #[error("record {record}: no data key is wrapped to {party}")]
    NoWrappedKey {
        /// The record.
        record: RecordId,
        /// The party.
        party: PartyId,
    },
    /// A chunk the metadata promises is missing.
    #[error("record {record}: chunk {index} of {count} is missing from the store")]
    MissingChunk {
        /// The record.
        record: RecordId,
        /// The chunk.
        index: u32,
        /// Chunks the record has.
        count: u32,
    },
    /// The custodian's wrap is to a key the vault no longer holds.
    #[error(
        "record {record}: the data key is wrapped to custodian key {key}, which this vault does not hold"
    )]
    UnknownCustodianKey {
        /// The record.
        record: RecordId,
        /// The key it is wrapped to.
        key: EncryptionKey,
    },
    /// The vault has no custodian wrapping key.
    #[error("the vault has no custodian wrapping key")]
    NoCustodianKey,
    /// Rotation ran out of generation numbers.
    #[error("custodian key generations are exhausted")]
    GenerationsExhausted,
    /// A lock was poisoned by a panic.
    #[error("vault lock poisoned")]
    Poisoned,
    /// A release header's digest does not match its contents.
    #[error("record {record}: the release digest does not match the release header")]
    ReleaseDigest {
        /// The record.
        record: RecordId,
    },
    /// The decrypted stream is not the one the header (and the ledger) describe.
    #[error("record {record}: the received stream is not the one released: {detail}")]
    StreamMismatch {
        /// The record.
        record: RecordId,
        /// Expected and received chunk count, size and digest.
        detail: String,
    },
    /// The stored chunks authenticate but are not the stream registered on the ledger.
    #[error("record {record}: the stored chunks are not the ones registered: {detail}")]
    NotRegistered {
        /// The record.
        record: RecordId,
        /// Registered and stored chunk count, size and digest.
        detail: String,
    },
}

impl VaultError {
    /// Whether the error says that something the store holds is missing or altered (a key,
    /// metadata, a wrapped key, a chunk), rather than a failing backend or a refused call.
    pub fn is_damage(&self) -> bool {
        match self {
            VaultError::Store(StoreError::Corrupt { .. })
            | VaultError::Wrap(_)
            | VaultError::MissingChunk { .. }
            | VaultError::NoWrappedKey { .. }
            | VaultError::UnknownCustodianKey { .. }
            | VaultError::NotRegistered { .. } => true,
            VaultError::Stream(e) => matches!(
                e,
                StreamError::Integrity { .. }
                    | StreamError::Truncated { .. }
                    | StreamError::AfterFinal { .. }
                    | StreamError::ChunkLength { .. }
                    | StreamError::ChunkSize { .. }
            ),
            _ => false,
        }
    }
}

/// The result of a key rotation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rotation {
    /// The new key's generation.
    pub generation: u32,
    /// The new key.
    pub public: EncryptionKey,
    /// Data keys re-wrapped to it.
    pub rewrapped: u64,
}

/// A custodian's vault over the store `S`.
pub struct Vault<S> {
    store: S,
    custodian: PartyId,
    // Serializes commits with rotations.
    keys: Mutex<()>,
    // Records being put; a second put of the same id is refused.
    in_flight: Mutex<BTreeSet<RecordId>>,
}

impl<S: VaultStore> Vault<S> {
    /// Opens the vault of `custodian` over `store`: creates the first custodian wrapping key if
    /// there is none, and finishes a rotation a crash interrupted.
    pub fn open<R: RngCore + CryptoRng>(
        store: S,
        custodian: PartyId,
        rng: &mut R,
    ) -> Result<Arc<Self>, VaultError> {
        let vault = Vault {
            store,
            custodian,
            keys: Mutex::new(()),
            in_flight: Mutex::new(BTreeSet::new()),
        };
        let keys = vault.store.custodian_keys()?;
        match keys.last_key_value() {
            None => vault
                .store
                .put_custodian_key(1, &EncryptionSecret::generate(rng))?,
            Some((&newest, secret)) if keys.len() > 1 => {
                let secret = secret.clone();
                let _guard = vault.lock_keys()?;
                vault.rewrap_all(&secret, rng)?;
                for generation in keys.keys().filter(|g| **g != newest) {
                    vault.store.remove_custodian_key(*generation)?;
                }
            }
            Some(_) => {}
        }
        Ok(Arc::new(vault))
    }

    /// The custodian whose vault this is.
    pub fn custodian(&self) -> PartyId {
        self.custodian
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn lock_keys(&self) -> Result<MutexGuard<'_, ()>, VaultError> {
        self.keys.lock().map_err(|_| VaultError::Poisoned)
    }

    /// The current custodian wrapping key and its generation.
    pub fn custodian_key(&self) -> Result<(u32, EncryptionKey), VaultError> {
        let keys = self.store.custodian_keys()?;
        keys.last_key_value()
            .map(|(g, s)| (*g, s.public()))
            .ok_or(VaultError::NoCustodianKey)
    }

    fn current_secret(&self) -> Result<EncryptionSecret, VaultError> {
        let keys = self.store.custodian_keys()?;
        keys.last_key_value()
            .map(|(_, s)| s.clone())
            .ok_or(VaultError::NoCustodianKey)
    }

    fn context(&self, meta_stream: &StreamParams, recipient: PartyId) -> WrapContext {
        wrap_context(meta_stream, self.custodian, recipient)
    }

    /// Starts putting `record`, whose data key will also be wrapped to the owner's
    /// `owner_key`.
    pub fn begin_put<R: RngCore + CryptoRng>(
        self: &Arc<Self>,
        record: NewRecord,
        owner_key: EncryptionKey,
        rng: &mut R,
    ) -> Result<PutSession<S>, VaultError> {
        let id = record.record_id;
        if self.store.meta(&id)?.is_some() {
            return Err(VaultError::RecordExists(id));
        }
        let params = StreamParams::new(id, RecordVersion::FIRST, self.custodian, rng);
        params.chunk_count(record.size)?;
        {
            let mut in_flight = self.in_flight.lock().map_err(|_| VaultError::Poisoned)?;
            if !in_flight.insert(id) {
                return Err(VaultError::RecordExists(id));
            }
        }
        // Built first so that an error below releases the id again (see `Drop`).
        let mut session = PutSession {
            vault: self.clone(),
            key: DataKey::generate(rng),
            encryptor: None,
            owner_key,
            record,
            done: false,
        };
        // What a crash left of an earlier attempt at this id goes first.
        self.store.erase(&id)?;
        let encryptor =
            StreamEncryptor::with_expected_size(&session.key, params, session.record.size)?;
        session.encryptor = Some(encryptor);
        Ok(session)
    }

    fn abandon(&self, record: &RecordId) {
        // Best effort: what a failed put leaves is also erased when the store reopens.
        let _ = self.store.erase(record);
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(record);
        }
    }

    /// A complete record's metadata.
    pub fn meta(&self, record: &RecordId) -> Result<RecordMeta, VaultError> {
        self.store
            .meta(record)?
            .ok_or(VaultError::UnknownRecord(*record))
    }

    /// Complete records, all or only `owner`'s, in id order.
    pub fn list(&self, owner: Option<PartyId>) -> Result<Vec<RecordMeta>, VaultError> {
        let mut out = Vec::new();
        for id in self.store.records()? {
            if let Some(meta) = self.store.meta(&id)?
                && owner.is_none_or(|o| o == meta.owner)
            {
                out.push(meta);
            }
        }
        Ok(out)
    }

    /// The record's data key, unwrapped with the custodian's key.
    fn data_key(&self, meta: &RecordMeta) -> Result<DataKey, VaultError> {
        custodian_data_key(&self.store, self.custodian, meta)
    }

    /// Reads and checks every stored chunk of the record `meta` describes
    /// ([`verify_stored`]): what a release will send, checked before it is confirmed.
    pub fn verify(&self, meta: &RecordMeta) -> Result<StreamSummary, VaultError> {
        verify_stored(&self.store, self.custodian, meta, |_| {})
    }

    /// Wraps the record's data key to `recipient`'s `recipient_key`, for a release.
    pub fn release<R: RngCore + CryptoRng>(
        &self,
        record: &RecordId,
        recipient: PartyId,
        recipient_key: &EncryptionKey,
        rng: &mut R,
    ) -> Result<(RecordMeta, WrappedKey), VaultError> {
        let meta = self.meta(record)?;
        let key = self.data_key(&meta)?;
        let wrapped = wrap_key(
            &key,
            recipient_key,
            &self.context(&meta.stream, recipient),
            rng,
        )?;
        Ok((meta, wrapped))
    }

    /// The data key as stored for the record's owner.
    pub fn owner_key(&self, record: &RecordId) -> Result<(RecordMeta, WrappedKey), VaultError> {
        let meta = self.meta(record)?;
        let wrapped =
            self.store
                .wrapped_key(record, &meta.owner)?
                .ok_or(VaultError::NoWrappedKey {
                    record: *record,
                    party: meta.owner,
                })?;
        Ok((meta, wrapped))
    }

    /// Ciphertext chunk `index` of a complete record.
    pub fn chunk(&self, meta: &RecordMeta, index: u32) -> Result<Vec<u8>, VaultError> {
        let record = meta.record_id();
        self.store
            .chunk(&record, index)?
            .ok_or(VaultError::MissingChunk {
                record,
                index,
                count: meta.chunk_count,
            })
    }

    /// Destroys the record: its chunks, wrapped keys and metadata.
    pub fn erase(&self, record: &RecordId) -> Result<(), VaultError> {
        self.store.erase(record)?;
        Ok(())
    }

    /// Re-wraps every data key to a fresh custodian key, then destroys the old keys.
    pub fn rotate<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<Rotation, VaultError> {
        let _guard = self.lock_keys()?;
        let old = self.store.custodian_keys()?;
        let generation = match old.last_key_value() {
            Some((g, _)) => g.checked_add(1).ok_or(VaultError::GenerationsExhausted)?,
            None => 1,
        };
        let secret = EncryptionSecret::generate(rng);
        self.store.put_custodian_key(generation, &secret)?;
        let rewrapped = self.rewrap_all(&secret, rng)?;
        for g in old.keys() {
            self.store.remove_custodian_key(*g)?;
        }
        Ok(Rotation {
            generation,
            public: secret.public(),
            rewrapped,
        })
    }

    /// Re-wraps every complete record's custodian key to `target` (callers hold the key lock).
    fn rewrap_all<R: RngCore + CryptoRng>(
        &self,
        target: &EncryptionSecret,
        rng: &mut R,
    ) -> Result<u64, VaultError> {
        let target_key = target.public();
        let mut rewrapped = 0;
        for id in self.store.records()? {
            let Some(meta) = self.store.meta(&id)? else {
                continue;
            };
            let current = self.store.wrapped_key(&id, &self.custodian)?;
            if current.is_some_and(|w| w.recipient_key == target_key) {
                continue;
            }
            let key = self.data_key(&meta)?;
            let wrapped = wrap_key(
                &key,
                &target_key,
                &self.context(&meta.stream, self.custodian),
                rng,
            )?;
            self.store.put_wrapped_key(&id, &wrapped)?;
            rewrapped += 1;
        }
        Ok(rewrapped)
    }
}

/// A record being put: feed it plaintext, then [`PutSession::finish`]. Dropped unfinished, it
/// erases what it stored.
pub struct PutSession<S: VaultStore> {
    vault: Arc<Vault<S>>,
    record: NewRecord,
    owner_key: EncryptionKey,
    key: DataKey,
    encryptor: Option<StreamEncryptor>,
    done: bool,
}

impl<S: VaultStore> PutSession<S> {
    /// The record being put.
    pub fn record(&self) -> &NewRecord {
        &self.record
    }

    /// Encrypts and stores more plaintext.
    pub fn write(&mut self, data: &[u8]) -> Result<(), VaultError> {
        let id = self.record.record_id;
        let Some(encryptor) = self.encryptor.as_mut() else {
            return Err(VaultError::RecordExists(id));
        };
        let received = encryptor.written() + data.len() as u64;
        if received > self.record.size {
            return Err(VaultError::SizeMismatch {
                record: id,
                declared: self.record.size,
                received,
            });
        }
        for chunk in encryptor.write(data)? {
            self.vault
                .store
                .put_chunk(&id, chunk.index, &chunk.ciphertext)?;
        }
        Ok(())
    }

    /// Seals and stores the final chunk and wraps the data key to the owner. The record is not
    /// visible until [`PreparedRecord::commit`].
    pub fn finish<R: RngCore + CryptoRng>(
        mut self,
        rng: &mut R,
    ) -> Result<PreparedRecord<S>, VaultError> {
        let id = self.record.record_id;
        let Some(encryptor) = self.encryptor.take() else {
            return Err(VaultError::RecordExists(id));
        };
        if encryptor.written() != self.record.size {
            return Err(VaultError::SizeMismatch {
                record: id,
                declared: self.record.size,
                received: encryptor.written(),
            });
        }
        let params = *encryptor.params();
        let (last, summary) = encryptor.finish()?;
        self.vault
            .store
            .put_chunk(&id, last.index, &last.ciphertext)?;
        let owner_wrap = wrap_key(
            &self.key,
            &self.owner_key,
            &self.vault.context(&params, self.record.owner),
            rng,
        )?;
        self.done = true;
        Ok(PreparedRecord {
            vault: self.vault.clone(),
            record: self.record.clone(),
            key: self.key.clone(),
            params,
            summary,
            owner_wrap,
            done: false,
        })
    }
}

impl<S: VaultStore> Drop for PutSession<S> {
    fn drop(&mut self) {
        if !self.done {
            self.vault.abandon(&self.record.record_id);
        }
    }
}

/// A record whose chunks are stored, waiting for its ledger registration. Dropped uncommitted,
/// it erases what it stored.
pub struct PreparedRecord<S: VaultStore> {
    vault: Arc<Vault<S>>,
    record: NewRecord,
    key: DataKey,
    params: StreamParams,
    summary: StreamSummary,
    owner_wrap: WrappedKey,
    done: bool,
}

impl<S: VaultStore> PreparedRecord<S> {
    /// The record.
    pub fn record(&self) -> &NewRecord {
        &self.record
    }

    /// Size, chunk count and the ciphertext digest to register.
    pub fn summary(&self) -> StreamSummary {
        self.summary
    }

    /// Wraps the data key to the current custodian key, stores both wrapped keys and the
    /// metadata: the record is complete and visible.
    pub fn commit<R: RngCore + CryptoRng>(
        mut self,
        registration: Registration,
        rng: &mut R,
    ) -> Result<RecordMeta, VaultError> {
        let vault = self.vault.clone();
        let id = self.record.record_id;
        let _guard = vault.lock_keys()?;
        let custodian_key = vault.current_secret()?.public();
        let custodian_wrap = wrap_key(
            &self.key,
            &custodian_key,
            &vault.context(&self.params, vault.custodian),
            rng,
        )?;
        vault.store.put_wrapped_key(&id, &custodian_wrap)?;
        vault.store.put_wrapped_key(&id, &self.owner_wrap)?;
        let meta = RecordMeta {
            stream: self.params,
            owner: self.record.owner,
            category: self.record.category.clone(),
            attributes: self.record.attributes.clone(),
            commitment_salt: self.record.commitment_salt,
            size: self.summary.size,
            chunk_count: self.summary.chunk_count,
            ciphertext_digest: self.summary.ciphertext_digest,
            registration,
        };
        vault.store.put_meta(&meta)?;
        self.done = true;
        if let Ok(mut in_flight) = vault.in_flight.lock() {
            in_flight.remove(&id);
        }
        Ok(meta)
    }
}

impl<S: VaultStore> Drop for PreparedRecord<S> {
    fn drop(&mut self) {
        if !self.done {
            self.vault.abandon(&self.record.record_id);
        }
    }
}

fn wrap_context(stream: &StreamParams, custodian: PartyId, recipient: PartyId) -> WrapContext {
    WrapContext {
        record_id: stream.record_id,
        version: stream.version,
        custodian,
        recipient,
    }
}

/// The data key of the record `meta` describes, from its wrap to `custodian` in `store`, opened
/// with whichever of the custodian's secrets it is wrapped to.
fn custodian_data_key<S: VaultStore>(
    store: &S,
    custodian: PartyId,
    meta: &RecordMeta,
) -> Result<DataKey, VaultError> {
    let record = meta.record_id();
    let wrapped = store
        .wrapped_key(&record, &custodian)?
        .ok_or(VaultError::NoWrappedKey {
            record,
            party: custodian,
        })?;
    let keys = store.custodian_keys()?;
    let secret = keys
        .values()
        .find(|s| s.public() == wrapped.recipient_key)
        .ok_or(VaultError::UnknownCustodianKey {
            record,
            key: wrapped.recipient_key,
        })?;
    Ok(unwrap_key(
        &wrapped,
        secret,
        &wrap_context(&meta.stream, custodian, custodian),
    )?)
}

/// Reads every stored chunk of the record `meta` describes, in order, and checks it: the data
/// key opens from `custodian`'s wrap, each chunk authenticates under it, the stream ends with
/// its final chunk, and its size, chunk count and ciphertext digest are those `meta` holds (the
/// ones registered on the ledger). Each decrypted chunk is zeroized once checked; nothing else is
/// kept. `progress` gets each chunk's length as it is read. The first failure names the record
/// and, for a chunk, its index.
pub fn verify_stored<S: VaultStore>(
    store: &S,
    custodian: PartyId,
    meta: &RecordMeta,
    mut progress: impl FnMut(u64),
) -> Result<StreamSummary, VaultError> {
    let record = meta.record_id();
    let key = custodian_data_key(store, custodian, meta)?;
    let mut decryptor = ChunkDecryptor::new(&key, meta.stream)?;
    for index in 0..meta.chunk_count {
        let chunk = store
            .chunk(&record, index)?
            .ok_or(VaultError::MissingChunk {
                record,
                index,
                count: meta.chunk_count,
            })?;
        progress(chunk.len() as u64);
        decryptor.open_chunk(chunk)?;
    }
    let summary = decryptor.finish()?;
    let registered = (meta.size, meta.chunk_count, meta.ciphertext_digest);
    let stored = (summary.size, summary.chunk_count, summary.ciphertext_digest);
    if stored != registered {
        return Err(VaultError::NotRegistered {
            record,
            detail: format!(
                "registered {} bytes in {} chunk(s) with digest {}, stored {} bytes in {} \
                 chunk(s) with digest {}",
                registered.0,
                registered.1,
                registered.2.to_hex(),
                stored.0,
                stored.1,
                stored.2.to_hex()
            ),
        });
    }
    Ok(summary)
}

/// SHA-256 of what a release hands out, as confirmed on the ledger: the request, the record,
/// the wrapped key (recipient, recipient key, encapsulation, sealed key) and the ciphertext
/// digest.
pub fn release_digest(
    request: &RequestId,
    record: &RecordId,
    wrapped: &WrappedKey,
    ciphertext_digest: &Hash,
) -> Hash {
    sha256_parts(&[
        RELEASE_TAG,
        request.0.as_bytes(),
        record.0.as_bytes(),
        wrapped.recipient.0.as_bytes(),
        wrapped.recipient_key.as_bytes(),
        &wrapped.encapsulated,
        &wrapped.ciphertext,
        ciphertext_digest.as_bytes(),
    ])
}
