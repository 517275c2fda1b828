//! Release latency, request → decrypted: a partner's `RequestAccess` finalized, then the
//! vault's fetch (proof verification against the genesis, `ConfirmRelease` finalized, wrapped
//! key and ciphertext streamed, decrypted into a file). p50 and p99 over a run of releases of a
//! small FHIR record, on a 4-validator consortium (Malachite over libp2p on loopback, vault on
//! validator 1, partner on validator 2) and, for comparison, on a single validator.
//!
//! Run: `cargo bench -p custos-vault-service --bench release` (`-- --quick` for fewer
//! releases).
// A benchmark: failing loudly is fine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use custos_client::Client;
use custos_crypto::PartyKeys;
use custos_proto::vault::v1 as pb;
use custos_tests::TestNet;
use custos_tests::consortium::Consortium;
use custos_types::tx::RequestAccess;
use custos_types::{
    AccessMode, Consent, ConsentPeriod, Genesis, PartyId, Purpose, RecordId, RequestId, Scope,
    TxKind,
};
use custos_vault::{KdfParams, Passphrase};
use custos_vault_service::{NodeGateway, VaultClient, VaultConfig, start_with};

const RECORD: &[u8] = br#"{"resourceType":"Observation","status":"final","code":{"text":"HbA1c"},"valueQuantity":{"value":6.1,"unit":"%"}}"#;

struct Figures {
    request: Vec<Duration>,
    fetch: Vec<Duration>,
    total: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Puts one record of `patient` through a vault of `hospital` on `vault_node`, grants the
/// insurer, then runs `n` request → decrypted releases with the insurer on `partner_node`.
#[allow(clippy::too_many_arguments)]
async fn releases(
    genesis: &Genesis,
    hospital: &PartyKeys,
    insurer: &PartyKeys,
    patient: &PartyKeys,
    vault_node: &Client,
    partner_node: &Client,
    n: usize,
) -> Figures {
    partner_node
        .submit(
            patient,
            TxKind::GrantConsent(Consent {
                patient: PartyId(patient.public()),
                grantee: PartyId(insurer.public()),
                scope: Scope::AllRecords,
                purposes: [Purpose::HPAYMT].into_iter().collect(),
                modes: [AccessMode::Raw].into_iter().collect(),
                period: ConsentPeriod::default(),
            }),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = VaultConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        String::new(),
        dir.path().join("genesis.json"),
        dir.path().join("vault"),
    );
    config.kdf = KdfParams::INSECURE_FOR_TESTS;
    let vault = start_with(
        &config,
        hospital.clone(),
        &Passphrase::new("bench".into()).unwrap(),
        genesis.clone(),
        NodeGateway::from_client(vault_node.clone()),
    )
    .await
    .unwrap();
    let client = VaultClient::connect(&vault.endpoint(), genesis.chain_id.clone())
        .await
        .unwrap();
    let header = pb::RecordHeader {
        record_id: Vec::new(),
        owner: PartyId(patient.public()).to_vec(),
        category: "lab".into(),
        attributes: Vec::new(),
        size: RECORD.len() as u64,
    };
    let put = client
        .put(hospital, header, std::io::Cursor::new(RECORD.to_vec()))
        .await
        .unwrap();
    let record = RecordId::from_field(&put.record_id, "record_id").unwrap();
    let mut figures = Figures {
        request: Vec::new(),
        fetch: Vec::new(),
        total: Vec::new(),
    };
    for i in 0..n {
        let started = Instant::now();
        let decision = partner_node
            .request_access(
                insurer,
                RequestAccess {
                    record_id: record,
                    purpose: Purpose::HPAYMT,
                    mode: AccessMode::Raw,
                    justification_digest: None,
                    query: Vec::new(),
                },
            )
            .await
            .unwrap();
        let decided = Instant::now();
        let request = RequestId::from_field(&decision.decision.unwrap().request_id, "r").unwrap();
        let out = dir.path().join(format!("out-{i}"));
        client.fetch(insurer, request, &out, false).await.unwrap();
        let done = Instant::now();
        assert_eq!(std::fs::read(&out).unwrap(), RECORD);
        figures.request.push(decided - started);
        figures.fetch.push(done - decided);
        figures.total.push(done - started);
    }
    vault.stop().await.unwrap();
    figures
}

fn report(what: &str, mut figures: Figures) {
    for v in [&mut figures.request, &mut figures.fetch, &mut figures.total] {
        v.sort();
    }
    println!(
        "{what}: {} releases; request → decrypted p50 {:.0} ms, p99 {:.0} ms \
         (request finalized p50 {:.0} ms; vault fetch incl. proof check and ConfirmRelease \
         finalized p50 {:.0} ms, p99 {:.0} ms)",
        figures.total.len(),
        ms(percentile(&figures.total, 0.5)),
        ms(percentile(&figures.total, 0.99)),
        ms(percentile(&figures.request, 0.5)),
        ms(percentile(&figures.fetch, 0.5)),
        ms(percentile(&figures.fetch, 0.99)),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 10 } else { 50 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let consortium = Consortium::start(4).await.unwrap();
        let patient = consortium.register_patient_at(0).await.unwrap();
        let figures = releases(
            &consortium.genesis,
            &consortium.hospital,
            &consortium.insurer,
            &patient,
            consortium.client(1).unwrap(),
            consortium.client(2).unwrap(),
            n,
        )
        .await;
        report("4 validators", figures);
        consortium.stop().await.unwrap();

        let net = TestNet::start(1).await.unwrap();
        let figures = releases(
            &net.genesis,
            &net.hospital,
            &net.insurer,
            &net.patients[0],
            &net.client,
            &net.client,
            n,
        )
        .await;
        report("1 validator ", figures);
        net.stop().await.unwrap();
    });
}
