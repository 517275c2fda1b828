//! What survives: a restarted vault keeps every record and key; a rotated key keeps every
//! record readable; listing shows each party what it may see.

use custos_types::{AccessMode, Purpose};
use custos_vault::VaultStore;

use crate::{VaultNet, party, random_bytes};

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_vault_keeps_every_record_and_key_and_refuses_a_wrong_passphrase() {
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
    let texts = [random_bytes(10), random_bytes(300_000)];
    let mut records = Vec::new();
    for text in &texts {
        records.push(vn.put(&patient, text.clone()).await.unwrap());
    }
    let key_before = vn.running().vault().custodian_key().unwrap();
    vn.stop_vault().await.unwrap();
    let wrong =
        VaultNet::launch(&vn.net, &vn.config, vn.tamper.clone(), "not the passphrase").await;
    let message = format!("{:#}", wrong.err().expect("a wrong passphrase is refused"));
    assert!(message.contains("wrong passphrase"), "{message}");
    vn.restart().await.unwrap();
    assert_eq!(vn.running().vault().custodian_key().unwrap(), key_before);
    let listed = vn.client.list(&vn.net.hospital, None).await.unwrap();
    assert_eq!(listed.len(), 2);
    for (text, record) in texts.iter().zip(&records) {
        let (out, fetched) = vn
            .request_and_fetch(&vn.net.insurer, *record, "HPAYMT", false)
            .await
            .unwrap();
        fetched.unwrap();
        assert_eq!(&std::fs::read(out).unwrap(), text);
    }
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_every_record_readable_by_its_grantees_and_owners() {
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
    let texts: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(40_000 * i + 7)).collect();
    let mut records = Vec::new();
    for text in &texts {
        records.push(vn.put(&patient, text.clone()).await.unwrap());
    }
    let chunk_before = vn.running().vault().store().chunk(&records[2], 0).unwrap();
    let refused = vn.client.rotate(&vn.net.insurer).await.unwrap_err();
    assert!(refused.to_string().contains("author"), "{refused}");
    let rotated = vn.client.rotate(&vn.net.hospital).await.unwrap();
    assert_eq!((rotated.rewrapped, rotated.generation), (3, 2));
    assert_eq!(
        vn.running().vault().store().chunk(&records[2], 0).unwrap(),
        chunk_before,
        "rotation re-wraps keys and never re-encrypts records"
    );
    vn.restart().await.unwrap();
    assert_eq!(vn.running().vault().custodian_key().unwrap().0, 2);
    for (text, record) in texts.iter().zip(&records) {
        let (out, fetched) = vn
            .request_and_fetch(&vn.net.insurer, *record, "HPAYMT", false)
            .await
            .unwrap();
        fetched.unwrap();
        assert_eq!(&std::fs::read(out).unwrap(), text);
        let (out, fetched) = vn
            .request_and_fetch(&patient, *record, "PATRQT", true)
            .await
            .unwrap();
        fetched.unwrap();
        assert_eq!(&std::fs::read(out).unwrap(), text);
    }
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_shows_the_custodian_everything_and_a_patient_only_their_own() {
    let vn = VaultNet::start(2).await.unwrap();
    let (alice, bob) = (&vn.net.patients[0], &vn.net.patients[1]);
    let a = vn.put(alice, b"a".to_vec()).await.unwrap();
    let b = vn.put(bob, b"bb".to_vec()).await.unwrap();
    let all = vn.client.list(&vn.net.hospital, None).await.unwrap();
    assert_eq!(all.len(), 2);
    let only_bob = vn
        .client
        .list(&vn.net.hospital, Some(party(bob)))
        .await
        .unwrap();
    assert_eq!(only_bob.len(), 1);
    assert_eq!(only_bob[0].record_id, b.to_vec());
    let alices = vn.client.list(alice, None).await.unwrap();
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0].record_id, a.to_vec());
    assert_eq!(alices[0].size, 1);
    let refused = vn.client.list(alice, Some(party(bob))).await.unwrap_err();
    assert!(refused.to_string().contains("owner"), "{refused}");
    vn.net.stop().await.unwrap();
}
