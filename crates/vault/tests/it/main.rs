//! custos-vault integration tests: the shared store suite on the in-memory store, round trips,
//! tampering, scrubbing, rotation and pinned encodings.
// Test helpers: failing loudly is their job.
#![allow(missing_docs, clippy::unwrap_used, clippy::new_without_default)]

mod pinned;
mod roundtrip;
mod scrub;
mod tamper;

use std::sync::Arc;

use custos_crypto::{Hash, PartyKeys, sha256};
use custos_types::{Category, Height, PartyId, RecordId, RequestId, TxId};
use custos_vault::record::Attributes;
use custos_vault::{
    EncryptionKey, EncryptionSecret, MemoryStore, NewRecord, RecordMeta, Registration,
    ReleaseHeader, Vault,
};
use rand_core::{OsRng, RngCore};

#[test]
fn the_memory_store_passes_the_shared_suite() {
    custos_vault::store::suite::run_all(MemoryStore::new);
}

/// A custodian's vault on a memory store, a patient and a partner.
pub struct Cast {
    pub vault: Arc<Vault<MemoryStore>>,
    pub custodian: PartyKeys,
    pub patient: PartyKeys,
    pub partner: PartyKeys,
}

impl Cast {
    pub fn new() -> Self {
        let custodian = PartyKeys::generate(&mut OsRng);
        let vault =
            Vault::open(MemoryStore::new(), PartyId(custodian.public()), &mut OsRng).unwrap();
        Cast {
            vault,
            custodian,
            patient: PartyKeys::generate(&mut OsRng),
            partner: PartyKeys::generate(&mut OsRng),
        }
    }

    /// Puts `plaintext` in slices of `slice` bytes and commits it.
    pub fn put(&self, plaintext: &[u8], slice: usize) -> RecordMeta {
        let record = NewRecord {
            record_id: RecordId(Hash(random32())),
            owner: PartyId(self.patient.public()),
            category: Category::parse("lab", "category").unwrap(),
            attributes: Attributes::new(),
            size: plaintext.len() as u64,
            commitment_salt: None,
        };
        let mut session = self
            .vault
            .begin_put(record, EncryptionKey::of_party(&self.patient), &mut OsRng)
            .unwrap();
        for part in plaintext.chunks(slice.max(1)) {
            session.write(part).unwrap();
        }
        let prepared = session.finish(&mut OsRng).unwrap();
        prepared
            .commit(
                Registration {
                    tx_id: TxId(Hash(random32())),
                    height: Height(1),
                },
                &mut OsRng,
            )
            .unwrap()
    }

    /// Releases `record` to the partner: the header and the stored ciphertext chunks.
    pub fn release(&self, record: &RecordId) -> (ReleaseHeader, Vec<Vec<u8>>) {
        let (meta, wrapped) = self
            .vault
            .release(
                record,
                PartyId(self.partner.public()),
                &EncryptionKey::of_party(&self.partner),
                &mut OsRng,
            )
            .unwrap();
        let header = ReleaseHeader::new(
            RequestId(sha256(b"request")),
            &meta,
            wrapped,
            TxId(Hash(random32())),
        );
        let chunks = (0..meta.chunk_count)
            .map(|i| self.vault.chunk(&meta, i).unwrap())
            .collect();
        (header, chunks)
    }

    pub fn partner_secret(&self) -> EncryptionSecret {
        EncryptionSecret::of_party(&self.partner).unwrap()
    }
}

pub fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    bytes
}
