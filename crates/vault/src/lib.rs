//! Encrypts records off-chain: chunked ChaCha20-Poly1305 streams, HPKE-wrapped data keys,
//! passphrase-sealed private keys and the vault store trait.
//!
//! The layers, bottom up:
//!
//! - [`stream`]: a record is encrypted once under a fresh [`DataKey`] in fixed-size chunks
//!   (STREAM: the nonce is a random prefix, the chunk index and a last-chunk flag; the AAD binds
//!   record id, version, custodian and chunk size). Memory stays bounded at a chunk or two
//!   whatever the record's size.
//! - [`wrap`]: data keys are wrapped with HPKE (RFC 9180, DHKEM(X25519, HKDF-SHA256),
//!   HKDF-SHA256, ChaCha20Poly1305; the `hpke` crate) to X25519 keys; the HPKE info binds the
//!   record, version, custodian, recipient and recipient key.
//! - [`seal`]: private keys at rest are sealed under a key derived from a passphrase with
//!   Argon2id (salt and parameters stored beside the ciphertext).
//! - [`store`]: the [`VaultStore`] trait (chunks by record and index, metadata, wrapped keys by
//!   record and recipient, the custodian's wrapping keys), an in-memory implementation and the
//!   shared test suite every implementation passes.
//! - [`vault`]: the custodian's operations over a store: put, release to a recipient, the
//!   patient's own key, key rotation (re-wrapping, never re-encrypting) and erasure.
//! - [`scrub`]: what damage to a stored record is, and the check of every stored chunk against
//!   the registered digest; it reports, never repairs or deletes.
//!
//! Nothing here speaks gRPC or knows sled: `custos-vault-service` adapts this crate.

pub mod record;
pub mod release;
pub mod scrub;
pub mod seal;
pub mod sink;
pub mod store;
pub mod stream;
pub mod vault;
pub mod wrap;

pub use record::{AttributeName, AttributeValue, NewRecord, RecordMeta, Registration};
pub use release::ReleaseHeader;
pub use scrub::{Damage, Part, ScrubProgress, ScrubReport, scrub};
pub use seal::{KdfParams, Passphrase, PassphraseSealed, SealError, SealedKeyFile, SealingKey};
pub use sink::PlaintextFile;
pub use store::{StoreError, VaultStore, memory::MemoryStore};
pub use stream::{
    CHUNK_SIZE, ChunkDecryptor, DataKey, RecordVersion, StreamEncryptor, StreamError, StreamParams,
    StreamSummary,
};
pub use vault::{
    PreparedRecord, PutSession, Rotation, Vault, VaultError, release_digest, verify_stored,
};
pub use wrap::{EncryptionKey, EncryptionSecret, WrapContext, WrapError, WrappedKey};
