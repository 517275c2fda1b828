//! Granted releases: every size decrypts to the original bytes, the release is confirmed on the
//! ledger with the digest the recipient can recompute, and a request releases once.

use custos_client::verify::verify_proven_entry;
use custos_types::{AccessMode, EntryKind, Purpose, TxKind};
use custos_vault::CHUNK_SIZE;

use crate::{VaultNet, assert_denied, random_bytes};

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_fetch_decrypts_to_the_original_bytes_at_every_size() {
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
    let c = CHUNK_SIZE as usize;
    for size in [0, 1, c - 1, c, c + 1, 3 * c + 17] {
        let plaintext = random_bytes(size);
        let record = vn.put(patient, plaintext.clone()).await.unwrap();
        let (out, fetched) = vn
            .request_and_fetch(&vn.net.insurer, record, "HPAYMT", false)
            .await
            .unwrap();
        let fetched = fetched.unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_eq!(std::fs::read(&out).unwrap(), plaintext, "size {size}");
        assert_eq!(fetched.header.size, size as u64);
        assert_eq!(fetched.header.record_id(), record);
    }
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_is_confirmed_on_the_ledger_with_the_digest_the_recipient_recomputes() {
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
    let record = vn.put(patient, random_bytes(200_000)).await.unwrap();
    let decision = vn.request(&vn.net.insurer, record, "HPAYMT").await.unwrap();
    let request = VaultNet::request_id(&decision);
    let (_, fetched) = vn.fetch(&vn.net.insurer, request, false).await;
    let fetched = fetched.unwrap();
    // The ledger holds the registration digest the header names (read by the insurer through
    // its granted request) …
    let ledger_record = vn
        .net
        .client
        .record(&vn.net.insurer, record, Some(request))
        .await
        .unwrap();
    assert_eq!(
        ledger_record.ciphertext_digest,
        fetched.header.ciphertext_digest.0.to_vec()
    );
    // … and one release confirmation, proven against the genesis, with the header's digest.
    let entry = vn.audit_entry(request).await.unwrap();
    assert_eq!(entry.releases.len(), 1);
    let verified =
        verify_proven_entry(&vn.net.genesis, &vn.net.trusted(), &entry.releases[0]).unwrap();
    let EntryKind::Transaction(tx) = verified.entry.kind else {
        panic!("not a transaction")
    };
    let TxKind::ConfirmRelease(confirm) = &tx.body().kind else {
        panic!("not a confirmation")
    };
    assert_eq!(confirm.request_id, request);
    assert_eq!(confirm.release_digest, fetched.header.release_digest);
    assert_eq!(tx.id(), fetched.header.confirm_tx);
    assert_eq!(tx.author(), crate::party(&vn.net.hospital));
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_releases_once() {
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
    let record = vn
        .put(patient, b"{\"resourceType\":\"Observation\"}".to_vec())
        .await
        .unwrap();
    let decision = vn.request(&vn.net.insurer, record, "HPAYMT").await.unwrap();
    let request = VaultNet::request_id(&decision);
    let (_, first) = vn.fetch(&vn.net.insurer, request, false).await;
    first.unwrap();
    let (out, second) = vn.fetch(&vn.net.insurer, request, false).await;
    assert_denied(&second, "not_confirmed");
    assert!(!out.exists());
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patient_fetches_their_own_record_and_the_fetch_is_logged() {
    let vn = VaultNet::start(1).await.unwrap();
    let patient = &vn.net.patients[0];
    let plaintext = random_bytes(3 * CHUNK_SIZE as usize);
    let record = vn.put(patient, plaintext.clone()).await.unwrap();
    let decision = vn.request(patient, record, "PATRQT").await.unwrap();
    assert_eq!(
        decision.decision.as_ref().unwrap().reason,
        custos_types::DecisionReason::Owner.to_wire()
    );
    let request = VaultNet::request_id(&decision);
    let (out, fetched) = vn.fetch(patient, request, true).await;
    fetched.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), plaintext);
    let entry = vn.audit_entry(request).await.unwrap();
    assert_eq!(
        entry.releases.len(),
        1,
        "the patient's own fetch is logged too"
    );
    vn.net.stop().await.unwrap();
}
