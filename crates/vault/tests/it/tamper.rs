//! Tampering with stored or streamed ciphertext: an integrity error naming the record, and no
//! plaintext handed out.

use custos_types::{PartyId, RecordId};
use custos_vault::stream::{ChunkDecryptor, RecordVersion, StreamError, decrypt_all};
use custos_vault::{CHUNK_SIZE, DataKey, PlaintextFile, ReleaseHeader, VaultStore, WrapContext};
use proptest::prelude::*;

use crate::{Cast, random_bytes};

/// A three-and-a-bit-chunk record released to the partner, with its data key.
fn released(cast: &Cast) -> (ReleaseHeader, Vec<Vec<u8>>, DataKey) {
    let meta = cast.put(&random_bytes(3 * CHUNK_SIZE as usize + 100), 50_000);
    let (header, chunks) = cast.release(&meta.record_id());
    let key = custos_vault::wrap::unwrap_key(
        &header.wrapped_key,
        &cast.partner_secret(),
        &WrapContext {
            record_id: meta.record_id(),
            version: meta.stream.version,
            custodian: meta.stream.custodian,
            recipient: PartyId(cast.partner.public()),
        },
    )
    .unwrap();
    (header, chunks, key)
}

fn assert_names_record(error: &StreamError, record: RecordId) {
    assert!(error.to_string().contains(&record.to_hex()), "{error}");
}

#[test]
fn one_flipped_bit_in_a_stored_chunk_is_an_integrity_error_naming_the_record() {
    let cast = Cast::new();
    let (header, _, key) = released(&cast);
    let record = header.record_id();
    // Flip one bit of chunk 1 where the vault stores it.
    let meta = cast.vault.meta(&record).unwrap();
    let mut chunk = cast.vault.chunk(&meta, 1).unwrap();
    chunk[100] ^= 0x10;
    cast.vault.store().put_chunk(&record, 1, &chunk).unwrap();
    let (_, chunks) = cast.release(&record);
    let error = decrypt_all(&key, header.stream, chunks).unwrap_err();
    assert_eq!(error, StreamError::Integrity { record, index: 1 });
    assert_names_record(&error, record);
}

#[test]
fn two_swapped_chunks_are_an_integrity_error() {
    let cast = Cast::new();
    let (header, mut chunks, key) = released(&cast);
    chunks.swap(0, 1);
    let error = decrypt_all(&key, header.stream, chunks).unwrap_err();
    assert_eq!(
        error,
        StreamError::Integrity {
            record: header.record_id(),
            index: 0
        }
    );
}

#[test]
fn a_truncated_stream_is_detected_whether_cut_at_a_chunk_or_inside_one() {
    let cast = Cast::new();
    let (header, chunks, key) = released(&cast);
    let record = header.record_id();
    let mut dropped = chunks.clone();
    dropped.pop();
    let error = decrypt_all(&key, header.stream, dropped).unwrap_err();
    assert_eq!(error, StreamError::Truncated { record, chunks: 3 });
    assert_names_record(&error, record);
    let mut cut = chunks.clone();
    let last = cut.len() - 1;
    cut[last].truncate(40);
    assert_eq!(
        decrypt_all(&key, header.stream, cut).unwrap_err(),
        StreamError::Integrity { record, index: 3 }
    );
    // A full inner chunk presented as the last one does not pass for the end either.
    let first_two: Vec<Vec<u8>> = chunks[..2].to_vec();
    assert_eq!(
        decrypt_all(&key, header.stream, first_two).unwrap_err(),
        StreamError::Truncated { record, chunks: 2 }
    );
}

#[test]
fn a_wrong_aad_is_an_integrity_error() {
    let cast = Cast::new();
    let (header, chunks, key) = released(&cast);
    let other_custodian = PartyId(cast.partner.public());
    for params in [
        custos_vault::StreamParams {
            version: RecordVersion(2),
            ..header.stream
        },
        custos_vault::StreamParams {
            custodian: other_custodian,
            ..header.stream
        },
        custos_vault::StreamParams {
            record_id: RecordId(custos_crypto::sha256(b"x")),
            ..header.stream
        },
    ] {
        let error = decrypt_all(&key, params, chunks.clone()).unwrap_err();
        assert_eq!(
            error,
            StreamError::Integrity {
                record: params.record_id,
                index: 0
            }
        );
    }
}

#[test]
fn a_chunk_after_the_final_one_is_refused() {
    let cast = Cast::new();
    let (header, mut chunks, key) = released(&cast);
    chunks.push(chunks[0].clone());
    assert_eq!(
        decrypt_all(&key, header.stream, chunks).unwrap_err(),
        StreamError::AfterFinal {
            record: header.record_id(),
            index: 4
        }
    );
}

#[test]
fn a_failed_decryption_leaves_no_plaintext_file() {
    let cast = Cast::new();
    let (header, mut chunks, key) = released(&cast);
    chunks[2][5] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("record.json");
    let result = (|| -> Result<(), StreamError> {
        let mut file = PlaintextFile::create(&target).unwrap();
        let mut decryptor = ChunkDecryptor::new(&key, header.stream)?;
        for chunk in chunks {
            file.write(&decryptor.open_chunk(chunk)?).unwrap();
        }
        decryptor.finish()?;
        file.commit().unwrap();
        Ok(())
    })();
    assert_eq!(
        result,
        Err(StreamError::Integrity {
            record: header.record_id(),
            index: 2
        })
    );
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial file is left"
    );
}

#[test]
fn a_committed_plaintext_file_never_overwrites_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    std::fs::write(&target, b"mine").unwrap();
    assert!(PlaintextFile::create(&target).is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"mine");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_single_bit_flip_anywhere_is_detected(chunk_pick in 0usize..4, byte in 0usize..70_000, bit in 0u8..8) {
        let cast = Cast::new();
        let (header, mut chunks, key) = released(&cast);
        let i = chunk_pick % chunks.len();
        let b = byte % chunks[i].len();
        chunks[i][b] ^= 1 << bit;
        let error = decrypt_all(&key, header.stream, chunks).unwrap_err();
        prop_assert_eq!(error, StreamError::Integrity { record: header.record_id(), index: i as u32 });
    }
}
