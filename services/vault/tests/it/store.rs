//! The sled store: the shared suite, crash clean-up and the sealed keyring.

use custos_crypto::{Hash, PartyKeys};
use custos_types::{PartyId, RecordId};
use custos_vault::store::suite;
use custos_vault::{KdfParams, Passphrase, StoreError, VaultStore};
use custos_vault_service::SledVaultStore;
use rand_core::OsRng;

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.into()).unwrap()
}

fn open(dir: &std::path::Path, text: &str) -> Result<SledVaultStore, StoreError> {
    SledVaultStore::open(dir, &passphrase(text), KdfParams::INSECURE_FOR_TESTS)
}

#[test]
fn the_sled_store_passes_the_shared_suite() {
    let mut dirs = Vec::new();
    suite::run_all(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("vault"), "pw").unwrap();
        dirs.push(dir);
        store
    });
}

#[test]
fn the_sled_store_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let record = RecordId(Hash([1; 32]));
    let recipient = PartyId(PartyKeys::generate(&mut OsRng).public());
    let meta = suite::sample_meta(record);
    let wrap = suite::sample_wrap(record, recipient);
    let secret = custos_vault::EncryptionSecret::generate(&mut OsRng);
    {
        let store = open(&path, "pw").unwrap();
        store.put_chunk(&record, 0, b"c0").unwrap();
        store.put_wrapped_key(&record, &wrap).unwrap();
        store.put_meta(&meta).unwrap();
        store.put_custodian_key(1, &secret).unwrap();
    }
    let store = open(&path, "pw").unwrap();
    assert_eq!(store.meta(&record).unwrap(), Some(meta));
    assert_eq!(store.wrapped_key(&record, &recipient).unwrap(), Some(wrap));
    assert_eq!(
        store.chunk(&record, 0).unwrap().as_deref(),
        Some(&b"c0"[..])
    );
    assert_eq!(
        store.custodian_keys().unwrap()[&1].public(),
        secret.public()
    );
}

#[test]
fn reopening_erases_what_an_interrupted_put_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let record = RecordId(Hash([2; 32]));
    let recipient = PartyId(PartyKeys::generate(&mut OsRng).public());
    {
        let store = open(&path, "pw").unwrap();
        store.put_chunk(&record, 0, b"c0").unwrap();
        store.put_chunk(&record, 1, b"c1").unwrap();
        store
            .put_wrapped_key(&record, &suite::sample_wrap(record, recipient))
            .unwrap();
        // The crash: no metadata.
    }
    let store = open(&path, "pw").unwrap();
    assert_eq!(store.chunk(&record, 0).unwrap(), None);
    assert_eq!(store.chunk(&record, 1).unwrap(), None);
    assert_eq!(store.wrapped_key(&record, &recipient).unwrap(), None);
    assert!(store.records().unwrap().is_empty());
}

#[test]
fn the_keyring_opens_with_its_passphrase_only_and_holds_no_secret_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault");
    let secret = custos_vault::EncryptionSecret::generate(&mut OsRng);
    {
        let store = open(&path, "right").unwrap();
        store.put_custodian_key(1, &secret).unwrap();
    }
    match open(&path, "wrong") {
        Err(StoreError::Corrupt { reason, .. }) => {
            assert!(reason.contains("wrong passphrase"), "{reason}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    let keyring = std::fs::read(path.join("keyring.json")).unwrap();
    assert!(!crate::contains(&keyring, secret.expose()));
    assert!(!crate::contains(
        &keyring,
        hex::encode(secret.expose()).as_bytes()
    ));
    assert!(open(&path, "right").is_ok());
}
