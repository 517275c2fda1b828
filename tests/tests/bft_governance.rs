//! Validator-set changes decided by governance take effect in consensus at their height: the
//! chain goes on, certificates after the change carry only the new set's signatures, and the
//! light client follows the change from the genesis.

use anyhow::{Context, ensure};
use custos_client::verify::{genesis_validators, parse_signed_header, verify_header_chain};
use custos_proto::ledger::v1 as ledger_pb;
use custos_tests::bounded;
use custos_tests::consortium::Consortium;
use custos_types::tx::Governance;
use custos_types::{Height, TxKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_removed_by_governance_stops_signing_at_its_height_and_the_chain_goes_on()
-> anyhow::Result<()> {
    let mut net = Consortium::start(4).await?;
    let leaving = net.validator_key(3);
    let now = net.highest(&[0, 1, 2, 3]);
    let effective = now + 4;
    let client = net.client(0)?;
    let mut tx = client
        .sign(
            &net.hospital,
            TxKind::Governance(Governance::RemoveValidator {
                key: leaving,
                effective_height: Height(effective),
            }),
        )
        .await?;
    tx.cosign(&net.insurer.identity);
    let r = bounded("submitting the removal", client.submit_signed(&tx, true)).await??;
    ensure!(
        r.status == ledger_pb::TxStatus::Finalized as i32,
        "removal not finalized: {r:?}"
    );

    // The chain goes on well past the change; the removed validator is then stopped and the
    // remaining three keep finalizing on their own.
    net.wait_for_height(&[0, 1, 2], effective + 3).await?;
    net.stop_node(3).await?;
    let target = net.highest(&[0, 1, 2]) + 3;
    net.register_patient_at(1).await?;
    net.wait_for_height(&[0, 1, 2], target).await?;

    let headers = net.signed_headers(0).await?;
    let genesis_set = genesis_validators(&net.genesis)?;
    let chain = verify_header_chain(&net.genesis, &genesis_set, &headers)
        .context("the light client follows the change from the genesis")?;
    for (signed, (header, set)) in headers.iter().zip(&chain) {
        let (_, cert) = parse_signed_header(signed)?;
        let signed_by_leaving = cert.signatures.iter().any(|(k, _)| *k == leaving);
        if header.height >= effective {
            ensure!(
                set.power_of(&leaving).is_none(),
                "height {} still lists the removed validator",
                header.height
            );
            ensure!(
                !signed_by_leaving,
                "height {} carries the removed validator's signature",
                header.height
            );
            ensure!(set.validators().len() == 3);
        } else {
            ensure!(
                set.power_of(&leaving).is_some(),
                "height {} lost the validator early",
                header.height
            );
        }
    }
    // The header before the change names the new set.
    let before = &chain[(effective - 2) as usize].0;
    ensure!(before.next_validators_hash == chain[(effective - 1) as usize].1.hash());
    ensure!(before.next_validators_hash != genesis_set.hash());
    net.stop().await
}
