//! Wire messages as the vectors' JSON inputs: one key per protobuf field, named as in
//! `proto/custos`, bytes as lowercase hex, enums as their numbers, nested messages as objects,
//! a `oneof` as the key of its chosen member (the oneof's own name does not appear).

use custos_proto::access::v1 as access_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_proto::ledger::v1 as pb;
use serde_json::{Map, Value, json};

/// Lowercase hex of `bytes`.
pub(crate) fn hx(bytes: impl AsRef<[u8]>) -> Value {
    Value::String(hex::encode(bytes))
}

fn hexes(items: &[Vec<u8>]) -> Value {
    Value::Array(items.iter().map(hx).collect())
}

pub(crate) fn consent(c: &consent_pb::Consent) -> Value {
    let scope = c.scope.as_ref().map_or(Value::Null, |s| {
        json!({
            "record_ids": hexes(&s.record_ids),
            "categories": s.categories,
            "all_records": s.all_records,
        })
    });
    json!({
        "patient": hx(&c.patient),
        "grantee": hx(&c.grantee),
        "scope": scope,
        "purposes": c.purposes,
        "modes": c.modes,
        "not_before_ms": c.not_before_ms,
        "expires_ms": c.expires_ms,
    })
}

fn governance(g: &pb::Governance) -> Value {
    use pb::governance::Action;
    match &g.action {
        Some(Action::SetParameters(s)) => json!({ "set_parameters": {
            "parameters": s.parameters.as_ref().map_or(Value::Null, |p| json!({
                "min_cohort_size": p.min_cohort_size,
                "break_glass_enabled": p.break_glass_enabled,
            })),
        }}),
        Some(Action::AddValidator(a)) => json!({ "add_validator": {
            "public_key": hx(&a.public_key),
            "power": a.power,
            "address": a.address,
            "effective_height": a.effective_height,
        }}),
        Some(Action::RemoveValidator(r)) => json!({ "remove_validator": {
            "public_key": hx(&r.public_key),
            "effective_height": r.effective_height,
        }}),
        Some(Action::SetMember(m)) => json!({ "set_member": {
            "party": hx(&m.party),
            "member": m.member,
        }}),
        Some(Action::RegisterVerifyingKey(r)) => json!({ "register_verifying_key": {
            "circuit": r.circuit,
            "key_hash": hx(&r.key_hash),
        }}),
        None => json!({}),
    }
}

/// A `TransactionBody`'s fields, its kind under the oneof member's name.
pub(crate) fn body(b: &pb::TransactionBody) -> Value {
    use pb::transaction_body::Kind;
    let (name, kind) = match &b.kind {
        Some(Kind::RegisterParty(p)) => (
            "register_party",
            json!({
                "party": hx(&p.party),
                "role": p.role,
                "encryption_key": hx(&p.encryption_key),
                "organisation": p.organisation,
            }),
        ),
        Some(Kind::RegisterRecord(r)) => (
            "register_record",
            json!({
                "record_id": hx(&r.record_id),
                "owner": hx(&r.owner),
                "category": r.category,
                "ciphertext_digest": hx(&r.ciphertext_digest),
                "attribute_commitment": hx(&r.attribute_commitment),
            }),
        ),
        Some(Kind::GrantConsent(g)) => (
            "grant_consent",
            json!({ "consent": g.consent.as_ref().map_or(Value::Null, consent) }),
        ),
        Some(Kind::RevokeConsent(r)) => {
            ("revoke_consent", json!({ "consent_id": hx(&r.consent_id) }))
        }
        Some(Kind::RegisterDelegate(d)) => (
            "register_delegate",
            json!({
                "delegate": hx(&d.delegate),
                "expires_ms": d.expires_ms,
                "revoke": d.revoke,
            }),
        ),
        Some(Kind::RequestAccess(r)) => (
            "request_access",
            json!({
                "record_id": hx(&r.record_id),
                "purpose": r.purpose,
                "mode": r.mode,
                "justification_digest": hx(&r.justification_digest),
                "query": hx(&r.query),
            }),
        ),
        Some(Kind::ConfirmRelease(c)) => (
            "confirm_release",
            json!({
                "request_id": hx(&c.request_id),
                "release_digest": hx(&c.release_digest),
            }),
        ),
        Some(Kind::EraseRecord(e)) => (
            "erase_record",
            json!({
                "record_id": hx(&e.record_id),
                "legal_grounds": e.legal_grounds,
            }),
        ),
        Some(Kind::Governance(g)) => ("governance", governance(g)),
        Some(Kind::ReportRefusal(r)) => (
            "report_refusal",
            json!({
                "request_id": hx(&r.request_id),
                "requester": hx(&r.requester),
                "reason": r.reason,
                "evidence_digest": hx(&r.evidence_digest),
            }),
        ),
        None => ("", Value::Null),
    };
    let mut out = Map::new();
    out.insert("version".into(), json!(b.version));
    out.insert("chain_id".into(), json!(b.chain_id));
    out.insert("nonce".into(), json!(b.nonce));
    out.insert("author".into(), hx(&b.author));
    if !name.is_empty() {
        out.insert(name.into(), kind);
    }
    Value::Object(out)
}

/// A `SignedTransaction`'s fields.
pub(crate) fn envelope(tx: &pb::SignedTransaction) -> Value {
    json!({
        "body": hx(&tx.body),
        "author": hx(&tx.author),
        "signature": hx(&tx.signature),
        "cosignatures": tx.cosignatures.iter().map(|c| json!({
            "signer": hx(&c.signer),
            "signature": hx(&c.signature),
        })).collect::<Vec<_>>(),
    })
}

/// An `AccessDecision`'s fields.
pub(crate) fn decision(d: &access_pb::AccessDecision) -> Value {
    json!({
        "request_id": hx(&d.request_id),
        "requester": hx(&d.requester),
        "record_id": hx(&d.record_id),
        "patient": hx(&d.patient),
        "purpose": d.purpose,
        "mode": d.mode,
        "granted": d.granted,
        "reason": d.reason,
        "consent_id": hx(&d.consent_id),
        "break_glass": d.break_glass,
        "height": d.height,
        "time_ms": d.time_ms,
        "cohort": d.cohort.as_ref().map_or(Value::Null, |c| json!({
            "root": hx(&c.root),
            "size": c.size,
        })),
    })
}

/// A `BlockHeader`'s fields.
pub(crate) fn header(h: &pb::BlockHeader) -> Value {
    json!({
        "version": h.version,
        "chain_id": h.chain_id,
        "height": h.height,
        "time_ms": h.time_ms,
        "prev_hash": hx(&h.prev_hash),
        "log_size": h.log_size,
        "log_root": hx(&h.log_root),
        "state_root": hx(&h.state_root),
        "tx_count": h.tx_count,
        "proposer": hx(&h.proposer),
        "next_validators_hash": hx(&h.next_validators_hash),
    })
}
