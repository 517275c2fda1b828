//! Put, release and decrypt: every size round-trips; rotation and erasure keep their promises.

use std::sync::Arc;

use custos_crypto::{Hash, sha256};
use custos_types::{Category, PartyId, RecordId, RequestId, TxId};
use custos_vault::record::Attributes;
use custos_vault::stream::{ChunkDecryptor, decrypt_all};
use custos_vault::{
    CHUNK_SIZE, EncryptionKey, EncryptionSecret, MemoryStore, NewRecord, ReleaseHeader, Vault,
    VaultError, VaultStore,
};
use proptest::prelude::*;
use rand_core::OsRng;

use crate::{Cast, random_bytes, random32};

fn decrypt(
    header: &ReleaseHeader,
    chunks: Vec<Vec<u8>>,
    secret: &EncryptionSecret,
    me: PartyId,
) -> Result<Vec<u8>, VaultError> {
    let decryptor: ChunkDecryptor = header.open(me, secret)?;
    let mut out = Vec::new();
    let mut decryptor = decryptor;
    for chunk in chunks {
        out.extend_from_slice(&decryptor.open_chunk(chunk)?);
    }
    let summary = decryptor.finish()?;
    header.check(&summary)?;
    Ok(out)
}

#[test]
fn a_released_record_decrypts_to_the_original_bytes_at_every_boundary_size() {
    let cast = Cast::new();
    let c = CHUNK_SIZE as usize;
    for size in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 5] {
        for slice in [7, 4096, 1 << 20] {
            let plaintext = random_bytes(size);
            let meta = cast.put(&plaintext, slice);
            assert_eq!(meta.size, size as u64);
            assert_eq!(meta.chunk_count as usize, size.div_ceil(c).max(1));
            let (header, chunks) = cast.release(&meta.record_id());
            let me = PartyId(cast.partner.public());
            let opened = decrypt(&header, chunks, &cast.partner_secret(), me).unwrap();
            assert_eq!(opened, plaintext, "size {size}, slice {slice}");
        }
    }
}

#[test]
fn the_patient_opens_the_key_stored_for_them_and_nobody_else_does() {
    let cast = Cast::new();
    let plaintext = random_bytes(100_000);
    let meta = cast.put(&plaintext, 1000);
    let (meta, wrapped) = cast.vault.owner_key(&meta.record_id()).unwrap();
    let header = ReleaseHeader::new(
        RequestId(sha256(b"own")),
        &meta,
        wrapped,
        TxId(Hash(random32())),
    );
    let chunks: Vec<Vec<u8>> = (0..meta.chunk_count)
        .map(|i| cast.vault.chunk(&meta, i).unwrap())
        .collect();
    let patient = EncryptionSecret::of_party(&cast.patient).unwrap();
    let me = PartyId(cast.patient.public());
    assert_eq!(
        decrypt(&header, chunks.clone(), &patient, me).unwrap(),
        plaintext
    );
    let partner = PartyId(cast.partner.public());
    assert!(matches!(
        decrypt(&header, chunks, &cast.partner_secret(), partner),
        Err(VaultError::Wrap(_))
    ));
}

#[test]
fn rotation_rewraps_every_key_without_reencrypting_and_keeps_records_readable() {
    let cast = Cast::new();
    let records: Vec<_> = (0..3).map(|i| (random_bytes(1000 * i + 1), i)).collect();
    let metas: Vec<_> = records.iter().map(|(p, _)| cast.put(p, 333)).collect();
    let chunks_before: Vec<Vec<u8>> = metas
        .iter()
        .map(|m| cast.vault.chunk(m, 0).unwrap())
        .collect();
    let (generation, old_key) = cast.vault.custodian_key().unwrap();
    let rotation = cast.vault.rotate(&mut OsRng).unwrap();
    assert_eq!(rotation.rewrapped, 3);
    assert_eq!(rotation.generation, generation + 1);
    assert_ne!(rotation.public, old_key);
    let keys = cast.vault.store().custodian_keys().unwrap();
    assert_eq!(
        keys.keys().copied().collect::<Vec<_>>(),
        vec![rotation.generation]
    );
    for ((plaintext, _), meta) in records.iter().zip(&metas) {
        let custodian = cast.vault.custodian();
        let wrap = cast
            .vault
            .store()
            .wrapped_key(&meta.record_id(), &custodian)
            .unwrap()
            .unwrap();
        assert_eq!(wrap.recipient_key, rotation.public);
        let (header, chunks) = cast.release(&meta.record_id());
        let me = PartyId(cast.partner.public());
        assert_eq!(
            &decrypt(&header, chunks, &cast.partner_secret(), me).unwrap(),
            plaintext
        );
    }
    let chunks_after: Vec<Vec<u8>> = metas
        .iter()
        .map(|m| cast.vault.chunk(m, 0).unwrap())
        .collect();
    assert_eq!(
        chunks_before, chunks_after,
        "rotation must not re-encrypt records"
    );
}

#[test]
fn an_interrupted_rotation_is_finished_when_the_vault_opens_again() {
    let store = Arc::new(MemoryStore::new());
    let custodian = custos_crypto::PartyKeys::generate(&mut OsRng);
    let patient = custos_crypto::PartyKeys::generate(&mut OsRng);
    let vault = Vault::open(store.clone(), PartyId(custodian.public()), &mut OsRng).unwrap();
    let record = NewRecord {
        record_id: RecordId(Hash(random32())),
        owner: PartyId(patient.public()),
        category: Category::parse("lab", "category").unwrap(),
        attributes: Attributes::new(),
        size: 3,
        commitment_salt: None,
    };
    let id = record.record_id;
    let mut session = vault
        .begin_put(record, EncryptionKey::of_party(&patient), &mut OsRng)
        .unwrap();
    session.write(b"abc").unwrap();
    let registration = custos_vault::Registration {
        tx_id: TxId(Hash(random32())),
        height: custos_types::Height(1),
    };
    session
        .finish(&mut OsRng)
        .unwrap()
        .commit(registration, &mut OsRng)
        .unwrap();
    drop(vault);
    // A crash after the new key was stored, before anything was re-wrapped.
    let next = EncryptionSecret::generate(&mut OsRng);
    store.put_custodian_key(2, &next).unwrap();
    let vault = Vault::open(store.clone(), PartyId(custodian.public()), &mut OsRng).unwrap();
    assert_eq!(vault.custodian_key().unwrap(), (2, next.public()));
    assert_eq!(store.custodian_keys().unwrap().len(), 1);
    let partner = custos_crypto::PartyKeys::generate(&mut OsRng);
    vault
        .release(
            &id,
            PartyId(partner.public()),
            &EncryptionKey::of_party(&partner),
            &mut OsRng,
        )
        .unwrap();
}

#[test]
fn a_put_of_another_size_than_declared_stores_nothing() {
    let cast = Cast::new();
    for (declared, sent) in [(10u64, 11usize), (10, 9), (0, 1)] {
        let record = NewRecord {
            record_id: RecordId(Hash(random32())),
            owner: PartyId(cast.patient.public()),
            category: Category::parse("lab", "category").unwrap(),
            attributes: Attributes::new(),
            size: declared,
            commitment_salt: None,
        };
        let id = record.record_id;
        let mut session = cast
            .vault
            .begin_put(record, EncryptionKey::of_party(&cast.patient), &mut OsRng)
            .unwrap();
        let result = session
            .write(&random_bytes(sent))
            .and_then(|()| session.finish(&mut OsRng).map(|_| ()));
        assert!(
            matches!(result, Err(VaultError::SizeMismatch { declared: d, .. }) if d == declared),
            "{result:?}"
        );
        assert_eq!(cast.vault.store().chunk(&id, 0).unwrap(), None);
        assert!(matches!(
            cast.vault.meta(&id),
            Err(VaultError::UnknownRecord(_))
        ));
    }
}

#[test]
fn a_record_is_put_once_and_an_uncommitted_put_leaves_nothing() {
    let cast = Cast::new();
    let meta = cast.put(b"once", 2);
    let again = NewRecord {
        record_id: meta.record_id(),
        owner: PartyId(cast.patient.public()),
        category: Category::parse("lab", "category").unwrap(),
        attributes: Attributes::new(),
        size: 1,
        commitment_salt: None,
    };
    assert!(matches!(
        cast.vault.begin_put(
            again.clone(),
            EncryptionKey::of_party(&cast.patient),
            &mut OsRng
        ),
        Err(VaultError::RecordExists(_))
    ));
    let fresh = NewRecord {
        record_id: RecordId(Hash(random32())),
        ..again
    };
    let id = fresh.record_id;
    let mut session = cast
        .vault
        .begin_put(
            fresh.clone(),
            EncryptionKey::of_party(&cast.patient),
            &mut OsRng,
        )
        .unwrap();
    // The same id cannot be put twice at once either.
    assert!(matches!(
        cast.vault.begin_put(
            fresh.clone(),
            EncryptionKey::of_party(&cast.patient),
            &mut OsRng
        ),
        Err(VaultError::RecordExists(_))
    ));
    session.write(b"x").unwrap();
    let prepared = session.finish(&mut OsRng).unwrap();
    assert!(cast.vault.store().chunk(&id, 0).unwrap().is_some());
    drop(prepared); // e.g. the ledger refused the registration
    assert_eq!(cast.vault.store().chunk(&id, 0).unwrap(), None);
    assert_eq!(
        cast.vault
            .store()
            .wrapped_key(&id, &PartyId(cast.patient.public()))
            .unwrap(),
        None
    );
    // And the id is free again.
    cast.vault
        .begin_put(fresh, EncryptionKey::of_party(&cast.patient), &mut OsRng)
        .unwrap();
}

#[test]
fn an_erased_record_can_no_longer_be_released() {
    let cast = Cast::new();
    let meta = cast.put(&random_bytes(200_000), 65_536);
    cast.vault.erase(&meta.record_id()).unwrap();
    let result = cast.vault.release(
        &meta.record_id(),
        PartyId(cast.partner.public()),
        &EncryptionKey::of_party(&cast.partner),
        &mut OsRng,
    );
    assert!(matches!(result, Err(VaultError::UnknownRecord(_))));
    assert_eq!(
        cast.vault.store().chunk(&meta.record_id(), 0).unwrap(),
        None
    );
}

#[test]
fn decrypt_all_returns_the_plaintext_of_a_whole_stream() {
    let cast = Cast::new();
    let plaintext = random_bytes(3 * CHUNK_SIZE as usize);
    let meta = cast.put(&plaintext, 10_000);
    let (header, chunks) = cast.release(&meta.record_id());
    let me = PartyId(cast.partner.public());
    let secret = cast.partner_secret();
    let key = custos_vault::wrap::unwrap_key(
        &header.wrapped_key,
        &secret,
        &custos_vault::WrapContext {
            record_id: meta.record_id(),
            version: meta.stream.version,
            custodian: meta.stream.custodian,
            recipient: me,
        },
    )
    .unwrap();
    let (opened, summary) = decrypt_all(&key, header.stream, chunks).unwrap();
    assert_eq!(&*opened, &plaintext);
    assert_eq!(summary.ciphertext_digest, meta.ciphertext_digest);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_length_and_slicing_round_trips(len in 0usize..200_000, slice in 1usize..70_000) {
        let cast = Cast::new();
        let plaintext = random_bytes(len);
        let meta = cast.put(&plaintext, slice);
        let (header, chunks) = cast.release(&meta.record_id());
        let me = PartyId(cast.partner.public());
        prop_assert_eq!(decrypt(&header, chunks, &cast.partner_secret(), me).unwrap(), plaintext);
    }
}
