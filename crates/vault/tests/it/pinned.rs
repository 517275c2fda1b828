//! Pinned encodings: the chunk encryption (nonce and AAD layout), the ciphertext digest and the
//! persisted record metadata. Changing any of these fixtures is an explicit decision: stored
//! records and ledger digests depend on them. The chunk and digest fixtures were computed
//! independently with Python's `cryptography` (ChaCha20Poly1305) and `hashlib` from the layout
//! documented in `custos_vault::stream`.

use custos_crypto::{Hash, PublicKey, SecretKey, SigningKeyPair, sha256};
use custos_types::{Category, Height, PartyId, RecordId, TxId};
use custos_vault::record::{AttributeName, AttributeValue, Attributes};
use custos_vault::stream::{RecordVersion, StreamParams, encrypt_all};
use custos_vault::{DataKey, RecordMeta, Registration};

fn custodian() -> PartyId {
    let key = SigningKeyPair::from_secret(&SecretKey::from_slice(&[3u8; 32]).unwrap());
    PartyId(PublicKey::from_slice(key.public().as_bytes()).unwrap())
}

fn params() -> StreamParams {
    StreamParams {
        record_id: RecordId(sha256(b"custos vault fixture")),
        version: RecordVersion::FIRST,
        custodian: custodian(),
        chunk_size: 16,
        nonce_prefix: [9u8; 7],
    }
}

#[test]
fn the_chunk_encryption_and_ciphertext_digest_are_pinned() {
    let key = DataKey::from_slice(&[1u8; 32]).unwrap();
    let (chunks, summary) = encrypt_all(
        &key,
        params(),
        b"custos vault fixture plaintext, 45 bytes long",
    )
    .unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        hex::encode(&chunks[0]),
        "9ad660a002c27e6e96fffd14bc830d35ecd7aaa14e900b14746c7a4ae68c0faf"
    );
    assert_eq!(
        summary.ciphertext_digest.to_hex(),
        "9725ceda9a441117fba14c2af3a1ed61de846b7a20142d4d1ea871e7f4dc316b"
    );
}

// Version 2 (changed on purpose): the attribute commitment's salt joined the metadata.
#[test]
fn the_record_metadata_encoding_is_pinned() {
    let mut attributes = Attributes::new();
    attributes.insert(
        AttributeName::parse("hba1c", "a").unwrap(),
        AttributeValue::Numeric(53),
    );
    attributes.insert(
        AttributeName::parse("sex", "a").unwrap(),
        AttributeValue::Categorical("f".into()),
    );
    let meta = RecordMeta {
        stream: params(),
        owner: custodian(),
        category: Category::parse("lab", "category").unwrap(),
        attributes,
        commitment_salt: Some([3u8; 32]),
        size: 45,
        chunk_count: 3,
        ciphertext_digest: sha256(b"digest"),
        registration: Registration {
            tx_id: TxId(Hash([5u8; 32])),
            height: Height(12),
        },
    };
    let bytes = meta.to_bytes().unwrap();
    assert_eq!(RecordMeta::from_bytes(&bytes).unwrap(), meta);
    assert_eq!(
        sha256(&bytes).to_hex(),
        "d3a92872488e7ca4e5b68bbaaaf6d6b3fb252c40786763c4fa12a67cb94d9bbb"
    );
}
