//! A vault never loses data silently: with a keyring shard removed, a chunk file truncated or
//! one byte of a chunk flipped, nothing of the record is deleted, no release of it is confirmed
//! on the ledger, and the damage is named (record and part) where it is found — at start, at a
//! release, or by the scrub.

use std::path::PathBuf;

use custos_types::{AccessMode, Purpose, RecordId, RequestId};
use custos_vault::stream::TAG_LEN;
use custos_vault::{CHUNK_SIZE, KdfParams, Part, Passphrase, VaultStore};
use custos_vault_service::{SledVaultStore, VaultClientError};

use crate::{PASSPHRASE, VaultNet, random_bytes};

/// Bytes one full chunk takes in its record's chunk file.
const STORED_CHUNK: u64 = CHUNK_SIZE as u64 + TAG_LEN as u64;

fn chunk_file(vn: &VaultNet, record: &RecordId) -> PathBuf {
    vn.config.data_dir.join("chunks").join(record.to_hex())
}

fn shard_file(vn: &VaultNet, record: &RecordId) -> PathBuf {
    vn.config
        .data_dir
        .join("keyring")
        .join(format!("{:02x}.sealed", record.0.0[0]))
}

/// The stopped vault's store, opened as the vault opens it.
fn open_store(vn: &VaultNet) -> SledVaultStore {
    SledVaultStore::open(
        &vn.config.data_dir,
        &Passphrase::new(PASSPHRASE.into()).unwrap(),
        KdfParams::INSECURE_FOR_TESTS,
    )
    .unwrap()
}

/// A vault with a record of four chunks granted raw to the insurer for HPAYMT; the record, its
/// plaintext and the granted request.
async fn granted_record() -> (VaultNet, RecordId, Vec<u8>, RequestId) {
    let vn = VaultNet::start(1).await.unwrap();
    let patient = vn.net.patients[0].clone();
    vn.net
        .grant(
            &patient,
            &vn.net.insurer,
            &[Purpose::parse("HPAYMT").unwrap()],
            &[AccessMode::Raw],
        )
        .await
        .unwrap();
    let plaintext = random_bytes(3 * CHUNK_SIZE as usize + 500);
    let record = vn.put(&patient, plaintext.clone()).await.unwrap();
    let decision = vn.request(&vn.net.insurer, record, "HPAYMT").await.unwrap();
    assert!(decision.decision.as_ref().unwrap().granted);
    let request = VaultNet::request_id(&decision);
    (vn, record, plaintext, request)
}

/// The insurer's fetch under `request` is refused as damage naming `record` and `part`, no
/// plaintext file appears, and the ledger holds no release of the request but a `vault_damaged`
/// refusal (one per refused fetch so far: `refusals`).
async fn assert_refused_as_damage(
    vn: &VaultNet,
    record: RecordId,
    request: RequestId,
    part: &str,
    refusals: usize,
) -> String {
    let (out, fetched) = vn.fetch(&vn.net.insurer, request, false).await;
    let message = match fetched {
        Err(VaultClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::DataLoss, "{s:?}");
            s.message().to_string()
        }
        other => panic!("expected a data-loss refusal, got {other:?}"),
    };
    assert!(message.starts_with("vault_damaged:"), "{message}");
    assert!(message.contains(&record.to_hex()), "{message}");
    assert!(message.contains(part), "expected `{part}` in: {message}");
    assert!(
        message.contains("refusal logged on the ledger"),
        "{message}"
    );
    assert!(!out.exists(), "no plaintext file");
    assert!(vn.partial_files().is_empty(), "no partial plaintext file");
    let entry = vn.audit_entry(request).await.unwrap();
    assert!(entry.releases.is_empty(), "nothing confirmed: {entry:?}");
    assert_eq!(
        vn.vault_refusals(&vn.net.insurer, record).await.unwrap(),
        vec!["vault_damaged"; refusals]
    );
    message
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_keyring_shard_stops_the_vault_from_starting_and_deletes_nothing() {
    let (mut vn, record, plaintext, request) = granted_record().await;
    vn.stop_vault().await.unwrap();
    let chunks = chunk_file(&vn, &record);
    let stored = std::fs::read(&chunks).unwrap();
    let shard = shard_file(&vn, &record);
    let saved = vn.dir.path().join("saved-shard");
    std::fs::rename(&shard, &saved).unwrap();

    // Twice: a refused start changes nothing, so the second finds the same.
    for _ in 0..2 {
        let refused = VaultNet::launch(&vn.net, &vn.config, vn.tamper.clone(), PASSPHRASE)
            .await
            .err()
            .expect("the vault must not start without a record's key");
        let text = format!("{refused:#}");
        assert!(text.contains(&record.to_hex()), "{text}");
        assert!(text.contains("storage key"), "{text}");
        assert!(text.contains(&shard.display().to_string()), "{text}");
        assert!(text.contains("changed nothing"), "{text}");
        assert_eq!(
            std::fs::read(&chunks).unwrap(),
            stored,
            "the ciphertext is kept"
        );
    }
    {
        let store = open_store(&vn);
        let damage: Vec<_> = store.damage().iter().map(|d| (d.record, d.part)).collect();
        assert_eq!(damage, [(record, Part::StorageKey)]);
        // Still listed (its metadata is kept), and unreadable rather than absent.
        assert_eq!(store.records().unwrap(), [record]);
        assert!(store.meta(&record).is_err());
        let report = store.scrub(|_| {}).unwrap();
        assert_eq!(report.damaged.len(), 1);
        assert_eq!(report.damaged[0].part, Part::StorageKey);
    }
    assert_eq!(std::fs::read(&chunks).unwrap(), stored);
    assert!(vn.audit_entry(request).await.unwrap().releases.is_empty());

    // The shard restored from its copy: the vault starts and releases the record intact.
    std::fs::rename(&saved, &shard).unwrap();
    vn.restart().await.unwrap();
    let (out, fetched) = vn.fetch(&vn.net.insurer, request, false).await;
    fetched.unwrap();
    assert_eq!(std::fs::read(out).unwrap(), plaintext);
    assert_eq!(vn.audit_entry(request).await.unwrap().releases.len(), 1);
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_chunk_file_is_refused_at_release_and_at_start_and_kept() {
    let (mut vn, record, _, request) = granted_record().await;
    let chunks = chunk_file(&vn, &record);
    let full = std::fs::metadata(&chunks).unwrap().len();
    assert_eq!(full, 3 * STORED_CHUNK + 500 + TAG_LEN as u64);
    let cut = full - 100;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&chunks)
        .unwrap()
        .set_len(cut)
        .unwrap();

    // While running: the release reads the record before confirming it, and refuses.
    let message = assert_refused_as_damage(&vn, record, request, "chunk 3", 1).await;
    assert!(message.contains("truncated"), "{message}");
    // Asked again: refused again, still never confirmed.
    assert_refused_as_damage(&vn, record, request, "chunk 3", 2).await;
    assert_eq!(std::fs::metadata(&chunks).unwrap().len(), cut);

    // At start: the lengths do not add up, and the vault does not start.
    vn.stop_vault().await.unwrap();
    let refused = VaultNet::launch(&vn.net, &vn.config, vn.tamper.clone(), PASSPHRASE)
        .await
        .err()
        .expect("the vault must not start on a truncated chunk file");
    let text = format!("{refused:#}");
    assert!(text.contains(&record.to_hex()), "{text}");
    assert!(text.contains("chunk 3"), "{text}");
    assert!(text.contains("truncated"), "{text}");
    assert_eq!(
        std::fs::metadata(&chunks).unwrap().len(),
        cut,
        "the file is kept"
    );
    let store = open_store(&vn);
    let damage: Vec<_> = store.damage().iter().map(|d| (d.record, d.part)).collect();
    assert_eq!(damage, [(record, Part::Chunk(3))]);
    assert!(
        store.meta(&record).unwrap().is_some(),
        "the metadata is kept"
    );
    assert_eq!(
        store.chunk(&record, 0).unwrap().unwrap().len() as u64,
        STORED_CHUNK
    );
    drop(store);
    assert!(vn.audit_entry(request).await.unwrap().releases.is_empty());
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_chunk_is_never_released_nor_confirmed_and_the_scrub_names_it() {
    let (mut vn, record, _, request) = granted_record().await;
    let patient = vn.net.patients[0].clone();
    let sound_plaintext = random_bytes(1000);
    let sound = vn.put(&patient, sound_plaintext.clone()).await.unwrap();
    let chunks = chunk_file(&vn, &record);
    let mut bytes = std::fs::read(&chunks).unwrap();
    bytes[STORED_CHUNK as usize + 1234] ^= 0x20;
    std::fs::write(&chunks, &bytes).unwrap();

    assert_refused_as_damage(&vn, record, request, "chunk 1", 1).await;
    assert_refused_as_damage(&vn, record, request, "chunk 1", 2).await;
    assert_eq!(
        std::fs::read(&chunks).unwrap(),
        bytes,
        "the chunk file is kept as it is"
    );
    // The other record is released as usual.
    let (out, fetched) = vn
        .request_and_fetch(&vn.net.insurer, sound, "HPAYMT", false)
        .await
        .unwrap();
    fetched.unwrap();
    assert_eq!(std::fs::read(out).unwrap(), sound_plaintext);

    // The start-up check reads lengths, not contents: the vault starts, and still refuses.
    vn.restart().await.unwrap();
    assert_refused_as_damage(&vn, record, request, "chunk 1", 3).await;

    // The scrub reads every chunk and names the record and the chunk, and only that one.
    vn.stop_vault().await.unwrap();
    let store = open_store(&vn);
    assert!(store.damage().is_empty());
    let report = store.scrub(|_| {}).unwrap();
    assert_eq!(report.records_checked, 2);
    let damage: Vec<_> = report.damaged.iter().map(|d| (d.record, d.part)).collect();
    assert_eq!(damage, [(record, Part::Chunk(1))]);
    assert!(
        report.damaged[0].reason.contains("authentication"),
        "{:?}",
        report.damaged
    );
    drop(store);
    assert_eq!(std::fs::read(&chunks).unwrap(), bytes);
    vn.net.stop().await.unwrap();
}
