//! Aggregates on encrypted data, end to end: a real node, the hospital's vault (FHE key sealed,
//! a table row per record at put), a keyless compute worker on its own gRPC socket, and the
//! partner's request on the ledger. The vault decrypts only a recomputed aggregate over at
//! least k consenting patients, and logs it first.

use custos_client::verify::verify_proven_entry;
use custos_compute::{ComputeConfig, RunningCompute};
use custos_crypto::PartyKeys;
use custos_proto::compute::v1 as compute_pb;
use custos_proto::compute::v1::compute_service_client::ComputeServiceClient;
use custos_proto::vault::v1 as vault_pb;
use custos_tests::bounded;
use custos_types::tx::RequestAccess;
use custos_types::{
    AccessMode, AggregateScope, Category, DecisionReason, EntryKind, Purpose, RequestId, TxKind,
};
use custos_vault_service::VaultClientError;
use tonic::Code;

use crate::{VaultNet, party};

/// (age, bmi_x10, hba1c_x10, smoker) of patient `i`: ages 30–85, BMI 22.0–33.0, every
/// sixth a smoker.
fn vitals(i: usize) -> (i64, i64, i64, i64) {
    let i = i as i64;
    (
        30 + (i * 5) % 56,
        220 + (i * 17) % 111,
        50 + (i * 7) % 40,
        i64::from(i % 6 == 5),
    )
}

fn attributes(i: usize) -> Vec<vault_pb::Attribute> {
    let (age, bmi, hba1c, smoker) = vitals(i);
    let num = |name: &str, v: i64| vault_pb::Attribute {
        name: name.into(),
        value: Some(vault_pb::attribute::Value::Numeric(v)),
    };
    vec![
        num("age", age),
        num("bmi_x10", bmi),
        num("hba1c_x10", hba1c),
        num("diabetes", i64::from(hba1c >= 65)),
        num("smoker", smoker),
        vault_pb::Attribute {
            name: "sex".into(),
            value: Some(vault_pb::attribute::Value::Categorical(
                ["female", "male"][i % 2].into(),
            )),
        },
    ]
}

/// Patients in a scenario; the first [`CONSENTING`] let the advertiser aggregate.
const PATIENTS: usize = 14;
const CONSENTING: usize = 12;

struct Scenario {
    vn: VaultNet,
    worker: RunningCompute,
}

impl Scenario {
    async fn start() -> Scenario {
        let vn = VaultNet::start(PATIENTS).await.unwrap();
        for p in &vn.net.patients[..CONSENTING] {
            vn.net
                .grant(
                    p,
                    &vn.net.advertiser,
                    &[Purpose::HRESCH],
                    &[AccessMode::Aggregate],
                )
                .await
                .unwrap();
        }
        for (i, p) in vn.net.patients.iter().enumerate() {
            let put = bounded(
                "putting a record",
                vn.client.put(
                    &vn.net.hospital,
                    vault_pb::RecordHeader {
                        record_id: Vec::new(),
                        owner: party(p).to_vec(),
                        category: "lab".into(),
                        attributes: attributes(i),
                        size: 2,
                    },
                    std::io::Cursor::new(b"{}".to_vec()),
                ),
            )
            .await
            .unwrap()
            .unwrap();
            assert!(
                put.aggregate_row,
                "patient {i}'s record gets an encrypted row"
            );
        }
        // A consenting patient's record without the schema's attributes: stored, no row.
        let put = vn
            .client
            .put(
                &vn.net.hospital,
                vault_pb::RecordHeader {
                    record_id: Vec::new(),
                    owner: party(&vn.net.patients[0]).to_vec(),
                    category: "lab".into(),
                    attributes: Vec::new(),
                    size: 2,
                },
                std::io::Cursor::new(b"{}".to_vec()),
            )
            .await
            .unwrap();
        assert!(!put.aggregate_row);
        let worker = custos_compute::start(ComputeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vn.running().endpoint(),
        ))
        .await
        .unwrap();
        Scenario { vn, worker }
    }

    fn scope(&self, text: &str) -> AggregateScope {
        AggregateScope {
            custodian: party(&self.vn.net.hospital),
            category: Category::parse("lab", "category").unwrap(),
            text: text.into(),
        }
    }

    /// `who` requests `text` in aggregate mode; the finalized decision's request id and grant.
    async fn request(&self, who: &PartyKeys, text: &str) -> (RequestId, bool, DecisionReason) {
        let response = bounded(
            "requesting an aggregate",
            self.vn.net.client.request_access(
                who,
                RequestAccess::aggregate(&self.scope(text), Purpose::HRESCH),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        let d = custos_types::Decision::try_from(response.decision.unwrap()).unwrap();
        (d.request_id, d.granted(), d.reason)
    }

    async fn worker(&self) -> ComputeServiceClient<tonic::transport::Channel> {
        ComputeServiceClient::connect(self.worker.endpoint())
            .await
            .unwrap()
            .max_decoding_message_size(8 << 20)
    }

    /// The worker evaluates `request` for `who`: its progress stages and result, or the status.
    async fn evaluate(
        &self,
        who: &PartyKeys,
        request: RequestId,
    ) -> Result<(Vec<String>, compute_pb::EvaluateResult), tonic::Status> {
        let read = self.vn.client.cohort_table_read(who, request);
        let mut stream = self
            .worker()
            .await
            .evaluate(compute_pb::EvaluateRequest {
                table_read: Some(read),
            })
            .await?
            .into_inner();
        let mut stages = Vec::new();
        let mut result = None;
        while let Some(event) = bounded("evaluating", stream.message()).await.unwrap()? {
            match event.event.unwrap() {
                compute_pb::evaluate_event::Event::Progress(p) => {
                    assert!(p.done <= p.total, "{p:?}");
                    if stages.last() != Some(&p.stage) {
                        stages.push(p.stage);
                    }
                }
                compute_pb::evaluate_event::Event::Result(r) => result = Some(r),
            }
        }
        Ok((stages, result.expect("a result ends the stream")))
    }

    async fn release(
        &self,
        who: &PartyKeys,
        request: RequestId,
        result: Vec<u8>,
    ) -> Result<vault_pb::AggregateRelease, VaultClientError> {
        bounded(
            "releasing",
            self.vn.client.release_aggregate(who, request, result),
        )
        .await
        .unwrap()
    }

    async fn stop(self) {
        self.worker.stop().await.unwrap();
        self.vn.net.stop().await.unwrap();
    }
}

fn consenting() -> impl Iterator<Item = (i64, i64, i64, i64)> {
    (0..CONSENTING).map(vitals)
}

fn assert_refused(result: &Result<vault_pb::AggregateRelease, VaultClientError>, code: &str) {
    match result {
        Err(VaultClientError::Status(s)) => {
            assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
            assert!(s.message().starts_with(code), "{}", s.message());
            assert!(
                s.message().contains("logged on the ledger"),
                "{}",
                s.message()
            );
        }
        other => panic!("expected a {code} refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_over_consenting_patients_equal_the_plaintext_and_are_logged_before_release() {
    let s = Scenario::start().await;
    let advertiser = &s.vn.net.advertiser;
    let nonsmokers: Vec<_> = consenting().filter(|v| v.3 == 0).collect();
    assert!(nonsmokers.len() >= 10, "the data leaves k matching rows");
    let cases: Vec<(&str, u64, Option<f64>)> = vec![
        ("COUNT", CONSENTING as u64, None),
        (
            "SUM age",
            CONSENTING as u64,
            Some(consenting().map(|v| v.0 as f64).sum()),
        ),
        (
            "MEAN bmi WHERE smoker = false",
            nonsmokers.len() as u64,
            Some(
                nonsmokers.iter().map(|v| v.1 as f64 / 10.0).sum::<f64>() / nonsmokers.len() as f64,
            ),
        ),
    ];
    let mut fetched_keys = 0;
    for (query, count, value) in cases {
        let (request, granted, reason) = s.request(advertiser, query).await;
        assert!(granted, "{query}: {reason:?}");
        let (stages, evaluated) = s.evaluate(advertiser, request).await.unwrap();
        assert!(stages.contains(&"download".to_string()), "{stages:?}");
        // MEAN bmi WHERE smoker has no cross column: bootstrapped, with the server key.
        fetched_keys += usize::from(stages.contains(&"keys".to_string()));
        assert_eq!(evaluated.cohort_size, CONSENTING as u64 + 1);
        assert_eq!(
            evaluated.cohort_rows, CONSENTING as u64,
            "non-consenting excluded"
        );
        // The worker holds the cohort's rows only, never a non-consenting patient's ciphertext.
        assert_eq!(evaluated.table_rows, CONSENTING as u64);
        let release = s
            .release(advertiser, request, evaluated.result.clone())
            .await
            .unwrap();
        assert_eq!(release.count, count, "{query}");
        match (value, release.value) {
            (Some(want), Some(got)) => assert!((want - got).abs() < 1e-9, "{query}: {got}"),
            (None, None) => {}
            other => panic!("{query}: {other:?}"),
        }
        // The release is on the ledger, proven, with the digest the vault answered.
        let entry = s.vn.audit_entry(request).await.unwrap();
        assert_eq!(entry.releases.len(), 1);
        let verified =
            verify_proven_entry(&s.vn.net.genesis, &s.vn.net.trusted(), &entry.releases[0])
                .unwrap();
        let EntryKind::Transaction(tx) = verified.entry.kind else {
            panic!("not a transaction")
        };
        let TxKind::ConfirmRelease(confirm) = &tx.body().kind else {
            panic!("not a confirmation")
        };
        assert_eq!(confirm.request_id, request);
        assert_eq!(confirm.release_digest.0.to_vec(), release.release_digest);
        // Released once.
        let again = s.release(advertiser, request, evaluated.result).await;
        assert!(
            matches!(&again, Err(VaultClientError::Status(st)) if st.message().starts_with("not_confirmed")),
            "{again:?}"
        );
    }

    assert_eq!(
        fetched_keys, 1,
        "the server key is fetched for the bootstrapped query"
    );
    // Another bootstrapped plan (a threshold that is not a bucket edge) reuses the worker's
    // cached server key.
    let query = "COUNT WHERE bmi >= 23.3";
    let plan = s
        .worker()
        .await
        .explain(compute_pb::ExplainRequest {
            query: query.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(plan.bootstrapped, "{}", plan.plan);
    let want = consenting().filter(|v| v.1 >= 233).count() as u64;
    assert!(want >= 10);
    let (request, granted, _) = s.request(advertiser, query).await;
    assert!(granted);
    let (stages, evaluated) = s.evaluate(advertiser, request).await.unwrap();
    assert!(!stages.contains(&"keys".to_string()), "cached: {stages:?}");
    let release = s
        .release(advertiser, request, evaluated.result)
        .await
        .unwrap();
    assert_eq!(release.count, want);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dishonest_worker_cannot_get_one_patients_value_decrypted() {
    let s = Scenario::start().await;
    let advertiser = &s.vn.net.advertiser;
    let (request, granted, _) = s.request(advertiser, "SUM age").await;
    assert!(granted);
    // What an honest worker would compute, and the ciphertexts a dishonest one holds.
    let (_, honest) = s.evaluate(advertiser, request).await.unwrap();
    let mut stream =
        s.vn.client
            .grpc()
            .get_cohort_table(s.vn.client.cohort_table_read(advertiser, request))
            .await
            .unwrap()
            .into_inner();
    let mut payload = Vec::new();
    let mut query = String::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        match chunk.part.unwrap() {
            vault_pb::cohort_table_chunk::Part::Header(h) => query = h.query,
            vault_pb::cohort_table_chunk::Part::Data(d) => payload.extend(d),
        }
    }
    let (cohort, table) = custos_fhe::decode_payload(&payload).unwrap();
    let plan = custos_fhe::explain(table.schema(), &query).unwrap();
    let first = cohort.rows().next().unwrap();
    let single = custos_fhe::Cohort::from_sorted_rows(&[first]).unwrap();
    let one_patient =
        custos_fhe::evaluate(&plan, &table, &single, None, &custos_fhe::NoProgress).unwrap();
    // 1. One patient's sum, as computed (bound to a one-row cohort).
    let forged = s
        .release(advertiser, request, one_patient.to_bytes().unwrap())
        .await;
    assert_refused(&forged, "forged_result");
    // 2. The same ciphertext substituted into the honest result's frame.
    let mut substituted = custos_fhe::EncryptedResult::from_bytes(&honest.result).unwrap();
    for (i, (_, payload)) in one_patient.outputs().iter().enumerate() {
        substituted.tamper(i, payload.clone());
    }
    let forged = s
        .release(advertiser, request, substituted.to_bytes().unwrap())
        .await;
    assert_refused(&forged, "forged_result");
    // Both attempts are denials in the access log, naming the cohort.
    let refusals =
        s.vn.vault_refusals(advertiser, AggregateScope::cohort_id(&s.scope("SUM age")))
            .await
            .unwrap();
    assert_eq!(refusals, vec!["vault_refused", "vault_refused"]);
    // The honest result is still released.
    let release = s
        .release(advertiser, request, honest.result.clone())
        .await
        .unwrap();
    assert_eq!(release.value, Some(consenting().map(|v| v.0 as f64).sum()));
    // 3. A result for another request (another query) is refused too.
    let (other, granted, _) = s.request(advertiser, "SUM bmi").await;
    assert!(granted);
    let replayed = s.release(advertiser, other, honest.result).await;
    assert_refused(&replayed, "forged_result");
    // 4. Another partner cannot use the advertiser's grant.
    let stolen = s.evaluate(&s.vn.net.insurer, request).await;
    assert!(
        matches!(&stolen, Err(st) if st.code() == Code::PermissionDenied && st.message().starts_with("not_requester")),
        "{stolen:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cohorts_below_k_are_refused_and_logged_and_bad_queries_get_clear_errors() {
    let s = Scenario::start().await;
    let advertiser = &s.vn.net.advertiser;
    // Fewer than k matching rows: evaluated, refused by the vault, logged.
    let few = consenting().filter(|v| v.0 >= 70).count();
    assert!(few > 0 && few < 10, "{few}");
    let (request, granted, _) = s.request(advertiser, "COUNT WHERE age >= 70").await;
    assert!(granted);
    let (_, evaluated) = s.evaluate(advertiser, request).await.unwrap();
    let refused = s.release(advertiser, request, evaluated.result).await;
    assert_refused(&refused, "cohort_too_small");
    // A cohort below k at the ledger: the insurer has no aggregate consents.
    let (_, granted, reason) = s.request(&s.vn.net.insurer, "COUNT").await;
    assert!(!granted);
    assert_eq!(reason, DecisionReason::CohortTooSmall);

    let mut worker = s.worker().await;
    let explain = |q: &str| compute_pb::ExplainRequest { query: q.into() };
    for (query, needle) in [
        ("COUNT WHERE height > 3", "unknown attribute"),
        ("COUNT WHERE sex >= 2", "type mismatch"),
        ("MEAN", "query syntax"),
        ("", "query size"),
    ] {
        let e = worker.explain(explain(query)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{query}");
        assert!(e.message().starts_with("query:"), "{}", e.message());
        assert!(e.message().contains(needle), "{query}: {}", e.message());
    }
    let long = format!("COUNT WHERE {}", "age >= 1 AND ".repeat(100));
    let e = worker.explain(explain(&long)).await.unwrap_err();
    assert!(e.message().contains("at most"), "{}", e.message());
    // Evaluate: no read, a read for another method.
    let e = worker
        .evaluate(compute_pb::EvaluateRequest { table_read: None })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("table_read"), "{}", e.message());
    let wrong = s.vn.client.signed_read(
        advertiser,
        "/custos.vault.v1.VaultService/ListRecords",
        &vault_pb::ListRecordsQuery::default(),
    );
    let e = worker
        .evaluate(compute_pb::EvaluateRequest {
            table_read: Some(wrong),
        })
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("table_read.body.method"),
        "{}",
        e.message()
    );
    // A granted query the planner refuses (the ledger keeps the text opaque).
    let (request, granted, _) = s.request(advertiser, "COUNT WHERE height > 3").await;
    assert!(granted);
    let e = s.evaluate(advertiser, request).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("unknown attribute"), "{}", e.message());
    // ReleaseAggregate: a result that is not the one signed for, and one that does not decode.
    let (request, _, _) = s.request(advertiser, "COUNT").await;
    let read = s.vn.client.signed_read(
        advertiser,
        custos_vault_service::rpc::methods::RELEASE_AGGREGATE,
        &vault_pb::ReleaseAggregateQuery {
            request_id: request.to_vec(),
            result_digest: vec![0; 32],
        },
    );
    let e =
        s.vn.client
            .grpc()
            .release_aggregate(vault_pb::ReleaseAggregateRequest {
                read: Some(read),
                result: b"garbage".to_vec(),
            })
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("result"), "{}", e.message());
    let garbage = s.release(advertiser, request, b"garbage".to_vec()).await;
    assert!(
        matches!(&garbage, Err(VaultClientError::Status(st)) if st.code() == Code::InvalidArgument && st.message().starts_with("result")),
        "{garbage:?}"
    );
    // A raw-mode grant opens no cohort.
    let record =
        s.vn.put(&s.vn.net.patients[0], b"{}".to_vec())
            .await
            .unwrap();
    s.vn.net
        .grant(
            &s.vn.net.patients[0],
            &s.vn.net.insurer,
            &[Purpose::HPAYMT],
            &[AccessMode::Raw],
        )
        .await
        .unwrap();
    let raw =
        s.vn.request(&s.vn.net.insurer, record, "HPAYMT")
            .await
            .unwrap();
    let e = s
        .evaluate(&s.vn.net.insurer, VaultNet::request_id(&raw))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().starts_with("wrong_mode"), "{}", e.message());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_record_loses_its_encrypted_row() {
    use custos_types::tx::EraseRecord;
    let mut vn = VaultNet::start(2).await.unwrap();
    let (keep, erase) = (vn.net.patients[0].clone(), vn.net.patients[1].clone());
    let kept = vn
        .put_with(&keep, b"{}".to_vec(), attributes(0))
        .await
        .unwrap();
    let record = vn
        .put_with(&erase, b"{}".to_vec(), attributes(1))
        .await
        .unwrap();
    let tx = vn
        .net
        .client
        .sign(
            &erase,
            TxKind::EraseRecord(EraseRecord {
                record_id: record,
                legal_grounds: false,
            }),
        )
        .await
        .unwrap();
    vn.client.erase(&tx).await.unwrap();
    vn.stop_vault().await.unwrap();
    // Reopened from its files: the erased record has no row; the other keeps its own.
    let aggregates = custos_vault_service::Aggregates::open(
        &vn.config.data_dir.join("aggregate"),
        &custos_vault::Passphrase::new(crate::PASSPHRASE.into()).unwrap(),
        vn.config.kdf,
        2,
    )
    .unwrap();
    let rows = aggregates.cohort("lab", &[kept, record]).unwrap();
    assert_eq!(rows.missing, 1, "the erased record's row is gone");
    assert_eq!(rows.cohort.rows().collect::<Vec<_>>(), vec![0]);
    assert_eq!(
        aggregates.rows("lab").unwrap(),
        2,
        "rows keep their indices"
    );
    // A wrong passphrase does not open the sealed FHE key.
    drop(aggregates);
    let wrong = custos_vault_service::Aggregates::open(
        &vn.config.data_dir.join("aggregate"),
        &custos_vault::Passphrase::new("not the passphrase at all".into()).unwrap(),
        vn.config.kdf,
        2,
    );
    assert!(wrong.is_err());
    vn.net.stop().await.unwrap();
}
