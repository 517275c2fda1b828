//! Bad input is refused with a status naming the field, and changes nothing.

use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::vault::v1 as pb;
use custos_types::{ChainId, ReadNonce, SignedRead, Timestamp, TxKind};
use custos_vault::VaultStore;
use custos_vault_service::rpc::methods;
use rand_core::OsRng;

use crate::{VaultNet, party, random32};

fn with_attributes(
    header: pb::RecordHeader,
    attributes: Vec<(&str, pb::attribute::Value)>,
) -> pb::RecordHeader {
    pb::RecordHeader {
        attributes: attributes
            .into_iter()
            .map(|(name, value)| pb::Attribute {
                name: name.into(),
                value: Some(value),
            })
            .collect(),
        ..header
    }
}

fn fetch_query(vn: &VaultNet) -> pb::FetchRecordQuery {
    pb::FetchRecordQuery {
        request_id: random32().to_vec(),
        recipient_key: vn.net.insurer.encryption_public().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_for_another_method_chain_or_time_or_badly_signed_are_refused_naming_the_field() {
    let vn = VaultNet::start(0).await.unwrap();
    let chain = vn.net.genesis.chain_id.clone();
    let query = fetch_query(&vn);
    let key = &vn.net.insurer.identity;
    let cases: Vec<(ledger_pb::SignedRead, tonic::Code, &str)> = vec![
        (
            SignedRead::sign(
                &chain,
                methods::FETCH_OWN,
                Timestamp::now(),
                ReadNonce::random(&mut OsRng),
                &query,
                key,
            ),
            tonic::Code::InvalidArgument,
            "body.method",
        ),
        (
            SignedRead::sign(
                &ChainId::parse("other-chain").unwrap(),
                methods::FETCH,
                Timestamp::now(),
                ReadNonce::random(&mut OsRng),
                &query,
                key,
            ),
            tonic::Code::InvalidArgument,
            "body.chain_id",
        ),
        (
            SignedRead::sign(
                &chain,
                methods::FETCH,
                Timestamp(Timestamp::now().0 - 10 * 60 * 1000),
                ReadNonce::random(&mut OsRng),
                &query,
                key,
            ),
            tonic::Code::InvalidArgument,
            "body.issued_at_ms",
        ),
        (
            {
                let mut read = SignedRead::sign(
                    &chain,
                    methods::FETCH,
                    Timestamp::now(),
                    ReadNonce::random(&mut OsRng),
                    &query,
                    key,
                );
                read.signature[0] ^= 1;
                read
            },
            tonic::Code::Unauthenticated,
            "signature",
        ),
        (
            SignedRead::sign(
                &chain,
                methods::FETCH,
                Timestamp::now(),
                ReadNonce::random(&mut OsRng),
                &pb::FetchRecordQuery {
                    request_id: vec![1, 2, 3],
                    ..query.clone()
                },
                key,
            ),
            tonic::Code::InvalidArgument,
            "body.query.request_id",
        ),
        (
            SignedRead::sign(
                &chain,
                methods::FETCH,
                Timestamp::now(),
                ReadNonce::random(&mut OsRng),
                &pb::FetchRecordQuery {
                    recipient_key: vec![],
                    ..query.clone()
                },
                key,
            ),
            tonic::Code::InvalidArgument,
            "body.query.recipient_key",
        ),
    ];
    for (read, code, field) in cases {
        let status = vn.client.grpc().fetch_record(read).await.unwrap_err();
        assert_eq!(status.code(), code, "{field}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    vn.net.stop().await.unwrap();
}

fn header(owner: Vec<u8>, category: &str, size: u64) -> pb::RecordHeader {
    pb::RecordHeader {
        record_id: Vec::new(),
        owner,
        category: category.into(),
        attributes: Vec::new(),
        size,
    }
}

async fn put_raw(
    vn: &VaultNet,
    signer: &custos_crypto::PartyKeys,
    header: &pb::RecordHeader,
    data: Vec<Vec<u8>>,
) -> tonic::Status {
    use pb::put_record_chunk::Part;
    let read = vn.client.signed_read(signer, methods::PUT, header);
    let mut messages = vec![pb::PutRecordChunk {
        part: Some(Part::Header(read)),
    }];
    messages.extend(data.into_iter().map(|d| pb::PutRecordChunk {
        part: Some(Part::Data(d)),
    }));
    vn.client
        .grpc()
        .put_record(tokio_stream::iter(messages))
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn puts_are_refused_naming_the_field_and_store_nothing() {
    use pb::put_record_chunk::Part;
    let vn = VaultNet::start(1).await.unwrap();
    let patient = party(&vn.net.patients[0]).to_vec();
    let hospital = &vn.net.hospital;
    let stranger = custos_crypto::PartyKeys::generate(&mut rand_core::OsRng);

    let s = put_raw(
        &vn,
        &vn.net.insurer,
        &header(patient.clone(), "lab", 1),
        vec![vec![1]],
    )
    .await;
    assert_eq!(s.code(), tonic::Code::PermissionDenied);
    assert!(s.message().starts_with("author"), "{}", s.message());

    let cases: Vec<(pb::RecordHeader, Vec<Vec<u8>>, &str)> = vec![
        (
            header(party(&stranger).to_vec(), "lab", 1),
            vec![vec![1]],
            "header.owner",
        ),
        (
            header(party(&vn.net.insurer).to_vec(), "lab", 1),
            vec![vec![1]],
            "header.owner",
        ),
        (header(vec![7; 31], "lab", 1), vec![vec![1]], "header.owner"),
        (
            header(patient.clone(), "LAB!", 1),
            vec![vec![1]],
            "header.category",
        ),
        (
            pb::RecordHeader {
                record_id: vec![1; 5],
                ..header(patient.clone(), "lab", 1)
            },
            vec![vec![1]],
            "header.record_id",
        ),
        (
            pb::RecordHeader {
                attributes: vec![pb::Attribute {
                    name: "Bad Name".into(),
                    value: Some(pb::attribute::Value::Numeric(1)),
                }],
                ..header(patient.clone(), "lab", 1)
            },
            vec![vec![1]],
            "header.attributes[0].name",
        ),
        (
            with_attributes(
                header(patient.clone(), "lab", 1),
                vec![
                    ("age", pb::attribute::Value::Numeric(40)),
                    ("weight", pb::attribute::Value::Numeric(80)),
                ],
            ),
            vec![vec![1]],
            "header.attributes[1].name",
        ),
        (
            with_attributes(
                header(patient.clone(), "lab", 1),
                vec![("age", pb::attribute::Value::Numeric(200))],
            ),
            vec![vec![1]],
            "header.attributes[0].numeric",
        ),
        (
            with_attributes(
                header(patient.clone(), "lab", 1),
                vec![("sex", pb::attribute::Value::Categorical("robot".into()))],
            ),
            vec![vec![1]],
            "header.attributes[0].categorical",
        ),
        (header(patient.clone(), "lab", 10), vec![vec![1; 4]], "data"),
        (header(patient.clone(), "lab", 3), vec![vec![1; 4]], "data"),
        (
            header(patient.clone(), "lab", 3),
            vec![vec![0; 2 * 1024 * 1024 - 64]],
            "data",
        ),
    ];
    for (h, data, field) in cases {
        let s = put_raw(&vn, hospital, &h, data).await;
        assert!(
            matches!(
                s.code(),
                tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted
            ),
            "{field}: {s:?}"
        );
        if s.code() == tonic::Code::InvalidArgument {
            assert!(s.message().starts_with(field), "{field}: {}", s.message());
        }
    }
    // Data before the header, and an empty stream.
    let s = vn
        .client
        .grpc()
        .put_record(tokio_stream::iter(vec![pb::PutRecordChunk {
            part: Some(Part::Data(vec![1])),
        }]))
        .await
        .unwrap_err();
    assert!(s.message().starts_with("header"), "{}", s.message());
    let s = vn
        .client
        .grpc()
        .put_record(tokio_stream::iter(Vec::<pb::PutRecordChunk>::new()))
        .await
        .unwrap_err();
    assert!(s.message().starts_with("header"), "{}", s.message());
    assert!(
        vn.client.list(hospital, None).await.unwrap().is_empty(),
        "nothing was stored"
    );
    assert!(
        vn.running()
            .vault()
            .store()
            .chunk(&custos_types::RecordId(custos_crypto::Hash([0; 32])), 0)
            .unwrap()
            .is_none()
    );
    vn.net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_that_is_not_an_erase_record_transaction_is_refused() {
    let vn = VaultNet::start(1).await.unwrap();
    let patient = &vn.net.patients[0];
    let tx = vn
        .net
        .client
        .sign(
            patient,
            TxKind::RevokeConsent(custos_types::ConsentId(custos_crypto::Hash(random32()))),
        )
        .await
        .unwrap();
    let refused = vn.client.erase(&tx).await.unwrap_err();
    assert!(refused.to_string().contains("body.kind"), "{refused}");
    vn.net.stop().await.unwrap();
}
