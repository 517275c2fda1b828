//! A client in any language with a protobuf library can build and sign a transaction: this one
//! knows only the proto files. It compiles `proto/` at test time, fills dynamic messages by field
//! name, signs the encoded body bytes with plain Ed25519 and sends them over a raw gRPC call, so
//! no generated Rust type is on the request path.

use custos_proto::consent::v1 as consent_pb;
use custos_tests::{SUBMIT_PATH, TestNet, bounded, random32, raw_unary};
use ed25519_dalek::{Signer, SigningKey};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value};

fn proto_pool() -> DescriptorPool {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let files =
        protox::compile(["custos/ledger/v1/ledger.proto"], [root]).expect("proto/ compiles");
    DescriptorPool::from_file_descriptor_set(files).expect("a consistent descriptor pool")
}

fn message(pool: &DescriptorPool, name: &str) -> MessageDescriptor {
    pool.get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is in proto/"))
}

fn enum_value(pool: &DescriptorPool, name: &str, value: &str) -> i32 {
    pool.get_enum_by_name(name)
        .and_then(|e| e.get_value_by_name(value))
        .unwrap_or_else(|| panic!("{name}.{value} is in proto/"))
        .number()
}

fn set(message: &mut DynamicMessage, field: &str, value: Value) {
    let descriptor = message.descriptor();
    assert!(
        descriptor.get_field_by_name(field).is_some(),
        "{} has no field {field}",
        descriptor.full_name()
    );
    message.set_field_by_name(field, value);
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec().into())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patient_registered_by_a_generic_protobuf_encoder_is_finalized_and_visible() {
    let net = TestNet::start(0).await.unwrap();
    let pool = proto_pool();
    let key = SigningKey::from_bytes(&random32());
    let public = key.verifying_key().to_bytes();

    let mut register = DynamicMessage::new(message(&pool, "custos.consent.v1.RegisterParty"));
    set(&mut register, "party", bytes(&public));
    set(
        &mut register,
        "role",
        Value::EnumNumber(enum_value(&pool, "custos.consent.v1.Role", "ROLE_PATIENT")),
    );
    set(&mut register, "encryption_key", bytes(&random32()));
    set(&mut register, "organisation", Value::String(String::new()));

    let mut body = DynamicMessage::new(message(&pool, "custos.ledger.v1.TransactionBody"));
    set(&mut body, "version", Value::U32(2));
    set(
        &mut body,
        "chain_id",
        Value::String(net.client.chain_id().to_string()),
    );
    // A new author's first nonce.
    set(&mut body, "nonce", Value::U64(0));
    // The body names its author (docs/spec/transactions.md).
    set(&mut body, "author", bytes(&public));
    set(&mut body, "register_party", Value::Message(register));
    let body_bytes = body.encode_to_vec();
    // The signature covers the transaction context, then the body bytes.
    let signed = [b"custos/transaction/v2".as_slice(), &body_bytes].concat();
    let signature = key.sign(&signed).to_bytes();

    let mut tx = DynamicMessage::new(message(&pool, "custos.ledger.v1.SignedTransaction"));
    set(&mut tx, "body", bytes(&body_bytes));
    set(&mut tx, "author", bytes(&public));
    set(&mut tx, "signature", bytes(&signature));
    let mut request = DynamicMessage::new(message(&pool, "custos.ledger.v1.SubmitRequest"));
    set(&mut request, "transaction", Value::Message(tx));
    set(&mut request, "wait", Value::Bool(true));

    let answer = raw_unary(&net.endpoint(), SUBMIT_PATH, request.encode_to_vec())
        .await
        .unwrap()
        .unwrap_or_else(|status| panic!("the node refused the transaction: {status:?}"));
    let response = DynamicMessage::decode(
        message(&pool, "custos.ledger.v1.SubmitResponse"),
        answer.as_slice(),
    )
    .unwrap();
    let finalized = enum_value(&pool, "custos.ledger.v1.TxStatus", "TX_STATUS_FINALIZED");
    assert_eq!(
        response
            .get_field_by_name("status")
            .and_then(|v| v.as_enum_number()),
        Some(finalized),
        "{response:?}"
    );
    // The transaction id is SHA-256 of the tx-id domain, then the body bytes.
    let expected_id = custos_crypto::sha256(&[b"custos/tx-id/v2".as_slice(), &body_bytes].concat());
    assert_eq!(
        response
            .get_field_by_name("tx_id")
            .and_then(|v| v.as_bytes().map(|b| b.to_vec())),
        Some(expected_id.as_bytes().to_vec()),
        "{response:?}"
    );
    assert!(
        response
            .get_field_by_name("height")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            > 0
    );

    let request = consent_pb::GetPartyRequest {
        party: public.to_vec(),
    };
    let party = bounded("reading the party", net.client.consent().get_party(request))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(party.party, public.to_vec());
    assert_eq!(party.role, consent_pb::Role::Patient as i32);
    assert!(party.organisation.is_empty());
    assert!(party.registered_height > 0);
    net.stop().await.unwrap();
}
