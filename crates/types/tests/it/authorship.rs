//! Transaction v2: the signed bytes name the author, the id is the author's alone, and every
//! signature is bound to its purpose by a signing context (docs/spec/signatures.md).

use custos_crypto::context::{COMMIT, SIGNED_READ, TRANSACTION};
use custos_crypto::{SecretKey, SigningKeyPair, sha256};
use custos_proto::ledger::v1 as pb;
use custos_types::tx::{RequestAccess, tx_id};
use custos_types::{
    AccessMode, ChainId, Nonce, Purpose, RecordId, SignedTransaction, TransactionBody, TxKind,
};
use prost::Message;

fn key(seed: u8) -> SigningKeyPair {
    SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("32 bytes"))
}

fn request_body(nonce: u64) -> TransactionBody {
    TransactionBody {
        chain_id: ChainId::parse("custos-fixture").expect("chain"),
        nonce: Nonce(nonce),
        kind: TxKind::RequestAccess(RequestAccess {
            record_id: RecordId(sha256(b"record")),
            purpose: Purpose::HPAYMT,
            mode: AccessMode::Raw,
            justification_digest: None,
            query: vec![],
        }),
    }
}

fn envelope(body: Vec<u8>, signer: &SigningKeyPair, signature: [u8; 64]) -> pb::SignedTransaction {
    pb::SignedTransaction {
        body,
        author: signer.public().as_bytes().to_vec(),
        signature: signature.to_vec(),
        cosignatures: vec![],
    }
}

#[test]
fn two_authors_of_the_same_fields_at_the_same_nonce_get_different_ids() {
    let (acme, adco) = (key(1), key(2));
    let a = SignedTransaction::sign(&request_body(5), &acme);
    let b = SignedTransaction::sign(&request_body(5), &adco);
    assert_eq!(a.body(), b.body(), "the same domain body");
    assert_ne!(
        a.body_bytes(),
        b.body_bytes(),
        "the signed bytes name the author"
    );
    assert_ne!(a.id(), b.id());
    // The id is the tagged hash of the body bytes, computable from the spec alone.
    let spec = sha256(&[b"custos/tx-id/v2".as_slice(), a.body_bytes()].concat());
    assert_eq!(a.id().0, spec);
    assert_eq!(tx_id(a.body_bytes()), a.id());
    // Both decode back to their own author.
    for (tx, who) in [(&a, &acme), (&b, &adco)] {
        let back = SignedTransaction::from_wire(tx.to_wire()).expect("verifies");
        assert_eq!(back.author().0, who.public());
        assert_eq!(back.id(), tx.id());
    }
}

#[test]
fn another_author_signing_the_same_body_bytes_is_refused() {
    let (acme, adco) = (key(1), key(2));
    let original = SignedTransaction::sign(&request_body(5), &acme);
    // AdCo signs Acme's exact body bytes, under the right context, as their author.
    let stolen = adco.sign_in(TRANSACTION, original.body_bytes());
    let wire = envelope(original.body_bytes().to_vec(), &adco, stolen.to_bytes());
    let error = SignedTransaction::from_wire(wire).expect_err("the body names Acme");
    assert_eq!(error.field, "body.author");
    assert!(error.reason.contains(&acme.public().short()), "{error}");
    assert!(error.reason.contains(&adco.public().short()), "{error}");
}

#[test]
fn a_body_without_the_context_does_not_verify() {
    let acme = key(1);
    let tx = SignedTransaction::sign(&request_body(0), &acme);
    // A v1-style signature over the bare body bytes.
    let bare = acme.sign(tx.body_bytes());
    let error =
        SignedTransaction::from_wire(envelope(tx.body_bytes().to_vec(), &acme, bare.to_bytes()))
            .expect_err("no context");
    assert_eq!(error.field, "signature");
}

#[test]
fn a_signed_read_presented_as_a_transaction_is_refused() {
    let acme = key(1);
    let tx = SignedTransaction::sign(&request_body(0), &acme);
    // The very body bytes, signed for the signed-read purpose.
    let read_signature = acme.sign_in(SIGNED_READ, tx.body_bytes());
    let error = SignedTransaction::from_wire(envelope(
        tx.body_bytes().to_vec(),
        &acme,
        read_signature.to_bytes(),
    ))
    .expect_err("a read signature is not a transaction signature");
    assert_eq!(error.field, "signature");
}

#[test]
fn a_vote_signature_presented_as_a_transaction_is_refused() {
    let validator = key(3);
    // A precommit's payload: chain length, chain, height, round, header hash.
    let chain = b"custos-fixture";
    let mut payload = (chain.len() as u32).to_be_bytes().to_vec();
    payload.extend_from_slice(chain);
    payload.extend_from_slice(&9u64.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(sha256(b"header").as_bytes());
    let vote = validator.sign_in(COMMIT, &payload);
    let whole = [COMMIT, payload.as_slice()].concat();
    for body in [payload.clone(), whole] {
        let error = SignedTransaction::from_wire(envelope(body, &validator, vote.to_bytes()))
            .expect_err("a vote is not a transaction");
        assert_eq!(error.field, "signature");
    }
}

#[test]
fn a_version_1_body_is_refused_by_version() {
    let acme = key(1);
    let mut body = request_body(0).to_wire(&custos_types::PartyId(acme.public()));
    body.version = 1;
    body.author.clear();
    let bytes = body.encode_to_vec();
    let signature = acme.sign_in(TRANSACTION, &bytes);
    let error = SignedTransaction::from_wire(envelope(bytes, &acme, signature.to_bytes()))
        .expect_err("version 1");
    assert!(error.field.ends_with("version"), "{error}");
    assert!(error.reason.contains("got 1"), "{error}");
}

#[test]
fn cosignatures_are_made_in_the_transaction_context() {
    let (author, member) = (key(1), key(4));
    let mut tx = SignedTransaction::sign(&request_body(0), &author);
    tx.cosign(&member);
    let wire = tx.to_wire();
    let co = &wire.cosignatures[0];
    let signature = custos_crypto::Signature::from_slice(&co.signature).expect("64 bytes");
    let signed = [TRANSACTION, tx.body_bytes()].concat();
    assert!(member.public().verify(&signed, &signature).is_ok());
    // A co-signature over the bare body is refused, naming it.
    let mut bad = wire.clone();
    bad.cosignatures[0].signature = member.sign(tx.body_bytes()).to_bytes().to_vec();
    let error = SignedTransaction::from_wire(bad).expect_err("bare co-signature");
    assert_eq!(error.field, "cosignatures[0].signature");
}
