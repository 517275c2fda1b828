//! The test suite every [`VaultStore`] implementation passes: call [`run_all`] from the
//! implementation's tests with a function that makes a fresh, empty store.
// A test suite: failing loudly on the first broken expectation is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use custos_crypto::{Hash, PartyKeys, sha256};
use custos_types::{Category, Height, PartyId, RecordId, TxId};
use rand_core::OsRng;

use super::VaultStore;
use crate::record::{Attributes, RecordMeta, Registration};
use crate::stream::{DataKey, RecordVersion, StreamParams};
use crate::wrap::{EncryptionKey, EncryptionSecret, WrapContext, WrappedKey, wrap_key};

/// Runs every check on a fresh store from `make`.
pub fn run_all<S: VaultStore>(mut make: impl FnMut() -> S) {
    chunks_are_kept_by_record_and_index(&make());
    metadata_makes_a_record_complete_and_listed_in_id_order(&make());
    wrapped_keys_are_kept_per_recipient_and_replaced(&make());
    erasing_a_record_destroys_all_of_it_and_nothing_else(&make());
    custodian_keys_are_kept_by_generation(&make());
}

fn record(n: u8) -> RecordId {
    RecordId(sha256(&[n]))
}

fn party() -> PartyId {
    PartyId(PartyKeys::generate(&mut OsRng).public())
}

/// A complete record's metadata for `record_id`.
pub fn sample_meta(record_id: RecordId) -> RecordMeta {
    RecordMeta {
        stream: StreamParams::new(record_id, RecordVersion::FIRST, party(), &mut OsRng),
        owner: party(),
        category: Category::parse("lab", "category").unwrap(),
        attributes: Attributes::new(),
        commitment_salt: Some([9; 32]),
        size: 3,
        chunk_count: 1,
        ciphertext_digest: sha256(b"ciphertext"),
        registration: Registration {
            tx_id: TxId(Hash([7; 32])),
            height: Height(4),
        },
    }
}

/// A real wrapped key of `record_id` for `recipient`.
pub fn sample_wrap(record_id: RecordId, recipient: PartyId) -> WrappedKey {
    let secret = EncryptionSecret::generate(&mut OsRng);
    let ctx = WrapContext {
        record_id,
        version: RecordVersion::FIRST,
        custodian: party(),
        recipient,
    };
    let key: EncryptionKey = secret.public();
    wrap_key(&DataKey::generate(&mut OsRng), &key, &ctx, &mut OsRng).unwrap()
}

pub fn chunks_are_kept_by_record_and_index<S: VaultStore>(store: &S) {
    store.put_chunk(&record(1), 0, b"r1c0").unwrap();
    store.put_chunk(&record(1), 1, b"r1c1").unwrap();
    store.put_chunk(&record(2), 0, b"r2c0").unwrap();
    assert_eq!(
        store.chunk(&record(1), 0).unwrap().as_deref(),
        Some(&b"r1c0"[..])
    );
    assert_eq!(
        store.chunk(&record(1), 1).unwrap().as_deref(),
        Some(&b"r1c1"[..])
    );
    assert_eq!(
        store.chunk(&record(2), 0).unwrap().as_deref(),
        Some(&b"r2c0"[..])
    );
    assert_eq!(store.chunk(&record(2), 1).unwrap(), None);
    store.put_chunk(&record(1), 1, b"again").unwrap();
    assert_eq!(
        store.chunk(&record(1), 1).unwrap().as_deref(),
        Some(&b"again"[..])
    );
    // A chunk without metadata is not a record yet.
    assert!(store.records().unwrap().is_empty());
}

pub fn metadata_makes_a_record_complete_and_listed_in_id_order<S: VaultStore>(store: &S) {
    let mut ids = vec![record(3), record(1), record(2)];
    for id in &ids {
        store.put_chunk(id, 0, b"c").unwrap();
    }
    let metas: Vec<RecordMeta> = ids.iter().map(|id| sample_meta(*id)).collect();
    for meta in &metas {
        store.put_meta(meta).unwrap();
    }
    ids.sort();
    assert_eq!(store.records().unwrap(), ids);
    for meta in &metas {
        assert_eq!(store.meta(&meta.record_id()).unwrap().as_ref(), Some(meta));
    }
    assert_eq!(store.meta(&record(9)).unwrap(), None);
}

pub fn wrapped_keys_are_kept_per_recipient_and_replaced<S: VaultStore>(store: &S) {
    let (alice, bob) = (party(), party());
    let to_alice = sample_wrap(record(1), alice);
    let to_bob = sample_wrap(record(1), bob);
    store.put_wrapped_key(&record(1), &to_alice).unwrap();
    store.put_wrapped_key(&record(1), &to_bob).unwrap();
    assert_eq!(
        store.wrapped_key(&record(1), &alice).unwrap(),
        Some(to_alice)
    );
    assert_eq!(store.wrapped_key(&record(1), &bob).unwrap(), Some(to_bob));
    assert_eq!(store.wrapped_key(&record(2), &alice).unwrap(), None);
    let again = sample_wrap(record(1), alice);
    store.put_wrapped_key(&record(1), &again).unwrap();
    assert_eq!(store.wrapped_key(&record(1), &alice).unwrap(), Some(again));
}

pub fn erasing_a_record_destroys_all_of_it_and_nothing_else<S: VaultStore>(store: &S) {
    let alice = party();
    for n in [1, 2] {
        store.put_chunk(&record(n), 0, b"c0").unwrap();
        store.put_chunk(&record(n), 1, b"c1").unwrap();
        store
            .put_wrapped_key(&record(n), &sample_wrap(record(n), alice))
            .unwrap();
        store.put_meta(&sample_meta(record(n))).unwrap();
    }
    // An incomplete record (chunks only) erases too.
    store.put_chunk(&record(3), 0, b"pending").unwrap();
    store.erase(&record(1)).unwrap();
    store.erase(&record(3)).unwrap();
    assert_eq!(store.chunk(&record(1), 0).unwrap(), None);
    assert_eq!(store.chunk(&record(1), 1).unwrap(), None);
    assert_eq!(store.chunk(&record(3), 0).unwrap(), None);
    assert_eq!(store.wrapped_key(&record(1), &alice).unwrap(), None);
    assert_eq!(store.meta(&record(1)).unwrap(), None);
    assert_eq!(store.records().unwrap(), vec![record(2)]);
    assert!(store.chunk(&record(2), 1).unwrap().is_some());
    assert!(store.wrapped_key(&record(2), &alice).unwrap().is_some());
    assert!(store.meta(&record(2)).unwrap().is_some());
    // Erasing what is not there is not an error.
    store.erase(&record(9)).unwrap();
}

pub fn custodian_keys_are_kept_by_generation<S: VaultStore>(store: &S) {
    assert!(store.custodian_keys().unwrap().is_empty());
    let (one, two) = (
        EncryptionSecret::generate(&mut OsRng),
        EncryptionSecret::generate(&mut OsRng),
    );
    store.put_custodian_key(1, &one).unwrap();
    store.put_custodian_key(2, &two).unwrap();
    let keys = store.custodian_keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[&1].public(), one.public());
    assert_eq!(keys[&2].public(), two.public());
    store.remove_custodian_key(1).unwrap();
    let keys = store.custodian_keys().unwrap();
    assert_eq!(keys.keys().copied().collect::<Vec<_>>(), vec![2]);
}
