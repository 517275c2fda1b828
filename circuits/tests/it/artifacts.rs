use custos_circuits::{Error, KeyId, ProvingKeyArtifact, VerifyingKeyArtifact};

use crate::{keys, proven, rng};

#[test]
fn key_artifacts_roundtrip_through_bytes_and_files_under_their_ids() {
    let (pk, vk) = keys();
    assert_eq!(pk.verifying_key().id(), vk.id());
    let vk_bytes = vk.to_bytes().unwrap();
    assert_eq!(KeyId::of(&vk_bytes), vk.id());
    assert_eq!(&vk_bytes[..8], b"CUSTOSVK");

    let dir = tempfile::tempdir().unwrap();
    vk.save(dir.path().join("vk.bin")).unwrap();
    pk.save(dir.path().join("pk.bin")).unwrap();
    let vk2 = VerifyingKeyArtifact::load_file(dir.path().join("vk.bin"), &vk.id()).unwrap();
    let pk2 = ProvingKeyArtifact::load_file(dir.path().join("pk.bin"), &pk.id()).unwrap();
    assert_eq!(vk2.id(), vk.id());
    assert_eq!(pk2.id(), pk.id());

    // A proof made with the reloaded proving key verifies under the reloaded verifying key.
    let (public, private) = crate::statement(40);
    let proof =
        custos_circuits::PredicateProof::prove(&pk2, &public, &private, &mut rng(40)).unwrap();
    proof.verify(&vk2, &public).unwrap();
    assert_eq!(KeyId::from_hex(&vk.id().to_hex()).unwrap(), vk.id());
}

#[test]
fn an_altered_key_artifact_is_refused_on_load() {
    let (pk, vk) = keys();
    let mut bytes = vk.to_bytes().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let err = VerifyingKeyArtifact::load(&bytes, &vk.id()).unwrap_err();
    assert!(matches!(err, Error::KeyIdMismatch { .. }));
    assert!(err.to_string().contains(&vk.id().to_hex()));

    let mut pk_bytes = pk.to_bytes().unwrap();
    pk_bytes[100] ^= 1;
    assert!(matches!(
        ProvingKeyArtifact::load(&pk_bytes, &pk.id()),
        Err(Error::KeyIdMismatch { .. })
    ));
}

#[test]
fn a_key_artifact_with_a_matching_id_but_a_bad_header_or_body_is_refused() {
    let (pk, vk) = keys();
    // A proving key presented as a verifying key: its own id matches, its header does not.
    let pk_bytes = pk.to_bytes().unwrap();
    assert!(matches!(
        VerifyingKeyArtifact::load(&pk_bytes, &KeyId::of(&pk_bytes)),
        Err(Error::KeyHeader { .. })
    ));
    // A future format version.
    let mut v2 = vk.to_bytes().unwrap();
    v2[9] = 2;
    assert!(matches!(
        VerifyingKeyArtifact::load(&v2, &KeyId::of(&v2)),
        Err(Error::KeyHeader { .. })
    ));
    // A corrupted body whose id was recomputed (e.g. a registry entry made from bad bytes).
    let mut body = vk.to_bytes().unwrap();
    body[16..48].fill(0xff);
    assert!(matches!(
        VerifyingKeyArtifact::load(&body, &KeyId::of(&body)),
        Err(Error::KeyBody(_))
    ));
    // Trailing bytes.
    let mut long = vk.to_bytes().unwrap();
    long.push(0);
    assert!(matches!(
        VerifyingKeyArtifact::load(&long, &KeyId::of(&long)),
        Err(Error::KeyBody(_))
    ));
    // Truncated.
    let short = &vk.to_bytes().unwrap()[..10];
    assert!(VerifyingKeyArtifact::load(short, &KeyId::of(short)).is_err());
}

#[test]
fn loading_a_missing_file_says_which_file() {
    let err = VerifyingKeyArtifact::load_file("/nonexistent/vk.bin", &KeyId([0; 32])).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/vk.bin"));
}

#[test]
fn proofs_do_not_verify_under_a_key_loaded_from_other_bytes() {
    let (public, proof) = proven(41);
    let (_, other) = custos_circuits::setup(&mut rng(42)).unwrap();
    let bytes = other.to_bytes().unwrap();
    let loaded = VerifyingKeyArtifact::load(&bytes, &other.id()).unwrap();
    assert!(proof.verify(&loaded, &public).is_err());
}
