//! The story the ledger exists for: a patient consents to an insurer for payment, the insurer is
//! granted, an advertiser is denied, the patient revokes, the insurer is denied, and an auditor
//! checks every decision against the genesis validator set, trusting no node. Access to the log
//! is confined by role, and everything survives a restart.

use std::collections::BTreeSet;

use custos_client::verify::{verify_header_chain, verify_proven_entry};
use custos_proto::access::v1 as access_pb;
use custos_proto::audit::v1 as audit_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_tests::{TestNet, bounded, party};
use custos_types::tx::RequestAccess;
use custos_types::{AccessMode, ConsentId, EntryKind, Purpose, RecordId, TxKind};
use tonic::Code;

/// What the story leaves on the ledger.
struct Story {
    record: RecordId,
    consent: ConsentId,
    /// The insurer's HPAYMT request under the consent.
    granted: access_pb::DecisionResponse,
    /// The advertiser's HMARKT request.
    advertiser_denied: access_pb::DecisionResponse,
    /// The insurer's HPAYMT request after the revocation.
    revoked_denied: access_pb::DecisionResponse,
}

impl Story {
    fn request_ids(&self) -> BTreeSet<Vec<u8>> {
        [&self.granted, &self.advertiser_denied, &self.revoked_denied]
            .iter()
            .map(|r| decision(r).request_id.clone())
            .collect()
    }
}

fn decision(response: &access_pb::DecisionResponse) -> &access_pb::AccessDecision {
    response
        .decision
        .as_ref()
        .expect("a decision response holds its decision")
}

fn raw_request(record: RecordId, purpose: Purpose) -> RequestAccess {
    RequestAccess {
        record_id: record,
        purpose,
        mode: AccessMode::Raw,
        justification_digest: None,
        query: vec![],
    }
}

/// Runs the story on `net`, whose first patient owns the record.
async fn story(net: &TestNet) -> anyhow::Result<Story> {
    let patient = &net.patients[0];
    let record = net.register_record(patient).await?;
    let consent = net
        .grant(
            patient,
            &net.insurer,
            &[Purpose::HPAYMT],
            &[AccessMode::Raw],
        )
        .await?;
    let insurer = || {
        net.client
            .request_access(&net.insurer, raw_request(record, Purpose::HPAYMT))
    };
    let granted = bounded("the insurer's request", insurer()).await??;
    let advertiser_denied = bounded(
        "the advertiser's request",
        net.client
            .request_access(&net.advertiser, raw_request(record, Purpose::HMARKT)),
    )
    .await??;
    net.submit(patient, TxKind::RevokeConsent(consent)).await?;
    let revoked_denied = bounded("the insurer's request after the revocation", insurer()).await??;
    Ok(Story {
        record,
        consent,
        granted,
        advertiser_denied,
        revoked_denied,
    })
}

/// The whole access log as the auditor reads it.
async fn audit_log(net: &TestNet) -> anyhow::Result<Vec<audit_pb::AuditEntry>> {
    let query = audit_pb::AccessLogQuery::default();
    Ok(bounded(
        "the auditor's query",
        net.client.access_log_all(&net.auditor, &query),
    )
    .await??)
}

/// Checks each entry's proof against the genesis validators and that the proven leaf is the
/// decision the node reported.
fn verify_log(net: &TestNet, log: &[audit_pb::AuditEntry]) {
    let trusted = net.trusted();
    for entry in log {
        let proven = entry
            .proven
            .as_ref()
            .expect("an audit entry carries its proof");
        let verified = verify_proven_entry(&net.genesis, &trusted, proven)
            .unwrap_or_else(|e| panic!("log entry {} does not verify: {e}", proven.index));
        let EntryKind::Decision(d) = verified.entry.kind else {
            panic!("log entry {} is not a decision", verified.index);
        };
        assert_eq!(
            Some(access_pb::AccessDecision::from(&d)),
            entry.decision,
            "entry {}",
            verified.index
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_grants_the_insurer_until_revoked_and_the_auditor_verifies_every_decision() {
    let net = TestNet::start(1).await.unwrap();
    let s = story(&net).await.unwrap();
    let patient = party(&net.patients[0]).to_vec();
    let trusted = net.trusted();

    let granted = decision(&s.granted);
    assert!(granted.granted, "{granted:?}");
    assert_eq!(granted.reason, access_pb::DecisionReason::Consent as i32);
    assert_eq!(granted.consent_id, s.consent.to_vec());
    assert_eq!(granted.requester, party(&net.insurer).to_vec());
    assert_eq!(granted.patient, patient);
    assert_eq!(granted.record_id, s.record.to_vec());
    assert_eq!(granted.purpose, "HPAYMT");
    assert_eq!(granted.mode, consent_pb::AccessMode::Raw as i32);

    let denied = decision(&s.advertiser_denied);
    assert!(!denied.granted, "{denied:?}");
    assert_eq!(denied.reason, access_pb::DecisionReason::NoConsent as i32);
    assert!(denied.consent_id.is_empty());
    assert_eq!(denied.purpose, "HMARKT");

    let revoked = decision(&s.revoked_denied);
    assert!(!revoked.granted, "{revoked:?}");
    assert_eq!(revoked.reason, access_pb::DecisionReason::Revoked as i32);
    assert_eq!(revoked.consent_id, s.consent.to_vec());

    // Each answer carries its own proof of finality.
    for response in [&s.granted, &s.advertiser_denied, &s.revoked_denied] {
        let proven = response.proven.as_ref().unwrap();
        verify_proven_entry(&net.genesis, &trusted, proven).unwrap();
    }

    // The auditor sees all three decisions, the denials included, each proven.
    let log = audit_log(&net).await.unwrap();
    let logged: BTreeSet<Vec<u8>> = log
        .iter()
        .map(|e| e.decision.as_ref().unwrap().request_id.clone())
        .collect();
    assert_eq!(log.len(), 3);
    assert_eq!(logged, s.request_ids());
    assert_eq!(
        log.iter()
            .filter(|e| e.decision.as_ref().unwrap().granted)
            .count(),
        1
    );
    verify_log(&net, &log);

    // The header chain from height 1 to the tip verifies and ends at the node's log root.
    let headers = bounded("reading headers", net.client.headers())
        .await
        .unwrap()
        .unwrap();
    let chain = verify_header_chain(&net.genesis, &trusted, &headers).unwrap();
    let status = net.status().await.unwrap();
    assert_eq!(chain.len() as u64, status.height);
    let (tip, _) = chain.last().unwrap();
    assert_eq!(tip.log_size, status.log_size);
    assert_eq!(tip.log_root.0.to_vec(), status.log_root);
    assert_eq!(tip.state_root.0.to_vec(), status.state_root);
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn patients_read_only_their_own_history_and_partners_only_their_own_requests() {
    let net = TestNet::start(2).await.unwrap();
    let s = story(&net).await.unwrap();
    let (owner, other) = (&net.patients[0], &net.patients[1]);
    let query = |q: audit_pb::AccessLogQuery, keys| {
        let client = net.client.clone();
        async move {
            bounded("an access-log query", client.access_log_all(keys, &q))
                .await
                .unwrap()
        }
    };

    // Another patient may not ask for the owner's history, and sees none of it by default.
    let refused = query(
        audit_pb::AccessLogQuery {
            patient: party(owner).to_vec(),
            ..Default::default()
        },
        other,
    )
    .await
    .unwrap_err();
    let custos_client::ClientError::Status(status) = refused else {
        panic!("expected a status, got {refused:?}");
    };
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("a patient may read only their own history"),
        "{status:?}"
    );
    assert!(query(Default::default(), other).await.unwrap().is_empty());

    // The owner sees every request for their record.
    let own = query(Default::default(), owner).await.unwrap();
    assert_eq!(own.len(), 3);
    assert!(
        own.iter()
            .all(|e| e.decision.as_ref().unwrap().patient == party(owner).to_vec())
    );

    // A partner may not ask for another partner's requests, and sees only its own by default.
    let refused = query(
        audit_pb::AccessLogQuery {
            requester: party(&net.advertiser).to_vec(),
            ..Default::default()
        },
        &net.insurer,
    )
    .await
    .unwrap_err();
    let custos_client::ClientError::Status(status) = refused else {
        panic!("expected a status, got {refused:?}");
    };
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("may read only its own requests"),
        "{status:?}"
    );
    let insurer = query(Default::default(), &net.insurer).await.unwrap();
    let ids: BTreeSet<Vec<u8>> = insurer
        .iter()
        .map(|e| e.decision.as_ref().unwrap().request_id.clone())
        .collect();
    let expected: BTreeSet<Vec<u8>> = [&s.granted, &s.revoked_denied]
        .iter()
        .map(|r| decision(r).request_id.clone())
        .collect();
    assert_eq!(ids, expected);
    let advertiser = query(Default::default(), &net.advertiser).await.unwrap();
    assert_eq!(advertiser.len(), 1);
    assert_eq!(
        advertiser[0].decision.as_ref(),
        s.advertiser_denied.decision.as_ref()
    );
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_node_keeps_its_height_roots_and_decisions_and_goes_on_deciding() {
    let mut net = TestNet::start(1).await.unwrap();
    let s = story(&net).await.unwrap();
    let before = net.snapshot().await.unwrap();
    let log_before = audit_log(&net).await.unwrap();

    net.restart().await.unwrap();

    net.assert_unchanged(&before).await.unwrap();
    let log_after = audit_log(&net).await.unwrap();
    // The same decisions at the same log indexes (their proofs now point at a later header).
    let logged = |log: &[audit_pb::AuditEntry]| {
        log.iter()
            .map(|e| {
                (
                    e.decision.clone(),
                    e.proven.as_ref().map(|p| (p.index, p.entry.clone())),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(logged(&log_after), logged(&log_before));
    verify_log(&net, &log_after);
    let consent = bounded(
        "reading the consent",
        net.client.consent_state(&net.patients[0], s.consent),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(consent.revoked, "{consent:?}");

    // The restarted node keeps deciding from the same state: the consent is still revoked.
    let again = bounded(
        "the insurer's request after the restart",
        net.client
            .request_access(&net.insurer, raw_request(s.record, Purpose::HPAYMT)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        decision(&again).reason,
        access_pb::DecisionReason::Revoked as i32
    );
    // The request and its decision were appended after everything that was there.
    assert_eq!(net.snapshot().await.unwrap().log_size, before.log_size + 2);
    assert_eq!(audit_log(&net).await.unwrap().len(), 4);
    net.stop().await.unwrap();
}
