//! Predicate proofs through the vault: the record's attribute commitment is registered at put;
//! a granted predicate-mode request gets a Groth16 proof, logged on the ledger before it leaves,
//! that the partner verifies against the on-chain commitment and the governance-registered key
//! — and that fails for anyone or anything else.

use custos_circuits::{Predicate, VerifyingKeyArtifact, setup};
use custos_proto::consent::v1 as consent_pb;
use custos_proto::vault::v1 as pb;
use custos_types::tx::{Governance, RequestAccess};
use custos_types::{AccessMode, Purpose, RecordId, RequestId, SignedTransaction, TxKind};
use custos_vault_service::VaultClientError;
use custos_vault_service::predicate::{CIRCUIT, verify_answer};
use rand_core::OsRng;

use crate::{VaultNet, party, random_bytes};

fn numeric(name: &str, value: i64) -> pb::Attribute {
    pb::Attribute {
        name: name.into(),
        value: Some(pb::attribute::Value::Numeric(value)),
    }
}

/// Age 42, non-smoker, BMI 24.5, and the rest of the schema.
fn healthy_adult() -> Vec<pb::Attribute> {
    vec![
        numeric("age", 42),
        numeric("smoker", 0),
        numeric("bmi_x10", 245),
        numeric("systolic_bp", 121),
        numeric("hba1c_x10", 54),
        numeric("cholesterol", 180),
        numeric("sex", 2),
        numeric("postcode_region", 1017),
    ]
}

const UNDERWRITING: &str = "age>=18 && smoker=0 && bmi_x10<300";

async fn ask(
    vn: &VaultNet,
    who: &custos_crypto::PartyKeys,
    record: RecordId,
    predicate: &Predicate,
    mode: AccessMode,
) -> (SignedTransaction, bool) {
    let tx = vn
        .net
        .client
        .sign(
            who,
            TxKind::RequestAccess(RequestAccess {
                record_id: record,
                purpose: Purpose::parse("HPAYMT").unwrap(),
                mode,
                justification_digest: None,
                query: predicate.to_canonical_bytes().to_vec(),
            }),
        )
        .await
        .unwrap();
    let decision = vn
        .net
        .client
        .access()
        .request_access(tx.to_wire())
        .await
        .unwrap()
        .into_inner();
    (tx, decision.decision.unwrap().granted)
}

fn refused_with(result: Result<impl std::fmt::Debug, VaultClientError>, code: &str) {
    match result {
        Err(VaultClientError::Status(s)) => {
            assert!(s.message().starts_with(code), "expected `{code}`: {s:?}")
        }
        other => panic!("expected a `{code}` refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_insurer_learns_one_verified_bit_for_a_consenting_patient_and_nothing_otherwise() {
    let vn = VaultNet::start(2).await.unwrap();
    let (consenting, other) = (&vn.net.patients[0], &vn.net.patients[1]);
    let (pk, vk) = setup(&mut OsRng).unwrap();
    vn.running().set_proving_key(pk).unwrap();

    // Governance registers the verifying key (2 of the 3 member organisations sign).
    let mut tx = vn
        .net
        .client
        .sign(
            &vn.net.hospital,
            TxKind::Governance(Governance::RegisterVerifyingKey {
                circuit: CIRCUIT.into(),
                key_hash: Some(custos_crypto::Hash(vk.id().0)),
            }),
        )
        .await
        .unwrap();
    tx.cosign(&vn.net.insurer.identity);
    let registered = vn.net.client.submit_signed(&tx, true).await.unwrap();
    assert_eq!(registered.reason, "", "{registered:?}");

    // Records with every attribute get a commitment on the ledger; one without does not.
    let record = vn
        .put_with(consenting, random_bytes(300), healthy_adult())
        .await
        .unwrap();
    let others = vn
        .put_with(other, random_bytes(300), healthy_adult())
        .await
        .unwrap();
    let partial = vn
        .put_with(consenting, random_bytes(10), vec![numeric("age", 30)])
        .await
        .unwrap();
    let on_ledger = |id: RecordId| {
        let client = vn.net.client.clone();
        let custodian = vn.net.hospital.clone();
        async move {
            client
                .record(&custodian, id, None)
                .await
                .unwrap()
                .attribute_commitment
        }
    };
    let commitment = on_ledger(record).await;
    assert_eq!(commitment.len(), 32);
    assert!(on_ledger(partial).await.is_empty());
    vn.net
        .grant(
            consenting,
            &vn.net.insurer,
            &[Purpose::parse("HPAYMT").unwrap()],
            &[AccessMode::Predicate, AccessMode::Raw],
        )
        .await
        .unwrap();

    // The partner checks against the registered key id, which the node reports.
    let key_id = vn
        .net
        .client
        .consent()
        .get_verifying_key(consent_pb::GetVerifyingKeyRequest {
            circuit: CIRCUIT.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .key_hash;
    let vk = VerifyingKeyArtifact::load(
        &vk.to_bytes().unwrap(),
        &custos_circuits::KeyId(key_id.try_into().unwrap()),
    )
    .unwrap();

    let predicate: Predicate = UNDERWRITING.parse().unwrap();
    let (tx, granted) = ask(
        &vn,
        &vn.net.insurer,
        record,
        &predicate,
        AccessMode::Predicate,
    )
    .await;
    assert!(granted);
    let request = RequestId(tx.id().0);
    let answer = vn.client.prove(&vn.net.insurer, &tx).await.unwrap();
    assert_eq!(answer.proof.len(), 128);
    verify_answer(
        &answer,
        request,
        party(&vn.net.insurer),
        &predicate,
        &commitment,
        &vk,
    )
    .unwrap();
    // Logged before release: the proof's digest is the request's confirmed release.
    let entry = vn.audit_entry(request).await.unwrap();
    assert_eq!(entry.releases.len(), 1);

    // The same proof is worthless for another partner, another record's commitment, another
    // predicate, or under a key governance did not register; a flipped bit breaks it.
    assert!(
        verify_answer(
            &answer,
            request,
            party(&vn.net.advertiser),
            &predicate,
            &commitment,
            &vk
        )
        .is_err()
    );
    assert!(
        verify_answer(
            &answer,
            request,
            party(&vn.net.insurer),
            &predicate,
            &on_ledger(others).await,
            &vk
        )
        .is_err()
    );
    let weaker: Predicate = "age>=18".parse().unwrap();
    assert!(
        verify_answer(
            &answer,
            request,
            party(&vn.net.insurer),
            &weaker,
            &commitment,
            &vk
        )
        .is_err()
    );
    let (_, unregistered) = setup(&mut OsRng).unwrap();
    assert!(VerifyingKeyArtifact::load(&unregistered.to_bytes().unwrap(), &vk.id()).is_err());
    assert!(
        verify_answer(
            &answer,
            request,
            party(&vn.net.insurer),
            &predicate,
            &commitment,
            &unregistered
        )
        .is_err()
    );
    let mut flipped = answer.clone();
    flipped.proof[5] ^= 1;
    assert!(
        verify_answer(
            &flipped,
            request,
            party(&vn.net.insurer),
            &predicate,
            &commitment,
            &vk
        )
        .is_err()
    );

    // Another partner cannot use the insurer's grant: refused, and the refusal is logged.
    refused_with(
        vn.client.prove(&vn.net.advertiser, &tx).await,
        "not_requester",
    );
    // A patient who did not consent: the ledger denies, the vault gives nothing.
    let (denied, granted) = ask(
        &vn,
        &vn.net.insurer,
        others,
        &predicate,
        AccessMode::Predicate,
    )
    .await;
    assert!(!granted);
    refused_with(
        vn.client.prove(&vn.net.insurer, &denied).await,
        "no_consent",
    );
    // A raw grant does not yield a proof, nor a predicate grant a record.
    let (raw, granted) = ask(&vn, &vn.net.insurer, record, &predicate, AccessMode::Raw).await;
    assert!(granted);
    refused_with(vn.client.prove(&vn.net.insurer, &raw).await, "wrong_mode");
    let (again, _) = ask(
        &vn,
        &vn.net.insurer,
        record,
        &predicate,
        AccessMode::Predicate,
    )
    .await;
    let (_, fetched) = vn
        .fetch(&vn.net.insurer, RequestId(again.id().0), false)
        .await;
    crate::assert_denied(&fetched, "wrong_mode");
    // A predicate the record does not satisfy: the bit (false) is released, logged first.
    let senior: Predicate = "age>=65".parse().unwrap();
    let (old, granted) = ask(&vn, &vn.net.insurer, record, &senior, AccessMode::Predicate).await;
    assert!(granted);
    refused_with(
        vn.client.prove(&vn.net.insurer, &old).await,
        "predicate_false",
    );
    assert_eq!(
        vn.audit_entry(RequestId(old.id().0))
            .await
            .unwrap()
            .releases
            .len(),
        1
    );
    // A record without the full attribute set has no commitment to prove against.
    let (none, granted) = ask(
        &vn,
        &vn.net.insurer,
        partial,
        &predicate,
        AccessMode::Predicate,
    )
    .await;
    assert!(granted);
    refused_with(
        vn.client.prove(&vn.net.insurer, &none).await,
        "no_commitment",
    );
    vn.net.stop().await.unwrap();
}
