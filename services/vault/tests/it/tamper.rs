//! Tampering with what the vault stores: the vault finds it before confirming the release and
//! refuses with the integrity error naming the record; nothing is confirmed and no plaintext
//! file appears.

use custos_types::{AccessMode, Purpose, RecordId};
use custos_vault::stream::{RecordVersion, StreamError};
use custos_vault::{CHUNK_SIZE, VaultStore};
use custos_vault_service::VaultClientError;

use crate::{VaultNet, random_bytes};

enum Damage {
    FlipBit,
    SwapChunks,
    TruncateLastChunk,
    DropLastChunk,
    /// A chunk of another record (so another AAD) in this record's place.
    WrongAad(RecordId),
}

fn damage(vn: &VaultNet, record: &RecordId, how: &Damage) {
    let store = vn.running().vault().store();
    let mut meta = store.meta(record).unwrap().unwrap();
    let last = meta.chunk_count - 1;
    match how {
        Damage::FlipBit => {
            let mut chunk = store.chunk(record, 1).unwrap().unwrap();
            chunk[1234] ^= 0x04;
            store.put_chunk(record, 1, &chunk).unwrap();
        }
        Damage::SwapChunks => {
            let (a, b) = (
                store.chunk(record, 0).unwrap().unwrap(),
                store.chunk(record, 1).unwrap().unwrap(),
            );
            store.put_chunk(record, 0, &b).unwrap();
            store.put_chunk(record, 1, &a).unwrap();
        }
        Damage::TruncateLastChunk => {
            let mut chunk = store.chunk(record, last).unwrap().unwrap();
            chunk.truncate(chunk.len() / 2);
            store.put_chunk(record, last, &chunk).unwrap();
        }
        Damage::DropLastChunk => {
            // The vault streams one chunk less, and says so in the header.
            meta.chunk_count = last;
            store.put_meta(&meta).unwrap();
        }
        Damage::WrongAad(other) => {
            let chunk = store.chunk(other, 0).unwrap().unwrap();
            store.put_chunk(record, 0, &chunk).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_chunks_are_refused_before_any_confirmation_with_the_integrity_error() {
    let vn = VaultNet::start(1).await.unwrap();
    let patient = &vn.net.patients[0];
    vn.net
        .grant(
            patient,
            &vn.net.insurer,
            &[Purpose::parse("HPAYMT").unwrap()],
            &[AccessMode::Raw],
        )
        .await
        .unwrap();
    let donor = vn
        .put(patient, random_bytes(3 * CHUNK_SIZE as usize + 500))
        .await
        .unwrap();
    for how in [
        Damage::FlipBit,
        Damage::SwapChunks,
        Damage::TruncateLastChunk,
        Damage::DropLastChunk,
        Damage::WrongAad(donor),
    ] {
        let record = vn
            .put(patient, random_bytes(3 * CHUNK_SIZE as usize + 500))
            .await
            .unwrap();
        damage(&vn, &record, &how);
        let decision = vn.request(&vn.net.insurer, record, "HPAYMT").await.unwrap();
        let request = VaultNet::request_id(&decision);
        let (out, fetched) = vn.fetch(&vn.net.insurer, request, false).await;
        // The vault reads and checks the record before confirming a release: it refuses with
        // the integrity error the recipient would have met, and confirms nothing.
        let expected = match &how {
            Damage::FlipBit => StreamError::Integrity { record, index: 1 },
            Damage::SwapChunks | Damage::WrongAad(_) => StreamError::Integrity { record, index: 0 },
            Damage::TruncateLastChunk => StreamError::Integrity { record, index: 3 },
            Damage::DropLastChunk => StreamError::Truncated { record, chunks: 3 },
        };
        let error = match fetched {
            Err(VaultClientError::Status(s)) => {
                assert_eq!(s.code(), tonic::Code::DataLoss, "{s:?}");
                s.message().to_string()
            }
            other => panic!("expected the vault to refuse, got {other:?}"),
        };
        assert!(error.starts_with("vault_damaged:"), "{error}");
        assert!(
            error.contains(&expected.to_string()),
            "expected {expected}, got {error}"
        );
        assert!(error.contains(&record.to_hex()), "{error}");
        let entry = vn.audit_entry(request).await.unwrap();
        assert!(entry.releases.is_empty(), "nothing confirmed after {error}");
        assert!(!out.exists(), "no plaintext file after {error}");
        assert!(
            vn.partial_files().is_empty(),
            "no partial plaintext file is left"
        );
    }
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_rebound_to_another_version_is_caught_by_the_vault_before_any_release() {
    let vn = VaultNet::start(1).await.unwrap();
    let patient = &vn.net.patients[0];
    vn.net
        .grant(
            patient,
            &vn.net.insurer,
            &[Purpose::parse("HPAYMT").unwrap()],
            &[AccessMode::Raw],
        )
        .await
        .unwrap();
    let record = vn.put(patient, random_bytes(1000)).await.unwrap();
    let store = vn.running().vault().store();
    let mut meta = store.meta(&record).unwrap().unwrap();
    meta.stream.version = RecordVersion(2);
    store.put_meta(&meta).unwrap();
    let decision = vn.request(&vn.net.insurer, record, "HPAYMT").await.unwrap();
    let request = VaultNet::request_id(&decision);
    let (out, fetched) = vn.fetch(&vn.net.insurer, request, false).await;
    match fetched {
        Err(VaultClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::DataLoss, "{s:?}");
            assert!(s.message().contains(&record.to_hex()), "{}", s.message());
        }
        other => panic!("expected a data-loss refusal, got {other:?}"),
    }
    assert!(!out.exists());
    // The vault's own key does not open under the altered binding: nothing was confirmed.
    assert!(vn.audit_entry(request).await.unwrap().releases.is_empty());
    vn.net.stop().await.unwrap();
}
