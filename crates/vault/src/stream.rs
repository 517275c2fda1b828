//! Chunked authenticated encryption of one record: the STREAM construction (Hoang, Reyhanitabar,
//! Rogaway and Vizár, CRYPTO 2015) over ChaCha20-Poly1305.
//!
//! A record is split into chunks of [`StreamParams::chunk_size`] plaintext bytes (the last one
//! shorter or equal; an empty record is one empty chunk). Chunk `i` is sealed under the record's
//! [`DataKey`] with
//!
//! - nonce = `nonce_prefix (7 bytes) ‖ i (u32, big-endian) ‖ last (0x01 on the final chunk,
//!   else 0x00)`, so no nonce repeats under a key, a chunk cannot move to another position, and
//!   the final chunk is marked;
//! - AAD = `"custos/vault/chunk/v1\0" ‖ record id ‖ version (u32 BE) ‖ custodian ‖ chunk size
//!   (u32 BE) ‖ nonce prefix`, so a chunk opens only for the record, version and custodian it
//!   was sealed for.
//!
//! Each data key is fresh from the OS RNG for one record version and never reused, so nonce
//! uniqueness holds even without the random prefix; the prefix is defence in depth.
//!
//! **What decryption guarantees.** [`ChunkDecryptor::open_chunk`] releases a chunk's plaintext
//! only after that chunk's tag verified, so no unauthenticated byte ever leaves it. A flipped
//! bit, a chunk from another position or another record, or a wrong AAD fails with
//! [`StreamError::Integrity`] naming the record and the chunk. Dropping chunks at the end is
//! detected by [`ChunkDecryptor::finish`] ([`StreamError::Truncated`]: no chunk carried the
//! final flag) and appending after the final chunk by [`StreamError::AfterFinal`]. A caller
//! that consumes chunks one at a time has therefore seen authentic *prefixes* of the record until
//! `finish` returns `Ok`; only then is the plaintext known to be whole. The APIs that hand
//! plaintext to a caller in one piece — [`decrypt_all`] and [`crate::PlaintextFile`] — are
//! all-or-nothing: on any error the caller gets no plaintext (buffers are zeroized, partial
//! files removed).
//!
//! Memory stays bounded by one or two chunks whatever the record's size, plus the ciphertext
//! the digest has yet to hash: a stream longer than 512 KiB hashes on a helper thread, so that
//! SHA-256 runs beside the cipher rather than after it, and hands it sealed chunks without
//! copying them (so a chunk's buffer lives until both the caller and the digest are done with
//! it), in batches of 256 KiB of which at most three are held.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::sync::mpsc::{SendError, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;

use custos_crypto::Hash;
use custos_types::{PartyId, RecordId};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

mod aead;

/// Default plaintext bytes per chunk: 64 KiB.
pub const CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size a stream may declare.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Poly1305 tag bytes appended to every chunk.
pub const TAG_LEN: usize = 16;
/// Bytes of the random nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Most chunks one record may have (chunk indices are 32-bit).
pub const MAX_CHUNKS: u32 = u32::MAX;

const CHUNK_AAD_TAG: &[u8] = b"custos/vault/chunk/v1\0";
const DIGEST_TAG: &[u8] = b"custos/vault/ciphertext/v1\0";

/// Why a stream could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A chunk's tag did not verify.
    #[error(
        "record {record}: chunk {index} failed authentication (altered, reordered, or sealed \
         for another record, version, custodian or key); no plaintext released"
    )]
    Integrity {
        /// The record.
        record: RecordId,
        /// The chunk's position.
        index: u32,
    },
    /// The stream ended before its final chunk.
    #[error(
        "record {record}: the stream ended after {chunks} chunk(s) without the final chunk \
         (truncated)"
    )]
    Truncated {
        /// The record.
        record: RecordId,
        /// Chunks that arrived.
        chunks: u32,
    },
    /// A chunk arrived after the final one.
    #[error("record {record}: chunk {index} follows the final chunk")]
    AfterFinal {
        /// The record.
        record: RecordId,
        /// The extra chunk's position.
        index: u32,
    },
    /// A chunk has an impossible length.
    #[error("record {record}: chunk {index} has {got} bytes, expected {expected}")]
    ChunkLength {
        /// The record.
        record: RecordId,
        /// The chunk's position.
        index: u32,
        /// What the stream allows there.
        expected: String,
        /// What came.
        got: usize,
    },
    /// The record needs more than [`MAX_CHUNKS`] chunks.
    #[error("record {record}: more than {MAX_CHUNKS} chunks")]
    TooManyChunks {
        /// The record.
        record: RecordId,
    },
    /// The declared chunk size is out of range.
    #[error("record {record}: chunk size must be 1 to {MAX_CHUNK_SIZE} bytes, got {got}")]
    ChunkSize {
        /// The record.
        record: RecordId,
        /// The declared size.
        got: u32,
    },
    /// The ciphertext digest could not be computed (its helper thread died).
    #[error("record {record}: the ciphertext digest could not be computed")]
    Digest {
        /// The record.
        record: RecordId,
    },
    /// Reading the plaintext failed.
    #[error("record {record}: cannot read the plaintext: {message}")]
    Read {
        /// The record.
        record: RecordId,
        /// The I/O error.
        message: String,
    },
}

/// A record's version; the AAD binds it, so chunks of one version never open as another.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct RecordVersion(pub u32);

impl RecordVersion {
    /// The first version of every record.
    pub const FIRST: RecordVersion = RecordVersion(1);
}

impl fmt::Display for RecordVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A record's 256-bit data key: fresh for each record version, zeroized on drop, never logged.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A fresh key from `rng` (the OS RNG in production).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut key = DataKey([0u8; 32]);
        rng.fill_bytes(&mut key.0);
        key
    }

    /// The key with these bytes, if there are exactly 32 (the caller zeroizes its copy).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(array))
    }

    /// The key's bytes: for wrapping, and for tests that search storage for them. Never log.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// What every chunk of a record version is bound to, and how it is cut.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StreamParams {
    /// The record.
    pub record_id: RecordId,
    /// Its version.
    pub version: RecordVersion,
    /// The custodian that sealed it.
    pub custodian: PartyId,
    /// Plaintext bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// The first bytes of every chunk nonce.
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl StreamParams {
    /// Parameters for a new record version: [`CHUNK_SIZE`] chunks and a random nonce prefix.
    pub fn new<R: RngCore + CryptoRng>(
        record_id: RecordId,
        version: RecordVersion,
        custodian: PartyId,
        rng: &mut R,
    ) -> Self {
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rng.fill_bytes(&mut nonce_prefix);
        StreamParams {
            record_id,
            version,
            custodian,
            chunk_size: CHUNK_SIZE,
            nonce_prefix,
        }
    }

    /// Checks the chunk size.
    pub fn check(&self) -> Result<(), StreamError> {
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(StreamError::ChunkSize {
                record: self.record_id,
                got: self.chunk_size,
            });
        }
        Ok(())
    }

    /// How many chunks a record of `size` plaintext bytes has (an empty record has one).
    pub fn chunk_count(&self, size: u64) -> Result<u32, StreamError> {
        self.check()?;
        let count = size.div_ceil(u64::from(self.chunk_size)).max(1);
        // Indices run from 0 to MAX_CHUNKS - 1, so a count fits a u32.
        u32::try_from(count).ok().ok_or(StreamError::TooManyChunks {
            record: self.record_id,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 4 + 32 + 4 + NONCE_PREFIX_LEN);
        out.extend_from_slice(self.record_id.0.as_bytes());
        out.extend_from_slice(&self.version.0.to_be_bytes());
        out.extend_from_slice(self.custodian.0.as_bytes());
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.nonce_prefix);
        out
    }

    /// The AAD of every chunk.
    pub fn aad(&self) -> Vec<u8> {
        [CHUNK_AAD_TAG, &self.encode()].concat()
    }

    fn nonce(&self, index: u32, last: bool) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        nonce
    }

    fn digest(&self) -> Sha256 {
        let mut digest = Sha256::new();
        digest.update(DIGEST_TAG);
        digest.update(self.encode());
        digest
    }
}

/// What a finished stream amounts to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StreamSummary {
    /// Plaintext bytes.
    pub size: u64,
    /// Chunks, the final one included.
    pub chunk_count: u32,
    /// SHA-256 over `"custos/vault/ciphertext/v1\0"`, the stream parameters, every ciphertext
    /// chunk in order and the chunk count (u32 BE): what the ledger's `ciphertext_digest` holds.
    /// Chunk lengths are fixed by the parameters, so the concatenation is unambiguous.
    pub ciphertext_digest: Hash,
}

/// One sealed chunk: ciphertext with its tag appended.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SealedChunk {
    /// Its position.
    pub index: u32,
    /// `ciphertext ‖ tag`, shared without copying with the thread that hashes it.
    pub ciphertext: Bytes,
}

/// Ciphertext bytes after which a stream hashes on a second thread.
const THREADED_DIGEST_AFTER: u64 = 512 * 1024;

/// Ciphertext bytes handed to the helper thread at once. Handing over each 64 KiB chunk woke
/// the thread once per chunk, a context switch each time (a few per cent of the stream's CPU).
/// One batch may wait while the thread hashes another and the next one fills, so at most three
/// batches (768 KiB) of ciphertext are held for the digest.
const DIGEST_BATCH_BYTES: usize = 256 * 1024;

/// The running ciphertext digest. Small streams hash inline; once a stream passes
/// [`THREADED_DIGEST_AFTER`] bytes its hash state moves to a helper thread that is handed the
/// sealed chunks in batches (references, not copies), so SHA-256 runs beside ChaCha20-Poly1305
/// instead of after it. The bytes hashed and their order are the same either way.
enum CiphertextDigest {
    Inline {
        hash: Sha256,
        bytes: u64,
    },
    Threaded {
        batch: Vec<Bytes>,
        batch_len: usize,
        chunks: SyncSender<Vec<Bytes>>,
        worker: JoinHandle<Sha256>,
    },
    // Transient, while switching.
    Moving,
}

impl CiphertextDigest {
    fn new(params: &StreamParams) -> Self {
        CiphertextDigest::Inline {
            hash: params.digest(),
            bytes: 0,
        }
    }

    /// Hashes a sealed chunk; the helper thread, if any, shares its buffer.
    fn update(&mut self, chunk: &Bytes) {
        self.feed(chunk, || chunk.clone());
    }

    /// Hashes a chunk that is about to be overwritten: the helper thread, if any, gets a copy.
    fn update_copy(&mut self, chunk: &[u8]) {
        self.feed(chunk, || Bytes::copy_from_slice(chunk));
    }

    fn feed(&mut self, chunk: &[u8], to_worker: impl FnOnce() -> Bytes) {
        match self {
            CiphertextDigest::Inline { hash, bytes } => {
                hash.update(chunk);
                *bytes += chunk.len() as u64;
                if *bytes >= THREADED_DIGEST_AFTER {
                    self.go_threaded(chunk.len());
                }
            }
            CiphertextDigest::Threaded {
                batch,
                batch_len,
                chunks,
                ..
            } => {
                batch.push(to_worker());
                if batch.len() >= *batch_len
                    && let Err(SendError(lost)) = chunks.send(std::mem::take(batch))
                {
                    // The worker is gone (it cannot fail, short of a panic): hash inline.
                    self.fall_back(&lost);
                }
            }
            CiphertextDigest::Moving => {}
        }
    }

    fn go_threaded(&mut self, chunk_len: usize) {
        let CiphertextDigest::Inline { hash, bytes } =
            std::mem::replace(self, CiphertextDigest::Moving)
        else {
            return;
        };
        let batch_len = (DIGEST_BATCH_BYTES / chunk_len.max(1)).max(1);
        let (chunks, inbox) = std::sync::mpsc::sync_channel::<Vec<Bytes>>(1);
        let mut state = hash.clone();
        let spawned = std::thread::Builder::new()
            .name("custos-vault-digest".into())
            .spawn(move || {
                for batch in inbox {
                    for chunk in batch {
                        state.update(&chunk);
                    }
                }
                state
            });
        *self = match spawned {
            Ok(worker) => CiphertextDigest::Threaded {
                batch: Vec::with_capacity(batch_len),
                batch_len,
                chunks,
                worker,
            },
            Err(_) => CiphertextDigest::Inline { hash, bytes },
        };
    }

    fn fall_back(&mut self, pending: &[Bytes]) {
        if let CiphertextDigest::Threaded { chunks, worker, .. } =
            std::mem::replace(self, CiphertextDigest::Moving)
        {
            drop(chunks);
            if let Ok(mut hash) = worker.join() {
                for chunk in pending {
                    hash.update(chunk);
                }
                *self = CiphertextDigest::Inline { hash, bytes: 0 };
            }
        }
    }

    fn finish(self, record: RecordId, chunk_count: u32) -> Result<Hash, StreamError> {
        let lost = StreamError::Digest { record };
        let mut hash = match self {
            CiphertextDigest::Inline { hash, .. } => hash,
            CiphertextDigest::Threaded {
                batch,
                chunks,
                worker,
                ..
            } => {
                if !batch.is_empty() {
                    // A failed send means the worker is gone; joining it reports that.
                    let _ = chunks.send(batch);
                }
                drop(chunks);
                worker.join().map_err(|_| lost)?
            }
            CiphertextDigest::Moving => return Err(lost),
        };
        hash.update(chunk_count.to_be_bytes());
        Ok(Hash(hash.finalize().into()))
    }
}

/// Seals chunks in place and tracks position, size and digest.
struct Sealer {
    key: DataKey,
    params: StreamParams,
    aad: Vec<u8>,
    next: u32,
    size: u64,
    digest: CiphertextDigest,
}

impl Sealer {
    fn new(key: &DataKey, params: StreamParams) -> Result<Self, StreamError> {
        params.check()?;
        Ok(Sealer {
            key: key.clone(),
            aad: params.aad(),
            digest: CiphertextDigest::new(&params),
            params,
            next: 0,
            size: 0,
        })
    }

    /// Encrypts the plaintext in `buf` in place, appends the tag and takes the buffer (which
    /// then holds only ciphertext, so it leaves the zeroizing wrapper). On an error `buf` keeps
    /// its plaintext, to be zeroized with it.
    fn seal(
        &mut self,
        buf: &mut Zeroizing<Vec<u8>>,
        last: bool,
    ) -> Result<SealedChunk, StreamError> {
        let index = self.next;
        if index == MAX_CHUNKS {
            return Err(StreamError::TooManyChunks {
                record: self.params.record_id,
            });
        }
        let len = buf.len();
        let tag = aead::seal_in_place(
            self.key.expose(),
            &self.params.nonce(index, last),
            &self.aad,
            buf.as_mut_slice(),
        );
        buf.extend_from_slice(&tag);
        let ciphertext = Bytes::from(std::mem::take(&mut **buf));
        self.digest.update(&ciphertext);
        self.next += 1;
        self.size += len as u64;
        Ok(SealedChunk { index, ciphertext })
    }

    fn summary(self) -> Result<StreamSummary, StreamError> {
        Ok(StreamSummary {
            size: self.size,
            chunk_count: self.next,
            ciphertext_digest: self.digest.finish(self.params.record_id, self.next)?,
        })
    }
}

/// Encrypts a record pushed in slices of any size (what a gRPC upload delivers).
///
/// A full chunk is sealed only once more plaintext arrives, because only then is it known not
/// to be the last; [`StreamEncryptor::finish`] seals the final one. At most one chunk of
/// plaintext is buffered, in a zeroizing buffer.
pub struct StreamEncryptor {
    sealer: Sealer,
    buf: Zeroizing<Vec<u8>>,
    expected_size: Option<u64>,
}

impl StreamEncryptor {
    /// A stream under `key` with `params`.
    pub fn new(key: &DataKey, params: StreamParams) -> Result<Self, StreamError> {
        Self::build(key, params, None)
    }

    /// A stream of `size` plaintext bytes: buffers are sized for what is left, so a small record
    /// does not allocate (and zeroize) whole chunks.
    pub fn with_expected_size(
        key: &DataKey,
        params: StreamParams,
        size: u64,
    ) -> Result<Self, StreamError> {
        Self::build(key, params, Some(size))
    }

    fn build(
        key: &DataKey,
        params: StreamParams,
        expected_size: Option<u64>,
    ) -> Result<Self, StreamError> {
        let sealer = Sealer::new(key, params)?;
        let mut encryptor = StreamEncryptor {
            sealer,
            buf: Zeroizing::new(Vec::new()),
            expected_size,
        };
        encryptor.buf = Zeroizing::new(Vec::with_capacity(encryptor.next_capacity()));
        Ok(encryptor)
    }

    /// Capacity for the next chunk's buffer: the chunk and its tag, so sealing in place never
    /// reallocates (a reallocation would leave a plaintext copy behind).
    fn next_capacity(&self) -> usize {
        let chunk = u64::from(self.sealer.params.chunk_size);
        let left = self.expected_size.map_or(chunk, |size| {
            size.saturating_sub(self.sealer.size).min(chunk)
        });
        left as usize + TAG_LEN
    }

    /// The stream's parameters.
    pub fn params(&self) -> &StreamParams {
        &self.sealer.params
    }

    /// Plaintext bytes taken so far.
    pub fn written(&self) -> u64 {
        self.sealer.size + self.buf.len() as u64
    }

    /// Takes more plaintext and returns the chunks it completed (possibly none).
    pub fn write(&mut self, mut data: &[u8]) -> Result<Vec<SealedChunk>, StreamError> {
        let chunk_size = self.sealer.params.chunk_size as usize;
        let mut sealed = Vec::new();
        while !data.is_empty() {
            if self.buf.len() == chunk_size {
                // More plaintext follows a full chunk, so it is not the last.
                sealed.push(self.seal_buffer(false)?);
            }
            let take = (chunk_size - self.buf.len()).min(data.len());
            if self.buf.capacity() < self.buf.len() + take + TAG_LEN {
                // More than expected: move to a full-size buffer; the old one is zeroized as it
                // drops, where growing in place could leave a plaintext copy behind.
                let mut bigger = Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN));
                bigger.extend_from_slice(&self.buf);
                self.buf = bigger;
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(sealed)
    }

    /// Seals the final chunk and returns it with the stream's summary.
    pub fn finish(mut self) -> Result<(SealedChunk, StreamSummary), StreamError> {
        let last = self.seal_buffer(true)?;
        Ok((last, self.sealer.summary()?))
    }

    fn seal_buffer(&mut self, last: bool) -> Result<SealedChunk, StreamError> {
        let chunk = self.sealer.seal(&mut self.buf, last)?;
        self.buf = Zeroizing::new(Vec::with_capacity(self.next_capacity()));
        Ok(chunk)
    }
}

/// Encrypts a record read from `R`, one chunk per item, reading each chunk directly into the
/// buffer it is sealed in (one copy from the reader, none after). Holds at most two chunks.
pub struct EncryptingReader<R> {
    reader: R,
    sealer: Option<Sealer>,
    current: Zeroizing<Vec<u8>>,
    pending: VecDeque<SealedChunk>,
    summary: Option<StreamSummary>,
    failed: bool,
}

/// Encrypts everything `reader` yields under `key` with `params`; see [`EncryptingReader`].
pub fn encrypt_reader<R: Read>(
    key: &DataKey,
    params: StreamParams,
    reader: R,
) -> Result<EncryptingReader<R>, StreamError> {
    let sealer = Sealer::new(key, params)?;
    Ok(EncryptingReader {
        reader,
        sealer: Some(sealer),
        current: Zeroizing::new(Vec::new()),
        pending: VecDeque::new(),
        summary: None,
        failed: false,
    })
}

impl<R: Read> EncryptingReader<R> {
    /// The summary, once the final chunk has been yielded.
    pub fn summary(&self) -> Option<StreamSummary> {
        self.summary
    }

    /// Reads up to a chunk into the empty `buf` (whose capacity holds a chunk and its tag),
    /// without zero-filling it first.
    fn fill(
        &mut self,
        buf: &mut Vec<u8>,
        record: RecordId,
        chunk_size: usize,
    ) -> Result<(), StreamError> {
        (&mut self.reader)
            .take(chunk_size as u64)
            .read_to_end(buf)
            .map(|_| ())
            .map_err(|e| StreamError::Read {
                record,
                message: e.to_string(),
            })
    }

    fn advance(&mut self) -> Result<(), StreamError> {
        let Some(sealer) = self.sealer.as_ref() else {
            return Ok(());
        };
        let params = sealer.params;
        let chunk_size = params.chunk_size as usize;
        let capacity = chunk_size + TAG_LEN;
        if self.current.capacity() == 0 {
            let mut first = Zeroizing::new(Vec::with_capacity(capacity));
            self.fill(&mut first, params.record_id, chunk_size)?;
            self.current = first;
        }
        // The current chunk is the last one unless it is full and more plaintext follows.
        let mut next = Zeroizing::new(Vec::with_capacity(capacity));
        if self.current.len() == chunk_size {
            self.fill(&mut next, params.record_id, chunk_size)?;
        }
        let last = next.is_empty();
        let mut current = std::mem::replace(&mut self.current, next);
        let Some(sealer) = self.sealer.as_mut() else {
            return Ok(());
        };
        let chunk = sealer.seal(&mut current, last)?;
        self.pending.push_back(chunk);
        if last && let Some(sealer) = self.sealer.take() {
            self.summary = Some(sealer.summary()?);
        }
        Ok(())
    }
}

impl<R: Read> Iterator for EncryptingReader<R> {
    type Item = Result<SealedChunk, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.pending.is_empty()
            && let Err(e) = self.advance()
        {
            self.failed = true;
            return Some(Err(e));
        }
        self.pending.pop_front().map(Ok)
    }
}

/// Authenticates and decrypts a record's chunks in order; see the module docs for exactly what
/// it guarantees.
pub struct ChunkDecryptor {
    key: DataKey,
    params: StreamParams,
    aad: Vec<u8>,
    next: u32,
    size: u64,
    finished: bool,
    failed: Option<StreamError>,
    digest: CiphertextDigest,
}

impl ChunkDecryptor {
    /// A decryptor under `key` for a stream sealed with `params`.
    pub fn new(key: &DataKey, params: StreamParams) -> Result<Self, StreamError> {
        params.check()?;
        Ok(ChunkDecryptor {
            key: key.clone(),
            aad: params.aad(),
            digest: CiphertextDigest::new(&params),
            params,
            next: 0,
            size: 0,
            finished: false,
            failed: None,
        })
    }

    /// The stream's parameters.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// Whether the final chunk has been opened.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Verifies the next chunk's tag and only then returns its plaintext. After an error every
    /// later call fails with the same error.
    pub fn open_chunk(&mut self, chunk: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.open(chunk);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn open(&mut self, mut chunk: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, StreamError> {
        let record = self.params.record_id;
        let index = self.next;
        if self.finished {
            return Err(StreamError::AfterFinal { record, index });
        }
        let chunk_size = self.params.chunk_size as usize;
        let length_error = |expected: &str, got| StreamError::ChunkLength {
            record,
            index,
            expected: expected.to_string(),
            got,
        };
        if chunk.len() < TAG_LEN || chunk.len() > chunk_size + TAG_LEN {
            return Err(length_error(
                &format!("{TAG_LEN} to {} (with the tag)", chunk_size + TAG_LEN),
                chunk.len(),
            ));
        }
        let plain_len = chunk.len() - TAG_LEN;
        if plain_len == 0 && index != 0 {
            return Err(length_error(
                "a non-empty chunk (only an empty record has an empty chunk)",
                chunk.len(),
            ));
        }
        self.digest.update_copy(&chunk);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&chunk[plain_len..]);
        chunk.truncate(plain_len);
        // A full chunk may be an inner chunk or the final one; a short chunk can only be final.
        let candidates: &[bool] = if plain_len == chunk_size {
            &[false, true]
        } else {
            &[true]
        };
        for &last in candidates {
            let nonce = self.params.nonce(index, last);
            // On failure the buffer is left as it was: the tag is checked before decrypting.
            if aead::open_in_place(self.key.expose(), &nonce, &self.aad, &mut chunk, &tag).is_ok() {
                self.next = index
                    .checked_add(1)
                    .ok_or(StreamError::TooManyChunks { record })?;
                self.size += plain_len as u64;
                self.finished = last;
                return Ok(Zeroizing::new(chunk));
            }
        }
        Err(StreamError::Integrity { record, index })
    }

    /// Ends the stream: fails with [`StreamError::Truncated`] unless the final chunk was opened.
    pub fn finish(self) -> Result<StreamSummary, StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.finished {
            return Err(StreamError::Truncated {
                record: self.params.record_id,
                chunks: self.next,
            });
        }
        Ok(StreamSummary {
            size: self.size,
            chunk_count: self.next,
            ciphertext_digest: self.digest.finish(self.params.record_id, self.next)?,
        })
    }
}

/// Encrypts `plaintext` in memory: for small records and tests.
pub fn encrypt_all(
    key: &DataKey,
    params: StreamParams,
    plaintext: &[u8],
) -> Result<(Vec<Bytes>, StreamSummary), StreamError> {
    let mut encryptor = StreamEncryptor::with_expected_size(key, params, plaintext.len() as u64)?;
    let mut chunks: Vec<Bytes> = encryptor
        .write(plaintext)?
        .into_iter()
        .map(|c| c.ciphertext)
        .collect();
    let (last, summary) = encryptor.finish()?;
    chunks.push(last.ciphertext);
    Ok((chunks, summary))
}

/// Decrypts a whole record in memory, all or nothing: on any error the partial plaintext is
/// zeroized and only the error is returned. Chunks may come as `Vec<u8>` or as the [`Bytes`]
/// that [`encrypt_all`] returns (taken over without a copy once nothing else holds them).
pub fn decrypt_all<I>(
    key: &DataKey,
    params: StreamParams,
    chunks: I,
) -> Result<(Zeroizing<Vec<u8>>, StreamSummary), StreamError>
where
    I: IntoIterator,
    I::Item: Into<Vec<u8>>,
{
    let mut decryptor = ChunkDecryptor::new(key, params)?;
    let mut plaintext = Zeroizing::new(Vec::new());
    for chunk in chunks {
        let part = decryptor.open_chunk(chunk.into())?;
        plaintext.extend_from_slice(&part);
    }
    let summary = decryptor.finish()?;
    Ok((plaintext, summary))
}

#[cfg(test)]
mod tests {
    use custos_crypto::{PartyKeys, sha256};
    use rand_core::OsRng;

    use super::*;

    fn params(chunk_size: u32) -> StreamParams {
        let custodian = PartyId(PartyKeys::generate(&mut OsRng).public());
        let mut p = StreamParams::new(
            RecordId(sha256(b"record")),
            RecordVersion::FIRST,
            custodian,
            &mut OsRng,
        );
        p.chunk_size = chunk_size;
        p
    }

    #[test]
    fn pushed_and_read_streams_produce_the_same_chunks_and_digest() {
        let key = DataKey::generate(&mut OsRng);
        let p = params(16);
        let plaintext: Vec<u8> = (0..100u8).collect();
        let (pushed, summary) = encrypt_all(&key, p, &plaintext).unwrap();
        let mut reader = encrypt_reader(&key, p, plaintext.as_slice()).unwrap();
        let read: Vec<Bytes> = reader.by_ref().map(|c| c.unwrap().ciphertext).collect();
        assert_eq!(pushed, read);
        assert_eq!(reader.summary(), Some(summary));
        assert_eq!(summary.chunk_count, 7);
        assert_eq!(summary.size, 100);
    }

    #[test]
    fn an_exact_multiple_of_the_chunk_size_has_no_empty_trailing_chunk() {
        let key = DataKey::generate(&mut OsRng);
        let p = params(16);
        let (chunks, summary) = encrypt_all(&key, p, &[7u8; 32]).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(summary.chunk_count, p.chunk_count(32).unwrap());
        let (empty, summary) = encrypt_all(&key, p, &[]).unwrap();
        assert_eq!((empty.len(), empty[0].len()), (1, TAG_LEN));
        assert_eq!(summary.chunk_count, 1);
    }

    #[test]
    fn nonces_differ_by_index_and_final_flag() {
        let p = params(16);
        assert_ne!(p.nonce(0, false), p.nonce(0, true));
        assert_ne!(p.nonce(0, false), p.nonce(1, false));
        assert_eq!(&p.nonce(258, true)[7..], &[0, 0, 1, 2, 1]);
    }

    #[test]
    fn a_large_stream_hashed_on_a_helper_thread_has_the_inline_digest() {
        let key = DataKey::generate(&mut OsRng);
        let p = params(CHUNK_SIZE);
        let plaintext = vec![0x42u8; 3 * THREADED_DIGEST_AFTER as usize + 12_345];
        let (chunks, summary) = encrypt_all(&key, p, &plaintext).unwrap();
        let mut reference = p.digest();
        for chunk in &chunks {
            reference.update(chunk);
        }
        reference.update(summary.chunk_count.to_be_bytes());
        assert_eq!(summary.ciphertext_digest, Hash(reference.finalize().into()));
        let (opened, decrypted) = decrypt_all(&key, p, chunks).unwrap();
        assert_eq!(decrypted, summary);
        assert!(*opened == plaintext);
    }

    #[test]
    fn data_keys_do_not_print() {
        assert_eq!(
            format!("{:?}", DataKey::generate(&mut OsRng)),
            "DataKey(<redacted>)"
        );
    }
}
