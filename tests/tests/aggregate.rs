//! An aggregate request over gRPC: the finalized decision fixes the cohort by root and size, the
//! node serves the cohort's ids page by page with the proven decision and the signed request,
//! and the client's check accepts exactly that list — a worker or a vault that trusts the proof
//! rejects any other.

use custos_client::cohort::{CohortError, verify_cohort_response};
use custos_client::methods::GET_COHORT;
use custos_client::verify_cohort;
use custos_proto::access::v1 as access_pb;
use custos_tests::{TestNet, bounded, party};
use custos_types::tx::RequestAccess;
use custos_types::{AccessMode, AggregateScope, Category, DecisionReason, Purpose, RecordId};
use tonic::Code;

/// Patients that consent, and one more with a record but no consent.
const CONSENTING: usize = 10;

#[tokio::test(flavor = "multi_thread")]
async fn an_aggregate_decision_fixes_a_cohort_the_node_serves_and_the_client_verifies()
-> anyhow::Result<()> {
    let net = TestNet::start(CONSENTING + 1).await?;
    let mut expected = Vec::new();
    let mut outsider = None;
    for (i, patient) in net.patients.iter().enumerate() {
        let record = net.register_record(patient).await?;
        if i < CONSENTING {
            net.grant(
                patient,
                &net.insurer,
                &[Purpose::HRESCH],
                &[AccessMode::Aggregate],
            )
            .await?;
            expected.push(record);
        } else {
            outsider = Some(record);
        }
    }
    expected.sort();
    let outsider = outsider.expect("one patient does not consent");

    let scope = AggregateScope {
        custodian: party(&net.hospital),
        category: Category::parse("lab", "category")?,
        text: "COUNT WHERE age >= 40".into(),
    };
    let research = Purpose::parse("CLINTRCH")?;
    let response = bounded(
        "the aggregate request",
        net.client
            .request_access(&net.insurer, RequestAccess::aggregate(&scope, research)),
    )
    .await??;
    let wire = response.decision.clone().expect("a decision");
    assert!(wire.granted);
    assert_eq!(wire.reason, access_pb::DecisionReason::Consent as i32);
    assert_eq!(wire.record_id, scope.cohort_id().to_vec());
    assert_eq!(
        wire.cohort.as_ref().map(|c| c.size),
        Some(CONSENTING as u64)
    );
    let request_id = custos_types::RequestId::from_field(&wire.request_id, "request_id")?;

    // The whole cohort, page by page, checked against the proven decision.
    let (page, ids) = bounded("the cohort", net.client.cohort(&net.insurer, request_id)).await??;
    assert_eq!(ids, expected);
    let verified = verify_cohort_response(&net.genesis, &net.trusted(), &page, ids.clone())?;
    assert_eq!(verified.scope, scope, "the signed request names the scope");
    assert_eq!(verified.decision.reason, DecisionReason::Consent);
    assert!(!ids.contains(&outsider));

    // Any other list fails against the decision's root and size.
    let d = &verified.decision;
    let mut short = ids.clone();
    short.pop();
    assert!(matches!(
        verify_cohort(d, &short),
        Err(CohortError::Size { .. })
    ));
    let mut swapped = ids.clone();
    swapped[CONSENTING - 1] = outsider;
    swapped.sort();
    assert!(matches!(
        verify_cohort(d, &swapped),
        Err(CohortError::Root { .. })
    ));
    let mut unsorted = ids.clone();
    unsorted.swap(0, 1);
    assert!(matches!(
        verify_cohort(d, &unsorted),
        Err(CohortError::Order { index: 1 })
    ));
    assert!(verify_cohort_response(&net.genesis, &net.trusted(), &page, swapped).is_err());

    // Pages: a limit, the last page, and past the end.
    let get = |offset: u64, limit: u32| {
        let mut access = net.client.access();
        let query = access_pb::GetCohortRequest {
            request_id: request_id.to_vec(),
            offset,
            limit,
        };
        let read = net.client.signed_read(&net.insurer, GET_COHORT, &query);
        async move { access.get_cohort(read).await.map(|r| r.into_inner()) }
    };
    let first = get(0, 3).await?;
    assert_eq!((first.offset, first.next_offset), (0, 3));
    assert_eq!(first.record_ids, wire_ids(&ids[..3]));
    let last = get(9, 0).await?;
    assert_eq!((last.offset, last.next_offset), (9, 10));
    assert_eq!(last.record_ids, wire_ids(&ids[9..]));
    let end = get(10, 0).await?;
    assert!(end.record_ids.is_empty());
    assert_eq!(end.next_offset, 10);
    assert_eq!(
        get(11, 0).await.map(|_| ()).map_err(|s| s.code()),
        Err(Code::OutOfRange)
    );

    // Unknown requests, and requests that are not aggregate.
    let unknown = net
        .client
        .access()
        .get_cohort(net.client.signed_read(
            &net.insurer,
            GET_COHORT,
            &access_pb::GetCohortRequest {
                request_id: vec![7; 32],
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        unknown.map(|_| ()).map_err(|s| s.code()),
        Err(Code::NotFound)
    );
    let raw = bounded(
        "a raw request",
        net.client.request_access(
            &net.insurer,
            RequestAccess {
                record_id: outsider,
                purpose: Purpose::HPAYMT,
                mode: AccessMode::Raw,
                justification_digest: None,
                query: vec![],
            },
        ),
    )
    .await??;
    let raw_id = raw.decision.expect("a decision").request_id;
    let not_aggregate = net
        .client
        .access()
        .get_cohort(net.client.signed_read(
            &net.insurer,
            GET_COHORT,
            &access_pb::GetCohortRequest {
                request_id: raw_id,
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        not_aggregate.map(|_| ()).map_err(|s| s.code()),
        Err(Code::FailedPrecondition)
    );

    // A request whose record id is not its scope's cohort id never reaches the ledger.
    let before = net.snapshot().await?;
    let mismatched = RequestAccess {
        record_id: outsider,
        ..RequestAccess::aggregate(&scope, research)
    };
    let refused = net
        .client
        .request_access(&net.insurer, mismatched)
        .await
        .expect_err("a mismatched cohort id is refused");
    let message = refused.to_string();
    assert!(
        message.contains("body.request_access.record_id"),
        "{message}"
    );
    net.assert_unchanged(&before).await?;
    Ok(())
}

fn wire_ids(ids: &[RecordId]) -> Vec<Vec<u8>> {
    ids.iter().map(|id| id.to_vec()).collect()
}
