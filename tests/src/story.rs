//! An access history with every kind of audit event: consented grants with a release, denials
//! (a spike of them), a revocation and an attempt after it, and a break-glass emergency access.

use custos_crypto::Hash;
use custos_proto::access::v1 as access_pb;
use custos_types::tx::{ConfirmRelease, RequestAccess};
use custos_types::{AccessMode, Purpose, RecordId, RequestId, TxKind};

use crate::{TestNet, bounded, random32};

/// What the story leaves on the ledger.
pub struct AuditStory {
    /// The first patient's record.
    pub record: RecordId,
    /// The second patient's record.
    pub other_record: RecordId,
    /// Every decision, in the order they were made.
    pub decisions: Vec<access_pb::AccessDecision>,
    /// The request whose release the hospital confirmed.
    pub released: RequestId,
}

/// A raw request for `record` and `purpose`.
pub fn raw_request(record: RecordId, purpose: Purpose) -> RequestAccess {
    RequestAccess {
        record_id: record,
        purpose,
        mode: AccessMode::Raw,
        justification_digest: None,
        query: vec![],
    }
}

/// Runs the story on `net` (two patients at least; break-glass enabled for the emergency).
pub async fn audit_story(net: &TestNet) -> anyhow::Result<AuditStory> {
    let patient = &net.patients[0];
    let record = net.register_record(patient).await?;
    let other_record = net.register_record(&net.patients[1]).await?;
    let consent = net
        .grant(
            patient,
            &net.insurer,
            &[Purpose::HPAYMT],
            &[AccessMode::Raw],
        )
        .await?;
    let mut decisions = Vec::new();
    let d = &mut decisions;
    let granted = ask(net, d, &net.insurer, raw_request(record, Purpose::HPAYMT)).await?;
    let released = RequestId::from_field(&granted.request_id, "request_id")?;
    net.submit(
        &net.hospital,
        TxKind::ConfirmRelease(ConfirmRelease {
            request_id: released,
            release_digest: Hash(random32()),
        }),
    )
    .await?;
    // The advertiser tries three times for marketing: a spike of denials.
    for _ in 0..3 {
        ask(
            net,
            d,
            &net.advertiser,
            raw_request(record, Purpose::HMARKT),
        )
        .await?;
    }
    net.submit(patient, TxKind::RevokeConsent(consent)).await?;
    ask(net, d, &net.insurer, raw_request(record, Purpose::HPAYMT)).await?;
    // An emergency at the hospital: break-glass on the second patient's record.
    let mut emergency = raw_request(other_record, Purpose::ETREAT);
    emergency.justification_digest = Some(Hash(random32()));
    ask(net, d, &net.hospital, emergency).await?;
    // The insurer for the second patient: no consent.
    ask(
        net,
        d,
        &net.insurer,
        raw_request(other_record, Purpose::HPAYMT),
    )
    .await?;
    Ok(AuditStory {
        record,
        other_record,
        decisions,
        released,
    })
}

async fn ask(
    net: &TestNet,
    decisions: &mut Vec<access_pb::AccessDecision>,
    keys: &custos_crypto::PartyKeys,
    request: RequestAccess,
) -> anyhow::Result<access_pb::AccessDecision> {
    let response = bounded(
        "an access request",
        net.client.request_access(keys, request),
    )
    .await??;
    let decision = response
        .decision
        .ok_or_else(|| anyhow::anyhow!("a decision response without its decision"))?;
    decisions.push(decision.clone());
    Ok(decision)
}
