//! The scrub and the check a release runs before it is confirmed: every stored chunk read,
//! authenticated and hashed against the registered digest; damage named by record and part,
//! nothing changed.

use custos_vault::{CHUNK_SIZE, Damage, Part, VaultError, VaultStore, scrub};

use crate::{Cast, random_bytes};

#[test]
fn a_sound_vault_scrubs_clean_and_every_chunk_is_read() {
    let cast = Cast::new();
    let big = cast.put(&random_bytes(2 * CHUNK_SIZE as usize + 7), 10_000);
    let empty = cast.put(&[], 1);
    let mut seen = Vec::new();
    let report = scrub(cast.vault.store(), &[], |p| seen.push(p.records_done)).unwrap();
    assert!(report.is_clean(), "{:?}", report.damaged);
    assert_eq!(report.records_checked, 2);
    assert_eq!(report.chunks_checked, 3 + 1);
    assert_eq!(
        report.bytes_read,
        2 * CHUNK_SIZE as u64 + 7 + 4 * custos_vault::stream::TAG_LEN as u64
    );
    assert_eq!(seen, [1, 2]);
    assert_eq!(
        cast.vault.verify(&big).unwrap().ciphertext_digest,
        big.ciphertext_digest
    );
    assert_eq!(cast.vault.verify(&empty).unwrap().size, 0);
}

#[test]
fn a_flipped_byte_a_missing_chunk_and_a_changed_count_are_named_and_left_in_place() {
    let cast = Cast::new();
    let size = 3 * CHUNK_SIZE as usize + 500;
    let sound = cast.put(&random_bytes(size), 50_000);
    let flipped = cast.put(&random_bytes(size), 50_000);
    let dropped = cast.put(&random_bytes(size), 50_000);
    let recounted = cast.put(&random_bytes(size), 50_000);
    let store = cast.vault.store();

    let mut chunk = store.chunk(&flipped.record_id(), 1).unwrap().unwrap();
    chunk[4321] ^= 0x01;
    store.put_chunk(&flipped.record_id(), 1, &chunk).unwrap();
    // The memory store has no way to lose one chunk: replace the last with nothing at all.
    store.put_chunk(&dropped.record_id(), 3, &[]).unwrap();
    // Metadata that promises one chunk less: the stream then ends without its final chunk.
    let mut short = recounted.clone();
    short.chunk_count = 3;
    store.put_meta(&short).unwrap();

    let report = scrub(store, &[], |_| {}).unwrap();
    let mut expected: Vec<(custos_types::RecordId, Part)> = vec![
        (flipped.record_id(), Part::Chunk(1)),
        (dropped.record_id(), Part::Chunk(3)),
        (recounted.record_id(), Part::Stream),
    ];
    expected.sort();
    let found: Vec<_> = report.damaged.iter().map(|d| (d.record, d.part)).collect();
    assert_eq!(found, expected, "{:?}", report.damaged);
    assert_eq!(report.records_checked, 4);
    for d in &report.damaged {
        assert!(d.to_string().contains(&d.record.to_hex()), "{d}");
    }
    assert!(!report.damaged.iter().any(|d| d.record == sound.record_id()));
    // Nothing was changed: the flipped chunk is still there as it was, and the record listed.
    assert_eq!(
        store.chunk(&flipped.record_id(), 1).unwrap().unwrap(),
        chunk
    );
    assert_eq!(store.records().unwrap().len(), 4);

    // The release check finds the same, before anything is confirmed.
    match cast.vault.verify(&flipped) {
        Err(e @ VaultError::Stream(_)) => {
            assert_eq!(
                Damage::from_error(flipped.record_id(), &e).unwrap().part,
                Part::Chunk(1)
            )
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
    assert!(matches!(
        cast.vault.verify(&short),
        Err(VaultError::Stream(custos_vault::StreamError::Truncated {
            chunks: 3,
            ..
        }))
    ));
}

#[test]
fn damage_found_before_is_reported_once_and_not_read_again() {
    let cast = Cast::new();
    let a = cast.put(&random_bytes(1000), 1000);
    let b = cast.put(&random_bytes(1000), 1000);
    let known = Damage {
        record: a.record_id(),
        part: Part::StorageKey,
        reason: "not in the keyring".into(),
    };
    let report = scrub(cast.vault.store(), std::slice::from_ref(&known), |_| {}).unwrap();
    assert_eq!(report.damaged, vec![known]);
    assert_eq!(report.records_checked, 2);
    // Only b's one chunk was read.
    assert_eq!(report.chunks_checked, 1);
    assert!(cast.vault.verify(&b).is_ok());
}

#[test]
fn a_stream_that_authenticates_but_is_not_the_registered_one_is_damage() {
    let cast = Cast::new();
    let meta = cast.put(&random_bytes(5000), 5000);
    let mut other = meta.clone();
    other.ciphertext_digest = custos_crypto::Hash([7; 32]);
    match cast.vault.verify(&other) {
        Err(e @ VaultError::NotRegistered { .. }) => {
            assert!(e.is_damage());
            assert!(e.to_string().contains(&meta.record_id().to_hex()), "{e}");
            assert_eq!(
                Damage::from_error(meta.record_id(), &e).unwrap().part,
                Part::Stream
            );
        }
        other => panic!("expected a registration mismatch, got {other:?}"),
    }
}
