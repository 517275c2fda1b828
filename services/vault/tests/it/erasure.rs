//! Erasure (I9): the ledger logs it, later requests are denied `erased`, and neither the
//! plaintext nor the data key (nor the wrapped keys, nor the attributes) can be found anywhere
//! in the vault's files — even by someone holding the passphrase.

use custos_proto::vault::v1 as pb;
use custos_types::tx::EraseRecord;
use custos_types::{AccessMode, DecisionReason, Purpose, TxKind};
use custos_vault::wrap::unwrap_key;
use custos_vault::{CHUNK_SIZE, EncryptionSecret, KdfParams, Passphrase, VaultStore, WrapContext};
use custos_vault_service::SledVaultStore;

use crate::{PASSPHRASE, VaultNet, assert_denied, contains, party, random_bytes, random32};

#[tokio::test(flavor = "multi_thread")]
async fn after_erasure_neither_plaintext_nor_keys_can_be_found_in_the_vaults_files() {
    let mut vn = VaultNet::start(1).await.unwrap();
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
    let c = CHUNK_SIZE as usize;
    let plaintext = random_bytes(3 * c + 999);
    // Attributes are small numbers from a fixed vocabulary; the name of one that no other
    // record and no table of the vault carries is what a leak of the metadata would show.
    let marker = "postcode_region".to_string();
    let attribute = pb::Attribute {
        name: marker.clone(),
        value: Some(pb::attribute::Value::Numeric(
            i64::from(random32()[0]) * 391,
        )),
    };
    let record = vn
        .put_with(&patient, plaintext.clone(), vec![attribute])
        .await
        .unwrap();
    let keep_text = random_bytes(2000);
    let keep = vn.put(&patient, keep_text.clone()).await.unwrap();

    // What an attacker would look for: the data key (from the insurer's release), the wrapped
    // key the vault stores for the patient (from the patient's own release), the ciphertext.
    let (_, fetched) = vn
        .request_and_fetch(&vn.net.insurer, record, "HPAYMT", false)
        .await
        .unwrap();
    let header = fetched.unwrap().header;
    let data_key = unwrap_key(
        &header.wrapped_key,
        &EncryptionSecret::of_party(&vn.net.insurer).unwrap(),
        &WrapContext {
            record_id: record,
            version: header.stream.version,
            custodian: header.stream.custodian,
            recipient: party(&vn.net.insurer),
        },
    )
    .unwrap();
    let (_, own) = vn
        .request_and_fetch(&patient, record, "PATRQT", true)
        .await
        .unwrap();
    let stored_wrap = own.unwrap().header.wrapped_key;
    let first_chunk = vn
        .running()
        .vault()
        .store()
        .chunk(&record, 0)
        .unwrap()
        .unwrap();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("plaintext at 0", plaintext[..64].to_vec()),
        ("plaintext at one chunk", plaintext[c..c + 64].to_vec()),
        (
            "plaintext at the end",
            plaintext[plaintext.len() - 64..].to_vec(),
        ),
        ("data key", data_key.expose().to_vec()),
        (
            "stored wrapped key (encapsulation)",
            stored_wrap.encapsulated.to_vec(),
        ),
        (
            "stored wrapped key (sealed key)",
            stored_wrap.ciphertext.clone(),
        ),
        ("attribute value", marker.as_bytes().to_vec()),
    ];
    let scan = |vn: &VaultNet| -> (Vec<String>, bool) {
        let mut found = Vec::new();
        let mut ciphertext_seen = false;
        for file in vn.vault_files() {
            let bytes = std::fs::read(&file).unwrap();
            for (what, needle) in &secrets {
                if contains(&bytes, needle) {
                    found.push(format!("{what} in {}", file.display()));
                }
            }
            ciphertext_seen |= contains(&bytes, &first_chunk[..64]);
        }
        (found, ciphertext_seen)
    };

    // Before erasure the scan does find what sled holds (the ciphertext), and never the rest:
    // it is sealed.
    vn.stop_vault().await.unwrap();
    let (found, ciphertext_seen) = scan(&vn);
    assert!(ciphertext_seen, "the scan must be able to see stored bytes");
    assert!(found.is_empty(), "before erasure: {found:?}");
    vn.restart().await.unwrap();

    // The patient erases through the vault; the ledger logs it.
    let tx = vn
        .net
        .client
        .sign(
            &patient,
            TxKind::EraseRecord(EraseRecord {
                record_id: record,
                legal_grounds: false,
            }),
        )
        .await
        .unwrap();
    let erased = vn.client.erase(&tx).await.unwrap();
    assert_eq!(erased.erase_tx_id, tx.id().to_vec());
    let later = vn.request(&vn.net.insurer, record, "HPAYMT").await.unwrap();
    assert_eq!(
        later.decision.as_ref().unwrap().reason,
        DecisionReason::Erased.to_wire()
    );
    let (_, fetched) = vn
        .fetch(&vn.net.insurer, VaultNet::request_id(&later), false)
        .await;
    assert_denied(&fetched, "erased");
    let ledger_record = vn
        .net
        .client
        .record(&vn.net.hospital, record, None)
        .await
        .unwrap();
    assert!(
        ledger_record.erased,
        "the digest stays on the ledger, marked erased"
    );

    // After erasure: nothing of it in any file of the vault's folder.
    vn.stop_vault().await.unwrap();
    let (found, ciphertext_seen) = scan(&vn);
    assert!(found.is_empty(), "after erasure: {found:?}");
    eprintln!(
        "stale ciphertext of the erased record still in sled segments: {ciphertext_seen} \
         (sealed under a data key that exists nowhere any more)"
    );
    // Even with the passphrase, the store yields nothing of the record; the other is intact.
    let store = SledVaultStore::open(
        &vn.config.data_dir,
        &Passphrase::new(PASSPHRASE.into()).unwrap(),
        KdfParams::INSECURE_FOR_TESTS,
    )
    .unwrap();
    assert_eq!(store.meta(&record).unwrap(), None);
    assert_eq!(store.chunk(&record, 0).unwrap(), None);
    assert_eq!(store.wrapped_key(&record, &party(&patient)).unwrap(), None);
    assert_eq!(store.records().unwrap(), vec![keep]);
    drop(store);
    vn.restart().await.unwrap();
    let (out, fetched) = vn
        .request_and_fetch(&vn.net.insurer, keep, "HPAYMT", false)
        .await
        .unwrap();
    fetched.unwrap();
    assert_eq!(std::fs::read(out).unwrap(), keep_text);
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_or_the_custodian_on_legal_grounds_erases() {
    let vn = VaultNet::start(1).await.unwrap();
    let patient = vn.net.patients[0].clone();
    let record = vn.put(&patient, random_bytes(100)).await.unwrap();
    let erase = |legal_grounds| {
        TxKind::EraseRecord(EraseRecord {
            record_id: record,
            legal_grounds,
        })
    };
    // A partner cannot; the custodian cannot without legal grounds. The record stays.
    for (who, legal) in [(&vn.net.insurer, false), (&vn.net.hospital, false)] {
        let tx = vn.net.client.sign(who, erase(legal)).await.unwrap();
        let refused = vn.client.erase(&tx).await.unwrap_err();
        assert!(refused.to_string().contains("ledger"), "{refused}");
        assert!(vn.running().vault().meta(&record).is_ok());
    }
    // The custodian can on legal grounds (flagged on the ledger).
    let tx = vn
        .net
        .client
        .sign(&vn.net.hospital, erase(true))
        .await
        .unwrap();
    vn.client.erase(&tx).await.unwrap();
    assert!(vn.running().vault().meta(&record).is_err());
    // Erasing what the vault does not hold names the field.
    let tx = vn.net.client.sign(&patient, erase(false)).await.unwrap();
    let refused = vn.client.erase(&tx).await.unwrap_err();
    assert!(refused.to_string().contains("record_id"), "{refused}");
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_sent_straight_to_a_node_reaches_the_vault() {
    let vn = VaultNet::start(1).await.unwrap();
    let patient = vn.net.patients[0].clone();
    let record = vn.put(&patient, random_bytes(5000)).await.unwrap();
    let keep = vn.put(&patient, random_bytes(10)).await.unwrap();
    // Not through the vault: the patient's erasure goes to the node only.
    vn.net
        .submit(
            &patient,
            TxKind::EraseRecord(EraseRecord {
                record_id: record,
                legal_grounds: false,
            }),
        )
        .await
        .unwrap();
    let vault = vn.running().vault().clone();
    // The vault shreds the storage key first (the metadata becomes unreadable), then removes
    // the chunks and wrapped keys: wait until all of it is gone.
    let gone = |vault: &custos_vault::Vault<SledVaultStore>| {
        vault.meta(&record).is_err()
            && vault.store().chunk(&record, 0).unwrap().is_none()
            && vault
                .store()
                .wrapped_key(&record, &party(&patient))
                .unwrap()
                .is_none()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !gone(&vault) {
        assert!(
            std::time::Instant::now() < deadline,
            "the vault did not follow the finalized erasure"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(vault.meta(&keep).is_ok(), "only the erased record goes");
    vn.net.stop().await.unwrap();
}
