//! Bad input at the node's gRPC edge. Each scenario checks the status code, that the message names
//! the field or the reason, and that the chain is unchanged afterwards: same height, log size,
//! log root and state root, and nothing pending.

use custos_crypto::context::TRANSACTION;
use custos_crypto::{PartyKeys, SigningKeyPair};
use custos_proto::access::v1 as access_pb;
use custos_proto::audit::v1 as audit_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::ledger::v1::transaction_body::Kind;
use custos_tests::{SUBMIT_PATH, TestNet, bounded, new_keys, party, random32, raw_unary};
use custos_types::tx::{RegisterDelegate, RegisterParty};
use custos_types::{
    AccessMode, ChainId, Consent, ConsentPeriod, Nonce, Organisation, Purpose, ReadNonce, RecordId,
    Role, Scope, SignedRead, SignedTransaction, Timestamp, TransactionBody, TxKind,
};
use prost::Message;
use rand_core::OsRng;
use tonic::{Code, Status};

const QUERY_ACCESS_LOG: &str = "/custos.audit.v1.AuditService/QueryAccessLog";
const LIST_CONSENTS: &str = "/custos.consent.v1.ConsentService/ListConsents";
const GET_BLOCK: &str = "/custos.ledger.v1.LedgerService/GetBlock";

/// Fails unless `result` is a refusal with `code` whose message contains every one of `names`.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, names: &[&str]) {
    let status = match result {
        Ok(answer) => panic!("expected {code:?}, the node accepted: {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "status: {status:?}");
    for name in names {
        assert!(
            status.message().contains(name),
            "`{}` does not name `{name}`",
            status.message()
        );
    }
}

/// A self-registration of a new patient, signed by the patient.
fn registration(net: &TestNet, keys: &PartyKeys, nonce: u64) -> SignedTransaction {
    let body = TransactionBody {
        chain_id: net.client.chain_id().clone(),
        nonce: Nonce(nonce),
        kind: TxKind::RegisterParty(RegisterParty {
            party: party(keys),
            role: Role::Patient,
            encryption_key: keys.encryption_public(),
            organisation: Organisation::default(),
        }),
    };
    SignedTransaction::sign(&body, &keys.identity)
}

/// A consent of `patient` for `grantee` over all records, for `purposes`, raw.
fn consent(patient: &PartyKeys, grantee: &PartyKeys, purposes: &[&str]) -> consent_pb::Consent {
    consent_pb::Consent {
        patient: party(patient).to_vec(),
        grantee: party(grantee).to_vec(),
        scope: Some(consent_pb::Scope {
            all_records: true,
            ..Default::default()
        }),
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        modes: vec![consent_pb::AccessMode::Raw as i32],
        not_before_ms: 0,
        expires_ms: 0,
    }
}

/// Encodes a wire body at the author's next nonce and signs it: what a client that bypasses our
/// validating types sends.
async fn sign_wire(
    net: &TestNet,
    key: &SigningKeyPair,
    kind: Kind,
) -> ledger_pb::SignedTransaction {
    let nonce = bounded(
        "reading a nonce",
        net.client.ledger().get_nonce(ledger_pb::GetNonceRequest {
            author: key.public().as_bytes().to_vec(),
        }),
    )
    .await
    .expect("the node answers in time")
    .expect("the node tells a nonce")
    .into_inner()
    .next_nonce;
    let body = ledger_pb::TransactionBody {
        version: 2,
        chain_id: net.client.chain_id().to_string(),
        nonce,
        author: key.public().as_bytes().to_vec(),
        kind: Some(kind),
    }
    .encode_to_vec();
    let signature = key.sign_in(TRANSACTION, &body).to_bytes().to_vec();
    ledger_pb::SignedTransaction {
        body,
        author: key.public().as_bytes().to_vec(),
        signature,
        cosignatures: vec![],
    }
}

/// Submits a wire transaction and waits for its outcome.
async fn submit(
    net: &TestNet,
    transaction: ledger_pb::SignedTransaction,
) -> Result<ledger_pb::SubmitResponse, Status> {
    let request = ledger_pb::SubmitRequest {
        transaction: Some(transaction),
        wait: true,
    };
    bounded("submitting", net.client.ledger().submit(request))
        .await
        .expect("the node answers in time")
        .map(tonic::Response::into_inner)
}

/// Sends a wire access request and waits for its decision.
async fn request_access(
    net: &TestNet,
    transaction: ledger_pb::SignedTransaction,
) -> Result<access_pb::DecisionResponse, Status> {
    bounded(
        "requesting access",
        net.client.access().request_access(transaction),
    )
    .await
    .expect("the node answers in time")
    .map(tonic::Response::into_inner)
}

/// Queries the access log with a hand-made signed read.
async fn query_log(
    net: &TestNet,
    read: ledger_pb::SignedRead,
) -> Result<audit_pb::AccessLogPage, Status> {
    bounded(
        "querying the access log",
        net.client.audit().query_access_log(read),
    )
    .await
    .expect("the node answers in time")
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_protobuf_bytes_are_refused_and_the_node_keeps_working() {
    let net = TestNet::start(0).await.unwrap();
    let newcomer = new_keys();
    let request = ledger_pb::SubmitRequest {
        transaction: Some(registration(&net, &newcomer, 0).to_wire()),
        wait: true,
    }
    .encode_to_vec();
    let before = net.snapshot().await.unwrap();

    let truncated = request[..request.len() / 2].to_vec();
    let answer = raw_unary(&net.endpoint(), SUBMIT_PATH, truncated)
        .await
        .unwrap();
    // The caller's bytes are wrong, not the node: INVALID_ARGUMENT naming the message type.
    assert_refused(
        answer,
        Code::InvalidArgument,
        &[
            "message",
            "SubmitRequest",
            "failed to decode Protobuf message",
        ],
    );
    net.assert_unchanged(&before).await.unwrap();

    // The same request, whole, still goes through.
    let answer = raw_unary(&net.endpoint(), SUBMIT_PATH, request)
        .await
        .unwrap()
        .unwrap();
    let response = ledger_pb::SubmitResponse::decode(answer.as_slice()).unwrap();
    assert_eq!(
        response.status,
        ledger_pb::TxStatus::Finalized as i32,
        "{response:?}"
    );
    assert_eq!(net.snapshot().await.unwrap().log_size, before.log_size + 1);
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_bytes_are_refused() {
    let net = TestNet::start(0).await.unwrap();
    let before = net.snapshot().await.unwrap();
    // Field 1 with the invalid wire type 7, then noise.
    let garbage = b"\x0fnot a protobuf message \xff\xfe\xfd".to_vec();
    let answer = raw_unary(&net.endpoint(), SUBMIT_PATH, garbage.clone())
        .await
        .unwrap();
    assert_refused(
        answer,
        Code::InvalidArgument,
        &[
            "message",
            "SubmitRequest",
            "failed to decode Protobuf message",
        ],
    );
    // Every service decodes through the same codec: a read, an audit query, a consent query.
    for path in [
        GET_BLOCK,
        QUERY_ACCESS_LOG,
        "/custos.consent.v1.ConsentService/GetParty",
    ] {
        let answer = raw_unary(&net.endpoint(), path, garbage.clone())
            .await
            .unwrap();
        assert_refused(answer, Code::InvalidArgument, &["message", "not a valid"]);
    }
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_that_does_not_verify_is_refused() {
    let net = TestNet::start(0).await.unwrap();
    let newcomer = new_keys();
    let mut tx = registration(&net, &newcomer, 0).to_wire();
    tx.signature[10] ^= 0x01;
    let before = net.snapshot().await.unwrap();
    assert_refused(
        submit(&net, tx).await,
        Code::Unauthenticated,
        &["signature", "does not verify"],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_signature_by_someone_other_than_the_author_is_refused() {
    let net = TestNet::start(0).await.unwrap();
    let (claimed, signer) = (new_keys(), new_keys());
    // Signed by `signer` over a body that registers `claimed`, claiming `claimed` as author.
    let mut tx = registration(&net, &claimed, 0).to_wire();
    tx.signature = signer
        .identity
        .sign_in(TRANSACTION, &tx.body)
        .to_bytes()
        .to_vec();
    let before = net.snapshot().await.unwrap();
    assert_refused(
        submit(&net, tx).await,
        Code::Unauthenticated,
        &["signature", "does not verify", &party(&claimed).short()],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_transaction_and_a_reused_nonce_are_refused() {
    let net = TestNet::start(0).await.unwrap();
    let patient = new_keys();
    let first = registration(&net, &patient, 0);
    let finalized = submit(&net, first.to_wire()).await.unwrap();
    assert_eq!(finalized.status, ledger_pb::TxStatus::Finalized as i32);
    let before = net.snapshot().await.unwrap();

    // The same transaction again: refused, naming its own finalized entry.
    assert_refused(
        submit(&net, first.to_wire()).await,
        Code::AlreadyExists,
        &[
            &first.id().to_hex(),
            "already finalized",
            &format!("height {}", finalized.height),
            &format!("log index {}", finalized.entry_index),
        ],
    );
    net.assert_unchanged(&before).await.unwrap();

    // A new transaction at the used nonce.
    let body = TransactionBody {
        chain_id: net.client.chain_id().clone(),
        nonce: Nonce(0),
        kind: TxKind::RegisterDelegate(RegisterDelegate {
            delegate: party(&net.insurer),
            expires: None,
            revoke: false,
        }),
    };
    let reuse = SignedTransaction::sign(&body, &patient.identity);
    assert_refused(
        submit(&net, reuse.to_wire()).await,
        Code::FailedPrecondition,
        &["replayed nonce 0", "next nonce is 1"],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_purpose_code_in_a_consent_is_refused() {
    let net = TestNet::start(1).await.unwrap();
    let patient = &net.patients[0];
    let kind = Kind::GrantConsent(consent_pb::GrantConsent {
        consent: Some(consent(patient, &net.insurer, &["HPAYMT", "FOO"])),
    });
    let tx = sign_wire(&net, &patient.identity, kind).await;
    let before = net.snapshot().await.unwrap();
    assert_refused(
        submit(&net, tx).await,
        Code::InvalidArgument,
        &[
            "body.grant_consent.consent.purposes[1]",
            "unknown purpose code `FOO`",
        ],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_abstract_purpose_of_use_in_a_consent_is_refused() {
    let net = TestNet::start(1).await.unwrap();
    let patient = &net.patients[0];
    let kind = Kind::GrantConsent(consent_pb::GrantConsent {
        consent: Some(consent(patient, &net.insurer, &["PurposeOfUse"])),
    });
    let tx = sign_wire(&net, &patient.identity, kind).await;
    let before = net.snapshot().await.unwrap();
    assert_refused(
        submit(&net, tx).await,
        Code::InvalidArgument,
        &[
            "body.grant_consent.consent.purposes[0]",
            "`PurposeOfUse` is an abstract HL7 concept",
        ],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

async fn request_for_purpose(
    net: &TestNet,
    record: RecordId,
    purpose: &str,
) -> ledger_pb::SignedTransaction {
    let kind = Kind::RequestAccess(access_pb::RequestAccess {
        record_id: record.to_vec(),
        purpose: purpose.to_string(),
        mode: consent_pb::AccessMode::Raw as i32,
        justification_digest: vec![],
        query: vec![],
    });
    sign_wire(net, &net.insurer.identity, kind).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_purpose_code_in_an_access_request_is_refused() {
    let net = TestNet::start(1).await.unwrap();
    let record = net.register_record(&net.patients[0]).await.unwrap();
    let tx = request_for_purpose(&net, record, "FOO").await;
    let before = net.snapshot().await.unwrap();
    assert_refused(
        request_access(&net, tx).await,
        Code::InvalidArgument,
        &["body.request_access.purpose", "unknown purpose code `FOO`"],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_abstract_purpose_of_use_in_an_access_request_is_refused() {
    let net = TestNet::start(1).await.unwrap();
    let record = net.register_record(&net.patients[0]).await.unwrap();
    let tx = request_for_purpose(&net, record, "PurposeOfUse").await;
    let before = net.snapshot().await.unwrap();
    assert_refused(
        request_access(&net, tx).await,
        Code::InvalidArgument,
        &[
            "body.request_access.purpose",
            "`PurposeOfUse` is an abstract HL7 concept",
        ],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consent_signed_by_neither_the_patient_nor_a_delegate_is_refused() {
    let net = TestNet::start(1).await.unwrap();
    let patient = &net.patients[0];
    // The insurer grants itself access to the patient's records.
    let grant = Consent {
        patient: party(patient),
        grantee: party(&net.insurer),
        scope: Scope::AllRecords,
        purposes: [Purpose::HPAYMT].into(),
        modes: [AccessMode::Raw].into(),
        period: ConsentPeriod::default(),
    };
    let tx = bounded(
        "signing",
        net.client.sign(&net.insurer, TxKind::GrantConsent(grant)),
    )
    .await
    .unwrap()
    .unwrap();
    let before = net.snapshot().await.unwrap();
    assert_refused(
        submit(&net, tx.to_wire()).await,
        Code::PermissionDenied,
        &["not authorized", "is neither the patient", "nor a delegate"],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consent_that_expires_before_it_starts_is_refused() {
    let net = TestNet::start(1).await.unwrap();
    let patient = &net.patients[0];
    let start = Timestamp::now().0 + 86_400_000;
    let grant = Consent {
        patient: party(patient),
        grantee: party(&net.insurer),
        scope: Scope::AllRecords,
        purposes: [Purpose::HPAYMT].into(),
        modes: [AccessMode::Raw].into(),
        period: ConsentPeriod {
            not_before: Some(Timestamp(start)),
            expires: Some(Timestamp(start - 1)),
        },
    };
    let tx = bounded(
        "signing",
        net.client.sign(patient, TxKind::GrantConsent(grant)),
    )
    .await
    .unwrap()
    .unwrap();
    let before = net.snapshot().await.unwrap();
    assert_refused(
        submit(&net, tx.to_wire()).await,
        Code::InvalidArgument,
        &[
            "body.grant_consent.consent.expires_ms",
            "is not after the start",
        ],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_size_limit_is_refused() {
    let net = TestNet::start(0).await.unwrap();
    let author = new_keys();
    let body = vec![0x2a; 300 * 1024];
    let tx = ledger_pb::SignedTransaction {
        signature: author
            .identity
            .sign_in(TRANSACTION, &body)
            .to_bytes()
            .to_vec(),
        author: party(&author).to_vec(),
        body,
        cosignatures: vec![],
    };
    let before = net.snapshot().await.unwrap();
    // tonic refuses a message over `max_decoding_message_size` with OUT_OF_RANGE.
    assert_refused(
        submit(&net, tx).await,
        Code::OutOfRange,
        &["message length too large", "the limit is: 262144 bytes"],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_for_another_chain_is_refused() {
    let net = TestNet::start(0).await.unwrap();
    let newcomer = new_keys();
    let body = TransactionBody {
        chain_id: ChainId::parse("another-chain").unwrap(),
        nonce: Nonce(0),
        kind: TxKind::RegisterParty(RegisterParty {
            party: party(&newcomer),
            role: Role::Patient,
            encryption_key: random32(),
            organisation: Organisation::default(),
        }),
    };
    let tx = SignedTransaction::sign(&body, &newcomer.identity);
    let before = net.snapshot().await.unwrap();
    assert_refused(
        submit(&net, tx.to_wire()).await,
        Code::InvalidArgument,
        &["another-chain", net.client.chain_id().as_str()],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_read_with_a_stale_timestamp_is_refused() {
    let net = TestNet::start(0).await.unwrap();
    let before = net.snapshot().await.unwrap();
    // Ten minutes ago, and 90 s either way: the window is 60 s.
    for offset_ms in [-10 * 60 * 1000, -90_000, 90_000] {
        let read = SignedRead::sign(
            net.client.chain_id(),
            QUERY_ACCESS_LOG,
            Timestamp(Timestamp::now().0 + offset_ms),
            ReadNonce::random(&mut OsRng),
            &audit_pb::AccessLogQuery::default(),
            &net.auditor.identity,
        );
        assert_refused(
            query_log(&net, read).await,
            Code::InvalidArgument,
            &[
                "body.issued_at_ms",
                "away from the node's clock",
                "at most 60000 ms",
            ],
        );
    }
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_read_signed_for_another_method_is_refused() {
    let net = TestNet::start(0).await.unwrap();
    let read = SignedRead::sign(
        net.client.chain_id(),
        LIST_CONSENTS,
        Timestamp::now(),
        ReadNonce::random(&mut OsRng),
        &audit_pb::AccessLogQuery::default(),
        &net.auditor.identity,
    );
    let before = net.snapshot().await.unwrap();
    assert_refused(
        query_log(&net, read).await,
        Code::InvalidArgument,
        &["body.method", LIST_CONSENTS, QUERY_ACCESS_LOG],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

/// The defect the v2 format closes: a second partner signs the first partner's very body bytes (or
/// the same fields at the same nonce). It can never take the first's transaction or request id,
/// and the first's decision, as the audit log serves it, stays the first's.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_partner_cannot_take_the_first_partners_request_id() {
    let net = TestNet::start(1).await.unwrap();
    let patient = &net.patients[0];
    let record = net.register_record(patient).await.unwrap();
    net.grant(
        patient,
        &net.insurer,
        &[Purpose::HPAYMT],
        &[AccessMode::Raw],
    )
    .await
    .unwrap();
    let request = custos_types::tx::RequestAccess {
        record_id: record,
        purpose: Purpose::HPAYMT,
        mode: AccessMode::Raw,
        justification_digest: None,
        query: vec![],
    };
    let (acme, adco) = (&net.insurer, &net.advertiser);
    let acme_tx = net
        .client
        .sign(acme, TxKind::RequestAccess(request.clone()))
        .await
        .unwrap();
    let granted = request_access(&net, acme_tx.to_wire()).await.unwrap();
    let granted = granted.decision.unwrap();
    assert!(granted.granted, "{granted:?}");
    assert_eq!(granted.request_id, acme_tx.id().to_vec());
    let before = net.snapshot().await.unwrap();

    // AdCo signs Acme's exact body bytes as their author: refused before any work, nothing
    // written.
    let mut stolen = acme_tx.to_wire();
    stolen.author = party(adco).to_vec();
    stolen.signature = adco
        .identity
        .sign_in(TRANSACTION, &stolen.body)
        .to_bytes()
        .to_vec();
    assert_refused(
        request_access(&net, stolen).await,
        Code::Unauthenticated,
        &["body.author", &party(acme).short(), &party(adco).short()],
    );
    net.assert_unchanged(&before).await.unwrap();

    // AdCo sends the same fields at the same nonce under its own name: another id, its own denial.
    let same = TransactionBody {
        chain_id: net.client.chain_id().clone(),
        nonce: acme_tx.body().nonce,
        kind: TxKind::RequestAccess(request),
    };
    let adco_tx = SignedTransaction::sign(&same, &adco.identity);
    assert_ne!(adco_tx.id(), acme_tx.id());
    let denied = request_access(&net, adco_tx.to_wire()).await.unwrap();
    let denied = denied.decision.unwrap();
    assert!(!denied.granted, "{denied:?}");
    assert_eq!(denied.request_id, adco_tx.id().to_vec());
    assert_eq!(denied.requester, party(adco).to_vec());

    // Acme's decision, as the auditor reads it, is still Acme's grant, and it is logged once.
    let log = net
        .client
        .access_log_all(
            &net.auditor,
            &audit_pb::AccessLogQuery {
                record_id: record.to_vec(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let of = |id: &[u8]| {
        log.iter()
            .filter_map(|e| e.decision.as_ref())
            .filter(|d| d.request_id == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    let acme_entries = of(&acme_tx.id().to_vec());
    assert_eq!(acme_entries.len(), 1, "{log:?}");
    assert!(acme_entries[0].granted);
    assert_eq!(acme_entries[0].requester, party(acme).to_vec());
    let adco_entries = of(&adco_tx.id().to_vec());
    assert_eq!(adco_entries.len(), 1, "{log:?}");
    assert_eq!(adco_entries[0].requester, party(adco).to_vec());
    net.stop().await.unwrap();
}

/// Who asks in a read-policy scenario: nobody (an unsigned read) or a party's keys.
fn signed_as<Q: Message>(
    net: &TestNet,
    who: Option<&PartyKeys>,
    method: &str,
    query: &Q,
) -> ledger_pb::SignedRead {
    who.map_or_else(ledger_pb::SignedRead::default, |keys| {
        net.client.signed_read(keys, method, query)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_protected_read_refuses_strangers_and_serves_the_parties_it_concerns() {
    use custos_client::methods::{
        GET_COHORT, GET_CONSENT, GET_DECISION, GET_ENTRY, GET_RECORD, STREAM_BLOCKS,
    };
    let net = TestNet::start(2).await.unwrap();
    let [alice, bob] = [&net.patients[0], &net.patients[1]];
    let (insurer, advertiser) = (&net.insurer, &net.advertiser);
    let record = net.register_record(alice).await.unwrap();
    let consent = net
        .grant(alice, insurer, &[Purpose::HPAYMT], &[AccessMode::Raw])
        .await
        .unwrap();
    let decided = bounded(
        "the insurer's request",
        net.client.request_access(
            insurer,
            custos_tests::story::raw_request(record, Purpose::HPAYMT),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let request = decided.decision.as_ref().unwrap().request_id.clone();
    let proven = decided.proven.as_ref().unwrap();
    let (index, height) = (proven.index, {
        let entry = custos_types::LedgerEntry::from_bytes(&proven.entry).unwrap();
        entry.height.0
    });
    let before = net.snapshot().await.unwrap();

    // Each protected read: (what, method, query bytes of each call, the field a refusal names).
    let decision_q = access_pb::GetDecisionRequest {
        request_id: request.clone(),
    };
    let entry_q = ledger_pb::GetEntryRequest { index };
    let record_q = consent_pb::GetRecordRequest {
        record_id: record.to_vec(),
        request_id: vec![],
    };
    let consent_q = consent_pb::GetConsentRequest {
        consent_id: consent.to_vec(),
    };
    let cohort_q = access_pb::GetCohortRequest {
        request_id: request.clone(),
        ..Default::default()
    };
    let call = |what: &'static str, who: Option<&PartyKeys>| {
        let (mut ledger, mut access, mut consents) = (
            net.client.ledger(),
            net.client.access(),
            net.client.consent(),
        );
        let read = match what {
            "GetDecision" => signed_as(&net, who, GET_DECISION, &decision_q),
            "GetEntry" => signed_as(&net, who, GET_ENTRY, &entry_q),
            "GetRecord" => signed_as(&net, who, GET_RECORD, &record_q),
            "GetConsent" => signed_as(&net, who, GET_CONSENT, &consent_q),
            _ => signed_as(&net, who, GET_COHORT, &cohort_q),
        };
        async move {
            match what {
                "GetDecision" => access.get_decision(read).await.map(|_| ()),
                "GetEntry" => ledger.get_entry(read).await.map(|_| ()),
                "GetRecord" => consents.get_record(read).await.map(|_| ()),
                "GetConsent" => consents.get_consent(read).await.map(|_| ()),
                _ => access.get_cohort(read).await.map(|_| ()),
            }
        }
    };
    let rpcs = [
        (
            "GetDecision",
            "request_id",
            vec![alice, insurer, &net.hospital, &net.auditor],
        ),
        (
            "GetEntry",
            "index",
            vec![alice, insurer, &net.hospital, &net.auditor],
        ),
        (
            "GetRecord",
            "record_id",
            vec![alice, &net.hospital, &net.auditor],
        ),
        (
            "GetConsent",
            "consent_id",
            vec![alice, insurer, &net.auditor],
        ),
    ];
    for (what, field, rightful) in &rpcs {
        assert_refused(
            call(what, None).await,
            Code::Unauthenticated,
            &["read", what],
        );
        for stranger in [bob, advertiser] {
            assert_refused(
                call(what, Some(stranger)).await,
                Code::PermissionDenied,
                &[field, "does not concern", &party(stranger).short()],
            );
        }
        for keys in rightful {
            call(what, Some(keys))
                .await
                .unwrap_or_else(|s| panic!("{what} refused its party {}: {s:?}", party(keys)));
        }
    }
    // A cohort is the decision's: strangers are refused before anything else is looked at,
    // the requester gets past the policy (and learns the request is not aggregate).
    assert_refused(
        call("GetCohort", None).await,
        Code::Unauthenticated,
        &["read"],
    );
    assert_refused(
        call("GetCohort", Some(advertiser)).await,
        Code::PermissionDenied,
        &["request_id"],
    );
    assert_refused(
        call("GetCohort", Some(insurer)).await,
        Code::FailedPrecondition,
        &["not an aggregate request"],
    );

    // A requester reads the record through its own granted request, and only through that.
    let via = |keys: &PartyKeys| {
        let query = consent_pb::GetRecordRequest {
            record_id: record.to_vec(),
            request_id: request.clone(),
        };
        let read = net.client.signed_read(keys, GET_RECORD, &query);
        let mut consents = net.client.consent();
        async move { consents.get_record(read).await.map(|r| r.into_inner()) }
    };
    let served = via(insurer).await.unwrap();
    assert_eq!(served.owner, party(alice).to_vec());
    assert_refused(
        via(advertiser).await,
        Code::PermissionDenied,
        &["request_id", "does not concern"],
    );

    // Blocks: anyone registered reads the header and certificate; entries that are not theirs
    // are withheld, and said to be.
    let block_as = |keys: Option<&PartyKeys>| {
        let read = signed_as(
            &net,
            keys,
            GET_BLOCK,
            &ledger_pb::GetBlockRequest { height },
        );
        let mut ledger = net.client.ledger();
        async move { ledger.get_block(read).await.map(|r| r.into_inner()) }
    };
    assert_refused(
        block_as(None).await,
        Code::Unauthenticated,
        &["read", GET_BLOCK],
    );
    let full = block_as(Some(&net.auditor)).await.unwrap();
    let offset = (index - full.first_entry_index) as usize;
    assert!(full.withheld.is_empty());
    assert_eq!(full.entries[offset], proven.entry);
    for keys in [alice, insurer, &net.hospital] {
        let block = block_as(Some(keys)).await.unwrap();
        assert_eq!(block.entries[offset], proven.entry, "{}", party(keys));
        assert_eq!(block.signed_header, full.signed_header);
    }
    for keys in [bob, advertiser] {
        let block = block_as(Some(keys)).await.unwrap();
        assert!(block.entries[offset].is_empty(), "{}", party(keys));
        assert!(block.withheld.contains(&(offset as u32)));
        assert_eq!(
            block.signed_header, full.signed_header,
            "headers are public"
        );
        assert_eq!(block.entries.len(), full.entries.len());
    }

    // The stream applies the same policy from the block it starts at.
    let stream_as = |keys: Option<&PartyKeys>| {
        let read = signed_as(
            &net,
            keys,
            STREAM_BLOCKS,
            &ledger_pb::StreamBlocksRequest {
                from_height: height,
            },
        );
        let mut ledger = net.client.ledger();
        async move { ledger.stream_blocks(read).await.map(|r| r.into_inner()) }
    };
    assert_refused(
        stream_as(None).await.map(|_| ()),
        Code::Unauthenticated,
        &["read", STREAM_BLOCKS],
    );
    let first = |keys: &'static str, stream: tonic::Streaming<ledger_pb::Block>| async move {
        let mut stream = stream;
        bounded(keys, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    let theirs = first("bob's stream", stream_as(Some(bob)).await.unwrap()).await;
    assert!(theirs.entries[offset].is_empty());
    assert!(theirs.withheld.contains(&(offset as u32)));
    let own = first(
        "the insurer's stream",
        stream_as(Some(insurer)).await.unwrap(),
    )
    .await;
    assert_eq!(own.entries[offset], proven.entry);

    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_read_or_one_signed_for_another_purpose_is_refused() {
    let net = TestNet::start(0).await.unwrap();
    let before = net.snapshot().await.unwrap();
    let query = audit_pb::AccessLogQuery::default();
    let read = net
        .client
        .signed_read(&net.auditor, QUERY_ACCESS_LOG, &query);
    query_log(&net, read.clone()).await.unwrap();
    assert_refused(
        query_log(&net, read.clone()).await,
        Code::Unauthenticated,
        &["body.nonce", "already used"],
    );
    // The same body signed without the signed-read context, or as a transaction.
    let identity = &net.auditor.identity;
    for signature in [
        identity.sign(&read.body),
        identity.sign_in(custos_crypto::context::TRANSACTION, &read.body),
    ] {
        let forged = ledger_pb::SignedRead {
            signature: signature.to_bytes().to_vec(),
            ..read.clone()
        };
        assert_refused(
            query_log(&net, forged).await,
            Code::Unauthenticated,
            &["signature", "custos/signed-read/v2"],
        );
    }
    // A transaction's signature presented as a read: its body is no read body either.
    let tx = registration(&net, &new_keys(), 0).to_wire();
    let as_read = ledger_pb::SignedRead {
        body: tx.body,
        author: tx.author,
        signature: tx.signature,
    };
    assert_refused(
        query_log(&net, as_read).await,
        Code::Unauthenticated,
        &["signature"],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_chain_verifies_each_header_once_however_often_it_is_called() {
    use custos_client::methods::VERIFY_CHAIN;
    let net = TestNet::start(1).await.unwrap();
    let patient = &net.patients[0];
    let verify = |keys: &PartyKeys| {
        let read = net
            .client
            .signed_read(keys, VERIFY_CHAIN, &audit_pb::BundleQuery::default());
        let mut audit = net.client.audit();
        async move { audit.verify_chain(read).await.map(|r| r.into_inner()) }
    };
    // The first call verifies the whole chain so far; every header counted once.
    let first = bounded("verify", verify(patient)).await.unwrap().unwrap();
    assert!(first.chain_height >= 1);
    assert_eq!(first.verified_height, first.chain_height);
    assert_eq!(first.headers_verified, first.verified_height);
    // Sixteen concurrent calls by a self-registered patient: together they verify only the
    // headers finalized since, once each.
    let calls: Vec<_> = (0..16).map(|_| tokio::spawn(verify(patient))).collect();
    let mut total = 0;
    let mut highest = first.verified_height;
    for call in calls {
        let answer = bounded("a concurrent call", call)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(answer.verified_height <= answer.chain_height);
        total += answer.headers_verified;
        highest = highest.max(answer.verified_height);
    }
    assert_eq!(
        total,
        highest - first.verified_height,
        "each header verified once"
    );
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_past_the_nodes_budget_are_refused_with_a_retry_hint_before_any_work() {
    use custos_node::config::ReadsConfig;
    let options = custos_tests::NetOptions {
        reads: Some(ReadsConfig {
            per_second: 1,
            burst: 10,
            per_author_per_second: 1,
            per_author_burst: 3,
        }),
        ..Default::default()
    };
    let net = TestNet::start_with(0, options).await.unwrap();
    let before = net.snapshot().await.unwrap();
    let query = audit_pb::AccessLogQuery::default();
    let read = |keys: &PartyKeys| net.client.signed_read(keys, QUERY_ACCESS_LOG, &query);
    let over_budget = |status: Status, names: &[&str]| {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        for name in names {
            assert!(status.message().contains(name), "{name}: {status:?}");
        }
        let wait = custos_client::retry_after(&status).expect("a retry-after-ms hint");
        assert!(wait > std::time::Duration::ZERO, "{status:?}");
        assert!(wait <= std::time::Duration::from_secs(1), "{status:?}");
    };
    // The auditor spends its own burst of three (a token a second comes back); the next read
    // is refused, naming the author's budget.
    let mut served = 0;
    let refused = loop {
        match query_log(&net, read(&net.auditor)).await {
            Ok(_) => served += 1,
            Err(status) => break status,
        }
        assert!(served < 6, "the auditor's budget never ran out");
    };
    assert!(served >= 3, "{served} reads served of a burst of three");
    over_budget(refused, &["author", "at most 1 signed reads a second"]);
    // Another reader is not held back by the auditor's spent budget.
    query_log(&net, read(&net.hospital)).await.unwrap();
    // Reads with bad signatures spend the node's budget before their signature is checked,
    // until the node is at its rate and refuses before any work on the read.
    let mut forged = read(&net.insurer);
    forged.signature[0] ^= 1;
    let mut attempts = 0;
    let refused = loop {
        let status = query_log(&net, forged.clone()).await.expect_err("forged");
        if status.code() != Code::Unauthenticated {
            break status;
        }
        attempts += 1;
        assert!(attempts < 20, "forged reads never spent the node's budget");
    };
    over_budget(
        refused,
        &[
            "read budget",
            "this server serves at most 1 signed reads a second",
        ],
    );
    // Now every reader waits, good signature or not.
    over_budget(
        query_log(&net, read(&net.hospital))
            .await
            .expect_err("node at its rate"),
        &["this server serves at most 1"],
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

/// Counts the refusal lines (`custos::rejected`) the process writes.
struct RefusalLines(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RefusalLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "custos::rejected" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_bad_signatures_writes_a_bounded_number_of_log_lines() {
    use custos_client::refusals::{LINES_PER_WINDOW, REFUSALS, WINDOW};
    use std::sync::atomic::Ordering;
    use tracing_subscriber::layer::SubscriberExt;
    let lines = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = tracing_subscriber::registry().with(RefusalLines(lines.clone()));
    tracing::subscriber::set_global_default(counting).expect("the only subscriber");
    let net = TestNet::start(0).await.unwrap();
    let before = net.snapshot().await.unwrap();
    const FLOOD: u64 = 600;
    let started = std::time::Instant::now();
    for _ in 0..FLOOD {
        let mut wire = registration(&net, &new_keys(), 0).to_wire();
        wire.signature[0] ^= 1;
        let answer = net
            .client
            .ledger()
            .submit(ledger_pb::SubmitRequest {
                transaction: Some(wire),
                wait: false,
            })
            .await;
        assert_eq!(
            answer.map(|_| ()).map_err(|s| s.code()),
            Err(Code::Unauthenticated)
        );
    }
    REFUSALS.flush();
    let windows = started.elapsed().as_secs() / WINDOW.as_secs() + 1;
    let written = lines.load(Ordering::SeqCst);
    // Per window at most the limit and one summary of what was dropped.
    let bound = windows * (u64::from(LINES_PER_WINDOW) + 1);
    assert!(
        written <= bound,
        "{written} lines for {FLOOD} refusals in {windows} window(s)"
    );
    assert!(
        written < FLOOD,
        "{written} lines: the flood was not limited"
    );
    net.assert_unchanged(&before).await.unwrap();
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_from_one_author_or_of_new_patients_is_refused_past_the_limits_and_others_pass() {
    use custos_node::mempool::Limits;
    let options = custos_tests::NetOptions {
        limits: Some(Limits {
            per_author: 1,
            registrations: 1,
        }),
        ..Default::default()
    };
    let net = TestNet::start_with(1, options).await.unwrap();
    let submit = |tx: SignedTransaction| {
        let mut ledger = net.client.ledger();
        async move {
            ledger
                .submit(ledger_pb::SubmitRequest {
                    transaction: Some(tx.to_wire()),
                    wait: false,
                })
                .await
        }
    };
    // One patient sends consents back to back, without waiting: with one pending at a time
    // allowed, the node refuses those that find one pending, naming the limit.
    let flooder = &net.patients[0];
    let mut nonce = net
        .client
        .ledger()
        .get_nonce(ledger_pb::GetNonceRequest {
            author: party(flooder).to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .next_nonce;
    let mut refused = 0;
    for _ in 0..40 {
        let body = TransactionBody {
            chain_id: net.client.chain_id().clone(),
            nonce: Nonce(nonce),
            kind: TxKind::GrantConsent(Consent {
                patient: party(flooder),
                grantee: party(&net.insurer),
                scope: Scope::AllRecords,
                purposes: [Purpose::TREAT].into_iter().collect(),
                modes: [AccessMode::Raw].into_iter().collect(),
                period: ConsentPeriod::default(),
            }),
        };
        match submit(SignedTransaction::sign(&body, &flooder.identity)).await {
            Ok(_) => nonce += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.message().contains("max_pending_per_author"),
                    "{status:?}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "forty back-to-back transactions never found one pending"
    );
    // A crowd of new keys registering as patients meets the registration limit.
    let mut crowd_refused = 0;
    for _ in 0..40 {
        if let Err(status) = submit(registration(&net, &new_keys(), 0)).await {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            assert!(
                status.message().contains("max_pending_registrations"),
                "{status:?}"
            );
            crowd_refused += 1;
        }
    }
    assert!(
        crowd_refused > 0,
        "forty registrations never found one pending"
    );
    // Another author is unaffected: the hospital's record goes through.
    bounded(
        "another author's transaction",
        net.register_record(&net.patients[0]),
    )
    .await
    .unwrap()
    .unwrap();
    net.stop().await.unwrap();
}
