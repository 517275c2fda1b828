//! Transactions and signed reads: fields → body bytes → id and signatures, and the envelopes the
//! product refuses.

use std::collections::BTreeSet;

use custos_crypto::context::{SIGNED_READ, TRANSACTION};
use custos_crypto::{Hash, sha256};
use custos_proto::audit::v1 as audit_pb;
use custos_proto::ledger::v1 as pb;
use custos_types::aggregate::AggregateScope;
use custos_types::model::{AccessMode, Consent, ConsentPeriod, Organisation, Parameters, Scope};
use custos_types::read::ReadNonce;
use custos_types::tx::{
    ConfirmRelease, EraseRecord, Governance, RegisterDelegate, RegisterParty, RegisterRecord,
    ReportRefusal, RequestAccess, SignedTransaction, TransactionBody, TxKind,
};
use custos_types::{
    Category, ChainId, ConsentId, DecisionReason, Height, Nonce, PartyId, Purpose, RecordId,
    RequestId, Role, SignedRead, Timestamp,
};
use prost::Message;
use serde_json::json;

use crate::json::{self, hx};
use crate::signatures::flip;
use crate::{CHAIN_ID, TIME_MS, Vector, party, seed};

const SPEC: &str = "transactions.md";
const READ_SPEC: &str = "reads.md";

pub(crate) fn chain() -> ChainId {
    match ChainId::parse(CHAIN_ID) {
        Ok(c) => c,
        Err(e) => unreachable!("the vectors' chain id is valid: {e}"),
    }
}

pub(crate) fn id_of(label: &str) -> Hash {
    sha256(format!("custos/conformance/{label}").as_bytes())
}

pub(crate) fn party_id(name: &str) -> PartyId {
    PartyId(party(name).public())
}

fn category(text: &str) -> Category {
    match Category::parse(text, "category") {
        Ok(c) => c,
        Err(e) => unreachable!("the vectors' categories are valid: {e}"),
    }
}

/// The record every vector's requests are about.
pub(crate) fn record() -> RecordId {
    RecordId(id_of("record/lab-1"))
}

/// A signed transaction of `author` (co-signed by `cosigners`) with `nonce` and `kind`.
pub(crate) fn signed(
    author: &str,
    nonce: u64,
    kind: TxKind,
    cosigners: &[&str],
) -> SignedTransaction {
    let body = TransactionBody {
        chain_id: chain(),
        nonce: Nonce(nonce),
        kind,
    };
    let mut tx = SignedTransaction::sign(&body, &party(author));
    for c in cosigners {
        tx.cosign(&party(c));
    }
    tx
}

/// A `transaction` vector: the body's fields, the seeds, and what the product made of them.
pub(crate) fn tx_vector(
    name: &str,
    author: &str,
    tx: &SignedTransaction,
    cosigners: &[&str],
) -> Vector {
    let wire = tx.to_wire();
    let envelope = wire.encode_to_vec();
    let fields = pb::TransactionBody::decode(tx.body_bytes())
        .map(|b| json::body(&b))
        .unwrap_or_default();
    let verdict = SignedTransaction::from_bytes(&envelope);
    Vector::verdict(
        name,
        "transaction",
        SPEC,
        verdict,
        json!({
            "seed": hx(seed(author)),
            "cosigner_seeds": cosigners.iter().map(|c| hx(seed(c))).collect::<Vec<_>>(),
            "fields": fields,
        }),
        json!({
            "body": hx(tx.body_bytes()),
            "tx_id": hx(tx.id().0),
            "author": hx(tx.author().0.as_bytes()),
            "envelope": json::envelope(&wire),
            "envelope_bytes": hx(&envelope),
        }),
    )
}

/// A `transaction-envelope` vector: the product's verdict on an envelope built by hand.
fn envelope_vector(name: &str, wire: pb::SignedTransaction) -> Vector {
    let verdict = SignedTransaction::from_wire(wire.clone());
    Vector::verdict(
        name,
        "transaction-envelope",
        SPEC,
        verdict,
        json!({ "envelope": json::envelope(&wire) }),
        json!({}),
    )
}

fn register_party(name: &str, role: Role, organisation: &str) -> TxKind {
    TxKind::RegisterParty(RegisterParty {
        party: party_id(name),
        role,
        encryption_key: id_of(&format!("x25519/{name}")).0,
        organisation: match Organisation::parse(organisation, "organisation") {
            Ok(o) => o,
            Err(e) => unreachable!("the vectors' organisations are valid: {e}"),
        },
    })
}

/// The raw-mode request every release vector refers to.
pub(crate) fn raw_request() -> SignedTransaction {
    signed(
        "acme",
        1,
        TxKind::RequestAccess(RequestAccess {
            record_id: record(),
            purpose: Purpose::HPAYMT,
            mode: AccessMode::Raw,
            justification_digest: None,
            query: vec![],
        }),
        &[],
    )
}

/// The consent grant the revocation vector names.
pub(crate) fn grant() -> SignedTransaction {
    let consent = Consent {
        patient: party_id("alice"),
        grantee: party_id("acme"),
        scope: Scope::Some {
            records: BTreeSet::new(),
            categories: BTreeSet::from([category("lab")]),
        },
        purposes: BTreeSet::from([Purpose::HPAYMT, Purpose::TREAT]),
        modes: BTreeSet::from([AccessMode::Raw, AccessMode::Aggregate]),
        period: ConsentPeriod {
            not_before: None,
            expires: Some(Timestamp(TIME_MS + 365 * 24 * 3600 * 1000)),
        },
    };
    signed("alice", 1, TxKind::GrantConsent(consent), &[])
}

/// The aggregate scope of the aggregate request and the scope vector.
pub(crate) fn scope() -> AggregateScope {
    AggregateScope {
        custodian: party_id("hospital"),
        category: category("lab"),
        text: "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5".into(),
    }
}

pub(crate) fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut add = |name: &str, author: &str, nonce: u64, kind: TxKind, cosigners: &[&str]| {
        let tx = signed(author, nonce, kind, cosigners);
        out.push(tx_vector(name, author, &tx, cosigners));
    };
    add(
        "tx/register-party-patient",
        "alice",
        0,
        register_party("alice", Role::Patient, ""),
        &[],
    );
    add(
        "tx/register-party-partner-cosigned",
        "acme",
        0,
        register_party("acme", Role::Partner, "acme-insurance"),
        &["hospital", "clinic"],
    );
    add(
        "tx/register-record",
        "hospital",
        3,
        TxKind::RegisterRecord(RegisterRecord {
            record_id: record(),
            owner: party_id("alice"),
            category: category("lab"),
            ciphertext_digest: id_of("ciphertext/lab-1"),
            attribute_commitment: Some(id_of("commitment/lab-1")),
        }),
        &[],
    );
    let grant = grant();
    out.push(tx_vector("tx/grant-consent", "alice", &grant, &[]));
    let mut add = |name: &str, author: &str, nonce: u64, kind: TxKind, cosigners: &[&str]| {
        let tx = signed(author, nonce, kind, cosigners);
        out.push(tx_vector(name, author, &tx, cosigners));
    };
    add(
        "tx/revoke-consent",
        "alice",
        2,
        TxKind::RevokeConsent(ConsentId(grant.id().0)),
        &[],
    );
    add(
        "tx/register-delegate",
        "alice",
        3,
        TxKind::RegisterDelegate(RegisterDelegate {
            delegate: party_id("bob"),
            expires: Some(Timestamp(TIME_MS + 30 * 24 * 3600 * 1000)),
            revoke: false,
        }),
        &[],
    );
    let request = raw_request();
    out.push(tx_vector("tx/request-access-raw", "acme", &request, &[]));
    let mut add = |name: &str, author: &str, nonce: u64, kind: TxKind, cosigners: &[&str]| {
        let tx = signed(author, nonce, kind, cosigners);
        out.push(tx_vector(name, author, &tx, cosigners));
    };
    add(
        "tx/request-access-predicate",
        "acme",
        2,
        TxKind::RequestAccess(RequestAccess {
            record_id: record(),
            purpose: Purpose::HRESCH,
            mode: AccessMode::Predicate,
            justification_digest: None,
            query: crate::queries::adult_non_smoker().to_vec(),
        }),
        &[],
    );
    add(
        "tx/request-access-aggregate",
        "adco",
        1,
        TxKind::RequestAccess(RequestAccess::aggregate(&scope(), Purpose::HMARKT)),
        &[],
    );
    add(
        "tx/confirm-release",
        "hospital",
        4,
        TxKind::ConfirmRelease(ConfirmRelease {
            request_id: RequestId(request.id().0),
            release_digest: crate::ids::record_release_digest(),
        }),
        &[],
    );
    add(
        "tx/erase-record",
        "alice",
        4,
        TxKind::EraseRecord(EraseRecord {
            record_id: record(),
            legal_grounds: false,
        }),
        &[],
    );
    add(
        "tx/report-refusal",
        "hospital",
        5,
        TxKind::ReportRefusal(ReportRefusal {
            request_id: RequestId(request.id().0),
            requester: party_id("adco"),
            reason: DecisionReason::VaultNotRequester,
            evidence_digest: id_of("evidence/refused-fetch"),
        }),
        &[],
    );
    add(
        "tx/governance-set-parameters",
        "hospital",
        6,
        TxKind::Governance(Governance::SetParameters(Parameters {
            min_cohort_size: 20,
            break_glass_enabled: true,
        })),
        &["clinic"],
    );
    add(
        "tx/governance-add-validator",
        "hospital",
        7,
        TxKind::Governance(Governance::AddValidator {
            key: party("validator-4").public(),
            power: 1,
            address: "/ip4/127.0.0.1/tcp/27004".into(),
            effective_height: Height(12),
        }),
        &["clinic"],
    );
    add(
        "tx/governance-remove-validator",
        "hospital",
        8,
        TxKind::Governance(Governance::RemoveValidator {
            key: party("validator-3").public(),
            effective_height: Height(20),
        }),
        &["clinic"],
    );
    add(
        "tx/governance-set-member",
        "hospital",
        9,
        TxKind::Governance(Governance::SetMember {
            party: party_id("clinic"),
            member: true,
        }),
        &["clinic"],
    );
    add(
        "tx/governance-register-verifying-key",
        "hospital",
        10,
        TxKind::Governance(Governance::RegisterVerifyingKey {
            circuit: "predicate-8x8".into(),
            key_hash: Some(id_of("verifying-key/predicate-8x8")),
        }),
        &["clinic"],
    );

    // Two partners, the same nonce, the same request: two bodies, two ids.
    let same = |author: &str| {
        signed(
            author,
            1,
            TxKind::RequestAccess(RequestAccess {
                record_id: record(),
                purpose: Purpose::HPAYMT,
                mode: AccessMode::Raw,
                justification_digest: None,
                query: vec![],
            }),
            &[],
        )
    };
    let (a, b) = (same("acme"), same("adco"));
    out.push(tx_vector(
        "tx/same-fields-two-authors-acme",
        "acme",
        &a,
        &[],
    ));
    out.push(tx_vector(
        "tx/same-fields-two-authors-adco",
        "adco",
        &b,
        &[],
    ));
    out.push(Vector::verdict(
        "tx/same-fields-two-authors",
        "distinct-ids",
        SPEC,
        if a.id() == b.id() {
            Err("two authors produced one transaction id")
        } else {
            Ok(())
        },
        json!({
            "vectors": ["tx/same-fields-two-authors-acme", "tx/same-fields-two-authors-adco"],
        }),
        json!({ "tx_ids": [hx(a.id().0), hx(b.id().0)] }),
    ));

    out.extend(negative_envelopes(&request));
    out
}

fn negative_envelopes(request: &SignedTransaction) -> Vec<Vector> {
    let (acme, adco) = (party("acme"), party("adco"));
    let body_of = |author: &PartyId, version: u32| {
        let mut body = TransactionBody {
            chain_id: chain(),
            nonce: Nonce(1),
            kind: request.body().kind.clone(),
        }
        .to_wire(author);
        body.version = version;
        body.encode_to_vec()
    };
    // The body names acme; adco signs it and names itself in the envelope.
    let claims_acme = body_of(&party_id("acme"), 2);
    let mismatch = pb::SignedTransaction {
        signature: adco.sign_in(TRANSACTION, &claims_acme).to_bytes().to_vec(),
        author: adco.public().as_bytes().to_vec(),
        body: claims_acme,
        cosignatures: vec![],
    };
    let wire = request.to_wire();
    let without_context = pb::SignedTransaction {
        signature: acme.sign(&wire.body).to_bytes().to_vec(),
        ..wire.clone()
    };
    let flipped = pb::SignedTransaction {
        body: flip(&wire.body, 8 * wire.body.len() - 1),
        ..wire.clone()
    };
    let v1_body = body_of(&party_id("acme"), 1);
    let version_1 = pb::SignedTransaction {
        signature: acme.sign_in(TRANSACTION, &v1_body).to_bytes().to_vec(),
        body: v1_body,
        ..wire.clone()
    };
    let read_signature = pb::SignedTransaction {
        signature: acme.sign_in(SIGNED_READ, &wire.body).to_bytes().to_vec(),
        ..wire
    };
    vec![
        envelope_vector("tx/neg-author-mismatch", mismatch),
        envelope_vector("tx/neg-signed-without-context", without_context),
        envelope_vector("tx/neg-read-signature-as-transaction", read_signature),
        envelope_vector("tx/neg-bit-flipped-body", flipped),
        envelope_vector("tx/neg-version-1", version_1),
    ]
}

/// The method the read vectors are signed for.
const QUERY_METHOD: &str = "/custos.audit.v1.AuditService/QueryAccessLog";

fn read_vector(
    name: &str,
    wire: &pb::SignedRead,
    seed_of: Option<&str>,
    query: &audit_pb::AccessLogQuery,
) -> Vector {
    let verdict = SignedRead::from_wire(wire);
    let fields = pb::ReadBody::decode(wire.body.as_slice())
        .map(|b| {
            json!({
                "version": b.version,
                "chain_id": b.chain_id,
                "method": b.method,
                "issued_at_ms": b.issued_at_ms,
                "query": hx(&b.query),
                "nonce": hx(&b.nonce),
                "author": hx(&b.author),
            })
        })
        .unwrap_or_default();
    let mut inputs = json!({
        "fields": fields,
        "query_fields": {
            "patient": hx(&query.patient),
            "page_size": query.page_size,
        },
        "envelope": {
            "body": hx(&wire.body),
            "author": hx(&wire.author),
            "signature": hx(&wire.signature),
        },
    });
    if let (Some(name), Some(map)) = (seed_of, inputs.as_object_mut()) {
        map.insert("seed".into(), hx(seed(name)));
    }
    Vector::verdict(
        name,
        "signed-read",
        READ_SPEC,
        verdict,
        inputs,
        json!({
            "message": hx(custos_crypto::context::message(SIGNED_READ, &wire.body)),
            "envelope_bytes": hx(wire.encode_to_vec()),
        }),
    )
}

pub(crate) fn read_vectors() -> Vec<Vector> {
    let alice = party("alice");
    let query = audit_pb::AccessLogQuery {
        patient: alice.public().as_bytes().to_vec(),
        page_size: 50,
        ..Default::default()
    };
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&id_of("read-nonce/1").0[..16]);
    let wire = SignedRead::sign(
        &chain(),
        QUERY_METHOD,
        Timestamp(TIME_MS),
        ReadNonce(nonce),
        &query,
        &alice,
    );
    let as_transaction = pb::SignedRead {
        signature: alice.sign_in(TRANSACTION, &wire.body).to_bytes().to_vec(),
        ..wire.clone()
    };
    let names_bob = pb::ReadBody {
        author: party("bob").public().as_bytes().to_vec(),
        ..pb::ReadBody::decode(wire.body.as_slice()).unwrap_or_default()
    }
    .encode_to_vec();
    let mismatch = pb::SignedRead {
        signature: alice.sign_in(SIGNED_READ, &names_bob).to_bytes().to_vec(),
        body: names_bob,
        ..wire.clone()
    };
    let flipped = pb::SignedRead {
        body: flip(&wire.body, 4),
        ..wire.clone()
    };
    vec![
        read_vector("read/audit-query", &wire, Some("alice"), &query),
        read_vector(
            "read/neg-transaction-signature-as-read",
            &as_transaction,
            None,
            &query,
        ),
        read_vector("read/neg-author-mismatch", &mismatch, None, &query),
        read_vector("read/neg-bit-flipped-body", &flipped, None, &query),
    ]
}
