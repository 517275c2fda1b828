//! A node killed with SIGKILL in the middle of a stream of transactions comes back with every
//! finalized block and entry and the same roots.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_client::{Client, verify};
use custos_crypto::PartyKeys;
use custos_proto::ledger::v1 as pb;
use custos_types::model::Organisation;
use custos_types::tx::RegisterParty;
use custos_types::{PartyId, Role, TxKind};

use crate::{custos, eventually, start_node};

/// Transaction id → (height, log index), as reported final to a writer.
type Finalized = BTreeMap<Vec<u8>, (u64, u64)>;

fn register(keys: &PartyKeys) -> TxKind {
    TxKind::RegisterParty(RegisterParty {
        party: PartyId(keys.public()),
        role: Role::Patient,
        encryption_key: keys.encryption_public(),
        organisation: Organisation::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_stream_restarts_with_every_finalized_entry_and_the_same_roots() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    let status = custos()
        .args(["node", "init", "--dir"])
        .arg(&node_dir)
        .status()
        .unwrap();
    assert!(status.success());
    let config = node_dir.join("node.toml");
    let genesis = custos_node::load_genesis(&node_dir.join("genesis.json")).unwrap();

    let (mut child, endpoint) = start_node(&config);
    let client = eventually(Duration::from_secs(20), || async {
        Client::connect(&endpoint).await.ok()
    })
    .await;

    // Four writers submit and wait; every finalization they see is recorded.
    let finalized: Arc<Mutex<Finalized>> = Arc::default();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let finalized = finalized.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                let keys = PartyKeys::generate(&mut rand::rngs::OsRng);
                match client.submit(&keys, register(&keys)).await {
                    Ok(r) => {
                        finalized
                            .lock()
                            .unwrap()
                            .insert(r.tx_id.clone(), (r.height, r.entry_index));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill in the middle of the stream, once a fair number of blocks are final.
    let before: pb::ChainStatus = eventually(Duration::from_secs(60), || async {
        let s = client.status().await.ok()?;
        (s.height >= 20 && finalized.lock().unwrap().len() >= 40).then_some(s)
    })
    .await;
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    let seen = finalized.lock().unwrap().clone();
    assert!(seen.len() >= 40);

    let (mut child, endpoint) = start_node(&config);
    let client = eventually(Duration::from_secs(20), || async {
        Client::connect(&endpoint).await.ok()
    })
    .await;
    let after = client.status().await.unwrap();
    assert!(
        after.height >= before.height,
        "lost blocks: {} < {}",
        after.height,
        before.height
    );

    // The header observed before the kill is unchanged.
    let old = client
        .ledger()
        .get_header(pb::GetHeaderRequest {
            height: before.height,
        })
        .await
        .unwrap()
        .into_inner();
    let old_header = old.header.unwrap();
    assert_eq!(old_header.log_root, before.log_root);
    assert_eq!(old_header.state_root, before.state_root);

    // Every transaction reported final is still where it was.
    for (tx_id, (height, index)) in &seen {
        let s = client
            .ledger()
            .get_tx_status(pb::GetTxStatusRequest {
                tx_id: tx_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            s.status,
            pb::TxStatus::Finalized as i32,
            "tx {} lost",
            hex::encode(tx_id)
        );
        assert_eq!((s.height, s.entry_index), (*height, *index));
    }

    // The whole chain still verifies against the genesis, and the node keeps finalizing.
    let trusted = verify::genesis_validators(&genesis).unwrap();
    let headers = client.headers().await.unwrap();
    verify::verify_header_chain(&genesis, &trusted, &headers).unwrap();
    let keys = PartyKeys::generate(&mut rand::rngs::OsRng);
    let r = client.submit(&keys, register(&keys)).await.unwrap();
    assert!(r.height > after.height);
    child.kill().unwrap();
    child.wait().unwrap();
}
